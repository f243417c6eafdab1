//! The transform stage's Kafka edge: at-least-once in, idempotent facts out.
//!
//! A batch's offsets are committed only after every fact it produced is acknowledged. A crash before
//! the commit replays the batch, which yields byte-identical facts with the same versions, so the
//! loader's ReplacingMergeTree keeps one row per key: the exactly-once effect needs no transactions.

use coupang_schemas::{decode, encode, OrderSheetEvent};
use etl_core::kafka::{commit_batch, ensure_topics, next_batch, DeadLetter, KafkaConfig, KafkaSetupError};
use etl_core::Shutdown;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

use crate::config::TransformConfig;
use crate::rules::payment_facts;

#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot encode a fact: {0}")]
    Encode(#[from] coupang_schemas::CodecError),
}

pub async fn run(config: &TransformConfig, kafka: &KafkaConfig, shutdown: Shutdown) -> Result<(), TransformError> {
    let topics = kafka.topics();
    ensure_topics(kafka, &[&topics.raw_order_sheets, &topics.payment_facts, &topics.dead_letter]).await?;
    let consumer: StreamConsumer = kafka.consumer_config(&config.group_id).create()?;
    consumer.subscribe(&[&topics.raw_order_sheets])?;
    let producer: FutureProducer = kafka.producer_config().create()?;
    let dead_letter = DeadLetter::new(producer.clone(), topics.dead_letter.clone(), "transform");
    let wait = Duration::from_millis(config.batch_wait_ms);
    tracing::info!(group = %config.group_id, topic = %topics.raw_order_sheets, "transform started");

    while !shutdown.is_cancelled() {
        let batch = next_batch(&consumer, config.batch_size, wait, &shutdown).await?;
        if batch.is_empty() {
            continue;
        }
        let mut encoded = Vec::new();
        for message in &batch {
            let facts = decode::<OrderSheetEvent>(message.payload().unwrap_or_default())
                .map_err(|e| e.to_string())
                .and_then(|event| payment_facts(&event).map_err(|e| e.to_string()));
            match facts {
                Ok(facts) => {
                    for fact in facts {
                        encoded.push((fact.kafka_key(), encode(&fact)?));
                    }
                }
                // A poison record must not block its partition: park it with the reason and go on.
                Err(reason) => dead_letter.send(message, &reason).await?,
            }
        }
        let deliveries: Vec<_> = encoded
            .iter()
            .map(|(key, payload)| {
                producer
                    .send(FutureRecord::to(&topics.payment_facts).key(key).payload(payload), Duration::from_secs(120))
            })
            .collect();
        for delivery in futures::future::join_all(deliveries).await {
            delivery.map_err(|(error, _)| error)?;
        }
        commit_batch(&consumer, &batch)?;
        tracing::debug!(events = batch.len(), facts = encoded.len(), "batch committed");
    }
    tracing::info!("transform stopped");
    Ok(())
}
