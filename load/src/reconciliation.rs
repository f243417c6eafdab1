//! The reconciliation read-back: one row of the `reconciliation` view per account and
//! revenue-recognition month (docs/analysts.md explains each figure).

use chrono::{Datelike, Months, NaiveDate};
use clickhouse::Row;
use etl_core::metrics::{metrics, AccountMonth};
use etl_core::Shutdown;
use serde::Deserialize;
use std::time::Duration;

use crate::schema::SchemaError;
use crate::summary::Reader;

/// Where a month of an account stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReconciliationStatus {
    /// Every won ties: its RESERVE row is there (paid or still scheduled), every recognised won is in a
    /// payout, no gap, no rounding.
    Tied,
    /// What differs has a named reason: not yet in a payout, the reserve held back, deductions, rounding.
    Explained,
    /// Payouts and revenue-history disagree beyond rounding: a person must look.
    Unexplained,
}

impl ReconciliationStatus {
    fn parse(text: &str) -> ReconciliationStatus {
        match text {
            "tied" => ReconciliationStatus::Tied,
            "explained" => ReconciliationStatus::Explained,
            // The view has no other word; anything new is treated as the worst.
            _ => ReconciliationStatus::Unexplained,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReconciliationStatus::Tied => "tied",
            ReconciliationStatus::Explained => "explained",
            ReconciliationStatus::Unexplained => "unexplained",
        }
    }
}

/// One account's month, in won.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub vendor_id: String,
    pub account_alias: String,
    /// The first day of the revenue-recognition month.
    pub month: NaiveDate,
    /// Our payment facts paid in the month (current amounts), and the part still provisional.
    pub payments: i64,
    pub provisional_payments: i64,
    /// The confirmed part, the Coupang-funded coupons it carries, and revenue-history's sales of the
    /// month's payment days; `payment_day_gap` = revenue − (confirmed + Coupang coupons).
    pub confirmed_payments: i64,
    pub confirmed_coupang_coupons: i64,
    pub revenue_by_payment_day: i64,
    pub payment_day_gap: i64,
    /// Revenue-history recognised in the month: sales less seller coupons plus shipping, the service
    /// fee, and what is to be settled (`revenue_total_sale − revenue_service_fee`).
    pub revenue_total_sale: i64,
    pub revenue_service_fee: i64,
    pub revenue_settlement: i64,
    pub revenue_refunds: i64,
    /// Payout cycles (WEEKLY, MONTHLY, DAILY) closed so far: count, targets, and the revenue of the
    /// days they cover; what they paid.
    pub payout_cycles: i64,
    pub cycle_target: i64,
    pub revenue_in_cycles: i64,
    pub cycle_paid: i64,
    pub reserve_target: i64,
    pub reserve_paid: i64,
    pub deductions: i64,
    pub seller_service_fee: i64,
    pub final_amount: i64,
    pub scheduled_amount: i64,
    /// Explained differences.
    pub not_yet_in_payout: i64,
    pub reserve_held_back: i64,
    pub rounding: i64,
    /// Gaps: `target_gap` and `reserve_gap` are exact; `unexplained` sums what has no reason.
    pub target_gap: i64,
    pub reserve_gap: i64,
    pub unexplained: i64,
    pub status: ReconciliationStatus,
    /// Every difference with its reason, `; `-separated.
    pub reasons: String,
}

#[derive(Debug, Clone, Row, Deserialize)]
struct ReconciliationWire {
    vendor_id: String,
    account_alias: String,
    month: u16,
    payments: i64,
    provisional_payments: i64,
    confirmed_payments: i64,
    confirmed_coupang_coupons: i64,
    revenue_by_payment_day: i64,
    payment_day_gap: i64,
    revenue_total_sale: i64,
    revenue_service_fee: i64,
    revenue_settlement: i64,
    revenue_refunds: i64,
    payout_cycles: i64,
    cycle_target: i64,
    revenue_in_cycles: i64,
    cycle_paid: i64,
    reserve_target: i64,
    reserve_paid: i64,
    deductions: i64,
    seller_service_fee: i64,
    final_amount: i64,
    scheduled_amount: i64,
    not_yet_in_payout: i64,
    reserve_held_back: i64,
    rounding: i64,
    target_gap: i64,
    reserve_gap: i64,
    unexplained: i64,
    status: String,
    reasons: String,
}

const COLUMNS: &str = "vendor_id, account_alias, month, payments, provisional_payments, confirmed_payments, \
    confirmed_coupang_coupons, revenue_by_payment_day, payment_day_gap, revenue_total_sale, \
    revenue_service_fee, revenue_settlement, revenue_refunds, payout_cycles, cycle_target, revenue_in_cycles, \
    cycle_paid, reserve_target, reserve_paid, deductions, seller_service_fee, final_amount, scheduled_amount, \
    not_yet_in_payout, reserve_held_back, rounding, target_gap, reserve_gap, unexplained, status, reasons";

