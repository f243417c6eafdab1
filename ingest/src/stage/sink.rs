//! Ingest's Kafka side: one producer for the raw topics, the dead-letter topic and the bookkeeping
//! topics. Every send waits for the broker's acknowledgement, since a checkpoint may only move once
//! everything it covers has arrived.

use etl_core::kafka::{
    ensure_compacted_topics, ensure_topics, send_all, send_one, DeadLetter, KafkaConfig, Topics, QUEUE_TIMEOUT,
};
use etl_core::metrics::metrics;
use etl_core::Shutdown;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;
use std::time::Duration;

use super::error::IngestError;
use super::plan::Stream;
use super::report::AccountReport;
use crate::client::ClientError;

pub(super) struct Sink {
    producer: FutureProducer,
    pub(super) topics: Topics,
    dead_letter: DeadLetter,
}

impl Sink {
    /// Creates ingest's topics if missing and a producer; the stage is ready once this succeeds.
    pub(super) async fn connect(kafka: &KafkaConfig) -> Result<Sink, IngestError> {
        let topics = kafka.topics();
        let raw = [
            &topics.raw_order_sheets,
            &topics.raw_return_requests,
            &topics.raw_revenue,
            &topics.raw_settlements,
            &topics.dead_letter,
        ];
        ensure_topics(kafka, &raw.map(String::as_str)).await?;
        ensure_compacted_topics(kafka, &[&topics.account_status, &topics.checkpoints]).await?;
        let producer: FutureProducer = kafka.producer_config().create()?;
        let dead_letter = DeadLetter::new(producer.clone(), topics.dead_letter.clone(), "ingest");
        // Connected: the stage is ready (every mode connects through here, and reconnects too).
        metrics().set_ready("ingest", true);
        Ok(Sink { producer, topics, dead_letter })
    }

    /// A new sink once the broker answers again, retried with growing pauses (up to 30 s); None at
    /// shutdown.
    pub(super) async fn reconnect(kafka: &KafkaConfig, shutdown: &Shutdown) -> Option<Sink> {
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

    /// The raw topic of a stream's events.
    pub(super) fn raw_topic(&self, stream: Stream) -> &str {
        match stream {
            Stream::OrderSheets => &self.topics.raw_order_sheets,
            Stream::ReturnRequests => &self.topics.raw_return_requests,
            Stream::Revenue => &self.topics.raw_revenue,
            Stream::Settlements => &self.topics.raw_settlements,
        }
    }

    /// Sends a small JSON state record (status, checkpoint) and waits for its acknowledgement.
    pub(super) async fn publish<T: Serialize>(&self, topic: &str, key: &str, value: &T) -> Result<(), IngestError> {
        let payload = serde_json::to_vec(value)?;
        let record = FutureRecord::to(topic).key(key).payload(&payload);
        send_one(&self.producer, record, Duration::from_secs(60)).await?;
        Ok(())
    }

    /// Produces `encoded` (key, payload) records to `topic` and waits for every acknowledgement;
    /// returns how many.
    pub(super) async fn send_all(&self, topic: &str, encoded: &[(String, Vec<u8>)]) -> Result<u64, IngestError> {
        let records = encoded.iter().map(|(key, payload)| FutureRecord::to(topic).key(key).payload(payload));
        for delivery in send_all(&self.producer, records, QUEUE_TIMEOUT).await {
            delivery?;
        }
        Ok(encoded.len() as u64)
    }

    /// Sends a record that cannot be read to the dead-letter topic, once per sweep: a record can appear
    /// in several listings (statuses, overlapping pages), and each copy would be the same dead letter.
    /// Errors other than a bad record are not dead letters and are ignored here.
    pub(super) async fn send_dead_letter(
        &self,
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
        let record = record_id.to_string();
        let source = [
            ("dlq.source.account", alias.as_str()),
            ("dlq.source.endpoint", endpoint),
            ("dlq.source.record", record.as_str()),
            ("dlq.field", fault.field.as_str()),
            ("dlq.value", fault.value.as_str()),
        ];
        let key = report.vendor_id.as_bytes();
        self.dead_letter.send_record(Some(key), raw.as_bytes(), &reason, &source).await?;
        Ok(())
    }
}
