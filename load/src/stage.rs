//! The loader's Kafka → ClickHouse loop.
//!
//! It loads the payment facts into `payment_facts`, and the raw revenue-history rows and payouts into
//! `revenue_rows` and `settlements` (the ledger the reconciliation reads). One INSERT per table in a
//! batch; the batch's offsets are committed only after ClickHouse acknowledged every one.
//! While ClickHouse is down the loop retries the same batch with growing pauses and reads nothing new,
//! so memory stays bounded and nothing is lost or reordered.

use coupang_schemas::{decode, decode_facts, EventType, RevenueEvent, SettlementEvent};
use etl_core::kafka::{
    commit_batch, commit_idle_positions, ensure_topics, next_batch_within, note_committed, report_lag,
    restart_on_kafka_failure, worth_a_restart, BlockingDrop, CommittedOffsets, Consumes, DeadLetter, KafkaConfig,
    KafkaSetupError, Topics,
};
use etl_core::metrics::{metrics, AccountLabel, PerAccount};
use etl_core::task::AbortOnDrop;
use etl_core::Shutdown;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::{ClickHouseConfig, LoadConfig};
use crate::history::apply_history_retention;
use crate::ledger::{PayoutRow, RevenueRow};
use crate::row::{FactRow, RowError};
use crate::schema::{migrate, SchemaError};
use crate::summary::Reader;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The task that runs a batch's INSERT panicked (a bug; the batch stays uncommitted).
    #[error("the INSERT task failed: {0}")]
    InsertTask(#[source] tokio::task::JoinError),
}

/// The loader's group and input: the facts topic, and the raw revenue and payouts for the ledger.
pub fn consumes(config: &LoadConfig, kafka: &KafkaConfig) -> Consumes {
    Consumes { group_id: config.group_id.clone(), topics: inputs(&kafka.topics()) }
}

fn inputs(topics: &Topics) -> Vec<String> {
    vec![topics.payment_facts.clone(), topics.raw_revenue.clone(), topics.raw_settlements.clone()]
}

pub async fn run(
    config: &LoadConfig,
    clickhouse: &ClickHouseConfig,
    kafka: &KafkaConfig,
    shutdown: Shutdown,
) -> Result<(), LoadError> {
    restart_on_kafka_failure(STAGE, &shutdown, worth_restarting, || run_once(config, clickhouse, kafka, &shutdown))
        .await
}

/// Whether Kafka failed under the stage, or a restart's setup found Kafka or ClickHouse still away (a
/// ClickHouse restarted while the stage restarts for Kafka, say): the loop itself rides out a
/// ClickHouse outage, so a restart should too. At the first start they are reported.
fn worth_restarting(error: &LoadError, restarted: bool) -> bool {
    match error {
        LoadError::Kafka(error) => worth_a_restart(error),
        LoadError::Setup(error) => restarted && error.may_pass(),
        LoadError::Schema(error) => restarted && error.is_unreachable(),
        _ => false,
    }
}

