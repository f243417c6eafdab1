//! The transform stage's Kafka edge: raw events in (three co-partitioned topics), facts and state out.
//!
//! Per batch: decode and validate each event (poison → dead-letter topic), fold it into its order's
//! state, and when the order's facts change, emit them all with the order's new version. Then, by
//! default, in this order, wait for the broker to acknowledge (1) the facts, (2) the changed states in
//! the changelog, and only then (3) commit the input offsets. A crash anywhere replays the batch against
//! the last durable state; folding is idempotent and versions come from the events, so the replay ends
//! at the same states, and its facts (perhaps folded in another order) reach versions at least those
//! sent before the crash, which they supersede: the loader's ReplacingMergeTree keeps one row per key.
//! A batch ends at `batch_size` messages, or earlier once the stored states it read reach
//! `batch_state_kib` (so that its memory does not follow the stream's mix); the messages it leaves
//! start the next batch, and their offsets are committed only with it.
//!
//! With `transactions = true` the same three writes go into one Kafka transaction per batch (facts and
//! states sent together, the offsets through `send_offsets_to_transaction`, fenced by the group's
//! generation): a crashed batch leaves nothing that `read_committed` readers (the loader, a restore)
//! see. Both modes are exact; BENCHMARKS.md compares them. A process stalled past the group's session
//! between sending its offsets and committing may still commit after its partitions moved (the fencing
//! checks the generation when the offsets are sent): so a rebalance waits for the transactions left
//! open on the changelog partitions it assigns to end before restoring them, and reads what such a
//! commit brings. Without transactions nothing fences such a process: thawed, it sends the rest of its
//! batch, facts (superseded by its successor's, whose versions are at least as high once it has
//! folded the same events; equal where a snapshot changed only in content, and then the loader keeps
//! the last inserted) and states, perhaps older than its successor's. So a restore keeps each order's
//! state that knows most (or the join of two that each know something the other does not) and sends
//! it to the changelog again after its facts ([`PartitionState::resend`],
//! [`crate::rules::facts_sent_again`]), and a batch whose states land
//! past another process's writes restores that partition before the next batch
//! ([`PartitionState::foreign_writes`]).
//! Transactions allow one saving, which then relies on them and on `read_committed` readers: an event
//! that changes nothing an order's facts say (only their version) emits nothing
//! ([`Emission::OnContentChange`]). By default every item goes out again, since a replay may fold a
//! crashed batch's events in another order and must supersede whatever that batch sent.
//!
//! Partitions are assigned with the eager `range` strategy, which gives one process the same partition
//! number of all three input topics (they must have equal partition counts, which is checked). After
//! a rebalance, state is restored from the changelog for partitions this process did not own a moment
//! ago (or whose changelog moved on while another process held them), and messages of partitions that
//! moved away are left to their new owner. Processing happens only between polls, and an eager
//! rebalance completes only when this process polls again, so no partition changes hands mid-batch.

use etl_core::kafka::{
    batch_offsets, blocking, check_co_partitioned, commit_batch, ensure_compacted_topics_with, ensure_topics,
    next_batch, report_lag, restart_on_kafka_failure, worth_a_restart, BlockingDrop, Consumes, DeadLetter, KafkaConfig,
};
use etl_core::metrics::metrics;
use etl_core::Shutdown;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::ClientContext;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::batch::{count_facts_out, facts_to_send_again, follows_on, persist, process, send_again, Outputs, Writes};
use crate::config::TransformConfig;
use crate::error::{TransformError, STAGE};
use crate::output::{DeliveryLedger, OutputProducer};
#[cfg(doc)]
use crate::rules::Emission;
use crate::state_file::StateFile;
use crate::store::{open_state_file, Changelog, PartitionState, StoreError, SMALL_FETCH_QUEUE};

/// The consumer's context: logs each rebalance and raises a flag that the loop takes between batches
/// (to restore the state of newly assigned partitions).
#[derive(Debug, Default)]
struct RebalanceFlag {
    happened: AtomicBool,
}

impl ClientContext for RebalanceFlag {}

impl ConsumerContext for RebalanceFlag {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &rdkafka::TopicPartitionList| {
            let mut numbers: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            numbers.sort_unstable();
            numbers.dedup();
            format!("{} topic partitions (partitions {numbers:?})", list.count())
        };
        let what = match rebalance {
            Rebalance::Assign(list) => format!("assigned {}", partitions(list)),
            Rebalance::Revoke(list) => format!("revoked {}", partitions(list)),
            Rebalance::Error(error) => format!("error {error}"),
        };
        tracing::info!("transform rebalance: {what}");
        self.happened.store(true, Ordering::SeqCst);
    }
}

