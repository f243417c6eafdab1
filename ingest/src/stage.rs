//! The ingest stage: per account, sweep order sheets of every status over API-legal windows and
//! produce one raw event per shipment box, waiting for the broker's acknowledgement.
//!
//! Accounts are independent: a rejected or expired key stops its account alone, loudly, and the
//! account stays stopped until its keys change in the config, which follow mode re-reads every sweep,
//! so a re-linked key takes effect without a restart. Each sweep publishes every account's status
//! (last successful call, last error) to a compacted topic for `coupang-etl accounts`.

use chrono::{DateTime, NaiveDate, Utc};
use coupang_schemas::encode;
use etl_core::account::{AccountConfig, KeyHealth};
use etl_core::kafka::{ensure_compacted_topics, ensure_topics, DeadLetter, KafkaConfig, KafkaSetupError, Topics};
use etl_core::metrics::{metrics, AccountLabel, StageLabel};
use etl_core::secret::Secret;
use etl_core::time::now_kst;
use etl_core::Shutdown;
use futures::stream::BoxStream;
use futures::StreamExt;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::client::{ClientError, CoupangClient, ReturnQuery, MAX_WINDOW_DAYS};
use crate::config::IngestConfig;
use crate::event::{order_sheet_event, return_request_event, RevenueListing};

/// Order-sheet lists return boxes in their current status, so a full sweep asks for each one.
pub const ORDER_SHEET_STATUSES: [&str; 6] =
    ["ACCEPT", "INSTRUCT", "DEPARTURE", "DELIVERING", "FINAL_DELIVERY", "NONE_TRACKING"];

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid ingest configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    #[error("Kafka producer: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot encode an event: {0}")]
    Encode(#[from] coupang_schemas::CodecError),
    /// The account's own API error (e.g. its key was rejected), when one account is all there is.
    #[error("{message}")]
    Account { message: String, failure: AccountFailure },
}

/// Why an account's sweep did not complete, by kind: what a scheduler needs to tell apart (exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountFailure {
    /// Requests failed for good: retries gave up (429s, 5xx, timeouts) or Coupang refused one (400).
    RequestsFailed,
    /// The account cannot work until a person acts: its key was rejected or has expired.
    Stopped,
}

impl AccountFailure {
    /// The kind of a client error that ended an account's sweep.
    pub fn of(error: &ClientError) -> AccountFailure {
        if error.stops_account() {
            AccountFailure::Stopped
        } else {
            AccountFailure::RequestsFailed
        }
    }
}

/// What one account's sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AccountReport {
    pub alias: String,
    pub vendor_id: String,
    /// Shipment boxes read from the API (a box read twice, e.g. listed again after a status change,
    /// counts twice).
    pub boxes: u64,
    /// Distinct shipment boxes this process has read for the account (in a range collection: the
    /// range's).
    pub distinct_boxes: u64,
    /// Raw events acknowledged by the broker.
    pub events: u64,
    /// Records that could not be read, even alone, and went to the dead-letter topic, as
    /// `endpoint record-id field` (each is dead-lettered once per sweep).
    pub dead_lettered: BTreeSet<String>,
    /// Cancel/return receipts acknowledged by the broker.
    pub receipts: u64,
    /// Revenue rows acknowledged by the broker.
    pub revenue_rows: u64,
    /// Orders asked for alone because a receipt named them and their boxes were no longer listed.
    pub orders_fetched: u64,
    /// Records not sent because they had not changed since they were last sent (re-swept windows,
    /// records repeated across pages).
    pub unchanged: u64,
    /// Per stream, the source time (epoch ms) of the newest change seen: its age is the freshness.
    pub newest_change: BTreeMap<&'static str, i64>,
    /// Why the account stopped, when it did (e.g. its key was rejected).
    pub error: Option<String>,
    /// The kind of `error`.
    pub failure: Option<AccountFailure>,
}

#[derive(Debug, Default, Clone)]
pub struct IngestReport {
    /// By account alias.
    pub accounts: BTreeMap<String, AccountReport>,
}

impl AccountReport {
    /// How many records went to the dead-letter topic.
    pub fn bad_records(&self) -> u64 {
        self.dead_lettered.len() as u64
    }
}

impl IngestReport {
    /// Over all accounts: (boxes read, order-sheet events, receipts, revenue rows) sent.
    pub fn ingest_totals(&self) -> (u64, u64, u64, u64) {
        self.accounts
            .values()
            .fold((0, 0, 0, 0), |t, a| (t.0 + a.boxes, t.1 + a.events, t.2 + a.receipts, t.3 + a.revenue_rows))
    }
}

