//! `reconcile`: Coupang's payouts against its revenue-history and our payment facts, per account, for
//! one revenue-recognition month, as the `reconciliation` view computes it.

use chrono::NaiveDate;
use coupang_load::{Reader, ReconciliationStatus};

use super::{conclude, write_out, CommandResult};
use crate::exit::Findings;
use crate::{reports, Config};

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// The revenue-recognition month, YYYY-MM.
    #[arg(long, value_parser = parse_month)]
    pub month: NaiveDate,
    /// Only this account: its alias in the config, or its vendor id.
    #[arg(long)]
    pub account: Option<String>,
}

/// `YYYY-MM` as the month's first day.
pub fn parse_month(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a month: use YYYY-MM"))
}

/// Prints the report; an unexplained gap ends the command with exit code 7, naming the accounts.
pub async fn run(config: &Config, args: ReconcileArgs) -> CommandResult {
    // An alias in the config stands for its vendor: rows keep the alias they were collected under.
    let account = args.account.as_deref().map(|wanted| {
        config.accounts.iter().find(|a| a.alias == wanted).map_or(wanted.to_string(), |a| a.vendor_id.clone())
    });
    let reader = Reader::connect(&config.clickhouse).await?;
    let months = reader.reconciliation((args.month, args.month), account.as_deref()).await?;
    write_out(&reports::reconciliation(args.month, &months))?;
    let mut findings = Findings::default();
    for month in months.iter().filter(|m| m.status == ReconciliationStatus::Unexplained) {
        let period = month.month.format("%Y-%m");
        findings.unreconciled.push(format!("{} {period} {}", month.account_alias, reports::won(month.unexplained)));
    }
    Ok(conclude(&findings))
}
