//! How the transform stage fails.

use etl_core::kafka::KafkaSetupError;
use rdkafka::error::KafkaError;

use crate::store::StoreError;

/// The stage's name in metrics and logs.
pub(crate) const STAGE: &str = "transform";

#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("cannot encode: {0}")]
    Encode(#[from] coupang_schemas::CodecError),
    #[error(transparent)]
    State(#[from] StoreError),
    /// A defect: the restore decoded both states before.
    #[error("changelog partition {partition}: a state of {key} to send again does not decode: {source}")]
    Resend {
        partition: i32,
        key: String,
        #[source]
        source: coupang_schemas::CodecError,
    },
    #[error("Kafka: the consumer has no group metadata to commit offsets in a transaction")]
    NoGroupMetadata,
}
