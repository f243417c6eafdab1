//! What `settlement-histories` (coupang-api.md §8) shows for the world: the payouts of a
//! revenue-recognition month, computed from the vendor's own revenue-history rows, so the two always
//! agree (unless a fault says otherwise).
//!
//! The simulated seller is paid weekly, as live clients describe it: each week (Monday to Sunday, cut
//! at the month's edges) is a `WEEKLY` row paying 70% of its settlement target 15 business days after
//! the week closes (taken as 21 days), and the 30% held back (`lastAmount`) is paid for the whole month
//! as one `RESERVE` row on the first business day of the month after next. The RESERVE row also carries
//! the monthly seller service fee (55,000 won once the month's sales pass 1,000,000 won) as its
//! deduction, so `finalAmount = settlementAmount + pendingReleasedAmount − deductionAmount`. A row is
//! `SUBJECT` until its payout day has come, `DONE` after. Bank-account fields come masked, as Coupang's.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde_json::{json, Value};

use crate::revenue::RevenueRow;

/// The monthly seller service fee, once a month's sales reach [`SERVICE_FEE_THRESHOLD`].
pub const SELLER_SERVICE_FEE: i64 = 55_000;
pub const SERVICE_FEE_THRESHOLD: i64 = 1_000_000;

/// Sums of the revenue rows recognised in a range, with seller-perspective signs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Sales less seller coupons, plus shipping fees (refunds subtract).
    pub total_sale: i64,
    /// Commission and its VAT, on items and shipping.
    pub service_fee: i64,
    /// What revenue-history's settlement amounts add up to: `total_sale − service_fee`.
    pub settlement_target: i64,
}

/// The totals of `rows` recognised on `from..=to`.
pub fn totals(rows: &[RevenueRow], from: NaiveDate, to: NaiveDate) -> Totals {
    let mut sum = Totals::default();
    for row in rows.iter().filter(|r| (from..=to).contains(&r.recognized_on)) {
        let refund = row.row["saleType"] == "REFUND";
        // Coupang sends refund items positive; shipping on refund rows comes negative already.
        let item_sign = if refund { -1 } else { 1 };
        let number = |value: &Value, field: &str| value[field].as_i64().unwrap_or(0);
        for item in row.row["items"].as_array().into_iter().flatten() {
            let fee = number(item, "serviceFee") + number(item, "serviceFeeVat");
            sum.total_sale += item_sign * number(item, "saleAmount");
            sum.service_fee += item_sign * fee;
            sum.settlement_target += item_sign * number(item, "settlementAmount");
        }
        let delivery = &row.row["deliveryFee"];
        let settled = number(delivery, "settlementAmount");
        // Adjustments (orderId 0) settle an amount with no sale behind it: counted as sale, no fee.
        let amount = if row.row["orderId"] == 0 { settled } else { number(delivery, "amount") };
        sum.total_sale += amount;
        sum.service_fee += amount - settled;
        sum.settlement_target += settled;
    }
    sum
}

/// The weeks of `month` (its first day), Monday to Sunday, cut at the month's edges.
pub fn weeks_of(month: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let last = last_day(month);
    let mut weeks = Vec::new();
    let mut from = month;
    while from <= last {
        let sunday = from + Duration::days(i64::from(6 - from.weekday().num_days_from_monday()));
        let to = sunday.min(last);
        weeks.push((from, to));
        from = to + Duration::days(1);
    }
    weeks
}

fn last_day(month: NaiveDate) -> NaiveDate {
    first_of_next(month) - Duration::days(1)
}

fn first_of_next(month: NaiveDate) -> NaiveDate {
    let (year, number) = if month.month() == 12 { (month.year() + 1, 1) } else { (month.year(), month.month() + 1) };
    NaiveDate::from_ymd_opt(year, number, 1).unwrap_or(month)
}

/// Saturdays and Sundays roll forward to Monday (holidays are not simulated).
fn business_day(day: NaiveDate) -> NaiveDate {
    match day.weekday() {
        Weekday::Sat => day + Duration::days(2),
        Weekday::Sun => day + Duration::days(1),
        _ => day,
    }
}

/// 70% of a week's target, rounded half up: what its WEEKLY row pays.
pub fn weekly_share(target: i64) -> i64 {
    (target * 7 + 5).div_euclid(10)
}

/// The payout rows of `month` (its first day) as of `today`: a WEEKLY row for every week with sales
/// that closed before `today`, and the RESERVE row once the month closed (if it had a week with sales:
/// a month without any shows no row at all). `skew` is added to one WEEKLY row's
/// totals (the first of the month): the fault of a payout that disagrees with revenue-history.
pub fn payout_rows(rows: &[RevenueRow], month: NaiveDate, today: NaiveDate, skew: i64) -> Vec<Value> {
    let status = |paid_on: NaiveDate| if paid_on <= today { "DONE" } else { "SUBJECT" };
    let mut payouts = Vec::new();
    let mut held_back = 0;
    for (i, (from, to)) in weeks_of(month).into_iter().enumerate().filter(|(_, (_, to))| *to < today) {
        let mut week = totals(rows, from, to);
        if i == 0 {
            week.total_sale += skew;
            week.settlement_target += skew;
        }
        if week == Totals::default() {
            continue; // a week without sales is paid nothing and shows no row
        }
        let paid = weekly_share(week.settlement_target);
        held_back += week.settlement_target - paid;
        let paid_on = business_day(to + Duration::days(21));
        payouts.push(payout(
            "WEEKLY",
            (from, to),
            paid_on,
            week,
            (paid, week.settlement_target - paid, 0),
            status(paid_on),
        ));
    }
    let last = last_day(month);
    if last < today && !payouts.is_empty() {
        let whole = totals(rows, month, last);
        let fee = if whole.total_sale >= SERVICE_FEE_THRESHOLD { SELLER_SERVICE_FEE } else { 0 };
        let paid_on = business_day(first_of_next(first_of_next(month)));
        payouts.push(payout("RESERVE", (month, last), paid_on, whole, (held_back, 0, fee), status(paid_on)));
    }
    payouts
}

