use etl_core::invalid::InvalidSetting;
use serde::Deserialize;

/// Coupang's limit per vendor key, calls per second.
pub const COUPANG_CALLS_PER_SECOND: f64 = 10.0;

/// Calls one new-order poll makes per account (one per status of a new order).
pub const NEW_ORDER_POLL_CALLS: usize = 2;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Coupang's gateway; only tests and the simulator change it.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Shortest pause between two sweeps of the look-back window in follow mode (status changes,
    /// cancels, returns); longer when a sweep's calls would spend more than `follow_api_share`.
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    /// Between sweeps, follow mode asks for the orders created in the last `new_orders_window_minutes`
    /// this often (two unpaged calls per account), so new orders reach ClickHouse within about this
    /// long of becoming visible. 0 turns it off.
    #[serde(default = "default_new_orders_poll_secs")]
    pub new_orders_poll_secs: u64,
    /// How far back those polls look (minutes, at most 1440). Orders show in the API about 10 minutes
    /// after payment, so the default leaves room for a late one; the sweeps catch anything older.
    #[serde(default = "default_new_orders_window_minutes")]
    pub new_orders_window_minutes: u32,
    /// The share of Coupang's 10 calls/s per vendor that follow mode may spend on average: the
    /// sweeps of a large shop's look-back days are spaced out to stay within it.
    #[serde(default = "default_follow_api_share")]
    pub follow_api_share: f64,
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
fn default_new_orders_poll_secs() -> u64 {
    15
}

fn default_new_orders_window_minutes() -> u32 {
    60
}

fn default_follow_api_share() -> f64 {
    0.05
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
            new_orders_poll_secs: default_new_orders_poll_secs(),
            new_orders_window_minutes: default_new_orders_window_minutes(),
            follow_api_share: default_follow_api_share(),
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
        } else if !(self.requests_per_second > 0.0 && self.requests_per_second <= COUPANG_CALLS_PER_SECOND) {
            return Err(InvalidSetting::new(
                "ingest.requests_per_second",
                format!(
                    "ingest.requests_per_second = {} must be above 0 and at most 10 (Coupang's per-vendor limit)",
                    self.requests_per_second
                ),
            ));
        }
        let shared = self.requests_per_second + self.backfill_requests_per_second;
        let within_coupang = self.backfill_requests_per_second > 0.0 && shared <= COUPANG_CALLS_PER_SECOND;
        if !self.on_loopback() && !within_coupang {
            return Err(InvalidSetting::new(
                "ingest.backfill_requests_per_second",
                format!(
                    "ingest.requests_per_second ({}) + ingest.backfill_requests_per_second ({}) must stay within Coupang's 10 per vendor",
                    self.requests_per_second, self.backfill_requests_per_second
                ),
            ));
        }
        if !(1..=1_440).contains(&self.new_orders_window_minutes) {
            return Err(InvalidSetting::new(
                "ingest.new_orders_window_minutes",
                format!(
                    "ingest.new_orders_window_minutes = {} must be 1 to 1440 (Coupang's minute lists span at most 24 hours)",
                    self.new_orders_window_minutes
                ),
            ));
        }
        if !(self.follow_api_share > 0.0 && self.follow_api_share <= 1.0) {
            return Err(InvalidSetting::new(
                "ingest.follow_api_share",
                format!("ingest.follow_api_share = {} must be above 0 and at most 1", self.follow_api_share),
            ));
        }
        if self.sweep_calls_per_second() <= 0.0 {
            return Err(InvalidSetting::new(
                "ingest.new_orders_poll_secs",
                format!(
                    "ingest.new_orders_poll_secs = {}: polling new orders this often alone spends more than ingest.follow_api_share ({}) of Coupang's {COUPANG_CALLS_PER_SECOND} calls/s",
                    self.new_orders_poll_secs, self.follow_api_share
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

    /// The calls per second per vendor that follow mode's sweeps may spend on average: its share of
    /// Coupang's limit less what the new-order polls spend.
    pub fn sweep_calls_per_second(&self) -> f64 {
        let polls = match self.new_orders_poll_secs {
            0 => 0.0,
            secs => NEW_ORDER_POLL_CALLS as f64 / secs as f64,
        };
        self.follow_api_share * COUPANG_CALLS_PER_SECOND - polls
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

    #[test]
    fn new_order_polls_must_leave_the_sweeps_part_of_the_share() {
        let polls = |secs, share| IngestConfig {
            new_orders_poll_secs: secs,
            follow_api_share: share,
            ..IngestConfig::default()
        };
        assert!(polls(15, 0.05).validate().is_ok());
        assert!(polls(0, 0.05).validate().is_ok(), "polls off");
        let error = polls(4, 0.05).validate().unwrap_err().to_string();
        assert!(error.contains("ingest.new_orders_poll_secs = 4") && error.contains("follow_api_share"), "{error}");
        assert!(polls(15, 0.0).validate().is_err());
        assert!(polls(15, 1.5).validate().is_err());
        let window = |minutes| IngestConfig { new_orders_window_minutes: minutes, ..IngestConfig::default() };
        assert!(window(1_440).validate().is_ok());
        assert!(window(1_441).validate().unwrap_err().to_string().contains("at most 24 hours"));
        assert!(window(0).validate().is_err());
    }
}