/// An account's status as published to the account-status topic (JSON, keyed by alias).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStatus {
    pub alias: String,
    pub vendor_id: String,
    pub last_success_at: Option<DateTime<Utc>>,
    /// When each endpoint (`ordersheets`, `returnRequests`, `revenue-history`) last answered with
    /// success (absent in statuses written before it existed).
    #[serde(default)]
    pub last_success_by_endpoint: BTreeMap<String, DateTime<Utc>>,
    /// The error that stopped the account; `None` while it works.
    pub error: Option<String>,
    /// The kind of `error` (absent in older statuses).
    #[serde(default)]
    pub failure: Option<AccountFailure>,
    /// While Coupang keeps answering 429: when the vendor's calls resume (absent in older statuses).
    #[serde(default)]
    pub cooling_down_until: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl AccountStatus {
    /// The status of an account that works (no error, no cool-down), with its last successful calls.
    fn working(account: &AccountConfig, last_success: &HashMap<String, BTreeMap<String, DateTime<Utc>>>) -> Self {
        let by_endpoint = last_success.get(&account.alias).cloned().unwrap_or_default();
        AccountStatus {
            alias: account.alias.clone(),
            vendor_id: account.vendor_id.clone(),
            last_success_at: by_endpoint.values().max().copied(),
            last_success_by_endpoint: by_endpoint,
            error: None,
            failure: None,
            cooling_down_until: None,
            updated_at: Utc::now(),
        }
    }
}

/// Where follow mode gets the linked accounts from at every sweep. The CLI re-reads the config file,
/// so keys can be re-linked (or accounts added) without a restart.
pub type AccountSource = Arc<dyn Fn() -> Vec<AccountConfig> + Send + Sync>;

/// A fixed list of accounts.
pub fn fixed_accounts(accounts: Vec<AccountConfig>) -> AccountSource {
    Arc::new(move || accounts.clone())
}

struct Sink {
    producer: FutureProducer,
    topics: Topics,
    dead_letter: DeadLetter,
}

impl Sink {
    async fn connect(kafka: &KafkaConfig) -> Result<Sink, IngestError> {
        let topics = kafka.topics();
        let raw = [&topics.raw_order_sheets, &topics.raw_return_requests, &topics.raw_revenue, &topics.dead_letter];
        ensure_topics(kafka, &raw.map(String::as_str)).await?;
        ensure_compacted_topics(kafka, &[&topics.account_status, &topics.checkpoints]).await?;
        let producer: FutureProducer = kafka.producer_config().create()?;
        let dead_letter = DeadLetter::new(producer.clone(), topics.dead_letter.clone(), "ingest");
        // Connected: the stage is ready (every mode connects through here, and reconnects too).
        metrics().set_ready("ingest", true);
        Ok(Sink { producer, topics, dead_letter })
    }

    /// Sends a small JSON state record (status, checkpoint) and waits for its acknowledgement.
    async fn publish<T: Serialize>(&self, topic: &str, key: &str, value: &T) -> Result<(), IngestError> {
        let payload = serde_json::to_vec(value).map_err(|e| IngestError::Config(e.to_string()))?;
        let record = FutureRecord::to(topic).key(key).payload(&payload);
        self.producer.send(record, Duration::from_secs(60)).await.map_err(|(error, _)| error)?;
        Ok(())
    }
}

/// What ingest remembers about accounts between sweeps.
#[derive(Default)]
struct AccountTracker {
    /// Per account, when each endpoint last answered with success.
    last_success: HashMap<String, BTreeMap<String, DateTime<Utc>>>,
    /// Accounts stopped by a rejected key, with the key that was rejected and why.
    stopped: HashMap<String, Stopped>,
    /// The day each account's expiry warning was last logged.
    warned_on: HashMap<String, NaiveDate>,
    /// What was last sent per account, so unchanged records are not sent again.
    filters: HashMap<String, ChangeFilter>,
    /// The latest checkpoint per (alias, stream).
    checkpoints: HashMap<(String, String), Checkpoint>,
    /// The day each account's revenue was last swept (once a day is enough).
    revenue_swept_on: HashMap<String, NaiveDate>,
}

impl AccountTracker {
    /// The reason an account is still stopped: its key was rejected, has not changed since, and was
    /// last tried less than `retry_after` ago (a key can start working late, an allow-list be fixed).
    fn still_stopped(&self, account: &AccountConfig, now: DateTime<Utc>, retry_after: Duration) -> Option<String> {
        let stopped = self.stopped.get(&account.alias)?;
        let same_key = stopped.access_key == account.access_key && stopped.secret_key == account.secret_key;
        let retry_at = stopped.at + chrono::Duration::from_std(retry_after).unwrap_or(chrono::Duration::MAX);
        (same_key && now < retry_at).then(|| {
            let retry_at = retry_at.with_timezone(&etl_core::time::kst()).format("%Y-%m-%d %H:%M KST");
            format!("{} (stopped until its keys change in the config; tried again at {retry_at})", stopped.error)
        })
    }

    fn stop(&mut self, account: &AccountConfig, error: &str, at: DateTime<Utc>) {
        let stopped = Stopped {
            access_key: account.access_key.clone(),
            secret_key: account.secret_key.clone(),
            error: error.to_string(),
            at,
        };
        self.stopped.insert(account.alias.clone(), stopped);
    }
}

/// An account stopped by a rejected key: the key that was rejected, why, and when.
struct Stopped {
    access_key: String,
    secret_key: Secret,
    error: String,
    at: DateTime<Utc>,
}

/// The three things ingest collects per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    OrderSheets,
    ReturnRequests,
    Revenue,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::OrderSheets => "ordersheets",
            Stream::ReturnRequests => "returnrequests",
            Stream::Revenue => "revenue",
        }
    }
}

