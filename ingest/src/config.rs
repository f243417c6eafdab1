use etl_core::invalid::InvalidSetting;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Coupang's gateway; only tests and the simulator change it.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Pause between two sweeps of the look-back window in follow mode.
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    /// Days before today (Asia/Seoul) that every sweep re-reads, so status changes of recent orders are seen.
    #[serde(default = "default_lookback_days")]
    pub lookback_days: u32,
    /// Requests per second per vendor key; Coupang allows about 10, so the default keeps a margin.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: f64,
    /// Requests per second per vendor key for `coupang-etl backfill`. With live polling running at the
    /// same time, the two together must stay within Coupang's 10, so live freshness never starves.
    #[serde(default = "default_backfill_requests_per_second")]
    pub backfill_requests_per_second: f64,
    /// Attempts per request for retryable failures (429, 5xx, timeouts, connection errors).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Whole-request timeout, seconds.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// After persistent 429s (Coupang blocks a key for minutes to tens of minutes), the vendor's calls
    /// pause this long, then one probe goes out; each further 429 doubles the pause, up to 15 minutes.
    #[serde(default = "default_cool_down_secs")]
    pub cool_down_secs: u64,
    /// A cool-down that has lasted this long ends the sweep with "requests gave up".
    #[serde(default = "default_cool_down_give_up_minutes")]
    pub cool_down_give_up_minutes: u64,
    /// An account stopped by a rejected key is tried again this often (hours), so a key that starts
    /// working late, or an allow-list fixed in WING, resumes on its own.
    #[serde(default = "default_stopped_retry_hours")]
    pub stopped_retry_hours: f64,
}

fn default_base_url() -> String {
    "https://api-gateway.coupang.com".into()
}
fn default_poll_interval_secs() -> u64 {
    300
}
fn default_lookback_days() -> u32 {
    14
}
fn default_requests_per_second() -> f64 {
    8.0
}
fn default_backfill_requests_per_second() -> f64 {
    2.0
}
fn default_max_attempts() -> u32 {
    6
}
fn default_request_timeout_secs() -> u64 {
    100
}
fn default_cool_down_secs() -> u64 {
    60
}
fn default_cool_down_give_up_minutes() -> u64 {
    120
}
fn default_stopped_retry_hours() -> f64 {
    6.0
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            base_url: default_base_url(),
            poll_interval_secs: default_poll_interval_secs(),
            lookback_days: default_lookback_days(),
            requests_per_second: default_requests_per_second(),
            backfill_requests_per_second: default_backfill_requests_per_second(),
            max_attempts: default_max_attempts(),
            request_timeout_secs: default_request_timeout_secs(),
            cool_down_secs: default_cool_down_secs(),
            cool_down_give_up_minutes: default_cool_down_give_up_minutes(),
            stopped_retry_hours: default_stopped_retry_hours(),
        }
    }
}

impl IngestConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            let message = format!("ingest.base_url {:?} must start with http:// or https://", self.base_url);
            return Err(InvalidSetting::new("ingest.base_url", message));
        }
        if self.on_loopback() {
            // A simulator on this machine (benchmarks): Coupang's per-vendor limit does not apply.
            if !(self.requests_per_second > 0.0 && self.backfill_requests_per_second > 0.0) {
                return Err(InvalidSetting::new(
                    "ingest.requests_per_second",
                    "ingest.requests_per_second and backfill_requests_per_second must be above 0",
                ));
            }
        } else if !(self.requests_per_second > 0.0 && self.requests_per_second <= 10.0) {
            return Err(InvalidSetting::new(
                "ingest.requests_per_second",
                format!(
                    "ingest.requests_per_second = {} must be above 0 and at most 10 (Coupang's per-vendor limit)",
                    self.requests_per_second
                ),
            ));
        }
        let shared = self.requests_per_second + self.backfill_requests_per_second;
        let within_coupang = self.backfill_requests_per_second > 0.0 && shared <= 10.0;
        if !self.on_loopback() && !within_coupang {
            return Err(InvalidSetting::new(
                "ingest.backfill_requests_per_second",
                format!(
                    "ingest.requests_per_second ({}) + ingest.backfill_requests_per_second ({}) must stay within Coupang's 10 per vendor",
                    self.requests_per_second, self.backfill_requests_per_second
                ),
            ));
        }
        if self.max_attempts == 0 {
            return Err(InvalidSetting::new("ingest.max_attempts", "ingest.max_attempts must be at least 1"));
        }
        if self.cool_down_secs == 0 {
            return Err(InvalidSetting::new("ingest.cool_down_secs", "ingest.cool_down_secs must be at least 1"));
        }
        if !(self.stopped_retry_hours > 0.0 && self.stopped_retry_hours <= 8_760.0) {
            return Err(InvalidSetting::new(
                "ingest.stopped_retry_hours",
                format!(
                    "ingest.stopped_retry_hours = {} must be above 0 and at most 8760 (a year)",
                    self.stopped_retry_hours
                ),
            ));
        }
        Ok(())
    }

    /// Whether `base_url` is this machine (127.0.0.1, localhost or `[::1]`): the simulator, not Coupang.
    pub fn on_loopback(&self) -> bool {
        let authority = self.base_url.split_once("://").map_or("", |(_, rest)| rest).split('/').next().unwrap_or("");
        let host = match authority.split_once(']') {
            Some((v6, _)) => &authority[..=v6.len()],
            None => authority.split(':').next().unwrap_or(""),
        };
        matches!(host, "127.0.0.1" | "localhost" | "[::1]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(base_url: &str, rate: f64) -> IngestConfig {
        IngestConfig { base_url: base_url.into(), requests_per_second: rate, ..IngestConfig::default() }
    }

    #[test]
    fn coupang_s_limit_holds_except_for_a_simulator_on_this_machine() {
        assert!(with("https://api-gateway.coupang.com", 11.0).validate().is_err());
        assert!(with("https://api-gateway.coupang.com", 8.0).validate().is_ok());
        for local in ["http://127.0.0.1:8080", "http://localhost:1/x", "http://[::1]:9000"] {
            assert!(with(local, 1_000.0).on_loopback(), "{local}");
            assert!(with(local, 1_000.0).validate().is_ok(), "{local}");
        }
        assert!(!with("http://127.0.0.1.example.com", 8.0).on_loopback());
        assert!(with("http://127.0.0.1.example.com", 1_000.0).validate().is_err());
        assert!(with("http://localhost", 0.0).validate().is_err());
    }
}