impl RebalanceFlag {
    fn take(&self) -> bool {
        self.happened.swap(false, Ordering::SeqCst)
    }
}

/// The consumer of the raw topics.
type InputConsumer = StreamConsumer<RebalanceFlag>;

/// The transform's group and inputs: the raw topics.
pub fn consumes(config: &TransformConfig, kafka: &KafkaConfig) -> Consumes {
    Consumes { group_id: config.group_id.clone(), topics: kafka.topics().raw().map(String::from).to_vec() }
}

pub async fn run(config: &TransformConfig, kafka: &KafkaConfig, shutdown: Shutdown) -> Result<(), TransformError> {
    restart_on_kafka_failure(STAGE, &shutdown, kafka_failed, || run_once(config, kafka, &shutdown)).await
}

/// Whether Kafka failed under the stage, in its loop or while restoring the changelog (a broker
/// restarting, a leader moving: a rebalance often comes with them), or was still away when a restart
/// set up again; rather than a wrong config or data.
fn kafka_failed(error: &TransformError, restarted: bool) -> bool {
    match error {
        TransformError::Kafka(error) | TransformError::State(StoreError::Kafka { source: error, .. }) => {
            worth_a_restart(error)
        }
        TransformError::Setup(error) => restarted && error.may_pass(),
        _ => false,
    }
}

async fn run_once(config: &TransformConfig, kafka: &KafkaConfig, shutdown: &Shutdown) -> Result<(), TransformError> {
    let topics = kafka.topics();
    let inputs = topics.raw();
    ensure_topics(kafka, &[&inputs[..], &[&topics.payment_facts, &topics.dead_letter]].concat()).await?;
    // The changelog is partitioned like the inputs (whatever `kafka.partitions` says now).
    let input_partitions = check_co_partitioned(kafka, &inputs).await?;
    ensure_compacted_topics_with(kafka, &[&topics.transform_state], input_partitions).await?;
    check_co_partitioned(kafka, &[&inputs[..], &[&topics.transform_state]].concat()).await?;

    let consumer_config = input_consumer_config(config, kafka);
    let consumer: BlockingDrop<InputConsumer> =
        BlockingDrop::new(consumer_config.create_with_context(RebalanceFlag::default())?);
    consumer.subscribe(&inputs)?;
    let changelog = Changelog::new(kafka, topics.transform_state.clone());
    let state_file =
        open_state_file(&config.state_dir, &changelog.topic, config.state_cache_bytes(), config.state_segment_bytes())?;
    let producer = output_producer(config, kafka, state_file.slot())?;
    // Dead letters are sent at once, outside any transaction, by a producer of their own.
    let dead_letter = DeadLetter::new(kafka.producer_config().create()?, topics.dead_letter.clone(), "transform");
    let wait = Duration::from_millis(config.batch_wait_ms);
    let state_bytes = config.batch_state_bytes();
    let mut owned: BTreeMap<i32, PartitionState> = BTreeMap::new();
    let _lag = report_lag(kafka.clone(), STAGE, consumes(config, kafka), shutdown.clone());
    metrics().set_ready(STAGE, true);
    tracing::info!(group = %config.group_id, "transform started");

    let outputs = Outputs { producer: &producer, dead_letter: &dead_letter, topics: &topics, shutdown };
    // Messages fetched but left by a batch that reached `batch_state_kib`: the next batch's first.
    let mut carried = Vec::new();
    while !shutdown.is_cancelled() {
        let waiting = std::time::Instant::now();
        let mut batch: Vec<_> = std::mem::take(&mut carried);
        batch.extend(next_batch(&consumer, config.batch_size - batch.len(), wait, shutdown).await?);
        metrics().fetch_wait(STAGE, waiting);
        // A rebalance, or another process's writes met by the last batch: restore before going on.
        let rebalanced = consumer.context().take();
        if rebalanced || owned.values().any(|partition| partition.foreign_writes) {
            let file = (&state_file, config.transactions);
            adopt_assignment(&consumer, &changelog, &mut owned, file, &outputs, rebalanced).await?;
            // Messages of partitions that moved away are the new owner's; those of partitions still
            // (or again) ours may come once more from the committed offset, which folding absorbs.
            batch.retain(|m| owned.contains_key(&m.partition()));
        }
        if batch.is_empty() {
            // Caught up: what the last batches wrote becomes durable (one fsync, once).
            state_file.make_durable().map_err(crate::store::StoreError::from)?;
            continue;
        }
        let in_hand = std::time::Instant::now();
        let (report, sent) = if config.transactions {
            blocking(|| producer.begin_transaction())?;
            let processed = process(&batch, state_bytes, &mut owned, &outputs, Writes::Transaction).await?;
            carried = batch.split_off(processed.0.events);
            let offsets = batch_offsets(&batch)?;
            let group = consumer.group_metadata().ok_or(TransformError::NoGroupMetadata)?;
            blocking(|| producer.send_offsets_to_transaction(&offsets, &group, TRANSACTION_CALL_TIMEOUT))?;
            blocking(|| producer.commit_transaction(TRANSACTION_CALL_TIMEOUT))?;
            processed
        } else {
            let processed = process(&batch, state_bytes, &mut owned, &outputs, Writes::InOrder).await?;
            carried = batch.split_off(processed.0.events);
            commit_batch(&consumer, &batch)?;
            processed
        };
        // Only now, with the batch committed, may its states reach the local files (never ahead of
        // the changelog: a state ahead of facts that were aborted or never sent would lose them).
        persist(&state_file, &mut owned, &sent, config.transactions)?;
        metrics().batch(STAGE, batch.len(), in_hand);
        tracing::debug!(?report, "batch committed");
    }
    // Everything written so far made durable, so a restart reads nothing again.
    state_file.write(&[], true).map_err(crate::store::StoreError::from)?;
    tracing::info!("transform stopped");
    Ok(())
}