/// How far one stream of one account has been collected without a gap: written to the compacted
/// checkpoint topic only after every event of the sweep was acknowledged by the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub alias: String,
    pub vendor_id: String,
    pub stream: String,
    pub swept_from: NaiveDate,
    pub swept_through: NaiveDate,
    pub completed_at: DateTime<Utc>,
}

/// Which days of which streams to collect for one account.
type Plan = Vec<(Stream, NaiveDate, NaiveDate)>;

/// Where a completed stream sweep is recorded. Only follow mode moves the live checkpoints, so a one-off
/// range or a backfill of old days never moves them backwards.
#[derive(Debug, Clone, Copy)]
enum Progress {
    /// A one-off range: nothing recorded.
    None,
    /// Follow mode: `alias:stream`.
    Live,
    /// A backfill of `from..=to`: `backfill:alias:stream:from:to`, so an interrupted one resumes.
    Backfill(NaiveDate, NaiveDate),
}

impl Progress {
    fn key(self, alias: &str, stream: Stream) -> Option<String> {
        match self {
            Progress::None => None,
            Progress::Live => Some(format!("{alias}:{}", stream.name())),
            Progress::Backfill(from, to) => Some(format!("backfill:{alias}:{}:{from}:{to}", stream.name())),
        }
    }
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
    config.validate().map_err(IngestError::Config)?;
    let paced = IngestConfig { requests_per_second: config.backfill_requests_per_second, ..config.clone() };
    let sink = Sink::connect(kafka).await?;
    let progress = Progress::Backfill(from, to);
    let recorded = load_checkpoints(kafka).await?;
    let done_through = |stream: Stream| {
        progress.key(&account.alias, stream).and_then(|key| recorded.get(&key)).map(|c| c.swept_through)
    };
    let yesterday = now_kst().date_naive() - chrono::Duration::days(1);
    // Receipts a month past the range, as `collect_range` reads them: an order of the range's last days
    // cancelled whole afterwards has left the order-sheet lists, and only its receipt tells of it.
    let windows_of = |stream: Stream| match stream {
        Stream::Revenue => windows(from, to.min(yesterday)),
        Stream::ReturnRequests => windows(from, receipts_until(to, yesterday)),
        Stream::OrderSheets => windows(from, to),
    };
    let total: u64 = streams.iter().map(|s| windows_of(*s).len() as u64).sum();
    let mut state = BackfillProgress { windows_total: total, ..BackfillProgress::default() };
    let mut tracker = AccountTracker::default();
    // Orders read alone through those receipts count only when paid within the range.
    tracker.filters.insert(account.alias.clone(), ChangeFilter { paid_until: Some(to), ..ChangeFilter::default() });
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
            let plan = move |_: &AccountConfig| -> Plan { vec![(stream, window_from, window_to)] };
            let report =
                sweep(&paced, &sink, std::slice::from_ref(account), &plan, progress, &mut tracker, shutdown).await?;
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
            state.records += account_report.boxes + account_report.receipts + account_report.revenue_rows;
            state.windows_done += 1;
            on_progress(&state);
        }
    }
    Ok(state)
}

/// The last day whose receipts a collection of days up to `to` reads: a cancel or return can be
/// requested weeks after the payment day, and a box cancelled or returned whole leaves the order-sheet
/// lists, so receipts are read for a month past the range (up to today).
fn receipts_until(to: NaiveDate, yesterday: NaiveDate) -> NaiveDate {
    let today = yesterday + chrono::Duration::days(1);
    (to + chrono::Duration::days(MAX_WINDOW_DAYS)).min(today).max(to)
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
    config.validate().map_err(IngestError::Config)?;
    let sink = Sink::connect(kafka).await?;
    let mut tracker = AccountTracker::default();
    let yesterday = now_kst().date_naive() - chrono::Duration::days(1);
    let receipts_until = receipts_until(to, yesterday);
    for account in accounts {
        let filter = ChangeFilter { paid_until: Some(to), ..ChangeFilter::default() };
        tracker.filters.insert(account.alias.clone(), filter);
    }
    let plan = |_: &AccountConfig| -> Plan {
        let mut plan = vec![(Stream::OrderSheets, from, to), (Stream::ReturnRequests, from, receipts_until)];
        if from <= yesterday {
            plan.push((Stream::Revenue, from, to.min(yesterday)));
        }
        plan
    };
    sweep(config, &sink, accounts, &plan, Progress::None, &mut tracker, shutdown).await
}

