//! Producing: records sent and awaited together, and the dead-letter topic.

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage, ToBytes};
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::future_producer::{DeliveryFuture, OwnedDeliveryResult};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use std::time::{Duration, Instant};

/// How long a send may wait for room in librdkafka's local queue before it fails. The broker's
/// acknowledgement itself is bounded by `message.timeout.ms` (120 s, [`super::KafkaConfig::producer_config`]).
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends `records` together (librdkafka batches them) and waits for every acknowledgement; the
/// deliveries come back in the order of `records`.
///
/// Every record is queued first, then the acknowledgements are awaited one after the other: they come
/// back in order, mostly already there. (Awaiting thousands of `send` futures through `join_all`
/// cost ~12% of the transform's CPU in its ordering heap and wake-ups.) When librdkafka's queue is
/// full, the oldest acknowledgement still outstanding is awaited to make room.
pub async fn send_all<'a, K, P>(
    producer: &FutureProducer,
    records: impl IntoIterator<Item = FutureRecord<'a, K, P>>,
    queue_timeout: Duration,
) -> Vec<Result<Delivery, KafkaError>>
where
    K: ToBytes + ?Sized + 'a,
    P: ToBytes + ?Sized + 'a,
{
    // Collected before the first await: the caller's iterator (and its closures) then need not be
    // held across one, which would tie the future's `Send` to their lifetimes.
    let records: Vec<FutureRecord<'a, K, P>> = records.into_iter().collect();
    let mut sent: Vec<Sent> = Vec::with_capacity(records.len());
    // The first of `sent` whose acknowledgement has not been awaited yet.
    let mut awaited = 0;
    for mut record in records {
        // The clock is read only once the queue is full, not for every record.
        let mut queued_at = None;
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    sent.push(Sent::Queued(delivery));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if queued_at.get_or_insert_with(Instant::now).elapsed() < queue_timeout =>
                {
                    record = back;
                    if awaited < sent.len() {
                        sent[awaited].settle().await;
                        awaited += 1;
                    } else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                Err((error, _)) => {
                    sent.push(Sent::Done(Err(error)));
                    break;
                }
            }
        }
    }
    let mut deliveries = Vec::with_capacity(sent.len());
    for one in sent {
        deliveries.push(one.outcome().await);
    }
    deliveries
}

/// A record handed to librdkafka: its acknowledgement to come, or the outcome.
enum Sent {
    Queued(DeliveryFuture),
    Done(Result<Delivery, KafkaError>),
}

impl Sent {
    /// Waits for the acknowledgement, once.
    async fn settle(&mut self) {
        if let Sent::Queued(delivery) = self {
            *self = Sent::Done(acknowledged(delivery.await));
        }
    }

    async fn outcome(self) -> Result<Delivery, KafkaError> {
        match self {
            Sent::Queued(delivery) => acknowledged(delivery.await),
            Sent::Done(outcome) => outcome,
        }
    }
}

fn acknowledged(
    delivery: Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
) -> Result<Delivery, KafkaError> {
    match delivery {
        Ok(Ok(delivery)) => Ok(delivery),
        Ok(Err((error, _))) => Err(error),
        // The producer went away before it reported the delivery.
        Err(_) => Err(KafkaError::Canceled),
    }
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