/// The input consumer's prefetch, unless `kafka.properties` sets it: bounded, so that memory stays flat
/// however large the backlog. librdkafka's defaults (64 MiB of queued payloads, fetch responses of up
/// to 50 MiB and 1 MiB per partition) hold hundreds of thousands of raw events, at about three times
/// their payload in memory (a queued message's bookkeeping is larger than a raw event, and each holds
/// on to its whole fetch response). A limit on the queue alone is not a bound: it only postpones the
/// next fetch, and one response over 36 partitions could bring up to 36 MiB at once. So the responses
/// are bounded too ([`input_fetch_max_bytes`]). 2 MiB is still ~12k raw events, six batches ahead; a full
/// prefetch postpones the next fetch by `fetch.queue.backoff.ms` (1 s by default), which would leave a
/// prefetch this small idle: 20 ms refills it well before the stage has worked through it. Measured
/// (BENCHMARKS.md): peak RSS at 10× in flight 128 → 66 MiB, with no loss of events per CPU-second.
const BOUNDED_PREFETCH: [(&str, &str); 3] =
    [SMALL_FETCH_QUEUE[0], SMALL_FETCH_QUEUE[1], ("max.partition.fetch.bytes", "65536")];

/// A fetch response's largest size for the input consumer: 1 MiB, or the `message.max.bytes` of
/// `kafka.properties` if larger (librdkafka refuses a client whose `fetch.max.bytes` is below it).
fn input_fetch_max_bytes(kafka: &KafkaConfig) -> String {
    const BOUNDED: u64 = 1 << 20;
    let message_max = kafka.properties.get("message.max.bytes").and_then(|v| v.trim().parse::<u64>().ok());
    message_max.map_or(BOUNDED, |m| m.max(BOUNDED)).to_string()
}

/// The input consumer's settings: the common consumer's and a bounded prefetch, which
/// `kafka.properties` may override, and range assignment, which they may not (each process's changelog
/// partitions are its input partitions).
fn input_consumer_config(config: &TransformConfig, kafka: &KafkaConfig) -> rdkafka::ClientConfig {
    let fetch_max_bytes = input_fetch_max_bytes(kafka);
    let defaults = [&BOUNDED_PREFETCH[..], &[("fetch.max.bytes", fetch_max_bytes.as_str())]].concat();
    let mut consumer_config = kafka.consumer_config_with(&config.group_id, &defaults);
    consumer_config.set("partition.assignment.strategy", "range");
    consumer_config
}

/// How long a transaction call (begin excepted) may wait for the broker before the stage restarts.
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the broker keeps a transaction open before aborting it: what a killed process's unfinished
/// batch holds back `read_committed` readers (the loader, a restore) for, at most. Longer than a short
/// broker restart, about the group session (10 s) plus the time to rejoin.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest a rebalance waits for the transactions other processes left open on the changelog
/// partitions it assigns to end (all of them together, see [`Changelog::wait_for_open_transactions`]): a
/// stalled process may still commit its own; a killed one's (of another host: this host's own is aborted
/// when the next process starts, see [`output_producer`]) is aborted by the broker after the transaction
/// timeout, plus the broker's interval between checks for timed-out ones (10 s by default), plus a
/// margin.
const OPEN_TRANSACTION_WAIT: Duration = Duration::from_secs(TRANSACTION_TIMEOUT.as_secs() + 10 + 5);

