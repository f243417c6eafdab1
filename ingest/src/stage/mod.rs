//! The ingest stage's run modes. [`collect_range`] collects a day range of every account once;
//! [`backfill`] re-collects old days of one account window by window, resuming after an interruption;
//! [`run`] (follow mode) sweeps a look-back window of every account until shutdown. A run mode decides
//! which days of which streams each account's sweep collects and where completed streams are
//! recorded; the sweep itself is in `sweep` (accounts) and `listings` (streams).
//!
//! Accounts are independent: a rejected or expired key stops its account alone, loudly. A rejected key
//! stays stopped until it changes in the config (follow mode re-reads the accounts every sweep, so a
//! re-linked key takes effect without a restart) or `ingest.stopped_retry_hours` have passed. Each sweep
//! publishes every account's status (last successful calls, last error) for `coupang-etl accounts`.

mod bookkeeping;
mod change_filter;
mod error;
mod listings;
mod plan;
mod report;
mod sink;
mod sweep;
mod tracker;

pub use bookkeeping::{account_statuses, load_checkpoints, AccountStatus, Checkpoint};
pub use error::{AccountFailure, IngestError};
pub use plan::Stream;
pub use report::{AccountReport, IngestReport};

use chrono::NaiveDate;
use etl_core::account::AccountConfig;
use etl_core::kafka::KafkaConfig;
use etl_core::metrics::{metrics, StageLabel};
use etl_core::time::now_kst;
use etl_core::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use crate::config::IngestConfig;
use bookkeeping::{live_checkpoints, Progress};
use change_filter::ChangeFilter;
use plan::{months, payouts_open_since, receipts_until, windows, Plan, Step};
use sink::Sink;
use sweep::Sweeper;
use tracker::AccountTracker;

/// Where follow mode gets the linked accounts from at every sweep. The CLI re-reads the config file,
/// so keys can be re-linked (or accounts added) without a restart.
pub type AccountSource = Arc<dyn Fn() -> Vec<AccountConfig> + Send + Sync>;

/// A fixed list of accounts.
pub fn fixed_accounts(accounts: Vec<AccountConfig>) -> AccountSource {
    Arc::new(move || accounts.clone())
}

/// Backfill's progress after each window, for a progress bar or log lines.
#[derive(Debug, Clone, Default)]
pub struct BackfillProgress {
    pub windows_done: u64,
    pub windows_total: u64,
    /// Windows an earlier, interrupted run of the same backfill had completed.
    pub windows_skipped: u64,
    /// Records collected so far (order sheets, receipts, revenue rows).
    pub records: u64,
}

/// Re-collects `from..=to` of one account's `streams` in API-legal windows, at the backfill rate
/// (`ingest.backfill_requests_per_second`, leaving the rest of the vendor's budget to live polling).
/// Each completed window is recorded, so after an interruption the same command resumes where it
/// stopped; re-collected records are absorbed downstream (same versions).
pub async fn backfill(
    config: &IngestConfig,
    kafka: &KafkaConfig,
    account: &AccountConfig,
    (from, to): (NaiveDate, NaiveDate),
    streams: &[Stream],
    on_progress: &(dyn Fn(&BackfillProgress) + Sync),
    shutdown: &Shutdown,
) -> Result<BackfillProgress, IngestError> {
    config.validate()?;
    let paced = IngestConfig { requests_per_second: config.backfill_requests_per_second, ..config.clone() };
    let sink = Sink::connect(kafka).await?;
    let progress = Progress::Backfill(from, to);
    let sweeper = Sweeper { config: &paced, sink: &sink, progress, shutdown };
    let recorded = load_checkpoints(kafka).await?;
    let done_through = |stream: Stream| {
        progress.key(&account.alias, stream).and_then(|key| recorded.get(&key)).map(|c| c.swept_through)
    };
    let yesterday = now_kst().date_naive() - chrono::Duration::days(1);
    // Receipts a month past the range, as `collect_range` reads them: an order of the range's last days
    // cancelled whole afterwards has left the order-sheet lists, and only its receipt tells of it.
    let windows_of = |stream: Stream| match stream {
        Stream::Revenue => windows(from, to.min(yesterday)),
        Stream::Settlements => months(from, to.min(yesterday)),
        Stream::ReturnRequests => windows(from, receipts_until(to, yesterday)),
        Stream::OrderSheets => windows(from, to),
    };
    let total: u64 = streams.iter().map(|s| windows_of(*s).len() as u64).sum();
    let mut state = BackfillProgress { windows_total: total, ..BackfillProgress::default() };
    let mut tracker = AccountTracker::default();
    // Orders read alone through those receipts count only when paid within the range.
    tracker.filters.insert(account.alias.clone(), ChangeFilter::for_range_ending(to));
    for &stream in streams {
        let resume_after = done_through(stream);
        for (window_from, window_to) in windows_of(stream) {
            if resume_after.is_some_and(|done| window_to <= done) {
                state.windows_skipped += 1;
                state.windows_done += 1;
                on_progress(&state);
                continue;
            }
            if shutdown.is_cancelled() {
                return Ok(state);
            }
            let plan = move |_: &AccountConfig| -> Plan { vec![Step::Days(stream, window_from, window_to)] };
            let report = sweeper.sweep(std::slice::from_ref(account), &plan, &mut tracker).await?;
            let account_report = report.accounts.get(&account.alias).cloned().unwrap_or_default();
            if let Some(message) = account_report.error {
                let failure = account_report.failure.unwrap_or(AccountFailure::RequestsFailed);
                return Err(IngestError::Account { message, failure });
            }
            if !tracker.checkpoints.contains_key(&(account.alias.clone(), stream.name().to_string()))
                || shutdown.is_cancelled()
            {
                // Interrupted inside the window: it is not recorded and runs again next time.
                return Ok(state);
            }
            tracker.checkpoints.clear();
            state.records +=
                account_report.boxes + account_report.receipts + account_report.revenue_rows + account_report.payouts;
            state.windows_done += 1;
            on_progress(&state);
        }
    }
    Ok(state)
}

