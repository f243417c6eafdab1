//! Reading Kafka without a consumer group: a group's lag, a compacted topic as a table, dead letters
//! per stage, and the stages' lag reporter.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{KafkaConfig, KafkaSetupError};
use crate::metrics::{metrics, StageTopic};
use crate::task::AbortOnDrop;
use crate::Shutdown;

/// Messages not yet committed by `group_id` on `topic`: high watermark − committed offset, summed over
/// partitions. Zero means the group has durably processed everything written so far.
pub async fn group_lag(config: &KafkaConfig, group_id: &str, topic: &str) -> Result<i64, KafkaSetupError> {
    let client_config = config.consumer_config(group_id);
    let (kafka, topic) = (config.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let offsets_error = |source| KafkaSetupError::reading(&kafka, &topic, source);
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
            let (low, high) = watermarks(&consumer, &topic, partition, timeout).map_err(offsets_error)?;
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

/// A partition's low and high watermarks. Right after a topic is created (by this process or another)
/// its partitions may not have a leader known to every broker yet: those answers are transient, so
/// they are asked again for a few seconds before they count as failures.
fn watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<(i64, i64), rdkafka::error::KafkaError> {
    use rdkafka::types::RDKafkaErrorCode::{LeaderNotAvailable, NotLeaderForPartition, UnknownTopicOrPartition};
    let mut attempts = 0;
    loop {
        match consumer.fetch_watermarks(topic, partition, timeout) {
            Err(error)
                if attempts < 25
                    && matches!(
                        error.rdkafka_error_code(),
                        Some(NotLeaderForPartition | LeaderNotAvailable | UnknownTopicOrPartition)
                    ) =>
            {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            other => return other,
        }
    }
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
    let (kafka, topic) = (config.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let offsets_error = |source| KafkaSetupError::reading(&kafka, &topic, source);
        let consumer: BaseConsumer = client_config.create().map_err(KafkaSetupError::Client)?;
        let deadline = std::time::Instant::now() + timeout;
        let metadata = consumer.fetch_metadata(Some(&topic), timeout).map_err(offsets_error)?;
        let mut assignment = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = watermarks(&consumer, &topic, partition.id(), timeout).map_err(offsets_error)?;
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

/// What a stage consumes: its group and input topics. Each stage declares it (`coupang_transform::
/// consumes`, `coupang_load::consumes`), so the CLI asks instead of rebuilding topic lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumes {
    pub group_id: String,
    pub topics: Vec<String>,
}

impl Consumes {
    /// The group's lag summed over its topics (see [`group_lag`]).
    pub async fn lag(&self, kafka: &KafkaConfig) -> Result<i64, KafkaSetupError> {
        let mut total = 0;
        for topic in &self.topics {
            total += group_lag(kafka, &self.group_id, topic).await?;
        }
        Ok(total)
    }
}

/// How often a stage refreshes its `consumer_lag`.
const LAG_INTERVAL: Duration = Duration::from_secs(15);

/// Every 15 s, sets `consumer_lag{stage, topic}` from the group's committed offsets, until shutdown or
/// until the returned guard is dropped (with the stage's run).
pub fn report_lag(kafka: KafkaConfig, stage: &'static str, consumes: Consumes, shutdown: Shutdown) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        loop {
            for topic in &consumes.topics {
                if let Ok(lag) = group_lag(&kafka, &consumes.group_id, topic).await {
                    metrics().consumer_lag.get_or_create(&StageTopic { stage, topic: topic.clone() }).set(lag);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(LAG_INTERVAL) => {}
            }
        }
    }))
}
