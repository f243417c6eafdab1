//! Producing: records sent and awaited together, and the dead-letter topic.

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage, ToBytes};
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

/// How long a send may wait for room in librdkafka's local queue before it fails. The broker's
/// acknowledgement itself is bounded by `message.timeout.ms` (120 s, [`super::KafkaConfig::producer_config`]).
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends `records` together (librdkafka batches them) and waits for every acknowledgement; the
/// deliveries come back in the order of `records`.
pub async fn send_all<'a, K, P>(
    producer: &FutureProducer,
    records: impl IntoIterator<Item = FutureRecord<'a, K, P>>,
    queue_timeout: Duration,
) -> Vec<Result<Delivery, KafkaError>>
where
    K: ToBytes + ?Sized + 'a,
    P: ToBytes + ?Sized + 'a,
{
    let sends = records.into_iter().map(|record| producer.send(record, queue_timeout));
    futures::future::join_all(sends).await.into_iter().map(|delivery| delivery.map_err(|(error, _)| error)).collect()
}

/// Sends one record and waits for its acknowledgement.
pub async fn send_one<K, P>(
    producer: &FutureProducer,
    record: FutureRecord<'_, K, P>,
    queue_timeout: Duration,
) -> Result<Delivery, KafkaError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    producer.send(record, queue_timeout).await.map_err(|(error, _)| error)
}

use crate::metrics::{metrics, StageLabel};

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
        send_one(&self.producer, record, QUEUE_TIMEOUT).await?;
        metrics().dead_letters.get_or_create(&StageLabel { stage: self.stage }).inc();
        Ok(())
    }
}