/// Follow mode: every `poll_interval_secs`, sweeps each account until shutdown, with the accounts
/// `accounts` gives at that moment. Each stream is swept from `lookback_days` before today, or from
/// its checkpoint when that is older (after downtime), so nothing is missed; revenue once a day.
pub async fn run(
    config: &IngestConfig,
    kafka: &KafkaConfig,
    accounts: AccountSource,
    shutdown: Shutdown,
) -> Result<(), IngestError> {
    config.validate().map_err(IngestError::Config)?;
    let mut sink = Sink::connect(kafka).await?;
    let live: HashMap<(String, String), Checkpoint> = load_checkpoints(kafka)
        .await?
        .into_iter()
        .filter(|(key, c)| *key == format!("{}:{}", c.alias, c.stream))
        .map(|(_, c)| ((c.alias.clone(), c.stream.clone()), c))
        .collect();
    let mut tracker = AccountTracker { checkpoints: live, ..AccountTracker::default() };
    while !shutdown.is_cancelled() {
        let today = now_kst().date_naive();
        let yesterday = today - chrono::Duration::days(1);
        let lookback = chrono::Duration::days(i64::from(config.lookback_days));
        let checkpoints = tracker.checkpoints.clone();
        let revenue_done = tracker.revenue_swept_on.clone();
        let plan = move |account: &AccountConfig| -> Plan {
            let start = |stream: Stream, default: NaiveDate| {
                let key = (account.alias.clone(), stream.name().to_string());
                // One day of overlap with what was collected before.
                checkpoints.get(&key).map_or(default, |c| default.min(c.swept_through - chrono::Duration::days(1)))
            };
            let mut plan = vec![
                (Stream::OrderSheets, start(Stream::OrderSheets, today - lookback), today),
                (Stream::ReturnRequests, start(Stream::ReturnRequests, today - lookback), today),
            ];
            if revenue_done.get(&account.alias) != Some(&today) {
                plan.push((Stream::Revenue, start(Stream::Revenue, yesterday - lookback), yesterday));
            }
            plan
        };
        let report = match sweep(config, &sink, &accounts(), &plan, Progress::Live, &mut tracker, &shutdown).await {
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
                match reconnect(kafka, &shutdown).await {
                    Some(new_sink) => sink = new_sink,
                    None => break,
                }
                continue;
            }
            Err(error) => return Err(error),
        };
        for (alias, account) in &report.accounts {
            tracing::info!(account = %alias, boxes = account.boxes, events = account.events, receipts = account.receipts,
                revenue_rows = account.revenue_rows, unchanged = account.unchanged, bad_records = account.bad_records(),
                error = account.error.as_deref().unwrap_or(""), "sweep done");
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_secs(config.poll_interval_secs)) => {}
        }
    }
    Ok(())
}

/// A new sink once the broker answers again, retried with growing pauses (up to 30 s); None at shutdown.
async fn reconnect(kafka: &KafkaConfig, shutdown: &Shutdown) -> Option<Sink> {
    let mut pause = Duration::from_secs(1);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(pause) => {}
        }
        match Sink::connect(kafka).await {
            Ok(sink) => return Some(sink),
            Err(error) => tracing::warn!(%error, retry_in = ?pause, "Kafka is not reachable yet"),
        }
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// The latest checkpoint under every key: `alias:stream` for follow mode,
/// `backfill:alias:stream:from:to` for backfills.
pub async fn load_checkpoints(kafka: &KafkaConfig) -> Result<HashMap<String, Checkpoint>, IngestError> {
    let topic = kafka.topics().checkpoints;
    let raw = etl_core::kafka::latest_by_key(kafka, &topic, Duration::from_secs(30)).await?;
    Ok(readable(raw, &topic))
}

/// The records of a compacted bookkeeping topic that decode. Anything else is not ours (only ingest
/// writes these topics): it is skipped with a warning, so the stream falls back to its look-back
/// window (checkpoints) or the account shows no status yet.
fn readable<T: serde::de::DeserializeOwned>(raw: HashMap<String, Vec<u8>>, topic: &str) -> HashMap<String, T> {
    raw.into_iter()
        .filter_map(|(key, payload)| match serde_json::from_slice::<T>(&payload) {
            Ok(value) => Some((key, value)),
            Err(error) => {
                tracing::warn!(topic, key, %error, "record skipped: not one ingest wrote");
                None
            }
        })
        .collect()
}