/// The producer of facts and states: idempotent, and transactional when the config asks for it. The
/// transactional id is the group's, the host's and the state file's slot: the same for a process
/// restarted on this host, whose `init_transactions` then fences its predecessor and aborts the
/// transaction a kill left open at once. One left by a process of another host holds `read_committed`
/// readers back until the broker aborts it, after [`TRANSACTION_TIMEOUT`].
fn output_producer(
    config: &TransformConfig,
    kafka: &KafkaConfig,
    slot: usize,
) -> Result<OutputProducer, TransformError> {
    let mut producer_config = kafka.producer_config();
    if !config.transactions {
        return Ok(producer_config.create_with_context(DeliveryLedger::default())?);
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let id = format!("{}-{}-{slot}", config.group_id, host.trim());
    // A delivery may not outlive its transaction (librdkafka refuses the config otherwise).
    let timeout = TRANSACTION_TIMEOUT.as_millis().to_string();
    producer_config
        .set("transactional.id", &id)
        .set("transaction.timeout.ms", &timeout)
        .set("message.timeout.ms", &timeout);
    let producer: OutputProducer = producer_config.create_with_context(DeliveryLedger::default())?;
    blocking(|| producer.init_transactions(TRANSACTION_CALL_TIMEOUT))?;
    tracing::info!(transactional_id = %id, "transactions on");
    Ok(producer)
}

/// Drops the state of partitions no longer owned and restores those newly owned (or changed meanwhile).
async fn adopt_assignment(
    consumer: &InputConsumer,
    changelog: &Changelog,
    owned: &mut BTreeMap<i32, PartitionState>,
    (state_file, transactions): (&std::sync::Arc<StateFile>, bool),
    outputs: &Outputs<'_>,
    rebalanced: bool,
) -> Result<(), TransformError> {
    let assigned: BTreeSet<i32> = consumer.assignment()?.elements().iter().map(|e| e.partition()).collect();
    // Partitions that moved away close their files, so another process on this host can open them.
    owned.retain(|partition, _| assigned.contains(partition));
    // Only a rebalance hands over partitions whose previous owner may still commit. (A transaction
    // left open past the wait would otherwise make every batch that follows it wait again.)
    if transactions && rebalanced {
        let partitions: Vec<i32> = assigned.iter().copied().collect();
        let open = changelog.wait_for_open_transactions(&partitions, OPEN_TRANSACTION_WAIT).await?;
        if !open.is_empty() {
            // Not expected with the broker's defaults (aborted within 25 s). The restore stops where such
            // a transaction starts (a state file past that point is rebuilt up to it), so what it or
            // later transactions committed is missing from the restored states.
            tracing::error!(topic = %changelog.topic, partitions = ?open, wait = ?OPEN_TRANSACTION_WAIT, "transactions still open on the changelog: restoring up to where they start");
        }
    }
    let markers = i64::from(transactions);
    for &partition in &assigned {
        // Still ours, and nobody wrote since: keep it. With transactions our last commit left one marker
        // after our last record; another owner's writes would add at least a record and a marker. (A
        // partition not held, or whose last batch met another process's writes, goes straight to the
        // restore, which reads the end itself.)
        if let Some(held) = owned.get(&partition).filter(|held| !held.foreign_writes) {
            let end = changelog.end_offset(partition).await?;
            if (held.changelog_end..=held.changelog_end + markers).contains(&end) {
                continue;
            }
        }
        let started = std::time::Instant::now();
        let held = owned.remove(&partition);
        let mut restored = changelog.catch_up(partition, held, state_file).await?;
        // Dead-lettered at every restore that reads it, until compaction removes it behind a later state
        // of its key (the key's state held before it is sent again below, when there is one).
        for bad in std::mem::take(&mut restored.corrupt) {
            let (partition, offset) = (partition.to_string(), bad.offset.to_string());
            let source = [
                ("dlq.source.topic", changelog.topic.as_str()),
                ("dlq.source.partition", &partition),
                ("dlq.source.offset", &offset),
            ];
            tracing::error!(key = %bad.key, "{}", bad.reason);
            outputs.dead_letter.send_record(Some(bad.key.as_bytes()), &bad.payload, &bad.reason, &source).await?;
        }
        if !restored.resend.is_empty() {
            let (orders, first) = (restored.resend.len(), restored.resend[0].key.clone());
            // Worked out before a transaction begins: a failure here leaves none open.
            let facts = facts_to_send_again(partition, &restored.resend)?;
            let offsets = blocking(|| {
                let writes = if transactions { Writes::Transaction } else { Writes::InOrder };
                if transactions {
                    outputs.producer.begin_transaction()?;
                }
                let offsets = send_again(outputs, partition, &facts, &restored.resend, writes)?;
                if transactions {
                    outputs.producer.commit_transaction(TRANSACTION_CALL_TIMEOUT)?;
                }
                Ok::<_, TransformError>(offsets)
            })?;
            count_facts_out(&facts);
            let facts = facts.iter().map(Vec::len).sum::<usize>();
            tracing::warn!(partition, orders, facts, %first, "the changelog's last record of these orders knew less than one before it (sent late by a process frozen past its group session) or did not decode: kept the state that knows more (or their join), and sent it again, with the facts the late ones may hide");
            if follows_on(restored.changelog_end, offsets.iter().copied(), transactions) {
                restored.resent(Some(offsets.iter().max().map_or(restored.changelog_end, |last| last + 1)))?;
            } else {
                // More late records came meanwhile: the file takes the states sent (the batch in hand
                // folds onto them), and its end stays where those records start, to read them again.
                restored.resent(None)?;
                restored.foreign_writes = true;
            }
        }
        tracing::info!(
            partition,
            orders = restored.orders()?,
            records = restored.records_restored,
            changelog_end = restored.changelog_end,
            mode = %restored.restore_mode,
            seconds = started.elapsed().as_secs_f64(),
            "state restored from the changelog"
        );
        owned.insert(partition, restored);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etl_core::kafka::KafkaSetupError;
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::error::KafkaError;

    fn kafka_with(properties: &[(&str, &str)]) -> KafkaConfig {
        KafkaConfig {
            properties: properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..KafkaConfig::default()
        }
    }

    #[test]
    fn kafka_failing_under_the_stage_restarts_it_even_while_restoring_or_setting_up_again() {
        use rdkafka::types::RDKafkaErrorCode::{AllBrokersDown, OperationTimedOut};
        let store = |source| StoreError::Kafka { topic: "changelog".into(), partition: 3, source };
        let restored = TransformError::State(store(KafkaError::MessageConsumption(OperationTimedOut)));
        let client = || KafkaError::ClientCreation("bad config".into());
        let away = || TransformError::Setup(KafkaSetupError::Unreachable { brokers: "127.0.0.1:9092".into() });
        for restarted in [false, true] {
            assert!(kafka_failed(&restored, restarted));
            assert!(kafka_failed(&TransformError::Kafka(KafkaError::Global(AllBrokersDown)), restarted));
            assert!(!kafka_failed(&TransformError::Kafka(client()), restarted));
            assert!(!kafka_failed(&TransformError::State(store(client())), restarted));
            assert!(!kafka_failed(&TransformError::NoGroupMetadata, restarted));
            assert!(!kafka_failed(&TransformError::State(StoreError::Join), restarted));
        }
        // A broker still away when a restart sets up again is waited for; at the first start, reported.
        assert!(kafka_failed(&away(), true));
        assert!(!kafka_failed(&away(), false));
    }

    #[test]
    fn the_input_consumer_bounds_its_fetches_and_accepts_larger_messages() {
        let config = TransformConfig::default();
        let bounded = input_consumer_config(&config, &kafka_with(&[]));
        assert_eq!(bounded.get("fetch.max.bytes"), Some("1048576"));
        assert_eq!(bounded.get("queued.max.messages.kbytes"), Some("2048"));
        // librdkafka refuses fetch.max.bytes below message.max.bytes: a deployment allowing 4 MB
        // messages still gets a consumer, whose responses can hold one.
        let large = input_consumer_config(&config, &kafka_with(&[("message.max.bytes", "4000000")]));
        assert_eq!(large.get("fetch.max.bytes"), Some("4000000"));
        assert!(large.create::<BaseConsumer>().is_ok());
        // The user's own setting wins.
        let own = input_consumer_config(&config, &kafka_with(&[("fetch.max.bytes", "8388608")]));
        assert_eq!(own.get("fetch.max.bytes"), Some("8388608"));
        assert!(bounded.create::<BaseConsumer>().is_ok());
    }
}