/// One row; `(paid, last, deduction)` are its settlement amount, the part held back and the deduction.
fn payout(
    kind: &str,
    (from, to): (NaiveDate, NaiveDate),
    paid_on: NaiveDate,
    totals: Totals,
    (paid, last, deduction): (i64, i64, i64),
    status: &str,
) -> Value {
    json!({
        "settlementType": kind,
        "settlementDate": paid_on.to_string(),
        "revenueRecognitionYearMonth": from.format("%Y-%m").to_string(),
        "revenueRecognitionDateFrom": from.to_string(),
        "revenueRecognitionDateTo": to.to_string(),
        "totalSale": totals.total_sale,
        "serviceFee": totals.service_fee,
        "settlementTargetAmount": totals.settlement_target,
        "settlementAmount": paid,
        "lastAmount": last,
        "pendingReleasedAmount": 0,
        "sellerDiscountCoupon": 0,
        "downloadableCoupon": 0,
        "dedicatedDeliveryAmount": 0,
        "sellerServiceFee": if kind == "RESERVE" { deduction } else { 0 },
        "couranteeFee": 0,
        "couranteeCustomerReward": 0,
        "deductionAmount": deduction,
        "debtOfLastWeek": 0,
        "finalAmount": paid - deduction,
        "storeFeeDiscount": 0,
        "status": status,
        "bankAccountHolder": "MASKED",
        "bankName": "MASKED",
        "bankAccount": "100560****",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn sale(on: &str, sale: i64, fee: i64, delivery: i64) -> RevenueRow {
        let settled = sale - fee - fee / 10;
        RevenueRow {
            key: 0,
            recognized_on: day(on),
            row: json!({"orderId": 1, "saleType": "SALE", "recognitionDate": on,
                "deliveryFee": {"amount": delivery, "fee": 0, "feeVat": 0,
                    "settlementAmount": if delivery == 0 { Value::Null } else { json!(delivery) }},
                "items": [{"saleAmount": sale, "serviceFee": fee, "serviceFeeVat": fee / 10, "settlementAmount": settled}]}),
        }
    }

    #[test]
    fn weeks_are_cut_at_the_month_edges() {
        let weeks = weeks_of(day("2026-05-01"));
        assert_eq!(weeks.first(), Some(&(day("2026-05-01"), day("2026-05-03"))));
        assert_eq!(weeks.last(), Some(&(day("2026-05-25"), day("2026-05-31"))));
        assert_eq!(weeks.len(), 5);
    }

    #[test]
    fn weekly_and_reserve_rows_add_up_to_revenue_history() {
        let rows = vec![sale("2026-05-02", 1_000_000, 108_000, 3_000), sale("2026-05-20", 200_000, 21_600, 0)];
        let payouts = payout_rows(&rows, day("2026-05-01"), day("2026-07-10"), 0);
        let target = |p: &Value| p["settlementTargetAmount"].as_i64().unwrap();
        let (weekly, reserve): (Vec<&Value>, Vec<&Value>) =
            payouts.iter().partition(|p| p["settlementType"] == "WEEKLY");
        let month = totals(&rows, day("2026-05-01"), day("2026-05-31"));
        assert_eq!(weekly.iter().map(|p| target(p)).sum::<i64>(), month.settlement_target);
        assert_eq!(target(reserve[0]), month.settlement_target);
        assert_eq!(month.total_sale - month.service_fee, month.settlement_target);
        let paid_weekly: i64 = weekly.iter().map(|p| p["settlementAmount"].as_i64().unwrap()).sum();
        assert_eq!(paid_weekly + reserve[0]["settlementAmount"].as_i64().unwrap(), month.settlement_target);
        assert_eq!(reserve[0]["deductionAmount"], SELLER_SERVICE_FEE);
        assert_eq!(reserve[0]["settlementDate"], "2026-07-01");
        assert_eq!(reserve[0]["status"], "DONE");
        assert_eq!(weekly[0]["settlementDate"], "2026-05-25", "Sunday 3 May + 21 days, a Sunday, rolls to Monday");
    }

    #[test]
    fn open_and_empty_weeks_show_no_row_and_scheduled_payouts_are_subject() {
        let rows = vec![sale("2026-05-02", 100_000, 10_800, 0)];
        let payouts = payout_rows(&rows, day("2026-05-01"), day("2026-05-12"), 0);
        // Of the weeks closed by 11 May, 1–3 May had a sale and 4–10 May none: one row.
        assert_eq!(payouts.len(), 1, "{payouts:?}");
        assert!(payouts.iter().all(|p| p["status"] == "SUBJECT"));
    }
}
