//! One sweep: every account's plan once, the accounts side by side, each with its own client (and so
//! its vendor's rate limiter). An account whose key expired, or was rejected and is still stopped, is
//! not swept; an account whose API fails stops alone. Afterwards the tracker learns what each account's
//! sweep did and every account's status is published; meanwhile a vendor's cool-down is announced.

use chrono::{DateTime, NaiveDate, Utc};
use etl_core::account::{AccountConfig, KeyHealth};
use etl_core::metrics::{metrics, AccountLabel};
use etl_core::time::now_kst;
use etl_core::Shutdown;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::bookkeeping::{AccountStatus, Checkpoint, Progress};
use super::change_filter::ChangeFilter;
use super::error::{AccountFailure, IngestError};
use super::plan::{Plan, Step, Stream};
use super::report::{AccountReport, IngestReport};
use super::sink::Sink;
use super::tracker::AccountTracker;
use crate::client::{ClientError, CoupangClient, RateLimiter};
use crate::config::IngestConfig;

/// What the accounts' sweeps of one run mode share: the settings, the sink, where completed streams
/// are recorded, and the shutdown signal.
pub(super) struct Sweeper<'a> {
    pub(super) config: &'a IngestConfig,
    pub(super) sink: &'a Sink,
    pub(super) progress: Progress,
    pub(super) shutdown: &'a Shutdown,
}

/// One account's sweep under way: what each of its streams' listings reads with and records into.
pub(super) struct AccountSweep<'a> {
    pub(super) client: &'a CoupangClient,
    pub(super) sink: &'a Sink,
    pub(super) shutdown: &'a Shutdown,
    /// What was last sent for the account, carried from sweep to sweep.
    pub(super) filter: ChangeFilter,
    pub(super) report: AccountReport,
    /// Follow mode: new orders are polled between the pages of a sweep too, and after the account's
    /// own sweep while other accounts' go on, so a long sweep of a large shop holds back no shop's.
    pub(super) new_orders: Option<NewOrderPolls>,
}

/// When the next poll for new orders is due, and what it reads.
pub(super) struct NewOrderPolls {
    pub(super) every: Duration,
    pub(super) window: chrono::Duration,
    pub(super) next: tokio::time::Instant,
    /// A poll is under way (its own pages do not start another).
    pub(super) polling: bool,
}

impl NewOrderPolls {
    fn of(config: &IngestConfig) -> Option<NewOrderPolls> {
        (config.new_orders_poll_secs > 0).then(|| {
            let every = Duration::from_secs(config.new_orders_poll_secs);
            let window = chrono::Duration::minutes(i64::from(config.new_orders_window_minutes));
            NewOrderPolls { every, window, next: tokio::time::Instant::now() + every, polling: false }
        })
    }
}

/// The accounts of one sweep still sweeping: the last one to finish lets the others stop polling.
struct SweepsUnderWay {
    left: AtomicUsize,
    all_done: CancellationToken,
}

impl SweepsUnderWay {
    fn new(accounts: usize) -> Self {
        SweepsUnderWay { left: AtomicUsize::new(accounts), all_done: CancellationToken::new() }
    }

    /// One account's sweep ended (whichever way).
    fn one_done(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_done.cancel();
        }
    }
}

/// How one stream's sweep ended.
pub(super) enum Outcome {
    /// Every record of the window was read and acknowledged: the checkpoint may move.
    Done,
    /// Shutdown was requested: the checkpoint stays.
    Interrupted,
    /// The account's own API error (e.g. its key was rejected).
    Failed(ClientError),
}

/// An account let into a sweep: its client, where its change filter stands, and what to collect.
struct Admitted {
    client: CoupangClient,
    report: AccountReport,
    filter: ChangeFilter,
    plan: Plan,
}

/// How an account's plan ended: the streams completed, with their checkpoints, and the account's API
/// error that stopped the rest, if one did.
struct PlanEnd {
    completed: Vec<(Stream, Checkpoint)>,
    error: Option<ClientError>,
}

/// An account's finished sweep, for the tracker and the report.
struct SweptAccount {
    client: CoupangClient,
    report: AccountReport,
    filter: ChangeFilter,
    end: PlanEnd,
}

