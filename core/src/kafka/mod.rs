//! Kafka plumbing shared by the stages: client settings, topic creation, batches, offset commits,
//! consumer lag, and the dead-letter topic.
//!
//! Only plain Kafka protocol is used (no broker-specific APIs), so the same code runs against Apache
//! Kafka, Redpanda, MSK and rdkafka's in-process MockCluster. Transactions are optional (the transform's
//! `transactions` setting): every stage is exact without them.

mod admin;
mod config;
mod consume;
mod produce;
mod read;
mod restart;

pub use admin::{
    check_co_partitioned, ensure_compacted_topics, ensure_compacted_topics_with, ensure_topics, set_topic_config,
};
pub use config::{KafkaConfig, Topics};
pub use consume::{
    batch_offsets, blocking, commit_batch, commit_idle_positions, next_batch, next_batch_within, note_committed,
    BlockingDrop, CommittedOffsets,
};
pub use produce::{send_all, send_one, DeadLetter, QUEUE_TIMEOUT};
pub use read::{dead_letters_by_stage, group_lag, latest_by_key, report_lag, Consumes};
pub use restart::{restart_on_kafka_failure, worth_a_restart};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("Kafka client could not be created: {0}")]
    Client(#[source] KafkaError),
    #[error("cannot create topic {topic}: {source}")]
    CreateTopic {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("cannot create topic {topic}: {code}")]
    CreateTopicRefused { topic: String, code: RDKafkaErrorCode },
    #[error("cannot read metadata or offsets of topic {topic}: {source}")]
    Offsets {
        topic: String,
        #[source]
        source: KafkaError,
    },
    /// No broker answered (librdkafka's transport failure or all brokers down): one line naming the
    /// brokers, instead of librdkafka's words.
    #[error("Kafka at {brokers} cannot be reached (is it running? `kafka.brokers` in the config)")]
    Unreachable { brokers: String },
    /// Seen with a lightweight Kafka-protocol broker when a process was killed while creating a topic: the
    /// topic exists, unusable.
    #[error("topic {topic} exists but has no partitions (a creation was interrupted?): delete and recreate it")]
    TopicWithoutPartitions { topic: String },
    #[error("topic {topic} was created but its partitions have no leader after 30 s")]
    NoLeader { topic: String },
    #[error(
        "topics are not co-partitioned ({counts}): every raw topic and the state topic need the same number of \
         partitions, or one order's events would be split across processes"
    )]
    NotCoPartitioned { counts: String },
    #[error("blocking Kafka call panicked or was cancelled")]
    Join,
}

impl KafkaSetupError {
    /// Whether the error may pass once the brokers are back (none answering, a read failing, a topic
    /// without a leader yet): a restart's setup meets these while a broker restarts. A client the config
    /// cannot make, a topic refused or misshapen, does not get better by waiting.
    pub fn may_pass(&self) -> bool {
        match self {
            KafkaSetupError::Unreachable { .. } | KafkaSetupError::NoLeader { .. } | KafkaSetupError::Join => true,
            KafkaSetupError::Offsets { source, .. } | KafkaSetupError::CreateTopic { source, .. } => {
                worth_a_restart(source)
            }
            KafkaSetupError::Client(_)
            | KafkaSetupError::CreateTopicRefused { .. }
            | KafkaSetupError::TopicWithoutPartitions { .. }
            | KafkaSetupError::NotCoPartitioned { .. } => false,
        }
    }

    /// A failed metadata or offsets read of `topic`, as [`KafkaSetupError::Unreachable`] when no broker
    /// answered at all.
    pub(crate) fn reading(config: &KafkaConfig, topic: &str, source: KafkaError) -> KafkaSetupError {
        let unreachable = matches!(
            source.rdkafka_error_code(),
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
        );
        if unreachable {
            KafkaSetupError::Unreachable { brokers: config.brokers.clone() }
        } else {
            KafkaSetupError::Offsets { topic: topic.to_string(), source }
        }
    }
}