async fn run_once(
    config: &LoadConfig,
    clickhouse: &ClickHouseConfig,
    kafka: &KafkaConfig,
    shutdown: &Shutdown,
) -> Result<(), LoadError> {
    let report = migrate(clickhouse).await?;
    tracing::info!(server = %report.server.version, database = %report.database, "ClickHouse schema is current");
    if let Some(retention) = apply_history_retention(clickhouse, &report.server, config.history_retention_days).await? {
        tracing::info!("{retention}");
    }
    let topics = kafka.topics();
    let inputs = inputs(&topics);
    let mut needed: Vec<&str> = inputs.iter().map(String::as_str).collect();
    needed.push(&topics.dead_letter);
    ensure_topics(kafka, &needed).await?;
    let consumer: BlockingDrop<StreamConsumer> = BlockingDrop::new(kafka.consumer_config(&config.group_id).create()?);
    consumer.subscribe(&needed[..inputs.len()])?;
    let producer: FutureProducer = kafka.producer_config().create()?;
    let dead_letter = DeadLetter::new(producer, topics.dead_letter.clone(), "load");
    let target =
        Target { client: clickhouse.client_for(&report.server), deduplication_token: report.server.is_modern() };
    let wait = Duration::from_millis(config.batch_wait_ms);
    let _lag = report_lag(kafka.clone(), STAGE, consumes(config, kafka), shutdown.clone());
    let _reconciliation = (config.reconcile_every_secs > 0).then(|| {
        let reader = Reader::for_server(clickhouse, report.server.clone());
        let every = Duration::from_secs(config.reconcile_every_secs);
        AbortOnDrop(tokio::spawn(crate::reconciliation::watch(reader, every, shutdown.clone())))
    });
    metrics().set_ready(STAGE, true);
    tracing::info!(group = %config.group_id, topics = ?inputs, "load started");

    // Two batches at a time: while ClickHouse works on one INSERT (its own task, so on the other core),
    // the next batch is fetched and decoded. Offsets stay in order: a batch is committed only once its
    // INSERT was acknowledged, and before the next batch is.
    let mut in_flight: Option<InsertTask> = None;
    let mut committed = CommittedOffsets::new();
    loop {
        let next = if shutdown.is_cancelled() {
            None
        } else {
            let waiting = Instant::now();
            let batch = next_batch_within(&consumer, (config.batch_rows, config.batch_bytes, wait), shutdown).await?;
            metrics().fetch_wait(STAGE, waiting);
            let in_hand = Instant::now();
            let rows = rows_of(&batch, &topics, &dead_letter).await?;
            (!batch.is_empty()).then_some(Decoded { batch, rows, in_hand })
        };
        if let Some(task) = in_flight.take() {
            let (done, rejected) = task.finish().await?;
            let Some(rejected) = rejected else {
                // Shut down mid-retry: leave the batch uncommitted; the next run loads it again.
                break;
            };
            for (index, reason) in reasons_by_message(&rejected) {
                let message = &done.batch[index];
                tracing::error!(key = %String::from_utf8_lossy(message.key().unwrap_or_default()), "{reason}");
                dead_letter.send(message, &reason).await?;
            }
            note_committed(&commit_batch(&consumer, &done.batch)?, &mut committed);
            record_loaded(&done.rows.facts, &rejected, done.batch.len(), done.in_hand);
            tracing::debug!(rows = done.rows.len(), rejected = rejected.len(), "batch loaded and committed");
        }
        match next {
            Some(decoded) => in_flight = Some(InsertTask::start(decoded, &target, config, shutdown)),
            None if shutdown.is_cancelled() => break,
            // Idle, everything loaded and committed: commit past the markers of transactional facts.
            None => commit_idle_positions(&consumer, &mut committed)?,
        }
    }
    tracing::info!("load stopped");
    Ok(())
}

/// A batch in hand: its messages and the rows decoded from them (each with its message's index).
struct Decoded {
    batch: Vec<OwnedMessage>,
    rows: Rows,
    in_hand: Instant,
}

/// A batch's rows per table, each with its message's index in the batch.
#[derive(Default)]
struct Rows {
    facts: Vec<(FactRow, usize)>,
    revenue: Vec<(RevenueRow, usize)>,
    payouts: Vec<(PayoutRow, usize)>,
}

impl Rows {
    fn len(&self) -> usize {
        self.facts.len() + self.revenue.len() + self.payouts.len()
    }
}

/// A row the loader inserts, and the table it goes to.
pub(crate) trait Loadable: clickhouse::RowOwned + clickhouse::RowWrite + Send + Sync + 'static {
    const TABLE: &'static str;
    /// The row's key and version, as an INSERT's deduplication token digests them.
    fn identity(&self) -> String;
}

impl Loadable for FactRow {
    const TABLE: &'static str = "payment_facts";
    fn identity(&self) -> String {
        format!("{}/{}/{}@{}", self.vendor_id, self.order_id, self.vendor_item_id, self.version)
    }
}

impl Loadable for RevenueRow {
    const TABLE: &'static str = "revenue_rows";
    fn identity(&self) -> String {
        let (vendor, order, sale_type) = (&self.vendor_id, self.order_id, &self.sale_type);
        format!("{vendor}/{order}/{sale_type}/{}/{}@{}", self.recognition_date, self.same_day_row, self.version)
    }
}

impl Loadable for PayoutRow {
    const TABLE: &'static str = "settlements";
    fn identity(&self) -> String {
        let (vendor, kind) = (&self.vendor_id, &self.settlement_type);
        format!("{vendor}/{kind}/{}/{}@{}", self.recognition_date_from, self.recognition_date_to, self.version)
    }
}

