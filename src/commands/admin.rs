//! The commands that check, prepare or show rather than run a stage: `validate`, `migrate`, `status`,
//! `accounts` and `summary`.

use coupang_load::summary::Reader;
use std::path::Path;

use super::{conclude, write_out, CommandResult};
use crate::exit::Outcome;
use crate::{reports, Config};

/// `validate`: prints the checked config, secrets shown only as "set".
pub fn validate(config: &Config, config_path: Option<&Path>) -> CommandResult {
    // A config that does not load has already ended the command with 1, naming the setting.
    let origin = config_path.map_or_else(|| "(defaults)".into(), |p| p.display().to_string());
    println!("config {origin}: valid");
    print!("{}", config.describe(etl_core::time::now_kst().date_naive()));
    Ok(Outcome::Success)
}

/// `status`: the screen, and an exit code that makes it a monitoring check.
pub async fn status(config: &Config) -> CommandResult {
    let report = crate::status::gather(config).await;
    write_out(&report.render())?;
    Ok(conclude(&report.findings()))
}

/// `migrate`: creates or upgrades the database, and says what it applied.
pub async fn migrate(config: &Config) -> CommandResult {
    let report = coupang_load::migrate(&config.clickhouse).await?;
    write_out(&reports::migration(&report, &config.clickhouse.url))?;
    Ok(Outcome::Success)
}

/// `accounts`: a listing; `status` is the check whose exit code says whether an account is stopped.
pub async fn accounts(config: &Config) -> CommandResult {
    write_out(&reports::accounts_table(config).await)?;
    Ok(Outcome::Success)
}

/// `summary`: the daily payment amounts per account, from ClickHouse.
pub async fn summary(config: &Config) -> CommandResult {
    let reader = Reader::connect(&config.clickhouse).await?;
    write_out(&reports::daily_summary(&reader.daily_payments().await?))?;
    Ok(Outcome::Success)
}
