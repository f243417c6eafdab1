//! The ingest stage: per account, sweep order sheets of every status over API-legal windows and
//! produce one raw event per shipment box, waiting for the broker's acknowledgement.

use chrono::{NaiveDate, Utc};
use coupang_schemas::encode;
use etl_core::account::{AccountConfig, KeyHealth};
use etl_core::kafka::{ensure_topics, DeadLetter, KafkaConfig, KafkaSetupError, Topics};
use etl_core::time::now_kst;
use etl_core::Shutdown;
use futures::StreamExt;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::client::{ClientError, CoupangClient, MAX_WINDOW_DAYS};
use crate::config::IngestConfig;
use crate::event::order_sheet_event;

/// Order-sheet lists return boxes in their current status, so a full sweep asks for each one.
pub const ORDER_SHEET_STATUSES: [&str; 6] = [
    "ACCEPT",
    "INSTRUCT",
    "DEPARTURE",
    "DELIVERING",
    "FINAL_DELIVERY",
    "NONE_TRACKING",
];

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
}

/// What one account's sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AccountReport {
    pub vendor_id: String,
    /// Shipment boxes read from the API.
    pub boxes: u64,
    /// Raw events acknowledged by the broker.
    pub events: u64,
    /// Records that could not be read and went to the dead-letter topic.
    pub bad_records: u64,
    /// Why the account stopped, when it did (e.g. its key was rejected).
    pub error: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct IngestReport {
    /// By account alias.
    pub accounts: BTreeMap<String, AccountReport>,
}

struct Sink {
    producer: FutureProducer,
    topics: Topics,
    dead_letter: DeadLetter,
}

impl Sink {
    async fn connect(kafka: &KafkaConfig) -> Result<Sink, IngestError> {
        let topics = kafka.topics();
        ensure_topics(kafka, &[&topics.raw_order_sheets, &topics.dead_letter]).await?;
        let producer: FutureProducer = kafka.producer_config().create()?;
        let dead_letter = DeadLetter::new(producer.clone(), topics.dead_letter.clone(), "ingest");
        Ok(Sink {
            producer,
            topics,
            dead_letter,
        })
    }
}

/// Collects the order sheets created on `from..=to` (Asia/Seoul) for every account, once.
/// An account whose key is rejected or expired stops with its error in the report; the others go on.
/// Kafka failures are returned as errors: nothing is reported collected that the broker did not acknowledge.
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
    sweep(config, &sink, accounts, from, to, shutdown).await
}

/// Follow mode: every `poll_interval_secs`, sweeps the last `lookback_days` days until shutdown.
pub async fn run(
    config: &IngestConfig,
    kafka: &KafkaConfig,
    accounts: &[AccountConfig],
    shutdown: Shutdown,
) -> Result<(), IngestError> {
    config.validate().map_err(IngestError::Config)?;
    let sink = Sink::connect(kafka).await?;
    while !shutdown.is_cancelled() {
        let today = now_kst().date_naive();
        let from = today - chrono::Duration::days(i64::from(config.lookback_days));
        let report = sweep(config, &sink, accounts, from, today, &shutdown).await?;
        for (alias, account) in &report.accounts {
            tracing::info!(account = %alias, boxes = account.boxes, events = account.events,
                bad_records = account.bad_records, error = account.error.as_deref().unwrap_or(""), "sweep done");
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_secs(config.poll_interval_secs)) => {}
        }
    }
    Ok(())
}

async fn sweep(
    config: &IngestConfig,
    sink: &Sink,
    accounts: &[AccountConfig],
    from: NaiveDate,
    to: NaiveDate,
    shutdown: &Shutdown,
) -> Result<IngestReport, IngestError> {
    let today = now_kst().date_naive();
    let sweeps = accounts.iter().map(|account| async move {
        let mut report = AccountReport { vendor_id: account.vendor_id.clone(), ..AccountReport::default() };
        match account.key_health(today) {
            KeyHealth::Expired { .. } => {
                let message = format!(
                    "account {}: the Open API key expired on {}; reissue it in WING and update the config",
                    account.alias,
                    account.key_expires_on()
                );
                tracing::error!("{message}");
                report.error = Some(message);
                return Ok((account.alias.clone(), report));
            }
            KeyHealth::ReissueWindow { days_left } => tracing::warn!(
                account = %account.alias, days_left,
                "the Open API key expires on {}: reissue it in WING (the button is open now)", account.key_expires_on()
            ),
            KeyHealth::Valid { .. } => {}
        }
        let client = CoupangClient::new(config, account.clone()).map_err(|e| IngestError::Config(e.to_string()))?;
        if let Err(error) = sweep_account(&client, sink, from, to, shutdown, &mut report).await? {
            tracing::error!(account = %account.alias, "{error}");
            report.error = Some(error.to_string());
        }
        Ok::<_, IngestError>((account.alias.clone(), report))
    });
    let mut result = IngestReport::default();
    for outcome in futures::future::join_all(sweeps).await {
        let (alias, report) = outcome?;
        result.accounts.insert(alias, report);
    }
    Ok(result)
}

/// Outer `Result`: Kafka failures (stop everything). Inner: the account's own API error (stop this account).
async fn sweep_account(
    client: &CoupangClient,
    sink: &Sink,
    from: NaiveDate,
    to: NaiveDate,
    shutdown: &Shutdown,
    report: &mut AccountReport,
) -> Result<Result<(), ClientError>, IngestError> {
    let account = client.account();
    for (window_from, window_to) in windows(from, to) {
        for status in ORDER_SHEET_STATUSES {
            let mut records = std::pin::pin!(client
                .order_sheets(window_from, window_to, status)
                .chunks(50));
            while let Some(chunk) = records.next().await {
                if shutdown.is_cancelled() {
                    return Ok(Ok(()));
                }
                let collected_at = Utc::now().timestamp_millis();
                let mut encoded = Vec::with_capacity(chunk.len());
                for record in chunk {
                    match record {
                        Ok(sheet) => {
                            report.boxes += 1;
                            let event = order_sheet_event(
                                &account.vendor_id,
                                &account.alias,
                                collected_at,
                                &sheet,
                            );
                            encoded.push((event.kafka_key(), encode(&event)?));
                        }
                        Err(ClientError::BadRecord {
                            alias,
                            endpoint,
                            record_id,
                            reason,
                            raw,
                        }) => {
                            report.bad_records += 1;
                            let reason =
                                format!("account {alias}: {endpoint} record {record_id}: {reason}");
                            let source = [
                                ("dlq.source.account", alias.as_str()),
                                ("dlq.source.endpoint", endpoint),
                            ];
                            let key = account.vendor_id.as_bytes();
                            sink.dead_letter
                                .send_record(Some(key), raw.as_bytes(), &reason, &source)
                                .await?;
                        }
                        Err(error) => return Ok(Err(error)),
                    }
                }
                let mut deliveries = Vec::with_capacity(encoded.len());
                for (key, payload) in &encoded {
                    let record = FutureRecord::to(&sink.topics.raw_order_sheets)
                        .key(key)
                        .payload(payload);
                    deliveries.push(sink.producer.send(record, Duration::from_secs(120)));
                }
                for delivery in futures::future::join_all(deliveries).await {
                    delivery.map_err(|(error, _)| error)?;
                    report.events += 1;
                }
            }
        }
    }
    Ok(Ok(()))
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
}
