//! The commands that run stages: `run` (all three), `ingest`, `transform` and `load`, over a range
//! of days or following until a signal.

use chrono::NaiveDate;
use etl_core::Shutdown;
use std::path::Path;

use super::{conclude, require_accounts, run_findings, write_out, CommandResult};
use crate::exit::{Findings, Outcome};
use crate::{pipeline, reports, Config};

#[derive(Debug, Clone, clap::Args)]
pub struct RangeArgs {
    /// First day (Asia/Seoul, YYYY-MM-DD) of orders to collect; with --to, runs once and exits.
    #[arg(long, requires = "to")]
    pub from: Option<NaiveDate>,
    /// Last day (inclusive).
    #[arg(long, requires = "from")]
    pub to: Option<NaiveDate>,
}

impl RangeArgs {
    /// The days to collect once; `None` to follow until a signal.
    pub fn days(&self) -> Option<(NaiveDate, NaiveDate)> {
        self.from.zip(self.to)
    }
}

/// `run`: ingest, transform and load over a range once, or following. `config_path` is where follow
/// mode re-reads the accounts from.
pub async fn run(config: &Config, range: RangeArgs, config_path: Option<&Path>, shutdown: Shutdown) -> CommandResult {
    require_accounts(config)?;
    let Some((from, to)) = range.days() else {
        let accounts = config.account_source(config_path);
        pipeline::run_follow(config, accounts, shutdown).await?;
        return Ok(Outcome::Success);
    };
    let report = pipeline::run_range(config, from, to, &shutdown).await?;
    write_out(&reports::ingest(&report.ingest))?;
    println!("done in {:.1} s", report.elapsed.as_secs_f64());
    Ok(conclude(&run_findings(&report)))
}

/// `ingest`: collects a range once, or polls until a signal.
pub async fn ingest(
    config: &Config,
    range: RangeArgs,
    config_path: Option<&Path>,
    shutdown: Shutdown,
) -> CommandResult {
    require_accounts(config)?;
    let Some((from, to)) = range.days() else {
        let accounts = config.account_source(config_path);
        coupang_ingest::run(&config.ingest, &config.kafka, accounts, shutdown).await?;
        return Ok(Outcome::Success);
    };
    let report =
        coupang_ingest::collect_range(&config.ingest, &config.kafka, &config.accounts, from, to, &shutdown).await?;
    write_out(&reports::ingest(&report))?;
    let mut findings = Findings::of_ingest(&report);
    // Ingest returns what it collected when a signal stops it: say that it is incomplete.
    findings.interrupted = shutdown.is_cancelled();
    Ok(conclude(&findings))
}

/// `transform`: raw events into payment facts until a signal.
pub async fn transform(config: &Config, shutdown: Shutdown) -> CommandResult {
    coupang_transform::run(&config.transform, &config.kafka, shutdown).await?;
    Ok(Outcome::Success)
}

/// `load`: payment facts into ClickHouse until a signal.
pub async fn load(config: &Config, shutdown: Shutdown) -> CommandResult {
    coupang_load::run(&config.load, &config.clickhouse, &config.kafka, shutdown).await?;
    Ok(Outcome::Success)
}