impl Sweeper<'_> {
    /// Sweeps `plan` of every account once and publishes every account's status. Kafka failures are
    /// returned as errors; an account's API failure stops that account alone, in its report.
    pub(super) async fn sweep(
        &self,
        accounts: &[AccountConfig],
        plan: &(dyn Fn(&AccountConfig) -> Plan + Sync),
        tracker: &mut AccountTracker,
    ) -> Result<IngestReport, IngestError> {
        let today = now_kst().date_naive();
        let mut result = IngestReport::default();
        let mut admitted = Vec::new();
        for account in accounts {
            let report = AccountReport {
                alias: account.alias.clone(),
                vendor_id: account.vendor_id.clone(),
                ..AccountReport::default()
            };
            match self.refusal(account, tracker, today) {
                Some(error) => {
                    tracing::error!("{error}");
                    let failure = Some(AccountFailure::Stopped);
                    let report = AccountReport { error: Some(error), failure, ..report };
                    result.accounts.insert(account.alias.clone(), report);
                }
                None => {
                    let client = CoupangClient::new(self.config, account.clone()).map_err(IngestError::Client)?;
                    let filter = tracker.filters.remove(&account.alias).unwrap_or_default();
                    admitted.push(Admitted { client, report, filter, plan: plan(account) });
                }
            }
        }

        let limiters: Vec<_> =
            admitted.iter().map(|a| (a.client.account().clone(), a.client.limiter().clone())).collect();
        let under_way = SweepsUnderWay::new(admitted.len());
        let sweeps =
            futures::future::join_all(admitted.into_iter().map(|account| self.sweep_account(account, &under_way)));
        for swept in announcing_cool_downs(sweeps, self.sink, &limiters, &tracker.last_success).await? {
            let report = swept?.record_in(tracker, today);
            result.accounts.insert(report.alias.clone(), report);
        }

        for account in accounts {
            let Some(report) = result.accounts.get(&account.alias) else {
                continue;
            };
            let status = AccountStatus {
                error: report.error.clone(),
                failure: report.failure,
                ..AccountStatus::working(account, &tracker.last_success)
            };
            self.sink.publish(&self.sink.topics.account_status, &status.alias, &status).await?;
        }
        Ok(result)
    }

    /// Why `account` may not be swept now, if so: its key has expired, or was rejected and is still
    /// stopped. Meanwhile publishes its key's days left, and warns once a day while the key can be
    /// reissued.
    fn refusal(&self, account: &AccountConfig, tracker: &mut AccountTracker, today: NaiveDate) -> Option<String> {
        let days_left = (account.key_expires_on() - today).num_days();
        metrics().key_days_left.get_or_create(&AccountLabel { account: account.alias.clone() }).set(days_left);
        match account.key_health(today) {
            KeyHealth::Expired { .. } => Some(format!(
                "account {}: the Open API key expired on {}; reissue it in WING and update the config",
                account.alias,
                account.key_expires_on()
            )),
            KeyHealth::ReissueWindow { days_left } => {
                if tracker.warned_on.insert(account.alias.clone(), today) != Some(today) {
                    tracing::warn!(account = %account.alias, days_left,
                        "the Open API key expires on {}: reissue it in WING (the button is open now) and update the config",
                        account.key_expires_on());
                }
                None
            }
            KeyHealth::Valid { .. } => None,
        }
        .or_else(|| {
            let retry_after = Duration::from_secs_f64(self.config.stopped_retry_hours * 3_600.0);
            tracker.still_stopped(account, Utc::now(), retry_after)
        })
    }

    /// Sweeps one account's plan; in follow mode, an account done before the others goes on polling
    /// its new orders until the last one is done, instead of waiting for the slowest account unpolled.
    async fn sweep_account(&self, admitted: Admitted, under_way: &SweepsUnderWay) -> Result<SweptAccount, IngestError> {
        let Admitted { client, report, filter, plan } = admitted;
        let new_orders = match self.progress {
            Progress::Live => NewOrderPolls::of(self.config),
            Progress::None | Progress::Backfill(..) => None,
        };
        let mut sweep =
            AccountSweep { client: &client, sink: self.sink, shutdown: self.shutdown, filter, report, new_orders };
        let end = sweep.run(plan, self.progress).await;
        under_way.one_done();
        let mut end = end?;
        // The report counts the plan's calls, not the polls made after it while other accounts swept:
        // the pause after a sweep already leaves the polls' calls out of the budget it spreads.
        sweep.report.api_calls = client.calls_made();
        if end.error.is_none() {
            end.error = sweep.poll_new_orders_until(&under_way.all_done).await?;
        }
        let AccountSweep { report, filter, .. } = sweep;
        Ok(SweptAccount { client, report, filter, end })
    }
}

