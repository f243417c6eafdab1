//! Kafka plumbing shared by the stages: client settings, topic creation, batches, offset commits,
//! consumer lag, and the dead-letter topic.
//!
//! Only plain Kafka protocol is used (no broker-specific APIs), so the same code runs against Apache
//! Kafka, Redpanda, MSK and rdkafka's in-process MockCluster. Transactions are optional (the transform's
//! `transactions` setting): every stage is exact without them.

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use crate::metrics::{metrics, StageLabel};
use crate::Shutdown;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`. Empty means "embedded": the CLI starts rdkafka's in-process mock broker.
    #[serde(default)]
    pub brokers: String,
    /// Prefix of every topic name, so several pipelines (or tests) can share one cluster.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Partitions of topics this project creates. Events are keyed by vendor + order, so any count works.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// Extra librdkafka properties (e.g. `security.protocol`), applied to every client.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Topic settings of the compacted topics this project creates (the transform's changelog, the
    /// checkpoints, the account status), beside `cleanup.policy=compact`. The defaults roll a segment
    /// at least hourly, so the cleaner can reach all but the newest hour and a restore reads little
    /// more than the live keys; broker defaults (1 GiB or 7-day segments) would leave a changelog
    /// uncompacted for days.
    #[serde(default = "default_compacted_topic_config")]
    pub compacted_topic_config: BTreeMap<String, String>,
}

fn default_topic_prefix() -> String {
    "coupang.".into()
}
fn default_partitions() -> i32 {
    6
}
fn default_replication_factor() -> i32 {
    1
}
fn default_compacted_topic_config() -> BTreeMap<String, String> {
    [("segment.ms", "3600000"), ("segment.bytes", "104857600")]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            topic_prefix: default_topic_prefix(),
            partitions: default_partitions(),
            replication_factor: default_replication_factor(),
            properties: BTreeMap::new(),
            compacted_topic_config: default_compacted_topic_config(),
        }
    }
}

/// Property values may hold SASL passwords, so `Debug` lists their names only.
impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .field("compacted_topic_config", &self.compacted_topic_config)
            .finish()
    }
}

/// The topics of one pipeline.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Raw order-sheet events from ingest, keyed `vendorId:orderId`.
    pub raw_order_sheets: String,
    /// Raw cancel/return receipts from ingest, keyed `vendorId:orderId`.
    pub raw_return_requests: String,
    /// Raw revenue-history rows from ingest, keyed `vendorId:orderId`.
    pub raw_revenue: String,
    /// Payment facts from transform, keyed `vendorId:orderId:vendorItemId`.
    pub payment_facts: String,
    /// Records a stage could not process, with the reason in headers.
    pub dead_letter: String,
    /// Compacted: the latest status of each linked account (last successful call, last error), JSON.
    pub account_status: String,
    /// Compacted: how far each account's streams are collected without a gap, JSON.
    pub checkpoints: String,
    /// Compacted: the transform stage's state of each order (its changelog), keyed `vendorId:orderId`,
    /// partitioned like the raw topics.
    pub transform_state: String,
}

impl Topics {
    /// Every topic of the pipeline.
    pub fn all(&self) -> [&str; 8] {
        [
            &self.raw_order_sheets,
            &self.raw_return_requests,
            &self.raw_revenue,
            &self.payment_facts,
            &self.dead_letter,
            &self.account_status,
            &self.checkpoints,
            &self.transform_state,
        ]
    }
}

impl KafkaConfig {
    pub fn topics(&self) -> Topics {
        let p = &self.topic_prefix;
        Topics {
            raw_order_sheets: format!("{p}raw.ordersheets"),
            raw_return_requests: format!("{p}raw.returnrequests"),
            raw_revenue: format!("{p}raw.revenue"),
            payment_facts: format!("{p}facts.payments"),
            dead_letter: format!("{p}deadletter"),
            account_status: format!("{p}ingest.accounts"),
            checkpoints: format!("{p}ingest.checkpoints"),
            transform_state: format!("{p}transform.state"),
        }
    }

    /// Settings for any client; user `properties` are applied last so they can override every default.
    pub fn client_config(&self) -> ClientConfig {
        self.with_defaults(&[])
    }

    /// At-least-once consumer: offsets are committed explicitly, only after the batch's effect is durable.
    /// It sees only committed records of transactional producers (librdkafka's default, stated here
    /// because the transform's transactions rely on it).
    pub fn consumer_config(&self, group_id: &str) -> ClientConfig {
        self.with_defaults(&[
            ("group.id", group_id),
            ("isolation.level", "read_committed"),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
        ])
    }

    /// Idempotent producer, acknowledged by all in-sync replicas.
    pub fn producer_config(&self) -> ClientConfig {
        self.with_defaults(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("message.timeout.ms", "120000"),
        ])
    }

    fn with_defaults(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("Kafka client could not be created: {0}")]
    Client(#[source] KafkaError),
    #[error("cannot create topic {topic}: {source}")]
    CreateTopic {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("cannot create topic {topic}: {code}")]
    CreateTopicRefused { topic: String, code: RDKafkaErrorCode },
    #[error("cannot read metadata or offsets of topic {topic}: {source}")]
    Offsets {
        topic: String,
        #[source]
        source: KafkaError,
    },
    /// Seen with a lightweight Kafka-protocol broker when a process was killed while creating a topic: the
    /// topic exists, unusable.
    #[error("topic {topic} exists but has no partitions (a creation was interrupted?): delete and recreate it")]
    TopicWithoutPartitions { topic: String },
    #[error("topic {topic} was created but its partitions have no leader after 30 s")]
    NoLeader { topic: String },
    #[error("blocking Kafka call panicked or was cancelled")]
    Join,
}

/// Creates the topics that do not exist yet (brokers may have auto-creation off, and an auto-created topic
/// would get the broker's partitions and cleanup policy). Existing topics are
/// found through metadata first, so brokers without the CreateTopics API (rdkafka's MockCluster) work
/// when their topics were made another way.
pub async fn ensure_topics(config: &KafkaConfig, names: &[&str]) -> Result<(), KafkaSetupError> {
    create_missing_topics(config, names, false).await
}

/// Like [`ensure_topics`], for topics that keep only the latest record per key (`cleanup.policy=compact`).
pub async fn ensure_compacted_topics(config: &KafkaConfig, names: &[&str]) -> Result<(), KafkaSetupError> {
    create_missing_topics(config, names, true).await
}

/// Like [`ensure_compacted_topics`], with a given partition count (a changelog must match its inputs).
pub async fn ensure_compacted_topics_with(
    config: &KafkaConfig,
    names: &[&str],
    partitions: i32,
) -> Result<(), KafkaSetupError> {
    let config = KafkaConfig { partitions, ..config.clone() };
    create_missing_topics(&config, names, true).await
}

async fn create_missing_topics(config: &KafkaConfig, names: &[&str], compacted: bool) -> Result<(), KafkaSetupError> {
    let existing = existing_topics(config).await?;
    let missing: Vec<&str> = names.iter().copied().filter(|n| !existing.contains(*n)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = config.client_config().create().map_err(KafkaSetupError::Client)?;
    let new_topics: Vec<NewTopic> = missing
        .iter()
        .map(|name| {
            let topic = NewTopic::new(name, config.partitions, TopicReplication::Fixed(config.replication_factor));
            if compacted {
                config
                    .compacted_topic_config
                    .iter()
                    .fold(topic.set("cleanup.policy", "compact"), |topic, (key, value)| topic.set(key, value))
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|source| KafkaSetupError::CreateTopic { topic: missing.join(","), source })?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(%topic, partitions = config.partitions, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaSetupError::CreateTopicRefused { topic, code }),
        }
    }
    wait_for_leaders(config, &missing).await
}

/// Waits until every partition of `names` has a leader. A broker acknowledges CreateTopics before
/// the new partitions' leaders are known everywhere (Apache Kafka answers `NotLeaderForPartition`
/// for a moment), and a stage must not fail on its first read of a topic it just made.
async fn wait_for_leaders(config: &KafkaConfig, names: &[&str]) -> Result<(), KafkaSetupError> {
    let client_config = config.client_config();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config.create().map_err(KafkaSetupError::Client)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        for name in &names {
            loop {
                let metadata = consumer
                    .fetch_metadata(Some(name), Duration::from_secs(10))
                    .map_err(|source| KafkaSetupError::Offsets { topic: name.clone(), source })?;
                let led = metadata.topics().iter().all(|t| {
                    t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions().iter().all(|p| p.leader() >= 0 && p.error().is_none())
                });
                if led {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(KafkaSetupError::NoLeader { topic: name.clone() });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| KafkaSetupError::Join)?
}

/// Replaces the settings of `topic` with `settings` (AlterConfigs: settings not named return to the
/// broker's defaults).
pub async fn set_topic_config(
    config: &KafkaConfig,
    topic: &str,
    settings: &[(&str, &str)],
) -> Result<(), KafkaSetupError> {
    let error = |source| KafkaSetupError::CreateTopic { topic: topic.to_string(), source };
    let admin: AdminClient<DefaultClientContext> = config.client_config().create().map_err(KafkaSetupError::Client)?;
    let alter = settings
        .iter()
        .fold(AlterConfig::new(ResourceSpecifier::Topic(topic)), |alter, (key, value)| alter.set(key, value));
    for result in admin.alter_configs(&[alter], &AdminOptions::new()).await.map_err(error)? {
        result.map_err(|(_, code)| KafkaSetupError::CreateTopicRefused { topic: topic.to_string(), code })?;
    }
    Ok(())
}

/// Names of all topics in the cluster. Asks for all of them, not for particular ones, so that a broker
/// with auto-creation on does not create a topic just because we looked.
async fn existing_topics(config: &KafkaConfig) -> Result<std::collections::HashSet<String>, KafkaSetupError> {
    let client_config = config.client_config();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config.create().map_err(KafkaSetupError::Client)?;
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(30))
            .map_err(|source| KafkaSetupError::Offsets { topic: "(all)".into(), source })?;
        if let Some(broken) = metadata.topics().iter().find(|t| t.partitions().is_empty() && t.error().is_none()) {
            return Err(KafkaSetupError::TopicWithoutPartitions { topic: broken.name().to_string() });
        }
        Ok(metadata.topics().iter().map(|t| t.name().to_string()).collect())
    })
    .await
    .map_err(|_| KafkaSetupError::Join)?
}

/// Messages not yet committed by `group_id` on `topic`: high watermark − committed offset, summed over
/// partitions. Zero means the group has durably processed everything written so far.
pub async fn group_lag(config: &KafkaConfig, group_id: &str, topic: &str) -> Result<i64, KafkaSetupError> {
    let client_config = config.consumer_config(group_id);
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let offsets_error = |source| KafkaSetupError::Offsets { topic: topic.clone(), source };
        let consumer: BaseConsumer = client_config.create().map_err(KafkaSetupError::Client)?;
        let timeout = Duration::from_secs(10);
        let metadata = consumer.fetch_metadata(Some(&topic), timeout).map_err(offsets_error)?;
        let partitions: Vec<i32> =
            metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        let mut wanted = TopicPartitionList::new();
        for &partition in &partitions {
            wanted.add_partition(&topic, partition);
        }
        let committed = consumer.committed_offsets(wanted, timeout).map_err(offsets_error)?;
        let mut lag = 0;
        for &partition in &partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, partition, timeout).map_err(offsets_error)?;
            let done = match committed.find_partition(&topic, partition).map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset,
                _ => low,
            };
            lag += (high - done).max(0);
        }
        Ok(lag)
    })
    .await
    .map_err(|_| KafkaSetupError::Join)?
}

/// The latest payload of every key in `topic` (a compacted topic read as a table), read from the
/// beginning without a consumer group. Returns what it has read when `timeout` runs out.
pub async fn latest_by_key(
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<HashMap<String, Vec<u8>>, KafkaSetupError> {
    read_topic(config, topic, timeout, HashMap::new(), |latest, message| {
        if let Some(key) = message.key() {
            latest.insert(String::from_utf8_lossy(key).into_owned(), message.payload().unwrap_or_default().to_vec());
        }
    })
    .await
}

/// Records in the dead-letter topic per stage that sent them (its `dlq.stage` header).
pub async fn dead_letters_by_stage(
    config: &KafkaConfig,
    timeout: Duration,
) -> Result<BTreeMap<String, u64>, KafkaSetupError> {
    read_topic(config, &config.topics().dead_letter, timeout, BTreeMap::new(), |counts, message| {
        let stage = message
            .headers()
            .and_then(|headers| headers.iter().find(|h| h.key == "dlq.stage").and_then(|h| h.value))
            .map_or_else(|| "unknown".to_string(), |v| String::from_utf8_lossy(v).into_owned());
        *counts.entry(stage).or_insert(0) += 1;
    })
    .await
}

/// Folds every record of `topic` present now, from the beginning, without a consumer group. Returns
/// what it has folded when `timeout` runs out.
async fn read_topic<T: Send + 'static>(
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
    mut folded: T,
    fold: impl Fn(&mut T, &rdkafka::message::BorrowedMessage<'_>) + Send + 'static,
) -> Result<T, KafkaSetupError> {
    // librdkafka wants a group id even for assigned partitions; this reader never commits to it.
    let mut client_config = config.client_config();
    client_config.set("group.id", "coupang-etl-reader").set("enable.auto.commit", "false");
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let offsets_error = |source| KafkaSetupError::Offsets { topic: topic.clone(), source };
        let consumer: BaseConsumer = client_config.create().map_err(KafkaSetupError::Client)?;
        let deadline = std::time::Instant::now() + timeout;
        let metadata = consumer.fetch_metadata(Some(&topic), timeout).map_err(offsets_error)?;
        let mut assignment = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = consumer.fetch_watermarks(&topic, partition.id(), timeout).map_err(offsets_error)?;
            if high > low {
                ends.insert(partition.id(), high);
                assignment.add_partition_offset(&topic, partition.id(), Offset::Offset(low)).map_err(offsets_error)?;
            }
        }
        if ends.is_empty() {
            return Ok(folded);
        }
        consumer.assign(&assignment).map_err(offsets_error)?;
        while !ends.is_empty() && std::time::Instant::now() < deadline {
            let Some(received) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = received.map_err(offsets_error)?;
            fold(&mut folded, &message);
            if ends.get(&message.partition()).is_some_and(|&end| message.offset() + 1 >= end) {
                ends.remove(&message.partition());
            }
        }
        Ok(folded)
    })
    .await
    .map_err(|_| KafkaSetupError::Join)?
}

/// Waits up to `max_wait` for up to `max_messages`, returning early on shutdown. An empty batch
/// means nothing arrived in time (or shutdown was requested).
pub async fn next_batch<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    max_messages: usize,
    max_wait: Duration,
    shutdown: &Shutdown,
) -> Result<Vec<OwnedMessage>, KafkaError> {
    next_batch_within(consumer, (max_messages, usize::MAX, max_wait), shutdown).await
}

/// Like [`next_batch`], also ending the batch once its payloads reach `max_bytes` (the message that
/// crosses the limit is kept, so a single large message still makes progress).
pub async fn next_batch_within<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    (max_messages, max_bytes, max_wait): (usize, usize, Duration),
    shutdown: &Shutdown,
) -> Result<Vec<OwnedMessage>, KafkaError> {
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    let deadline = tokio::time::Instant::now() + max_wait;
    while batch.len() < max_messages && bytes < max_bytes {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => break,
            received = consumer.recv() => match received {
                Ok(message) => {
                    let message = message.detach();
                    bytes += message.payload().map_or(0, <[u8]>::len);
                    batch.push(message);
                }
                // A broker restart or a lost connection: librdkafka reconnects (and rejoins the
                // group) by itself, so the batch just waits for it.
                Err(KafkaError::MessageConsumption(code)) => {
                    tracing::warn!(error = %code, "Kafka consumer: transient error, librdkafka retries");
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok(batch)
}

/// Whether a Kafka error may pass when the stage starts again with new clients (a broker away, a
/// producer fenced or failed for good). A client the config cannot make will not get better.
pub fn worth_a_restart(error: &KafkaError) -> bool {
    !matches!(error, KafkaError::ClientCreation(_) | KafkaError::ClientConfig(..))
}

/// Runs a stage's consume–process–commit loop and, when Kafka fails under it (a broker restart can
/// leave an idempotent producer or a commit failed for good), starts it again with new clients after
/// a growing pause (1 s up to 30 s). The stage resumes from its committed offsets exactly as after a
/// crash, which the stages are built for. Other errors, and shutdown, end it.
pub async fn restart_on_kafka_failure<E, F, Fut>(
    stage: &'static str,
    shutdown: &Shutdown,
    is_kafka_failure: impl Fn(&E) -> bool,
    mut run_once: F,
) -> Result<(), E>
where
    E: fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let mut pause = Duration::from_secs(1);
    loop {
        let started = std::time::Instant::now();
        match run_once().await {
            Err(error) if is_kafka_failure(&error) && !shutdown.is_cancelled() => {
                metrics().set_ready(stage, false);
                metrics().restarts.get_or_create(&StageLabel { stage }).inc();
                if started.elapsed() > Duration::from_secs(60) {
                    pause = Duration::from_secs(1);
                }
                tracing::error!(stage, %error, restart_in = ?pause,
                    "Kafka failed under the stage; starting it again from the committed offsets");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            other => return other,
        }
    }
}

/// Commits, synchronously, the position after the last message of each partition in `batch`, and
/// returns what it committed.
pub fn commit_batch<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    batch: &[OwnedMessage],
) -> Result<TopicPartitionList, KafkaError> {
    let list = batch_offsets(batch)?;
    if list.count() > 0 {
        blocking(|| consumer.commit(&list, CommitMode::Sync))?;
    }
    Ok(list)
}

/// What a consumer last committed per (topic, partition) in this process.
pub type CommittedOffsets = HashMap<(String, i32), i64>;

/// Commits an idle consumer's positions where they moved past the last committed offset without a
/// message: the markers that end Kafka transactions take offsets but are never delivered, so a stage
/// that commits "after its last message" of a transactional topic would show a lag of one per
/// partition forever. Call it only when every consumed message's effect is durable (nothing in flight).
pub fn commit_idle_positions<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    committed: &mut CommittedOffsets,
) -> Result<(), KafkaError> {
    let mut list = TopicPartitionList::new();
    for element in consumer.position()?.elements() {
        let Offset::Offset(position) = element.offset() else { continue };
        if committed.get(&(element.topic().to_string(), element.partition())) != Some(&position) {
            list.add_partition_offset(element.topic(), element.partition(), Offset::Offset(position))?;
        }
    }
    if list.count() == 0 {
        return Ok(());
    }
    blocking(|| consumer.commit(&list, CommitMode::Sync))?;
    note_committed(&list, committed);
    Ok(())
}

/// Records the offsets of a successful commit of `list`.
pub fn note_committed(list: &TopicPartitionList, committed: &mut CommittedOffsets) {
    for element in list.elements() {
        if let Offset::Offset(offset) = element.offset() {
            committed.insert((element.topic().to_string(), element.partition()), offset);
        }
    }
}

/// The position after the last message of each partition in `batch`: what a commit of the batch stores.
pub fn batch_offsets(batch: &[OwnedMessage]) -> Result<TopicPartitionList, KafkaError> {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for message in batch {
        let slot = next.entry((message.topic(), message.partition())).or_insert(0);
        *slot = (*slot).max(message.offset() + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    Ok(list)
}

/// Runs a blocking librdkafka call (a synchronous commit, closing a group consumer) so that it cannot
/// stall the async runtime: while the broker is away such a call waits for the group coordinator,
/// and two of them on two workers would stop every timer, every other task and the reconnect itself.
/// On a multi-threaded runtime the worker hands its tasks to another thread first; elsewhere (a
/// current-thread runtime, or no runtime) the call simply runs.
pub fn blocking<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

/// A Kafka client that is closed through [`blocking`] when dropped: a group consumer's close waits for
/// the coordinator (to leave the group), which must not hold an async worker while the broker is down.
pub struct ClosedOffWorker<T>(Option<T>);

impl<T> ClosedOffWorker<T> {
    pub fn new(client: T) -> Self {
        ClosedOffWorker(Some(client))
    }
}

impl<T> std::ops::Deref for ClosedOffWorker<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("only taken in drop")
    }
}

impl<T> Drop for ClosedOffWorker<T> {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            blocking(move || drop(client));
        }
    }
}

/// Sends records a stage cannot process to the dead-letter topic, intact, with the reason in headers,
/// so nothing is silently dropped and a fixed record can be replayed.
#[derive(Clone)]
pub struct DeadLetter {
    producer: FutureProducer,
    topic: String,
    stage: &'static str,
}

impl DeadLetter {
    pub fn new(producer: FutureProducer, topic: String, stage: &'static str) -> Self {
        DeadLetter { producer, topic, stage }
    }

    /// Dead-letters a consumed Kafka record, naming where it came from.
    pub async fn send(&self, original: &OwnedMessage, reason: &str) -> Result<(), KafkaError> {
        let partition = original.partition().to_string();
        let offset = original.offset().to_string();
        let source = [
            ("dlq.source.topic", original.topic()),
            ("dlq.source.partition", partition.as_str()),
            ("dlq.source.offset", offset.as_str()),
        ];
        self.send_record(original.key(), original.payload().unwrap_or_default(), reason, &source).await
    }

    /// Dead-letters any record (e.g. an API record ingest could not read), with `source` headers saying
    /// where it came from.
    pub async fn send_record(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        reason: &str,
        source: &[(&str, &str)],
    ) -> Result<(), KafkaError> {
        tracing::warn!(stage = self.stage, ?source, reason, "record sent to the dead-letter topic");
        let mut headers = OwnedHeaders::new()
            .insert(Header { key: "dlq.stage", value: Some(self.stage) })
            .insert(Header { key: "dlq.reason", value: Some(reason) });
        for (name, value) in source {
            headers = headers.insert(Header { key: name, value: Some(*value) });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(headers).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        self.producer.send(record, Duration::from_secs(60)).await.map_err(|(error, _)| error)?;
        metrics().dead_letters.get_or_create(&StageLabel { stage: self.stage }).inc();
        Ok(())
    }
}
