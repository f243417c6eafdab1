//! The loader's Kafka → ClickHouse loop.
//!
//! One INSERT per batch; the batch's offsets are committed only after ClickHouse acknowledged it.
//! While ClickHouse is down the loop retries the same batch with growing pauses and reads nothing new,
//! so memory stays bounded and nothing is lost or reordered.

use coupang_schemas::{decode, PaymentFact};
use etl_core::kafka::{commit_batch, ensure_topics, next_batch_within, DeadLetter, KafkaConfig, KafkaSetupError};
use etl_core::Shutdown;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use std::time::Duration;

use crate::config::{ClickHouseConfig, LoadConfig};
use crate::row::FactRow;
use crate::schema::{migrate, SchemaError};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

const TABLE: &str = "payment_facts";

pub async fn run(
    config: &LoadConfig,
    clickhouse: &ClickHouseConfig,
    kafka: &KafkaConfig,
    shutdown: Shutdown,
) -> Result<(), LoadError> {
    let report = migrate(clickhouse).await?;
    tracing::info!(server = %report.server.version, database = %report.database, "ClickHouse schema is current");
    let topics = kafka.topics();
    ensure_topics(kafka, &[&topics.payment_facts, &topics.dead_letter]).await?;
    let consumer: StreamConsumer = kafka.consumer_config(&config.group_id).create()?;
    consumer.subscribe(&[&topics.payment_facts])?;
    let producer: FutureProducer = kafka.producer_config().create()?;
    let dead_letter = DeadLetter::new(producer, topics.dead_letter.clone(), "load");
    let client = clickhouse.client();
    let wait = Duration::from_millis(config.batch_wait_ms);
    tracing::info!(group = %config.group_id, topic = %topics.payment_facts, "load started");

    while !shutdown.is_cancelled() {
        let batch = next_batch_within(&consumer, (config.batch_rows, config.batch_bytes, wait), &shutdown).await?;
        if batch.is_empty() {
            continue;
        }
        let rows = rows_of(&batch, &dead_letter).await?;
        if !insert_until_acknowledged(&client, &rows, config, &shutdown).await {
            // Shut down mid-retry: leave the batch uncommitted; the next run loads it again.
            break;
        }
        commit_batch(&consumer, &batch)?;
        tracing::debug!(rows = rows.len(), "batch loaded and committed");
    }
    tracing::info!("load stopped");
    Ok(())
}

/// Decodes a batch; records that are not valid facts go to the dead-letter topic with the reason.
async fn rows_of(batch: &[OwnedMessage], dead_letter: &DeadLetter) -> Result<Vec<FactRow>, KafkaError> {
    let mut rows = Vec::with_capacity(batch.len());
    for message in batch {
        let row = decode::<PaymentFact>(message.payload().unwrap_or_default())
            .map_err(|e| e.to_string())
            .and_then(|fact| FactRow::try_from(&fact).map_err(|e| e.to_string()));
        match row {
            Ok(row) => rows.push(row),
            Err(reason) => dead_letter.send(message, &reason).await?,
        }
    }
    Ok(rows)
}

/// Retries until ClickHouse acknowledges the INSERT (true) or shutdown is requested (false).
async fn insert_until_acknowledged(
    client: &clickhouse::Client,
    rows: &[FactRow],
    config: &LoadConfig,
    shutdown: &Shutdown,
) -> bool {
    if rows.is_empty() {
        return true;
    }
    let mut pause = Duration::from_millis(500);
    loop {
        match insert(client, rows).await {
            Ok(()) => return true,
            Err(error) => {
                tracing::warn!(rows = rows.len(), retry_in = ?pause, "ClickHouse insert failed: {error}");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(config.max_backoff_secs.max(1)));
    }
}

async fn insert(client: &clickhouse::Client, rows: &[FactRow]) -> Result<(), clickhouse::error::Error> {
    let mut insert = client.insert::<FactRow>(TABLE).await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}
