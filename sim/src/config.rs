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
    /// Simulated seconds per real second. 0 (the default) freezes the world at 09:00 the day after the
    /// period; 86400 lets a day pass every second, so a month passes in half a minute.
    #[serde(default)]
    pub time_scale: f64,
    /// The simulated moment the clock shows when the simulator starts (with a time scale); default:
    /// the start of the first day (Asia/Seoul).
    #[serde(default)]
    pub clock_start: Option<chrono::NaiveDateTime>,
    /// Minutes after payment before an order shows in the lists (Coupang: about 10).
    #[serde(default = "default_visibility_delay_minutes")]
    pub visibility_delay_minutes: i64,
    /// Per-vendor calls per second the gateway accepts before answering 429 (Coupang: about 10).
    /// 0 turns the limit off.
    #[serde(default = "default_rate_limit_per_second")]
    pub rate_limit_per_second: u32,
    /// Faults on demand; all off by default.
    #[serde(default)]
    pub faults: FaultConfig,
    /// How orders live after payment: cancels, returns, coupons, confirmations.
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// The vendor accounts the simulated gateway knows, with their keys.
    #[serde(default = "default_vendors")]
    pub vendors: Vec<SimVendor>,
}

/// Order lifecycles. The defaults are a real shop's rates ([`LifecycleConfig::realistic`]); set a rate
/// to 0 to switch that path off. Every rate is a share of orders unless it says otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Orders cancelled whole by the buyer while still ACCEPT (then listed only under cancelType=CANCEL).
    #[serde(default = "default_cancel_before_dispatch_rate")]
    pub cancel_before_dispatch_rate: f64,
    /// Orders with some units of one item cancelled before dispatch.
    #[serde(default = "default_partial_cancel_rate")]
    pub partial_cancel_rate: f64,
    /// Orders the buyer asks to stop while INSTRUCT (a release stop: returnRequests status RU, then CC).
    #[serde(default = "default_release_stop_rate")]
    pub release_stop_rate: f64,
    /// Orders the seller cancels while INSTRUCT because the stock ran out (one item, or the whole box).
    #[serde(default = "default_stock_out_rate")]
    pub stock_out_rate: f64,
    /// Delivered orders returned whole (the box then drops out of the order-sheet lists).
    #[serde(default = "default_return_rate")]
    pub return_rate: f64,
    /// Confirmed orders of which some units are returned later (REFUND rows on revenue-history).
    #[serde(default = "default_partial_refund_rate")]
    pub partial_refund_rate: f64,
    /// Share of partial refunds that come as two receipts completed on the same day (two REFUND rows of
    /// one order on one recognition day).
    #[serde(default = "default_two_refunds_same_day_share")]
    pub two_refunds_same_day_share: f64,
    /// Share of release stops and returns still open weeks later (RU, UC, VENDOR_WAREHOUSE_CONFIRM, PR).
    #[serde(default = "default_long_pending_share")]
    pub long_pending_share: f64,
    /// Orders with a cancel or return request the buyer withdraws (it leaves returnRequests and shows
    /// in returnWithdrawRequests; nothing changes hands).
    #[serde(default = "default_withdrawn_rate")]
    pub withdrawn_rate: f64,
    /// Delivered orders exchanged (exchangeRequests; no amount changes).
    #[serde(default = "default_exchange_rate")]
    pub exchange_rate: f64,
    /// Share of order items bought with coupons (seller-funded instant/downloadable, Coupang-funded).
    #[serde(default = "default_coupon_rate")]
    pub coupon_rate: f64,
    /// Share of order items with an option or instant price cut: `orderPrice` < `salesPrice` × quantity.
    #[serde(default = "default_price_cut_rate")]
    pub price_cut_rate: f64,
    /// Share of multi-item orders shipped in two boxes.
    #[serde(default = "default_split_shipping_rate")]
    pub split_shipping_rate: f64,
    /// Share of split orders whose second box carries a shipping fee of its own.
    #[serde(default = "default_second_box_fee_share")]
    pub second_box_fee_share: f64,
    /// Share of split orders whose first, fee-carrying box is cancelled before dispatch while the other
    /// ships.
    #[serde(default = "default_first_box_cancel_share")]
    pub first_box_cancel_share: f64,
    /// Share of delivered orders the buyer confirms (0.5 to 5 days after delivery); the others are
    /// confirmed automatically 7 days after delivery.
    #[serde(default = "default_buyer_confirm_rate")]
    pub buyer_confirm_rate: f64,
    /// Share of vendor-days with a non-order adjustment row (`orderId = 0`) on revenue-history.
    #[serde(default = "default_adjustment_rate")]
    pub adjustment_rate: f64,
    /// Share of answers whose envelope says `"code": "200"` (a string) rather than 200.
    #[serde(default = "default_string_code_rate")]
    pub string_code_rate: f64,
    /// Share of v5 records whose times carry microseconds (`…T10:11:12.123456+09:00`).
    #[serde(default = "default_fractional_time_rate")]
    pub fractional_time_rate: f64,
}