/// A batch's INSERT, retried until acknowledged, on a task of its own (aborted if dropped unfinished:
/// its batch is then not committed and is loaded again, which versions make harmless).
struct InsertTask(AbortOnDrop<(Decoded, Option<Rejected>)>);

/// A row ClickHouse refused: its message's index in the batch, its table and its place among that
/// table's rows in the batch, and the reason.
#[derive(Debug)]
struct RejectedRow {
    message: usize,
    table: &'static str,
    row: usize,
    reason: String,
}

/// The rows ClickHouse refused.
type Rejected = Vec<RejectedRow>;

impl InsertTask {
    fn start(decoded: Decoded, target: &Target, config: &LoadConfig, shutdown: &Shutdown) -> InsertTask {
        let (target, config, shutdown) = (target.clone(), config.clone(), shutdown.clone());
        InsertTask(AbortOnDrop(tokio::spawn(async move {
            let rejected = insert_all(&target, &decoded, &config, &shutdown).await;
            (decoded, rejected)
        })))
    }

    /// The batch and, once acknowledged, the rows ClickHouse rejected (`None`: shut down mid-retry).
    async fn finish(mut self) -> Result<(Decoded, Option<Rejected>), LoadError> {
        (&mut self.0 .0).await.map_err(LoadError::InsertTask)
    }
}

const STAGE: &str = "load";

/// Inserts each table's rows of the batch in turn; the rows rejected, or `None` on shutdown.
async fn insert_all(target: &Target, decoded: &Decoded, config: &LoadConfig, shutdown: &Shutdown) -> Option<Rejected> {
    let (rows, batch) = (&decoded.rows, &decoded.batch);
    let mut rejected = insert_until_acknowledged(target, &rows.facts, batch, config, shutdown).await?;
    rejected.extend(insert_until_acknowledged(target, &rows.revenue, batch, config, shutdown).await?);
    rejected.extend(insert_until_acknowledged(target, &rows.payouts, batch, config, shutdown).await?);
    Some(rejected)
}

/// The rejected rows' reasons per message, joined, in message order: a message whose facts hold
/// several rejected rows goes to the dead-letter topic once.
fn reasons_by_message(rejected: &Rejected) -> BTreeMap<usize, String> {
    let mut reasons: BTreeMap<usize, String> = BTreeMap::new();
    for rejected in rejected {
        let joined = reasons.entry(rejected.message).or_default();
        if !joined.is_empty() {
            joined.push_str("; ");
        }
        joined.push_str(&rejected.reason);
    }
    reasons
}

/// Metrics of a committed batch: facts taken in and rows loaded per account, and how fresh they are.
/// A rejected row is not loaded; the other rows of its message are (the message also goes to the
/// dead-letter topic, whole: loading them again changes nothing).
fn record_loaded(rows: &[(FactRow, usize)], rejected: &Rejected, batch_len: usize, in_hand: Instant) {
    metrics().batch(STAGE, batch_len, in_hand);
    let now = chrono::Utc::now().timestamp();
    let (mut taken, mut loaded) = (PerAccount::default(), PerAccount::default());
    let mut newest: BTreeMap<&str, u32> = BTreeMap::new();
    for (position, (row, _)) in rows.iter().enumerate() {
        taken.add(&row.account_alias, 1);
        if rejected.iter().any(|r| r.table == FactRow::TABLE && r.row == position) {
            continue;
        }
        loaded.add(&row.account_alias, 1);
        metrics().freshness_seconds.observe((now - i64::from(row.event_time)).max(0) as f64);
        let slot = newest.entry(row.account_alias.as_str()).or_insert(0);
        *slot = (*slot).max(row.event_time);
    }
    taken.record_in(STAGE);
    loaded.record_out(STAGE);
    for (account, event_time) in newest {
        let gauge = metrics().newest_change_loaded.get_or_create(&AccountLabel { account: account.to_string() });
        gauge.set(gauge.get().max(i64::from(event_time)));
    }
}

