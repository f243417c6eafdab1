//! Ingest's bookkeeping topics, both compacted and JSON, keyed so the latest record per key is the
//! state: checkpoints (how far each stream of each account was collected without a gap, so follow mode
//! resumes after downtime and an interrupted backfill resumes where it stopped) and account statuses
//! (last successful calls, the error that stopped an account, a cool-down, for `coupang-etl accounts`).

use chrono::{DateTime, NaiveDate, Utc};
use etl_core::account::AccountConfig;
use etl_core::kafka::KafkaConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::error::{AccountFailure, IngestError};
use super::plan::Stream;

/// How far one stream of one account has been collected without a gap: written to the compacted
/// checkpoint topic only after every event of the sweep was acknowledged by the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub alias: String,
    pub vendor_id: String,
    pub stream: String,
    pub swept_from: NaiveDate,
    pub swept_through: NaiveDate,
    pub completed_at: DateTime<Utc>,
}

/// The key of follow mode's checkpoint of `alias`'s `stream` (`alias:stream`).
fn live_key(alias: &str, stream: &str) -> String {
    format!("{alias}:{stream}")
}

impl Checkpoint {
    /// Whether this is follow mode's checkpoint (stored under its live key), not a backfill's.
    pub fn is_live(&self, key: &str) -> bool {
        key == live_key(&self.alias, &self.stream)
    }
}

/// Where a completed stream sweep is recorded. Only follow mode moves the live checkpoints, so a one-off
/// range or a backfill of old days never moves them backwards.
#[derive(Debug, Clone, Copy)]
pub(super) enum Progress {
    /// A one-off range: nothing recorded.
    None,
    /// Follow mode: `alias:stream`.
    Live,
    /// A backfill of `from..=to`: `backfill:alias:stream:from:to`, so an interrupted one resumes.
    Backfill(NaiveDate, NaiveDate),
}

impl Progress {
    /// The checkpoint key of `alias`'s `stream`; `None` when nothing is recorded.
    pub(super) fn key(self, alias: &str, stream: Stream) -> Option<String> {
        match self {
            Progress::None => None,
            Progress::Live => Some(live_key(alias, stream.name())),
            Progress::Backfill(from, to) => Some(format!("backfill:{alias}:{}:{from}:{to}", stream.name())),
        }
    }
}

/// An account's status as published to the account-status topic (JSON, keyed by alias).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStatus {
    pub alias: String,
    pub vendor_id: String,
    pub last_success_at: Option<DateTime<Utc>>,
    /// When each endpoint (`ordersheets`, `returnRequests`, `revenue-history`) last answered with
    /// success (absent in statuses written before it existed).
    #[serde(default)]
    pub last_success_by_endpoint: BTreeMap<String, DateTime<Utc>>,
    /// The error that stopped the account; `None` while it works.
    pub error: Option<String>,
    /// The kind of `error` (absent in older statuses).
    #[serde(default)]
    pub failure: Option<AccountFailure>,
    /// While Coupang keeps answering 429: when the vendor's calls resume (absent in older statuses).
    #[serde(default)]
    pub cooling_down_until: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl AccountStatus {
    /// The status of an account that works (no error, no cool-down), with its last successful calls.
    pub(super) fn working(
        account: &AccountConfig,
        last_success: &HashMap<String, BTreeMap<String, DateTime<Utc>>>,
    ) -> Self {
        let by_endpoint = last_success.get(&account.alias).cloned().unwrap_or_default();
        AccountStatus {
            alias: account.alias.clone(),
            vendor_id: account.vendor_id.clone(),
            last_success_at: by_endpoint.values().max().copied(),
            last_success_by_endpoint: by_endpoint,
            error: None,
            failure: None,
            cooling_down_until: None,
            updated_at: Utc::now(),
        }
    }
}

/// The latest checkpoint under every key: `alias:stream` for follow mode,
/// `backfill:alias:stream:from:to` for backfills.
pub async fn load_checkpoints(kafka: &KafkaConfig) -> Result<HashMap<String, Checkpoint>, IngestError> {
    let topic = kafka.topics().checkpoints;
    let raw = etl_core::kafka::latest_by_key(kafka, &topic, Duration::from_secs(30)).await?;
    Ok(decode_bookkeeping_records(raw, &topic))
}

/// Follow mode's checkpoints (those under `alias:stream`), by (alias, stream).
pub(super) async fn live_checkpoints(
    kafka: &KafkaConfig,
) -> Result<HashMap<(String, String), Checkpoint>, IngestError> {
    Ok(load_checkpoints(kafka)
        .await?
        .into_iter()
        .filter(|(key, c)| c.is_live(key))
        .map(|(_, c)| ((c.alias.clone(), c.stream.clone()), c))
        .collect())
}

/// The latest published status of every account (for `coupang-etl accounts`), by alias.
pub async fn account_statuses(
    kafka: &KafkaConfig,
    timeout: Duration,
) -> Result<HashMap<String, AccountStatus>, IngestError> {
    let topic = kafka.topics().account_status;
    let raw = etl_core::kafka::latest_by_key(kafka, &topic, timeout).await?;
    Ok(decode_bookkeeping_records(raw, &topic))
}

/// Decodes the JSON records of a compacted bookkeeping topic, keeping those that decode. Anything else
/// is not ours (only ingest writes these topics): it is skipped with a warning, so the stream falls back
/// to its look-back window (checkpoints) or the account shows no status yet.
fn decode_bookkeeping_records<T: serde::de::DeserializeOwned>(
    raw: HashMap<String, Vec<u8>>,
    topic: &str,
) -> HashMap<String, T> {
    raw.into_iter()
        .filter_map(|(key, payload)| match serde_json::from_slice::<T>(&payload) {
            Ok(value) => Some((key, value)),
            Err(error) => {
                tracing::warn!(topic, key, %error, "record skipped: not one ingest wrote");
                None
            }
        })
        .collect()
}