async fn sweep(
    config: &IngestConfig,
    sink: &Sink,
    accounts: &[AccountConfig],
    plan: &(dyn Fn(&AccountConfig) -> Plan + Sync),
    progress: Progress,
    tracker: &mut AccountTracker,
    shutdown: &Shutdown,
) -> Result<IngestReport, IngestError> {
    let today = now_kst().date_naive();
    let mut runnable = Vec::new();
    let mut result = IngestReport::default();
    for account in accounts {
        let report = AccountReport {
            alias: account.alias.clone(),
            vendor_id: account.vendor_id.clone(),
            ..AccountReport::default()
        };
        let days_left = (account.key_expires_on() - today).num_days();
        metrics().key_days_left.get_or_create(&AccountLabel { account: account.alias.clone() }).set(days_left);
        let refusal = match account.key_health(today) {
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
            let retry_after = Duration::from_secs_f64(config.stopped_retry_hours * 3_600.0);
            tracker.still_stopped(account, Utc::now(), retry_after)
        });
        match refusal {
            Some(error) => {
                tracing::error!("{error}");
                let failure = Some(AccountFailure::Stopped);
                result.accounts.insert(account.alias.clone(), AccountReport { error: Some(error), failure, ..report });
            }
            None => {
                let client =
                    CoupangClient::new(config, account.clone()).map_err(|e| IngestError::Config(e.to_string()))?;
                let filter = tracker.filters.remove(&account.alias).unwrap_or_default();
                runnable.push((client, report, filter, plan(account)));
            }
        }
    }

    let limiters: Vec<_> =
        runnable.iter().map(|(client, ..)| (client.account().clone(), client.limiter().clone())).collect();
    let sweeps = runnable.into_iter().map(|(client, mut report, mut filter, plan)| async move {
        let mut done = Vec::new();
        let mut error = None;
        for (stream, from, to) in plan {
            let outcome = match stream {
                Stream::OrderSheets => {
                    sweep_order_sheets(&client, sink, (from, to), &mut filter, shutdown, &mut report).await?
                }
                Stream::ReturnRequests => {
                    sweep_return_requests(&client, sink, (from, to), &mut filter, shutdown, &mut report).await?
                }
                Stream::Revenue => sweep_revenue(&client, sink, (from, to), &mut filter, shutdown, &mut report).await?,
            };
            match outcome {
                Outcome::Done => {
                    let account = client.account();
                    let checkpoint = Checkpoint {
                        alias: account.alias.clone(),
                        vendor_id: account.vendor_id.clone(),
                        stream: stream.name().to_string(),
                        swept_from: from,
                        swept_through: to,
                        completed_at: Utc::now(),
                    };
                    if let Some(key) = progress.key(&account.alias, stream) {
                        sink.publish(&sink.topics.checkpoints, &key, &checkpoint).await?;
                    }
                    done.push((stream, checkpoint));
                }
                Outcome::Interrupted => break,
                Outcome::Failed(failure) => {
                    error = Some(failure);
                    break;
                }
            }
        }
        Ok::<_, IngestError>((client, report, filter, done, error))
    });
    let sweeps = futures::future::join_all(sweeps);
    for outcome in announcing_cool_downs(sweeps, sink, &limiters, &tracker.last_success).await? {
        let (client, mut report, filter, done, error) = outcome?;
        let account = client.account();
        report.distinct_boxes = filter.boxes_seen.len() as u64;
        tracker.filters.insert(account.alias.clone(), filter);
        for (stream, checkpoint) in done {
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
        if let Some(error) = error {
            tracing::error!(account = %account.alias, "{error}");
            if error.stops_account() {
                tracker.stop(account, &error.to_string(), Utc::now());
            }
            report.error = Some(error.to_string());
            report.failure = Some(AccountFailure::of(&error));
        } else {
            tracker.stopped.remove(&account.alias);
        }
        result.accounts.insert(account.alias.clone(), report);
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
        sink.publish(&sink.topics.account_status, &status.alias, &status).await?;
    }
    Ok(result)
}

/// How often a running sweep looks for vendors that went into a cool-down.
const COOL_DOWN_CHECK: Duration = Duration::from_secs(5);

