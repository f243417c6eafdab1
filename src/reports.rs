//! The text reports of the commands that print one: `accounts`, `summary`, `migrate`, `reconcile`,
//! and what `run`/`ingest` collected. (`status` and the demo render their own, beside their data.)

use chrono::{NaiveDate, NaiveDateTime};
use coupang_ingest::IngestReport;
use coupang_load::history::Restatement;
use coupang_load::summary::DailyPayment;
use coupang_load::{MigrationReport, Reconciliation};
use etl_core::account::KeyHealth;
use std::fmt::Write as _;

use crate::Config;

/// Each account with its key's expiry and, from the account-status topic, its last successful call.
pub async fn accounts_table(config: &Config) -> String {
    let today = etl_core::time::now_kst().date_naive();
    let statuses = if config.kafka.brokers.is_empty() {
        Err("no kafka.brokers configured".to_string())
    } else {
        coupang_ingest::account_statuses(&config.kafka, std::time::Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())
    };
    let mut out = format!(
        "{:<16} {:<10} {:<12} {:>9}  {:<20}  state\n",
        "alias", "vendor", "key expires", "days left", "last successful call"
    );
    for account in &config.accounts {
        let (days, mut state) = match account.key_health(today) {
            KeyHealth::Valid { days_left } => (days_left, "ok".to_string()),
            KeyHealth::ReissueWindow { days_left } => (days_left, "reissue the key now (window open)".to_string()),
            KeyHealth::Expired { days_ago } => (-days_ago, "EXPIRED: reissue in WING".to_string()),
        };
        let status = statuses.as_ref().ok().and_then(|s| s.get(&account.alias));
        let last = match (status, &statuses) {
            (Some(status), _) => status
                .last_success_at
                .map(|t| t.with_timezone(&etl_core::time::kst()).format("%Y-%m-%d %H:%M KST").to_string())
                .unwrap_or_else(|| "never".into()),
            (None, Ok(_)) => "never".into(),
            (None, Err(_)) => "unknown".into(),
        };
        if let Some(error) = status.and_then(|s| s.error.as_ref()) {
            state = format!("STOPPED: {error}");
        }
        out.push_str(&format!(
            "{:<16} {:<10} {:<12} {:>9}  {last:<20}  {state}\n",
            account.alias,
            account.vendor_id,
            account.key_expires_on().to_string(),
            days
        ));
    }
    if let Err(error) = statuses {
        out.push_str(&format!("(last successful calls unknown: {error})\n"));
    }
    out
}

/// `summary`: the daily payment amount per account.
pub fn daily_summary(daily: &[DailyPayment]) -> String {
    let mut out = format!(
        "{:<16} {:<10} {:<12} {:>7} {:>14} {:>14}\n",
        "alias", "vendor", "payment date", "orders", "amount (KRW)", "provisional"
    );
    for d in daily {
        let _ = writeln!(
            out,
            "{:<16} {:<10} {:<12} {:>7} {:>14} {:>14}",
            d.account_alias,
            d.vendor_id,
            d.payment_date.to_string(),
            d.orders,
            d.payment_amount,
            d.provisional_amount
        );
    }
    out
}

/// `migrate`: the server, and what was applied, already there, or left out.
pub fn migration(report: &MigrationReport, url: &str) -> String {
    let mut out = format!("ClickHouse {} at {url}, database `{}`\n", report.server.version, report.database);
    for (version, name) in &report.applied {
        let _ = writeln!(out, "  applied {version:>3}  {name}");
    }
    let _ = writeln!(out, "  {} migration(s) were already applied", report.already_applied);
    for (version, name, reason) in &report.left_out {
        let _ = writeln!(out, "  left out {version:>2}  {name}: {reason}");
    }
    out
}

/// What a collection brought in, per account.
pub fn ingest(report: &IngestReport) -> String {
    let mut out = String::new();
    for (alias, account) in &report.accounts {
        let _ = writeln!(
            out,
            "{alias:<16} {}  boxes {:>7}  events {:>7}  bad records {:>4}{}",
            account.vendor_id,
            account.boxes,
            account.events,
            account.bad_records(),
            account.error.as_ref().map(|e| format!("  ERROR: {e}")).unwrap_or_default()
        );
    }
    out
}