impl Reader {
    /// The reconciliation of every account (or the one whose alias or vendor id is `account`) for the
    /// months `from..=to` (first days), by month and account.
    pub async fn reconciliation(
        &self,
        (from, to): (NaiveDate, NaiveDate),
        account: Option<&str>,
    ) -> Result<Vec<Reconciliation>, SchemaError> {
        let mut sql = format!("SELECT {COLUMNS} FROM reconciliation WHERE month >= ? AND month <= ?");
        if account.is_some() {
            sql.push_str(" AND (account_alias = ? OR vendor_id = ?)");
        }
        sql.push_str(" ORDER BY month, account_alias, vendor_id");
        let mut query = self.client().query(&sql).bind(from.to_string()).bind(to.to_string());
        if let Some(account) = account {
            query = query.bind(account).bind(account);
        }
        let rows = query.fetch_all::<ReconciliationWire>().await.map_err(|source| self.error(source))?;
        Ok(rows.into_iter().map(Reconciliation::from).collect())
    }
}

impl From<ReconciliationWire> for Reconciliation {
    fn from(r: ReconciliationWire) -> Reconciliation {
        Reconciliation {
            month: etl_core::time::date_from_days(i32::from(r.month)).unwrap_or_default(),
            status: ReconciliationStatus::parse(&r.status),
            vendor_id: r.vendor_id,
            account_alias: r.account_alias,
            payments: r.payments,
            provisional_payments: r.provisional_payments,
            confirmed_payments: r.confirmed_payments,
            confirmed_coupang_coupons: r.confirmed_coupang_coupons,
            revenue_by_payment_day: r.revenue_by_payment_day,
            payment_day_gap: r.payment_day_gap,
            revenue_total_sale: r.revenue_total_sale,
            revenue_service_fee: r.revenue_service_fee,
            revenue_settlement: r.revenue_settlement,
            revenue_refunds: r.revenue_refunds,
            payout_cycles: r.payout_cycles,
            cycle_target: r.cycle_target,
            revenue_in_cycles: r.revenue_in_cycles,
            cycle_paid: r.cycle_paid,
            reserve_target: r.reserve_target,
            reserve_paid: r.reserve_paid,
            deductions: r.deductions,
            seller_service_fee: r.seller_service_fee,
            final_amount: r.final_amount,
            scheduled_amount: r.scheduled_amount,
            not_yet_in_payout: r.not_yet_in_payout,
            reserve_held_back: r.reserve_held_back,
            rounding: r.rounding,
            target_gap: r.target_gap,
            reserve_gap: r.reserve_gap,
            unexplained: r.unexplained,
            reasons: r.reasons,
        }
    }
}

/// The current recognition month (Korea time) and the two before it: the months whose payouts may
/// still change.
pub fn open_months(today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let this_month = today.with_day(1).unwrap_or(today);
    (this_month.checked_sub_months(Months::new(2)).unwrap_or(this_month), this_month)
}

/// Reads the reconciliation into the metrics every `every`, until shutdown. A read that fails is
/// logged and tried next time.
pub(crate) async fn watch(reader: Reader, every: Duration, shutdown: Shutdown) {
    loop {
        if let Err(error) = refresh_metrics(&reader).await {
            tracing::warn!("the reconciliation could not be read: {error}");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Sets the reconciliation metrics of every account and month in the view (an old gap left unexplained
/// keeps alerting until it is resolved), and logs each unexplained gap with its account and month.
/// Returns how many account-months it read.
pub async fn refresh_metrics(reader: &Reader) -> Result<usize, SchemaError> {
    // Within every server's Date (18.16 ends in 2105).
    let every_month = (
        NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default(),
        NaiveDate::from_ymd_opt(2105, 12, 1).unwrap_or_default(),
    );
    let months = reader.reconciliation(every_month, None).await?;
    months.iter().for_each(record);
    Ok(months.len())
}

fn record(month: &Reconciliation) {
    let label = AccountMonth { account: month.account_alias.clone(), month: month.month.format("%Y-%m").to_string() };
    metrics().reconciliation_unexplained_won.get_or_create(&label).set(month.unexplained);
    let status = match month.status {
        ReconciliationStatus::Tied => 0,
        ReconciliationStatus::Explained => 1,
        ReconciliationStatus::Unexplained => 2,
    };
    metrics().reconciliation_status.get_or_create(&label).set(status);
    if month.status == ReconciliationStatus::Unexplained {
        tracing::warn!(
            account = %month.account_alias,
            vendor = %month.vendor_id,
            month = %label.month,
            unexplained_won = month.unexplained,
            "payouts and revenue-history differ with no reason: {}",
            month.reasons
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_months_are_this_one_and_the_two_before() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(open_months(day(2026, 12, 1)), (day(2026, 10, 1), day(2026, 12, 1)));
        assert_eq!(open_months(day(2027, 1, 31)), (day(2026, 11, 1), day(2027, 1, 1)));
    }
}