/// Runs `sweeps` to the end; meanwhile, when an account's vendor goes into a cool-down (persistent
/// 429s), publishes its status with the cool-down's end at once, so `status` shows it while the
/// sweep waits (a cool-down can last tens of minutes).
async fn announcing_cool_downs<T>(
    sweeps: impl std::future::Future<Output = T>,
    sink: &Sink,
    limiters: &[(AccountConfig, Arc<crate::client::RateLimiter>)],
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

/// How one stream's sweep ended.
enum Outcome {
    /// Every record of the window was read and acknowledged: the checkpoint may move.
    Done,
    /// Shutdown was requested: the checkpoint stays.
    Interrupted,
    /// The account's own API error (e.g. its key was rejected).
    Failed(ClientError),
}

/// Remembers what was last sent for each record (a hash of its event, collection time aside), so a
/// record Coupang lists again unchanged (re-swept windows, repeated pages) is not sent again and the
/// stages after ingest see only changes. In memory: after a restart every record is sent once more,
/// which the next stages absorb (same versions).
#[derive(Default)]
pub struct ChangeFilter {
    sent: HashMap<String, u64>,
    /// Orders whose order sheet this process has read: a receipt for any other order makes ingest
    /// ask for that order alone (cancelled or returned boxes leave the lists, and without the order
    /// sheet the pipeline has no price or payment time for them).
    orders_seen: HashSet<i64>,
    /// Shipment boxes read, for receipts that name their boxes (a split order's second box can leave
    /// the lists while the first stays).
    boxes_seen: HashSet<i64>,
    /// For a range collection: orders read alone are kept only when paid by this day, so days after
    /// the range never show partial totals.
    paid_until: Option<NaiveDate>,
}

impl ChangeFilter {
    /// Whether a receipt names a box (or, without box ids, an order) whose order sheet was never read.
    fn misses_order_of(&self, receipt: &crate::client::model::ReturnRequest) -> bool {
        let boxes: Vec<i64> = receipt.return_items.iter().filter_map(|item| item.shipment_box_id).collect();
        if boxes.is_empty() {
            !self.orders_seen.contains(&receipt.order_id)
        } else {
            boxes.iter().any(|id| !self.boxes_seen.contains(id))
        }
    }
}

impl ChangeFilter {
    /// The encoded event when it differs from the last one sent under `id`; `None` when unchanged.
    fn encode_if_changed<E: coupang_schemas::EventType + Clone>(
        &mut self,
        id: String,
        event: &E,
        without_collection_time: impl FnOnce(&mut E),
    ) -> Result<Option<Vec<u8>>, IngestError> {
        use std::hash::{Hash, Hasher};
        let mut timeless = event.clone();
        without_collection_time(&mut timeless);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        encode(&timeless)?.hash(&mut hasher);
        let hash = hasher.finish();
        if self.sent.insert(id, hash) == Some(hash) {
            return Ok(None);
        }
        Ok(Some(encode(event)?))
    }
}

/// Produces `encoded` records to `topic` and waits for every acknowledgement; returns how many.
async fn send_all(sink: &Sink, topic: &str, encoded: &[(String, Vec<u8>)]) -> Result<u64, IngestError> {
    let deliveries: Vec<_> = encoded
        .iter()
        .map(|(key, payload)| {
            sink.producer.send(FutureRecord::to(topic).key(key).payload(payload), Duration::from_secs(120))
        })
        .collect();
    for delivery in futures::future::join_all(deliveries).await {
        delivery.map_err(|(error, _)| error)?;
    }
    Ok(encoded.len() as u64)
}

/// Sends a record that cannot be read to the dead-letter topic, once per sweep: a record can appear in
/// several listings (statuses, overlapping pages), and each copy would be the same dead letter.
async fn dead_letter(
    sink: &Sink,
    vendor_id: &str,
    bad: ClientError,
    report: &mut AccountReport,
) -> Result<(), IngestError> {
    let reason = bad.to_string();
    let ClientError::BadRecord { alias, endpoint, record_id, fault, raw } = bad else {
        return Ok(());
    };
    if !report.dead_lettered.insert(format!("{endpoint} {record_id} {}", fault.field)) {
        return Ok(());
    }
    let source = [
        ("dlq.source.account", alias.as_str()),
        ("dlq.source.endpoint", endpoint),
        ("dlq.source.record", record_id.as_str()),
        ("dlq.field", fault.field.as_str()),
        ("dlq.value", fault.value.as_str()),
    ];
    sink.dead_letter.send_record(Some(vendor_id.as_bytes()), raw.as_bytes(), &reason, &source).await?;
    Ok(())
}

fn note_newest(report: &mut AccountReport, stream: Stream, at: i64) {
    let newest = report.newest_change.entry(stream.name()).or_insert(at);
    *newest = (*newest).max(at);
}

/// What one listing did.
struct Listing {
    /// Records read (bad ones excluded).
    seen: u64,
    /// Records sent (changed ones) and acknowledged.
    sent: u64,
    /// Why the listing ended early, if it did.
    stopped: Option<Outcome>,
}

/// The source time of a record's newest change and, when it changed, its key and encoded event.
type Prepared = Result<(i64, Option<(String, Vec<u8>)>), IngestError>;

/// Turns a record into the source time of its newest change and, when it changed, its key and event.
type Prepare<'a, R> = dyn FnMut(R, i64) -> Prepared + Send + 'a;

/// Reads one listing chunk by chunk and sends the records that changed, waiting for the broker's
/// acknowledgement of each chunk. Records that cannot be read are dead-lettered.
async fn send_changed<R: Send>(
    records: BoxStream<'_, Result<R, ClientError>>,
    (sink, topic, stream): (&Sink, &str, Stream),
    shutdown: &Shutdown,
    report: &mut AccountReport,
    prepare: &mut Prepare<'_, R>,
) -> Result<Listing, IngestError> {
    let vendor = report.vendor_id.clone();
    let mut listing = Listing { seen: 0, sent: 0, stopped: None };
    let mut chunks = records.chunks(50);
    while let Some(chunk) = chunks.next().await {
        if shutdown.is_cancelled() {
            listing.stopped = Some(Outcome::Interrupted);
            return Ok(listing);
        }
        let collected_at = Utc::now().timestamp_millis();
        let mut encoded = Vec::with_capacity(chunk.len());
        let seen_before = listing.seen;
        for record in chunk {
            let record = match record {
                Ok(record) => record,
                Err(bad @ ClientError::BadRecord { .. }) => {
                    dead_letter(sink, &vendor, bad, report).await?;
                    continue;
                }
                Err(error) => {
                    listing.stopped = Some(Outcome::Failed(error));
                    return Ok(listing);
                }
            };
            listing.seen += 1;
            let (newest, changed) = prepare(record, collected_at)?;
            note_newest(report, stream, newest);
            match changed {
                Some(key_and_bytes) => encoded.push(key_and_bytes),
                None => report.unchanged += 1,
            }
        }
        metrics().record_in("ingest", &report.alias, listing.seen - seen_before);
        let sent = send_all(sink, topic, &encoded).await?;
        metrics().record_out("ingest", &report.alias, sent);
        listing.sent += sent;
    }
    Ok(listing)
}

/// Coupang sometimes sends a record incomplete: ask for that box alone before giving up on it (it is
/// dead-lettered, intact minus personal data, only when that fails too).
async fn with_refetch(
    client: &CoupangClient,
    record: Result<crate::client::model::OrderSheet, ClientError>,
) -> Result<crate::client::model::OrderSheet, ClientError> {
    match record {
        Err(bad) => {
            let again = match &bad {
                ClientError::BadRecord { record_id, .. } => refetch(client, record_id).await,
                _ => None,
            };
            again.ok_or(bad)
        }
        ok => ok,
    }
}

/// Turns order sheets into events, sending only changed ones, and remembers their orders.
fn order_sheet_preparation<'a>(
    client: &'a CoupangClient,
    filter: &'a mut ChangeFilter,
) -> impl FnMut(crate::client::model::OrderSheet, i64) -> Prepared + Send + 'a {
    let account = client.account();
    let (vendor, alias) = (account.vendor_id.as_str(), account.alias.as_str());
    move |sheet: crate::client::model::OrderSheet, collected_at| {
        filter.orders_seen.insert(sheet.order_id);
        filter.boxes_seen.insert(sheet.shipment_box_id);
        let event = order_sheet_event(vendor, alias, collected_at, &sheet);
        let changes = [Some(event.paid_at), event.in_transit_at, event.delivered_at];
        let newest = changes.into_iter().flatten().max().unwrap_or(event.paid_at);
        let bytes =
            filter.encode_if_changed(format!("box:{}", sheet.shipment_box_id), &event, |e| e.collected_at = 0)?;
        Ok((newest, bytes.map(|b| (event.kafka_key(), b))))
    }
}

