//! How ingest fails. [`IngestError`] ends a run mode; [`AccountFailure`] is the kind of an account's
//! own API error, which stops that account alone and is told apart by schedulers (exit codes).

use etl_core::invalid::InvalidSetting;
use etl_core::kafka::KafkaSetupError;
use rdkafka::error::KafkaError;
use serde::{Deserialize, Serialize};

use crate::client::ClientError;

/// Why a run mode ended early. An account's API error is not one of these in `collect_range` or follow
/// mode (it stops that account alone and shows in its report); a backfill has one account, whose error
/// ends it as [`IngestError::Account`].
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid ingest configuration: {0}")]
    Config(#[from] InvalidSetting),
    /// An account's client cannot be built (its TLS set-up); the error names the account.
    #[error(transparent)]
    Client(ClientError),
    #[error("cannot encode a bookkeeping record: {0}")]
    Bookkeeping(#[from] serde_json::Error),
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    #[error("Kafka producer: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot encode an event: {0}")]
    Encode(#[from] coupang_schemas::CodecError),
    /// The account's own API error (e.g. its key was rejected), when one account is all there is.
    #[error("{message}")]
    Account { message: String, failure: AccountFailure },
}

/// Why an account's sweep did not complete, by kind: what a scheduler needs to tell apart (exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountFailure {
    /// Requests failed for good: retries gave up (429s, 5xx, timeouts) or Coupang refused one (400).
    RequestsFailed,
    /// The account cannot work until a person acts: its key was rejected or has expired.
    Stopped,
}

impl AccountFailure {
    /// The kind of a client error that ended an account's sweep.
    pub fn of(error: &ClientError) -> AccountFailure {
        if error.stops_account() {
            AccountFailure::Stopped
        } else {
            AccountFailure::RequestsFailed
        }
    }
}
