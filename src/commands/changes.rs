//! `changes`: why a payment day's numbers moved: each order's restatements, with old and new amounts
//! and their cause, from the facts' history.

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use coupang_load::Reader;

use super::{write_out, CommandError, CommandResult};
use crate::exit::Outcome;
use crate::{reports, Config};

#[derive(Debug, clap::Args)]
pub struct ChangesArgs {
    /// The account: its alias in the config, or its vendor id.
    #[arg(long)]
    pub account: String,
    /// The payment day, YYYY-MM-DD.
    #[arg(long)]
    pub day: NaiveDate,
    /// Only changes loaded from this moment on, Korea time: `YYYY-MM-DD` or `YYYY-MM-DD HH:MM`.
    #[arg(long, value_parser = parse_moment)]
    pub since: Option<NaiveDateTime>,
}

/// `YYYY-MM-DD` (midnight) or `YYYY-MM-DD HH:MM[:SS]`, Korea time.
pub fn parse_moment(text: &str) -> Result<NaiveDateTime, String> {
    let text = text.trim();
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .or_else(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(|day| day.and_time(chrono::NaiveTime::MIN)))
        .ok_or_else(|| format!("{text:?} is not a moment: use YYYY-MM-DD or \"YYYY-MM-DD HH:MM\" (Korea time)"))
}

pub async fn run(config: &Config, args: ChangesArgs) -> CommandResult {
    let vendor_id = config
        .accounts
        .iter()
        .find(|a| a.alias == args.account || a.vendor_id == args.account)
        .map(|a| a.vendor_id.clone())
        .ok_or_else(|| CommandError::UnknownAccount(args.account.clone()))?;
    let since = args.since.map_or(0, |moment| {
        etl_core::time::kst().from_local_datetime(&moment).single().map_or(0, |t| t.timestamp().max(0) as u32)
    });
    let reader = Reader::connect(&config.clickhouse).await?;
    let changes = reader.restatements(&vendor_id, args.day, since).await?;
    write_out(&reports::restatements(&args.account, args.day, args.since, &changes))?;
    Ok(Outcome::Success)
}