/// Order sheets created on the window's days, one listing per status (lists show current statuses).
async fn sweep_order_sheets(
    client: &CoupangClient,
    sink: &Sink,
    (from, to): (NaiveDate, NaiveDate),
    filter: &mut ChangeFilter,
    shutdown: &Shutdown,
    report: &mut AccountReport,
) -> Result<Outcome, IngestError> {
    let mut prepare = order_sheet_preparation(client, filter);
    for (window_from, window_to) in windows(from, to) {
        for status in ORDER_SHEET_STATUSES {
            let records = client.order_sheets(window_from, window_to, status).then(|r| with_refetch(client, r)).boxed();
            let target = (sink, sink.topics.raw_order_sheets.as_str(), Stream::OrderSheets);
            let listing = send_changed(records, target, shutdown, report, &mut prepare).await?;
            report.boxes += listing.seen;
            report.events += listing.sent;
            if let Some(outcome) = listing.stopped {
                return Ok(outcome);
            }
        }
    }
    Ok(Outcome::Done)
}

/// Cancel and return receipts requested on the window's days.
async fn sweep_return_requests(
    client: &CoupangClient,
    sink: &Sink,
    (from, to): (NaiveDate, NaiveDate),
    filter: &mut ChangeFilter,
    shutdown: &Shutdown,
    report: &mut AccountReport,
) -> Result<Outcome, IngestError> {
    let account = client.account();
    let (vendor, alias) = (account.vendor_id.as_str(), account.alias.as_str());
    let mut unseen = BTreeSet::new();
    let mut prepare = |receipt: crate::client::model::ReturnRequest, collected_at| {
        if filter.misses_order_of(&receipt) {
            unseen.insert(receipt.order_id);
        }
        let event = return_request_event(vendor, alias, collected_at, &receipt);
        let newest = event.modified_at.unwrap_or(event.created_at);
        let bytes =
            filter.encode_if_changed(format!("receipt:{}", receipt.receipt_id), &event, |e| e.collected_at = 0)?;
        Ok((newest, bytes.map(|b| (event.kafka_key(), b))))
    };
    for (window_from, window_to) in windows(from, to) {
        for which in ReturnQuery::ALL {
            let records = client.return_requests(window_from, window_to, which).boxed();
            let target = (sink, sink.topics.raw_return_requests.as_str(), Stream::ReturnRequests);
            let listing = send_changed(records, target, shutdown, report, &mut prepare).await?;
            report.receipts += listing.sent;
            if let Some(outcome) = listing.stopped {
                return Ok(outcome);
            }
        }
    }
    fetch_unlisted_orders(client, sink, unseen, filter, shutdown, report).await
}

/// Asks for the orders named by receipts whose order sheets were never read (a box cancelled or
/// returned whole leaves the lists), one call per order. A failure only skips that order: the next
/// sweep asks again, since it is still unseen.
async fn fetch_unlisted_orders(
    client: &CoupangClient,
    sink: &Sink,
    orders: BTreeSet<i64>,
    filter: &mut ChangeFilter,
    shutdown: &Shutdown,
    report: &mut AccountReport,
) -> Result<Outcome, IngestError> {
    let orders: Vec<i64> = orders.into_iter().collect();
    let paid_until = filter.paid_until;
    if orders.is_empty() {
        return Ok(Outcome::Done);
    }
    report.orders_fetched += orders.len() as u64;
    let records = futures::stream::iter(orders)
        .then(|order_id| async move {
            match client.order_sheets_of_order(order_id).await {
                Ok(records) => records,
                Err(error) => {
                    tracing::warn!(account = %client.account().alias, order_id, "cannot read the order of a receipt: {error}");
                    Vec::new()
                }
            }
        })
        .flat_map(futures::stream::iter)
        .filter(move |sheet| {
            let in_range = match (paid_until, sheet) {
                (Some(until), Ok(sheet)) => sheet.paid_at.0 <= end_of_day_millis(until),
                _ => true,
            };
            futures::future::ready(in_range)
        })
        .boxed();
    let mut prepare = order_sheet_preparation(client, filter);
    let target = (sink, sink.topics.raw_order_sheets.as_str(), Stream::OrderSheets);
    let listing = send_changed(records, target, shutdown, report, &mut prepare).await?;
    report.boxes += listing.seen;
    report.events += listing.sent;
    Ok(listing.stopped.unwrap_or(Outcome::Done))
}