/// Collects `from..=to` (Asia/Seoul) for every account, once: order sheets and receipts by creation
/// day, revenue rows by recognition day (up to yesterday). An account whose key is rejected or expired
/// stops with its error in the report; the others go on. Kafka failures are returned as errors:
/// nothing is reported collected that the broker did not acknowledge.
pub async fn collect_range(
    config: &IngestConfig,
    kafka: &KafkaConfig,
    accounts: &[AccountConfig],
    from: NaiveDate,
    to: NaiveDate,
    shutdown: &Shutdown,
) -> Result<IngestReport, IngestError> {
    config.validate()?;
    let sink = Sink::connect(kafka).await?;
    let mut tracker = AccountTracker::default();
    let yesterday = now_kst().date_naive() - chrono::Duration::days(1);
    let receipts_until = receipts_until(to, yesterday);
    for account in accounts {
        tracker.filters.insert(account.alias.clone(), ChangeFilter::for_range_ending(to));
    }
    let plan = |_: &AccountConfig| -> Plan {
        let mut plan =
            vec![Step::Days(Stream::OrderSheets, from, to), Step::Days(Stream::ReturnRequests, from, receipts_until)];
        if from <= yesterday {
            plan.push(Step::Days(Stream::Revenue, from, to.min(yesterday)));
            plan.push(Step::Days(Stream::Settlements, from, to.min(yesterday)));
        }
        plan
    };
    let sweeper = Sweeper { config, sink: &sink, progress: Progress::None, shutdown };
    sweeper.sweep(accounts, &plan, &mut tracker).await
}

