//! Knobs of the simulated world and gateway.

use chrono::NaiveDate;
use etl_core::secret::Secret;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Same seed, same world: orders, amounts and statuses are fixed by it.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// First payment day (Asia/Seoul) of the simulated period.
    #[serde(default = "default_start_date")]
    pub start_date: NaiveDate,
    /// Length of the simulated period in days.
    #[serde(default = "default_days")]
    pub days: u32,
    /// Mean orders per vendor and day (each day draws within ±50%).
    #[serde(default = "default_orders_per_day")]
    pub orders_per_day: u32,
    /// How far from the gateway's clock a `signed-date` may be before "Specified signature is expired."
    #[serde(default = "default_clock_skew_secs")]
    pub clock_skew_secs: i64,
    /// Per-vendor calls per second the gateway accepts before answering 429 (Coupang: about 10).
    /// 0 turns the limit off.
    #[serde(default = "default_rate_limit_per_second")]
    pub rate_limit_per_second: u32,
    /// Faults on demand; all off by default.
    #[serde(default)]
    pub faults: FaultConfig,
    /// The vendor accounts the simulated gateway knows, with their keys.
    #[serde(default = "default_vendors")]
    pub vendors: Vec<SimVendor>,
}

/// Faults the simulated gateway injects, deterministically, so tests can rely on them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// 429 bursts: of every `every` calls of a vendor, the first `length` answer 429.
    #[serde(default)]
    pub burst_429: Option<Burst>,
    /// `Retry-After` seconds sent with 429 answers (none when absent).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    pub every: u64,
    pub length: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimVendor {
    pub vendor_id: String,
    pub access_key: String,
    pub secret_key: Secret,
    /// When the key was issued; it is refused (401) from 180 days later. None: never expires.
    #[serde(default)]
    pub key_issued_on: Option<NaiveDate>,
    /// Client IPs the key accepts calls from (Coupang allows up to 10); empty accepts any.
    #[serde(default)]
    pub allowed_ips: Vec<std::net::IpAddr>,
}

fn default_seed() -> u64 {
    20_251_001
}
fn default_start_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, 1).expect("valid date")
}
fn default_days() -> u32 {
    31
}
fn default_orders_per_day() -> u32 {
    40
}
fn default_clock_skew_secs() -> i64 {
    300
}
fn default_rate_limit_per_second() -> u32 {
    10
}

/// The demo's three vendors. Their keys exist only in the simulator: they open nothing real.
pub fn default_vendors() -> Vec<SimVendor> {
    [("A00010001", "sim-access-a"), ("A00010002", "sim-access-b"), ("C00010003", "sim-access-c")]
        .into_iter()
        .map(|(vendor_id, access_key)| SimVendor {
            vendor_id: vendor_id.into(),
            access_key: access_key.into(),
            secret_key: Secret::new(format!("sim-secret-for-{vendor_id}")),
            key_issued_on: None,
            allowed_ips: Vec::new(),
        })
        .collect()
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: default_seed(),
            start_date: default_start_date(),
            days: default_days(),
            orders_per_day: default_orders_per_day(),
            clock_skew_secs: default_clock_skew_secs(),
            rate_limit_per_second: default_rate_limit_per_second(),
            faults: FaultConfig::default(),
            vendors: default_vendors(),
        }
    }
}

impl SimConfig {
    /// The last payment day of the period.
    pub fn end_date(&self) -> NaiveDate {
        self.start_date + chrono::Duration::days(i64::from(self.days.max(1)) - 1)
    }
}
