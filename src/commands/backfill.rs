//! `backfill`: re-collects a historical range of one account, resumably, beside live polling.

use chrono::NaiveDate;
use coupang_ingest::{BackfillProgress, IngestError, Stream};
use etl_core::account::AccountConfig;
use etl_core::Shutdown;
use indicatif::{ProgressBar, ProgressStyle};

use super::{conclude, CommandError, CommandResult};
use crate::exit::Findings;
use crate::{pipeline, Config};

#[derive(Debug, Clone, clap::Args)]
pub struct BackfillArgs {
    /// The account's alias in the config.
    #[arg(long)]
    pub account: String,
    /// First day (Asia/Seoul, YYYY-MM-DD).
    #[arg(long)]
    pub from: NaiveDate,
    /// Last day (inclusive).
    #[arg(long)]
    pub to: NaiveDate,
    /// Which streams (default: all; settlements are read by revenue-recognition month).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub streams: Vec<StreamArg>,
}

impl BackfillArgs {
    /// The streams asked for: all of them when none are named.
    pub fn streams(&self) -> Vec<Stream> {
        if self.streams.is_empty() {
            vec![Stream::OrderSheets, Stream::ReturnRequests, Stream::Revenue, Stream::Settlements]
        } else {
            self.streams.iter().map(|s| Stream::from(*s)).collect()
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StreamArg {
    Ordersheets,
    Returnrequests,
    Revenue,
    Settlements,
}

impl From<StreamArg> for Stream {
    fn from(stream: StreamArg) -> Self {
        match stream {
            StreamArg::Ordersheets => Stream::OrderSheets,
            StreamArg::Returnrequests => Stream::ReturnRequests,
            StreamArg::Revenue => Stream::Revenue,
            StreamArg::Settlements => Stream::Settlements,
        }
    }
}

/// `backfill`: collects the range in windows, with a progress bar at a terminal and log lines
/// elsewhere, then prints one line saying how far it got.
pub async fn run(config: &Config, args: BackfillArgs, shutdown: &Shutdown) -> CommandResult {
    let Some(account) = config.account(&args.account) else {
        return Err(CommandError::UnknownAccount(args.account));
    };
    if args.to < args.from {
        return Err(CommandError::ReversedRange { from: args.from, to: args.to });
    }
    let streams = args.streams();
    let bar = progress_bar(&account.alias);
    let on_progress = |p: &BackfillProgress| show_progress(bar.as_ref(), account, p);
    let range = (args.from, args.to);
    let backfilled =
        coupang_ingest::backfill(&config.ingest, &config.kafka, account, range, &streams, &on_progress, shutdown).await;
    if let Some(bar) = &bar {
        bar.finish();
    }
    let mut findings = Findings::default();
    // Ingest is the only stage of this process, so its dead-letter count is this backfill's.
    findings.dead_lettered_by_account(&account.alias, pipeline::dead_letters_sent("ingest"));
    let done = match backfilled {
        Ok(done) => done,
        Err(IngestError::Account { message, failure }) => {
            eprintln!("error: {message}");
            findings.account_failed(&account.alias, failure);
            return Ok(conclude(&findings));
        }
        Err(other) => return Err(other.into()),
    };
    findings.interrupted = done.windows_done < done.windows_total;
    let state = if findings.interrupted { "interrupted: run it again to resume" } else { "done" };
    println!(
        "backfill {} {}..{}: {}/{} windows ({} resumed from an earlier run), {} records; {state}",
        account.alias, args.from, args.to, done.windows_done, done.windows_total, done.windows_skipped, done.records
    );
    Ok(conclude(&findings))
}

/// A progress bar for people at a terminal; `None` (plain log lines) for everything else.
fn progress_bar(alias: &str) -> Option<ProgressBar> {
    std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} windows · {msg} · {elapsed_precise} elapsed, ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        ProgressBar::new(0).with_style(style).with_prefix(format!("backfill {alias}"))
    })
}

fn show_progress(bar: Option<&ProgressBar>, account: &AccountConfig, p: &BackfillProgress) {
    match bar {
        Some(bar) => {
            bar.set_length(p.windows_total);
            bar.set_position(p.windows_done);
            bar.set_message(format!("{} records", p.records));
        }
        None => tracing::info!(
            account = %account.alias, windows_done = p.windows_done, windows_total = p.windows_total,
            windows_resumed = p.windows_skipped, records = p.records, "backfill progress"
        ),
    }
}