fn default_cancel_before_dispatch_rate() -> f64 {
    0.04
}
fn default_partial_cancel_rate() -> f64 {
    0.03
}
fn default_release_stop_rate() -> f64 {
    0.01
}
fn default_stock_out_rate() -> f64 {
    0.01
}
fn default_return_rate() -> f64 {
    0.05
}
fn default_partial_refund_rate() -> f64 {
    0.02
}
fn default_two_refunds_same_day_share() -> f64 {
    0.3
}
fn default_long_pending_share() -> f64 {
    0.1
}
fn default_withdrawn_rate() -> f64 {
    0.01
}
fn default_exchange_rate() -> f64 {
    0.01
}
fn default_coupon_rate() -> f64 {
    0.3
}
fn default_price_cut_rate() -> f64 {
    0.1
}
fn default_split_shipping_rate() -> f64 {
    0.1
}
fn default_second_box_fee_share() -> f64 {
    0.3
}
fn default_first_box_cancel_share() -> f64 {
    0.1
}
fn default_buyer_confirm_rate() -> f64 {
    0.4
}
fn default_adjustment_rate() -> f64 {
    0.05
}
fn default_string_code_rate() -> f64 {
    0.05
}
fn default_fractional_time_rate() -> f64 {
    0.2
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            cancel_before_dispatch_rate: default_cancel_before_dispatch_rate(),
            partial_cancel_rate: default_partial_cancel_rate(),
            release_stop_rate: default_release_stop_rate(),
            stock_out_rate: default_stock_out_rate(),
            return_rate: default_return_rate(),
            partial_refund_rate: default_partial_refund_rate(),
            two_refunds_same_day_share: default_two_refunds_same_day_share(),
            long_pending_share: default_long_pending_share(),
            withdrawn_rate: default_withdrawn_rate(),
            exchange_rate: default_exchange_rate(),
            coupon_rate: default_coupon_rate(),
            price_cut_rate: default_price_cut_rate(),
            split_shipping_rate: default_split_shipping_rate(),
            second_box_fee_share: default_second_box_fee_share(),
            first_box_cancel_share: default_first_box_cancel_share(),
            buyer_confirm_rate: default_buyer_confirm_rate(),
            adjustment_rate: default_adjustment_rate(),
            string_code_rate: default_string_code_rate(),
            fractional_time_rate: default_fractional_time_rate(),
        }
    }
}

impl LifecycleConfig {
    /// Rates like a real shop's (the defaults).
    pub fn realistic() -> LifecycleConfig {
        LifecycleConfig::default()
    }

    /// Every order is paid, shipped and confirmed at its list price without coupons, in plain bodies:
    /// the plainest world.
    pub fn plain() -> LifecycleConfig {
        LifecycleConfig {
            cancel_before_dispatch_rate: 0.0,
            partial_cancel_rate: 0.0,
            release_stop_rate: 0.0,
            stock_out_rate: 0.0,
            return_rate: 0.0,
            partial_refund_rate: 0.0,
            withdrawn_rate: 0.0,
            exchange_rate: 0.0,
            coupon_rate: 0.0,
            price_cut_rate: 0.0,
            first_box_cancel_share: 0.0,
            adjustment_rate: 0.0,
            string_code_rate: 0.0,
            fractional_time_rate: 0.0,
            ..LifecycleConfig::default()
        }
    }
}