/// Won with thousands grouped: `1,234,567`, `-19,900`.
pub fn won(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if amount < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// `reconcile`: per account, our payments, revenue-history and the payouts of `month`, the gaps and
/// the reasons; a statement a finance person reads top to bottom.
pub fn reconciliation(month: NaiveDate, accounts: &[Reconciliation]) -> String {
    let period = month.format("%Y-%m");
    let mut out = format!("Reconciliation of revenue-recognition month {period} (KRW)\n");
    if accounts.is_empty() {
        let _ = writeln!(out, "\nNo payments, revenue-history or payouts in ClickHouse for {period}.");
    }
    for a in accounts {
        let line = |out: &mut String, label: &str, amount: i64, note: String| {
            let _ = writeln!(out, "  {label:<44} {:>15}  {note}", won(amount));
        };
        let _ = writeln!(out, "\n{} ({})  {}", a.account_alias, a.vendor_id, a.status.as_str().to_uppercase());
        line(
            &mut out,
            "Our payments, paid in the month",
            a.payments,
            format!("provisional {}", won(a.provisional_payments)),
        );
        line(
            &mut out,
            "Revenue-history, recognised in the month",
            a.revenue_total_sale,
            "sales less seller coupons, plus shipping".into(),
        );
        line(&mut out, "  less service fee", -a.revenue_service_fee, String::new());
        line(&mut out, "  to be settled", a.revenue_settlement, format!("refunds {}", won(a.revenue_refunds)));
        let cycles = format!("Payout cycles' targets ({} closed)", a.payout_cycles);
        line(
            &mut out,
            &cycles,
            a.cycle_target,
            format!("their days' revenue {}, gap {}", won(a.revenue_in_cycles), won(a.target_gap)),
        );
        line(&mut out, "RESERVE target", a.reserve_target, format!("gap to the month {}", won(a.reserve_gap)));
        line(&mut out, "Paid by cycles", a.cycle_paid, format!("held back {}", won(a.reserve_held_back)));
        line(&mut out, "Paid by the RESERVE", a.reserve_paid, format!("rounding {}", won(a.rounding)));
        line(&mut out, "Deductions", -a.deductions, format!("seller service fee {}", won(a.seller_service_fee)));
        line(&mut out, "To the bank account", a.final_amount, format!("still scheduled {}", won(a.scheduled_amount)));
        line(&mut out, "Not yet in a payout", a.not_yet_in_payout, String::new());
        line(&mut out, "Unexplained", a.unexplained, String::new());
        let reasons = if a.reasons.is_empty() { "none".to_string() } else { grouped(&a.reasons) };
        let _ = writeln!(out, "  Reasons: {reasons}");
    }
    out
}

/// `changes`: a payment day's restatements, one line per order and version, oldest first.
pub fn restatements(account: &str, day: NaiveDate, since: Option<NaiveDateTime>, changes: &[Restatement]) -> String {
    let since = since.map_or(String::new(), |moment| format!(" since {} KST", moment.format("%Y-%m-%d %H:%M")));
    let mut out = format!("Changes to payment day {day} of {account}{since} (KRW)\n");
    let _ = writeln!(
        out,
        "{:<19}  {:>16}  {:<22} {:>12} {:>12} {:>12}",
        "known at (KST)", "order", "cause", "before", "after", "change"
    );
    let moment = |unix: u32| {
        chrono::DateTime::from_timestamp(i64::from(unix), 0)
            .map(|t| t.with_timezone(&etl_core::time::kst()).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    for c in changes {
        let _ = writeln!(
            out,
            "{:<19}  {:>16}  {:<22} {:>12} {:>12} {:>12}",
            moment(c.known_at),
            c.order_id,
            c.causes,
            won(c.old_amount),
            won(c.new_amount),
            won(c.new_amount - c.old_amount)
        );
    }
    let net: i64 = changes.iter().map(|c| c.new_amount - c.old_amount).sum();
    let _ = writeln!(out, "{} changes, net {}", changes.len(), won(net));
    out
}

/// `text` with every whole number in it grouped by thousands, as [`won`] writes them.
fn grouped(text: &str) -> String {
    let words = text.split(' ').map(|word| {
        let (number, rest) = word.split_at(word.find([';', ',']).unwrap_or(word.len()));
        number.parse::<i64>().map_or(word.to_string(), |n| format!("{}{rest}", won(n)))
    });
    words.collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_with_grouped_thousands() {
        assert_eq!(
            grouped("payouts differ from revenue-history by -1000; seller service fee 55000; 3 rows"),
            "payouts differ from revenue-history by -1,000; seller service fee 55,000; 3 rows"
        );
    }
}