impl AccountSweep<'_> {
    /// Sweeps the plan's streams in order, recording each completed one where `progress` says; stops
    /// at shutdown or at the account's first API error.
    async fn run(&mut self, plan: Plan, progress: Progress) -> Result<PlanEnd, IngestError> {
        let mut end = PlanEnd { completed: Vec::new(), error: None };
        for step in plan {
            let (stream, from, to) = match step {
                Step::Days(stream, from, to) => (stream, from, to),
                Step::NewOrders { created_from, created_to } => {
                    match self.new_orders(created_from, created_to).await? {
                        Outcome::Done => continue,
                        Outcome::Interrupted => break,
                        Outcome::Failed(failure) => {
                            end.error = Some(failure);
                            break;
                        }
                    }
                }
            };
            let outcome = match stream {
                Stream::OrderSheets => self.order_sheets(from, to).await?,
                Stream::ReturnRequests => self.return_requests(from, to).await?,
                Stream::Revenue => self.revenue(from, to).await?,
                Stream::Settlements => self.settlements(from, to).await?,
            };
            match outcome {
                Outcome::Done => {
                    let account = self.client.account();
                    let checkpoint = Checkpoint {
                        alias: account.alias.clone(),
                        vendor_id: account.vendor_id.clone(),
                        stream: stream.name().to_string(),
                        swept_from: from,
                        swept_through: to,
                        completed_at: Utc::now(),
                    };
                    if let Some(key) = progress.key(&account.alias, stream) {
                        self.sink.publish(&self.sink.topics.checkpoints, &key, &checkpoint).await?;
                    }
                    end.completed.push((stream, checkpoint));
                }
                Outcome::Interrupted => break,
                Outcome::Failed(failure) => {
                    end.error = Some(failure);
                    break;
                }
            }
        }
        Ok(end)
    }
}

impl SweptAccount {
    /// Records what the sweep did in the tracker (filter, checkpoints, last successful calls, whether
    /// the account is stopped) and returns the account's report, with its error if it stopped.
    fn record_in(self, tracker: &mut AccountTracker, today: NaiveDate) -> AccountReport {
        let SweptAccount { client, mut report, filter, end } = self;
        let account = client.account();
        report.distinct_boxes = filter.boxes_seen.len() as u64;
        tracker.filters.insert(account.alias.clone(), filter);
        for (stream, checkpoint) in end.completed {
            if stream == Stream::Revenue {
                tracker.revenue_swept_on.insert(account.alias.clone(), today);
            }
            tracker.checkpoints.insert((account.alias.clone(), stream.name().to_string()), checkpoint);
        }
        for (stream, newest) in &report.newest_change {
            let age = (Utc::now().timestamp_millis() - newest) / 1000;
            tracing::info!(account = %account.alias, stream, freshness_secs = age, "age of the newest change collected");
        }
        let successes = tracker.last_success.entry(account.alias.clone()).or_default();
        for (endpoint, at) in client.last_successes() {
            successes.insert(endpoint.to_string(), at);
        }
        if let Some(error) = end.error {
            tracing::error!(account = %account.alias, "{error}");
            if error.stops_account() {
                tracker.stop(account, &error.to_string(), Utc::now());
            }
            report.error = Some(error.to_string());
            report.failure = Some(AccountFailure::of(&error));
        } else {
            tracker.stopped.remove(&account.alias);
        }
        report
    }
}

/// How often a running sweep looks for vendors that went into a cool-down.
const COOL_DOWN_CHECK: Duration = Duration::from_secs(5);

/// Runs `sweeps` to the end; meanwhile, when an account's vendor goes into a cool-down (persistent
/// 429s), publishes its status with the cool-down's end at once, so `status` shows it while the
/// sweep waits (a cool-down can last tens of minutes).
async fn announcing_cool_downs<T>(
    sweeps: impl std::future::Future<Output = T>,
    sink: &Sink,
    limiters: &[(AccountConfig, Arc<RateLimiter>)],
    last_success: &HashMap<String, BTreeMap<String, DateTime<Utc>>>,
) -> Result<T, IngestError> {
    let mut sweeps = std::pin::pin!(sweeps);
    let mut announced: HashSet<String> = HashSet::new();
    let mut check = tokio::time::interval(COOL_DOWN_CHECK);
    loop {
        tokio::select! {
            outcome = &mut sweeps => return Ok(outcome),
            _ = check.tick() => {
                for (account, limiter) in limiters {
                    let Some(left) = limiter.cooling_down_for() else {
                        announced.remove(&account.alias);
                        continue;
                    };
                    if !announced.insert(account.alias.clone()) {
                        continue;
                    }
                    let until = Utc::now() + chrono::Duration::from_std(left).unwrap_or_default();
                    let status =
                        AccountStatus { cooling_down_until: Some(until), ..AccountStatus::working(account, last_success) };
                    sink.publish(&sink.topics.account_status, &status.alias, &status).await?;
                }
            }
        }
    }
}