/// Decodes a batch into rows by topic, each with its message's index. Records that do not decode, or do
/// not fit their table, go to the dead-letter topic with the reason, once: a revenue record that does
/// not decode is the transform's to dead-letter (it reads that topic too), so it is only skipped here.
async fn rows_of(batch: &[OwnedMessage], topics: &Topics, dead_letter: &DeadLetter) -> Result<Rows, KafkaError> {
    let mut rows = Rows::default();
    for (index, message) in batch.iter().enumerate() {
        let payload = message.payload().unwrap_or_default();
        let topic = message.topic();
        let outcome = if topic == topics.raw_revenue {
            match row_of::<RevenueEvent, RevenueRow>(payload) {
                Err(Unfit::Undecodable(reason)) => {
                    tracing::debug!(
                        topic,
                        offset = message.offset(),
                        "skipped (the transform dead-letters it): {reason}"
                    );
                    Ok(())
                }
                other => other.map(|row| rows.revenue.push((row, index))),
            }
        } else if topic == topics.raw_settlements {
            row_of::<SettlementEvent, PayoutRow>(payload).map(|row| rows.payouts.push((row, index)))
        } else {
            fact_rows(payload).map(|facts| rows.facts.extend(facts.into_iter().map(|row| (row, index))))
        };
        if let Err(unfit) = outcome {
            dead_letter.send(message, &unfit.to_string()).await?;
        }
    }
    Ok(rows)
}

/// Why a record gives no row.
#[derive(Debug, thiserror::Error)]
enum Unfit {
    #[error("{0}")]
    Undecodable(String),
    #[error(transparent)]
    OutOfRange(#[from] RowError),
}

/// The rows of a facts-topic message: an order's facts, or one fact (see [`decode_facts`]). A fact that
/// does not fit its row makes the whole message unfit, so none of its rows is loaded.
fn fact_rows(payload: &[u8]) -> Result<Vec<FactRow>, Unfit> {
    let facts = decode_facts(payload).map_err(|e| Unfit::Undecodable(e.to_string()))?;
    Ok(facts.iter().map(FactRow::try_from).collect::<Result<_, _>>()?)
}

fn row_of<E: EventType, R: for<'a> TryFrom<&'a E, Error = RowError>>(payload: &[u8]) -> Result<R, Unfit> {
    let event = decode::<E>(payload).map_err(|e| Unfit::Undecodable(e.to_string()))?;
    Ok(R::try_from(&event)?)
}

/// How an INSERT failed: the data (retrying the same rows cannot help), or anything else (ClickHouse
/// down, slow, overloaded: retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertFailure {
    Rejected(String),
    Transient(String),
}

/// ClickHouse exception codes that blame the rows themselves.
const DATA_ERROR_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    33,  // CANNOT_READ_ALL_DATA
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    395, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO (the table's row_check)
    469, // VIOLATED_CONSTRAINT
];

pub fn classify(error: &clickhouse::error::Error) -> InsertFailure {
    let text = error.to_string();
    let code = text
        .split("Code: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse::<u32>().ok());
    match (error, code) {
        (clickhouse::error::Error::BadResponse(_), Some(395)) => InsertFailure::Rejected(format!(
            "{text} (the table's row_check: a negative amount or quantity, more units undone than ordered, or \
             payment_amount ≠ order_price + shipping_fee − coupons)"
        )),
        (clickhouse::error::Error::BadResponse(_), Some(code)) if DATA_ERROR_CODES.contains(&code) => {
            InsertFailure::Rejected(text)
        }
        _ => InsertFailure::Transient(text),
    }
}

/// Inserts the rows until ClickHouse has acknowledged every one it accepts. Transient failures are
/// retried with growing pauses (reading nothing new meanwhile, so memory stays bounded); when
/// ClickHouse rejects the data, the batch is halved until the offending rows are alone, and those are
/// returned (row index, ClickHouse's message) for the dead-letter topic. `None` on shutdown.
async fn insert_until_acknowledged<R: Loadable>(
    target: &Target,
    rows: &[(R, usize)],
    batch: &[OwnedMessage],
    config: &LoadConfig,
    shutdown: &Shutdown,
) -> Option<Rejected> {
    let mut rejected = Vec::new();
    let mut pending = vec![(0, rows.len())];
    while let Some((start, end)) = pending.pop() {
        if start >= end {
            continue;
        }
        let mut pause = Duration::from_millis(500);
        loop {
            let started = Instant::now();
            let failure = match insert(target, &rows[start..end], batch).await {
                Ok(()) => {
                    metrics().insert_seconds.observe(started.elapsed().as_secs_f64());
                    break;
                }
                Err(error) => classify(&error),
            };
            match failure {
                InsertFailure::Rejected(message) if end - start == 1 => {
                    let reason = format!("ClickHouse rejected the row {}: {message}", rows[start].0.identity());
                    rejected.push(RejectedRow { message: rows[start].1, table: R::TABLE, row: start, reason });
                    break;
                }
                InsertFailure::Rejected(_) => {
                    // Re-inserting rows of the accepted half later is harmless: same versions.
                    let middle = start + (end - start) / 2;
                    pending.push((middle, end));
                    pending.push((start, middle));
                    break;
                }
                InsertFailure::Transient(message) => {
                    let table = R::TABLE;
                    tracing::warn!(rows = end - start, table, retry_in = ?pause, "ClickHouse insert failed: {message}");
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(config.max_backoff_secs.max(1)));
                }
            }
        }
    }
    Some(rejected)
}