/// Revenue rows recognised on the window's days (all before today).
async fn sweep_revenue(
    client: &CoupangClient,
    sink: &Sink,
    (from, to): (NaiveDate, NaiveDate),
    filter: &mut ChangeFilter,
    shutdown: &Shutdown,
    report: &mut AccountReport,
) -> Result<Outcome, IngestError> {
    let account = client.account();
    let (vendor, alias) = (account.vendor_id.as_str(), account.alias.as_str());
    let mut listing = RevenueListing::default();
    let mut prepare = |row: crate::client::model::RevenueRecord, collected_at| {
        let event = listing.event(vendor, alias, collected_at, &row);
        // A revenue row's change is its recognition: midnight of that day, Korea time.
        let recognised = etl_core::time::date_from_days(event.recognition_date)
            .and_then(etl_core::time::kst_midnight_millis)
            .unwrap_or(collected_at);
        let id =
            format!("revenue:{}:{}:{}:{}", event.order_id, event.sale_type, event.recognition_date, event.same_day_row);
        let bytes = filter.encode_if_changed(id, &event, |e| e.collected_at = 0)?;
        Ok((recognised, bytes.map(|b| (event.kafka_key(), b))))
    };
    for (window_from, window_to) in windows(from, to) {
        let records = client.revenue_history(window_from, window_to).boxed();
        let target = (sink, sink.topics.raw_revenue.as_str(), Stream::Revenue);
        let listing = send_changed(records, target, shutdown, report, &mut prepare).await?;
        report.revenue_rows += listing.sent;
        if let Some(outcome) = listing.stopped {
            return Ok(outcome);
        }
    }
    Ok(Outcome::Done)
}

/// A record that did not decode, asked for alone (`shipmentBoxId=…`); `None` when that fails too.
async fn refetch(client: &CoupangClient, record_id: &str) -> Option<crate::client::model::OrderSheet> {
    let id = record_id.strip_prefix("shipmentBoxId=")?.parse::<i64>().ok()?;
    match client.order_sheet(id).await {
        Ok(sheet) => Some(sheet),
        Err(error) => {
            tracing::warn!(account = %client.account().alias, shipment_box_id = id, "re-fetching a bad record failed: {error}");
            None
        }
    }
}

/// The latest published status of every account (for `coupang-etl accounts`), by alias.
pub async fn account_statuses(
    kafka: &KafkaConfig,
    timeout: Duration,
) -> Result<HashMap<String, AccountStatus>, IngestError> {
    let topic = kafka.topics().account_status;
    let raw = etl_core::kafka::latest_by_key(kafka, &topic, timeout).await?;
    Ok(readable(raw, &topic))
}

/// The last millisecond of a Korean day.
fn end_of_day_millis(day: NaiveDate) -> i64 {
    etl_core::time::kst_midnight_millis(day + chrono::Duration::days(1)).map_or(i64::MAX, |next| next - 1)
}

/// Splits `from..=to` into API-legal windows of at most 31 days.
pub fn windows(from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = (start + chrono::Duration::days(MAX_WINDOW_DAYS - 1)).min(to);
        out.push((start, end));
        start = end + chrono::Duration::days(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Duration::days(n)
    }

    proptest! {
        #[test]
        fn windows_cover_the_range_exactly_and_stay_legal(start in 0i64..400, len in 0i64..400) {
            let (from, to) = (day(start), day(start + len));
            let ws = windows(from, to);
            prop_assert_eq!(ws.first().unwrap().0, from);
            prop_assert_eq!(ws.last().unwrap().1, to);
            for pair in ws.windows(2) {
                prop_assert_eq!(pair[0].1 + chrono::Duration::days(1), pair[1].0);
            }
            for (a, b) in ws {
                prop_assert!(a <= b && (b - a).num_days() < MAX_WINDOW_DAYS);
            }
        }
    }

    #[test]
    fn empty_when_reversed() {
        assert!(windows(day(5), day(4)).is_empty());
    }

    fn account(access: &str, secret: &str) -> AccountConfig {
        AccountConfig {
            alias: "brand-a".into(),
            vendor_id: "A00012345".into(),
            access_key: access.into(),
            secret_key: Secret::new(secret),
            key_issued_on: day(0),
        }
    }

    #[test]
    fn a_stopped_account_resumes_when_its_keys_change_or_its_retry_time_comes() {
        let mut tracker = AccountTracker::default();
        let old = account("ak", "sk");
        let stopped_at = Utc::now();
        let hour = Duration::from_secs(3_600);
        tracker.stop(&old, "account brand-a: Coupang rejected the key (HTTP 401)", stopped_at);
        let reason = tracker.still_stopped(&old, stopped_at, hour).unwrap();
        assert!(reason.contains("HTTP 401") && reason.contains("tried again at"), "{reason}");
        assert!(tracker.still_stopped(&account("ak", "new-secret"), stopped_at, hour).is_none());
        assert!(tracker.still_stopped(&account("new-ak", "new-secret"), stopped_at, hour).is_none());
        let later = stopped_at + chrono::Duration::minutes(59);
        assert!(tracker.still_stopped(&old, later, hour).is_some());
        assert!(tracker.still_stopped(&old, later + chrono::Duration::minutes(1), hour).is_none(), "tried again");
    }
}