/// Follow mode: sweeps each account until shutdown, with the accounts `accounts` gives at that
/// moment. Each stream is swept from `lookback_days` before today, or from its checkpoint when that is
/// older (after downtime), so nothing is missed; revenue and payouts once a day. Sweeps are at least
/// `poll_interval_secs` apart, further when the last one's calls would exceed `follow_api_share` of
/// the vendor's budget; between them, every `new_orders_poll_secs`, the orders created in the last
/// `new_orders_window_minutes` are asked for (two calls per account), which is what keeps new orders
/// fresh.
///
/// When Kafka fails under a sweep, ingest reconnects, waiting for the broker as long as it takes, and
/// sweeps again, keeping what it remembers about the accounts (stopped keys, checkpoints, last
/// successful calls) except the change filters.
pub async fn run(
    config: &IngestConfig,
    kafka: &KafkaConfig,
    accounts: AccountSource,
    shutdown: Shutdown,
) -> Result<(), IngestError> {
    config.validate()?;
    let mut sink = Sink::connect(kafka).await?;
    let mut tracker = AccountTracker { checkpoints: live_checkpoints(kafka).await?, ..AccountTracker::default() };
    let mut next_sweep = tokio::time::Instant::now();
    while !shutdown.is_cancelled() {
        let sweeping = tokio::time::Instant::now() >= next_sweep;
        let plan: Box<dyn Fn(&AccountConfig) -> Plan + Send + Sync> =
            if sweeping { Box::new(follow_plan(config, &tracker)) } else { Box::new(new_orders_plan(config)) };
        let sweeper = Sweeper { config, sink: &sink, progress: Progress::Live, shutdown: &shutdown };
        let report = match sweeper.sweep(&accounts(), &plan, &mut tracker).await {
            Ok(report) => report,
            Err(IngestError::Kafka(error)) => {
                // A broker restart or failover can fail deliveries (and leave an idempotent producer
                // unusable). Checkpoints only move after acknowledgements, so nothing is lost; what the
                // change filters believe was sent may not have arrived, so they start over, and a new
                // producer sends it all again (downstream versions make the repeats harmless).
                tracing::error!(%error, "Kafka did not acknowledge a record; reconnecting and sweeping again");
                tracker.filters.clear();
                metrics().set_ready("ingest", false);
                metrics().restarts.get_or_create(&StageLabel { stage: "ingest" }).inc();
                match Sink::reconnect(kafka, &shutdown).await {
                    Some(new_sink) => sink = new_sink,
                    None => break,
                }
                continue;
            }
            Err(error) => return Err(error),
        };
        let kind = if sweeping { "sweep done" } else { "new orders polled" };
        for (alias, account) in &report.accounts {
            tracing::info!(account = %alias, boxes = account.boxes, events = account.events, receipts = account.receipts,
                revenue_rows = account.revenue_rows, unchanged = account.unchanged, bad_records = account.bad_records(),
                api_calls = account.api_calls, error = account.error.as_deref().unwrap_or(""), "{kind}");
        }
        if sweeping {
            let most_calls = report.accounts.values().map(|a| a.api_calls).max().unwrap_or(0);
            next_sweep = tokio::time::Instant::now() + pause_after_sweep(config, most_calls);
        }
        let wake = match config.new_orders_poll_secs {
            0 => next_sweep,
            secs => next_sweep.min(tokio::time::Instant::now() + Duration::from_secs(secs)),
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    Ok(())
}

/// How long after a sweep that cost `calls` (the most any account spent) the next one may start: at
/// least `poll_interval_secs`, and long enough that the sweeps' average stays within the calls per
/// second left to them by `follow_api_share`.
fn pause_after_sweep(config: &IngestConfig, calls: u64) -> Duration {
    let within_share = calls as f64 / config.sweep_calls_per_second();
    let within_share = Duration::from_secs_f64(within_share.clamp(0.0, LONGEST_SWEEP_PAUSE.as_secs_f64()));
    Duration::from_secs(config.poll_interval_secs).max(within_share)
}

/// However costly a sweep, the next one starts within this long, so status changes, cancels and
/// returns are never older than that (a shop this large spends more than its share).
const LONGEST_SWEEP_PAUSE: Duration = Duration::from_secs(6 * 3_600);

/// Follow mode's plan between sweeps: the order sheets created in the last
/// `new_orders_window_minutes`, Korea time.
fn new_orders_plan(config: &IngestConfig) -> impl Fn(&AccountConfig) -> Plan + Sync {
    let created_to = now_kst().naive_local();
    let created_from = created_to - chrono::Duration::minutes(i64::from(config.new_orders_window_minutes));
    move |_: &AccountConfig| -> Plan { vec![Step::NewOrders { created_from, created_to }] }
}

/// Follow mode's plan for the next sweep: order sheets and receipts up to today, revenue up to
/// yesterday and only once a day, each from `lookback_days` back or from the day before its checkpoint
/// when that is older; with revenue, the payouts of the months whose payouts may still be scheduled.
fn follow_plan(config: &IngestConfig, tracker: &AccountTracker) -> impl Fn(&AccountConfig) -> Plan + Sync {
    let today = now_kst().date_naive();
    let yesterday = today - chrono::Duration::days(1);
    let lookback = chrono::Duration::days(i64::from(config.lookback_days));
    let checkpoints = tracker.checkpoints.clone();
    let revenue_done = tracker.revenue_swept_on.clone();
    move |account: &AccountConfig| -> Plan {
        let start = |stream: Stream, default: NaiveDate| {
            let key = (account.alias.clone(), stream.name().to_string());
            // One day of overlap with what was collected before.
            checkpoints.get(&key).map_or(default, |c| default.min(c.swept_through - chrono::Duration::days(1)))
        };
        let mut plan = vec![
            Step::Days(Stream::OrderSheets, start(Stream::OrderSheets, today - lookback), today),
            Step::Days(Stream::ReturnRequests, start(Stream::ReturnRequests, today - lookback), today),
        ];
        if revenue_done.get(&account.alias) != Some(&today) {
            plan.push(Step::Days(Stream::Revenue, start(Stream::Revenue, yesterday - lookback), yesterday));
            let payouts_from = payouts_open_since(today).min(yesterday - lookback);
            plan.push(Step::Days(Stream::Settlements, start(Stream::Settlements, payouts_from), today));
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_are_spaced_to_stay_within_the_share_of_the_budget() {
        let config = IngestConfig::default();
        // 5% of 10 calls/s, less two calls every 15 s for new orders: 11/30 calls/s left to sweeps.
        assert!((config.sweep_calls_per_second() - 11.0 / 30.0).abs() < 1e-9);
        let secs = |calls| pause_after_sweep(&config, calls).as_secs();
        assert_eq!(secs(11), 300, "a small shop's sweep: the poll interval");
        assert_eq!(secs(851), 2_320, "14 days of 3,000 orders a day: 851 calls at 11/30 calls/s");
        assert_eq!(secs(1_000_000), 6 * 3_600, "never longer than the longest pause");
        let no_polls = IngestConfig { new_orders_poll_secs: 0, follow_api_share: 1.0, ..IngestConfig::default() };
        assert_eq!(pause_after_sweep(&no_polls, 11).as_secs(), 300);
        assert_eq!(pause_after_sweep(&no_polls, 5_000).as_secs(), 500);
    }
}