/// Faults the simulated gateway injects. Each is decided from the seed and the vendor's call number,
/// so a run with the same calls sees the same faults. Rates are per call (per record for record faults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// 429 bursts: of every `every` calls of a vendor, the first `length` answer 429.
    #[serde(default)]
    pub burst_429: Option<Burst>,
    /// `Retry-After` seconds sent with 429 answers (none when absent).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Share of calls answered 500/503.
    #[serde(default)]
    pub server_error_rate: f64,
    /// Share of calls answered after `slow_ms`. Over 3 s, a call without `X-EXTENDED-TIMEOUT` gets the
    /// gateway's 504 at 3 s instead, as on Coupang.
    #[serde(default)]
    pub slow_rate: f64,
    #[serde(default = "default_slow_ms")]
    pub slow_ms: u64,
    /// Share of calls whose connection breaks in the middle of the body.
    #[serde(default)]
    pub reset_rate: f64,
    /// Share of calls whose JSON body is cut short.
    #[serde(default)]
    pub malformed_json_rate: f64,
    /// Share of order-sheet records served without their required `paidAt` (per response: the same
    /// record asked again may come back whole).
    #[serde(default)]
    pub missing_field_rate: f64,
    /// Share of order-sheet pages that repeat the previous page's last record first.
    #[serde(default)]
    pub repeated_record_rate: f64,
    /// Share of shipment boxes (picked by id) served with an amount that is not a number in every
    /// answer, lists and look-ups alike: records no retry can read, which must be dead-lettered.
    #[serde(default)]
    pub unreadable_record_rate: f64,
    /// One payout that disagrees with revenue-history: `won` added to the first WEEKLY row of the
    /// vendor's month (its sales and settlement target), as a reconciliation must catch.
    #[serde(default)]
    pub disagreeing_payout: Option<DisagreeingPayout>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisagreeingPayout {
    pub vendor_id: String,
    /// The revenue-recognition month, `YYYY-MM`.
    pub month: String,
    pub won: i64,
}

fn default_slow_ms() -> u64 {
    1_500
}

impl Default for FaultConfig {
    /// No fault at all.
    fn default() -> Self {
        FaultConfig {
            burst_429: None,
            retry_after_secs: None,
            server_error_rate: 0.0,
            slow_rate: 0.0,
            slow_ms: default_slow_ms(),
            reset_rate: 0.0,
            malformed_json_rate: 0.0,
            missing_field_rate: 0.0,
            repeated_record_rate: 0.0,
            unreadable_record_rate: 0.0,
            disagreeing_payout: None,
        }
    }
}

impl FaultConfig {
    /// Every fault at a modest rate: what the fault-tolerance tests run against.
    pub fn all_at(rate: f64) -> FaultConfig {
        FaultConfig {
            burst_429: Some(Burst { every: 25, length: 2 }),
            retry_after_secs: Some(1),
            server_error_rate: rate,
            slow_rate: rate,
            slow_ms: 400,
            reset_rate: rate,
            malformed_json_rate: rate,
            missing_field_rate: rate / 2.0,
            repeated_record_rate: rate * 2.0,
            unreadable_record_rate: 0.0,
            disagreeing_payout: None,
        }
    }
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
fn default_visibility_delay_minutes() -> i64 {
    10
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
            time_scale: 0.0,
            clock_start: None,
            visibility_delay_minutes: default_visibility_delay_minutes(),
            rate_limit_per_second: default_rate_limit_per_second(),
            faults: FaultConfig::default(),
            lifecycle: LifecycleConfig::default(),
            vendors: default_vendors(),
        }
    }
}

/// The fastest simulated clock: a million simulated seconds per real second (11.6 days), which
/// reaches the calendar's end only after months of running.
const MAX_TIME_SCALE: f64 = 1e6;

impl SimConfig {
    /// The last payment day of the period.
    pub fn end_date(&self) -> NaiveDate {
        self.start_date + chrono::Duration::days(i64::from(self.days.max(1)) - 1)
    }

    /// Refuses a clock the simulator cannot run: `time_scale` must be a number from 0 to 1,000,000.
    pub fn validate(&self) -> Result<(), etl_core::invalid::InvalidSetting> {
        if !(0.0..=MAX_TIME_SCALE).contains(&self.time_scale) {
            return Err(etl_core::invalid::InvalidSetting::new(
                "sim.time_scale",
                format!(
                    "sim.time_scale = {} must be 0 (a frozen clock) to {MAX_TIME_SCALE} simulated seconds per real second",
                    self.time_scale
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SimConfig;

    #[test]
    fn a_clock_that_cannot_run_is_refused_by_name() {
        let with_scale = |time_scale| SimConfig { time_scale, ..SimConfig::default() };
        for good in [0.0, 1.0, 86_400.0, 1e6] {
            assert!(with_scale(good).validate().is_ok(), "{good}");
        }
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e7] {
            let error = with_scale(bad).validate().unwrap_err();
            assert_eq!(error.setting, "sim.time_scale", "{bad}");
        }
    }
}
