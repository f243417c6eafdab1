//! The text reports of the commands that print one: `accounts`, `summary`, `migrate`, and what
//! `run`/`ingest` collected. (`status` and the demo render their own, beside their data.)

use coupang_ingest::IngestReport;
use coupang_load::summary::DailyPayment;
use coupang_load::MigrationReport;
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
