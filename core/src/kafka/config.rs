//! The `[kafka]` settings, the pipeline's topic names, and the client settings every stage uses.

use crate::invalid::InvalidSetting;
use rdkafka::config::ClientConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`. Empty means "embedded": the CLI starts rdkafka's in-process mock broker.
    #[serde(default)]
    pub brokers: String,
    /// Prefix of every topic name, so several pipelines (or tests) can share one cluster.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Partitions of topics this project creates. Events are keyed by vendor + order, so any count works.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// Extra librdkafka properties (e.g. `security.protocol`), applied to every client.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Topic settings of the compacted topics this project creates (the transform's changelog, the
    /// checkpoints, the account status), beside `cleanup.policy=compact`. The defaults roll a segment
    /// at least hourly, so the cleaner can reach all but the newest hour and a restore reads little
    /// more than the live keys; broker defaults (1 GiB or 7-day segments) would leave a changelog
    /// uncompacted for days.
    #[serde(default = "default_compacted_topic_config")]
    pub compacted_topic_config: BTreeMap<String, String>,
}

fn default_topic_prefix() -> String {
    "coupang.".into()
}
fn default_partitions() -> i32 {
    6
}
fn default_replication_factor() -> i32 {
    1
}
fn default_compacted_topic_config() -> BTreeMap<String, String> {
    [("segment.ms", "3600000"), ("segment.bytes", "104857600")]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            topic_prefix: default_topic_prefix(),
            partitions: default_partitions(),
            replication_factor: default_replication_factor(),
            properties: BTreeMap::new(),
            compacted_topic_config: default_compacted_topic_config(),
        }
    }
}

/// Property values may hold SASL passwords, so `Debug` lists their names only.
impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .field("compacted_topic_config", &self.compacted_topic_config)
            .finish()
    }
}

/// The topics of one pipeline.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Raw order-sheet events from ingest, keyed `vendorId:orderId`.
    pub raw_order_sheets: String,
    /// Raw cancel/return receipts from ingest, keyed `vendorId:orderId`.
    pub raw_return_requests: String,
    /// Raw revenue-history rows from ingest, keyed `vendorId:orderId`.
    pub raw_revenue: String,
    /// Raw payout rows (settlement-histories) from ingest, keyed `vendorId:type:fromDay:toDay`. Not
    /// one of [`Topics::raw`]: payouts belong to no order.
    pub raw_settlements: String,
    /// Payment facts from transform: one message per order's change (`OrderPaymentFacts`), keyed
    /// `vendorId:orderId`; messages written before 2026-12-04 hold one fact, keyed
    /// `vendorId:orderId:vendorItemId`.
    pub payment_facts: String,
    /// Records a stage could not process, with the reason in headers.
    pub dead_letter: String,
    /// Compacted: the latest status of each linked account (last successful call, last error), JSON.
    pub account_status: String,
    /// Compacted: how far each account's streams are collected without a gap, JSON.
    pub checkpoints: String,
    /// Compacted: the transform stage's state of each order (its changelog), keyed `vendorId:orderId`,
    /// partitioned like the raw topics.
    pub transform_state: String,
}

impl Topics {
    /// The raw topics ingest writes and the transform reads, co-partitioned by order.
    pub fn raw(&self) -> [&str; 3] {
        [&self.raw_order_sheets, &self.raw_return_requests, &self.raw_revenue]
    }

    /// Every topic of the pipeline.
    pub fn all(&self) -> [&str; 9] {
        [
            &self.raw_order_sheets,
            &self.raw_return_requests,
            &self.raw_revenue,
            &self.raw_settlements,
            &self.payment_facts,
            &self.dead_letter,
            &self.account_status,
            &self.checkpoints,
            &self.transform_state,
        ]
    }
}

impl KafkaConfig {
    pub fn topics(&self) -> Topics {
        let p = &self.topic_prefix;
        Topics {
            raw_order_sheets: format!("{p}raw.ordersheets"),
            raw_return_requests: format!("{p}raw.returnrequests"),
            raw_revenue: format!("{p}raw.revenue"),
            raw_settlements: format!("{p}raw.settlements"),
            payment_facts: format!("{p}facts.payments"),
            dead_letter: format!("{p}deadletter"),
            account_status: format!("{p}ingest.accounts"),
            checkpoints: format!("{p}ingest.checkpoints"),
            transform_state: format!("{p}transform.state"),
        }
    }

    /// Checks what can be checked offline.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.partitions < 1 {
            return Err(InvalidSetting::new(
                "kafka.partitions",
                format!("kafka.partitions {} must be 1 or more", self.partitions),
            ));
        }
        if self.replication_factor < 1 {
            return Err(InvalidSetting::new(
                "kafka.replication_factor",
                format!("kafka.replication_factor {} must be 1 or more", self.replication_factor),
            ));
        }
        // Kafka's legal topic characters; the longest name (prefix + `ingest.checkpoints`) within 249.
        let legal = self.topic_prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !legal || self.topic_prefix.len() > 200 {
            return Err(InvalidSetting::new(
                "kafka.topic_prefix",
                format!("kafka.topic_prefix {:?} must be at most 200 of a-z A-Z 0-9 . _ -", self.topic_prefix),
            ));
        }
        Ok(())
    }

    /// Settings for any client; user `properties` are applied last so they can override every default.
    pub fn client_config(&self) -> ClientConfig {
        self.with_defaults(&[])
    }

    /// At-least-once consumer: offsets are committed explicitly, only after the batch's effect is durable.
    /// It sees only committed records of transactional producers (librdkafka's default, stated here
    /// because the transform's transactions rely on it).
    pub fn consumer_config(&self, group_id: &str) -> ClientConfig {
        self.consumer_config_with(group_id, &[])
    }

    /// Like [`KafkaConfig::consumer_config`], with a stage's own `defaults` added; user `properties`
    /// still override them.
    pub fn consumer_config_with(&self, group_id: &str, defaults: &[(&str, &str)]) -> ClientConfig {
        let consumer = [
            ("group.id", group_id),
            ("isolation.level", "read_committed"),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
        ];
        self.with_defaults(&[&consumer[..], defaults].concat())
    }

    /// Idempotent producer, acknowledged by all in-sync replicas.
    pub fn producer_config(&self) -> ClientConfig {
        self.with_defaults(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("message.timeout.ms", "120000"),
        ])
    }

    fn with_defaults(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}