/// Where rows go, and what the server can do.
#[derive(Clone)]
struct Target {
    client: clickhouse::Client,
    /// ≥ 22.8: the INSERT carries an `insert_deduplication_token` naming exactly the rows it holds, so
    /// a retried INSERT that already landed is dropped by the server (replicated tables by default,
    /// single-node ones through migration 5's `non_replicated_deduplication_window`; proven on 26.9 by
    /// tests/clickhouse_current.rs). 18.16 does not know the setting; there, and anyway, a repeat is
    /// harmless to the views because versions decide.
    deduplication_token: bool,
}

async fn insert<R: Loadable>(
    target: &Target,
    rows: &[(R, usize)],
    batch: &[OwnedMessage],
) -> Result<(), clickhouse::error::Error> {
    let client = if target.deduplication_token {
        target.client.clone().with_setting("insert_deduplication_token", deduplication_token(rows, batch))
    } else {
        target.client.clone()
    };
    let mut insert = client.insert::<R>(R::TABLE).await?;
    for (row, _) in rows {
        insert.write(row).await?;
    }
    insert.end().await
}

/// Names the Kafka records behind `rows`, compactly and the same way in every process: per partition,
/// the first and last offset and how many rows (a facts message holds several), then a digest of the
/// rows' keys and versions (`topic;p:first-last#n;…;rows:<16 hex>`). The digest keeps a topic deleted
/// and recreated under the same name (offsets from 0 again) from matching an earlier INSERT's token:
/// the server would drop new rows as a repeat. Equal tokens thus mean equal rows, which are safe to
/// drop.
fn deduplication_token<R: Loadable>(rows: &[(R, usize)], batch: &[OwnedMessage]) -> String {
    use sha2::Digest;
    let mut ranges: std::collections::BTreeMap<i32, (i64, i64, usize)> = std::collections::BTreeMap::new();
    let mut digest = sha2::Sha256::new();
    for (row, index) in rows {
        digest.update(format!("{};", row.identity()));
        let Some(message) = batch.get(*index) else { continue };
        let range = ranges.entry(message.partition()).or_insert((message.offset(), message.offset(), 0));
        range.0 = range.0.min(message.offset());
        range.1 = range.1.max(message.offset());
        range.2 += 1;
    }
    let first = rows.first().and_then(|(_, index)| batch.get(*index));
    let mut token = first.map(|m| m.topic().to_string()).unwrap_or_default();
    for (partition, (first, last, count)) in ranges {
        token.push_str(&format!(";{partition}:{first}-{last}#{count}"));
    }
    token.push_str(";rows:");
    token.push_str(&hex::encode(&digest.finalize()[..8]));
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Timestamp;

    #[test]
    fn a_message_with_several_rejected_rows_is_dead_lettered_once_with_every_reason() {
        let rejected: Rejected = [(4, "row a"), (1, "row b"), (4, "row c")]
            .into_iter()
            .enumerate()
            .map(|(row, (message, reason))| RejectedRow { message, table: "t", row, reason: reason.into() })
            .collect();
        let reasons: Vec<(usize, String)> = reasons_by_message(&rejected).into_iter().collect();
        assert_eq!(reasons, vec![(1, "row b".into()), (4, "row a; row c".into())]);
    }

    #[test]
    fn a_restart_that_finds_clickhouse_or_kafka_still_away_is_tried_again_and_a_first_start_reports_it() {
        let url = || "http://127.0.0.1:8123".to_string();
        let refused = || clickhouse::error::Error::Network(Box::new(std::io::Error::other("connection refused")));
        let down = || LoadError::Schema(SchemaError::ClickHouse { url: url(), source: refused() });
        let failed =
            || LoadError::Schema(SchemaError::Migration { url: url(), version: 3, name: "x", source: refused() });
        let away = || LoadError::Setup(KafkaSetupError::Unreachable { brokers: "127.0.0.1:9092".into() });
        let no_leader = || LoadError::Setup(KafkaSetupError::NoLeader { topic: "facts".into() });
        let slow =
            || LoadError::Schema(SchemaError::ClickHouse { url: url(), source: clickhouse::error::Error::TimedOut });
        for error in [down(), failed(), away(), no_leader(), slow()] {
            assert!(worth_restarting(&error, true), "{error}");
            assert!(!worth_restarting(&error, false), "{error}");
        }
        // ClickHouse answering with an error, or a wrong config, ends the stage either way.
        let refused_sql = clickhouse::error::Error::BadResponse("Code: 497. Not enough privileges".into());
        let answered = LoadError::Schema(SchemaError::ClickHouse { url: url(), source: refused_sql });
        let client = LoadError::Kafka(KafkaError::ClientCreation("bad config".into()));
        let misshapen = LoadError::Setup(KafkaSetupError::TopicWithoutPartitions { topic: "facts".into() });
        for restarted in [false, true] {
            assert!(!worth_restarting(&answered, restarted));
            assert!(!worth_restarting(&client, restarted));
            assert!(!worth_restarting(&misshapen, restarted));
            let broker_gone = LoadError::Kafka(KafkaError::Global(rdkafka::types::RDKafkaErrorCode::AllBrokersDown));
            assert!(worth_restarting(&broker_gone, restarted));
        }
    }

    fn message(partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(None, None, "facts".into(), Timestamp::NotAvailable, partition, offset, None)
    }

    fn row(order_id: i64, version: u64) -> FactRow {
        FactRow {
            vendor_id: "A00012345".into(),
            account_alias: "a".into(),
            order_id,
            vendor_item_id: 7,
            shipment_box_id: 1,
            vendor_item_name: "x".into(),
            payment_date: 20_000,
            paid_at: 0,
            status: "ACCEPT".into(),
            quantity: 1,
            cancelled_quantity: 0,
            order_price: 0,
            shipping_fee: 0,
            seller_coupon_discount: 0,
            coupang_coupon_discount: 0,
            payment_amount: 0,
            provisional: 1,
            cancelled: 0,
            event_time: 0,
            version,
            change_cause: coupang_schemas::ChangeCause::NewOrder,
            previous_payment_amount: None,
        }
    }

    #[test]
    fn a_token_names_the_records_and_tells_other_rows_at_the_same_offsets_apart() {
        let batch = vec![message(0, 10), message(0, 11), message(2, 5)];
        let rows = vec![(row(1, 1), 0), (row(1, 2), 1), (row(2, 1), 2)];
        let token = deduplication_token(&rows, &batch);
        assert!(token.starts_with("facts;0:10-11#2;2:5-5#1;rows:"), "{token}");
        assert_eq!(token, deduplication_token(&rows, &batch), "a retry sends the same token");
        // A recreated topic: the same offsets, other rows.
        let other = vec![(row(1, 1), 0), (row(1, 3), 1), (row(2, 1), 2)];
        assert_ne!(token, deduplication_token(&other, &batch));
        // Half of the batch (bisecting a rejected INSERT) is another INSERT.
        assert_ne!(token, deduplication_token(&rows[..2], &batch));
    }

    #[test]
    fn data_errors_are_rejections_and_the_rest_is_retried() {
        let bad = clickhouse::error::Error::BadResponse(
            "Code: 395, e.displayText() = DB::Exception: Value passed to 'throwIf' function is non zero".into(),
        );
        assert!(matches!(classify(&bad), InsertFailure::Rejected(m) if m.contains("throwIf")));
        let busy = clickhouse::error::Error::BadResponse("Code: 252, e.displayText() = Too many parts".into());
        assert!(matches!(classify(&busy), InsertFailure::Transient(_)));
        let down = clickhouse::error::Error::Custom("connection refused".into());
        assert!(matches!(classify(&down), InsertFailure::Transient(_)));
    }
}
