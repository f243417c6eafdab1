//! Topics: created when missing (with their partitions and cleanup policy), their leaders awaited,
//! their settings changed, and co-partitioning checked.

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use std::time::Duration;

use super::{KafkaConfig, KafkaSetupError};

/// Creates the topics that do not exist yet (brokers may have auto-creation off, and an auto-created topic
/// would get the broker's partitions and cleanup policy). Existing topics are
/// found through metadata first, so brokers without the CreateTopics API (rdkafka's MockCluster) work
/// when their topics were made another way.
pub async fn ensure_topics(config: &KafkaConfig, names: &[&str]) -> Result<(), KafkaSetupError> {
    create_missing_topics(config, names, false).await
}

/// Like [`ensure_topics`], for topics that keep only the latest record per key (`cleanup.policy=compact`).
pub async fn ensure_compacted_topics(config: &KafkaConfig, names: &[&str]) -> Result<(), KafkaSetupError> {
    create_missing_topics(config, names, true).await
}

/// Like [`ensure_compacted_topics`], with a given partition count (a changelog must match its inputs).
pub async fn ensure_compacted_topics_with(
    config: &KafkaConfig,
    names: &[&str],
    partitions: i32,
) -> Result<(), KafkaSetupError> {
    let config = KafkaConfig { partitions, ..config.clone() };
    create_missing_topics(&config, names, true).await
}

async fn create_missing_topics(config: &KafkaConfig, names: &[&str], compacted: bool) -> Result<(), KafkaSetupError> {
    let existing = existing_topics(config).await?;
    let missing: Vec<&str> = names.iter().copied().filter(|n| !existing.contains(*n)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = config.client_config().create().map_err(KafkaSetupError::Client)?;
    let new_topics: Vec<NewTopic> = missing
        .iter()
        .map(|name| {
            let topic = NewTopic::new(name, config.partitions, TopicReplication::Fixed(config.replication_factor));
            if compacted {
                config
                    .compacted_topic_config
                    .iter()
                    .fold(topic.set("cleanup.policy", "compact"), |topic, (key, value)| topic.set(key, value))
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|source| KafkaSetupError::CreateTopic { topic: missing.join(","), source })?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(%topic, partitions = config.partitions, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaSetupError::CreateTopicRefused { topic, code }),
        }
    }
    wait_for_leaders(config, &missing).await
}

/// Waits until every partition of `names` has a leader. A broker acknowledges CreateTopics before
/// the new partitions' leaders are known everywhere (Apache Kafka answers `NotLeaderForPartition`
/// for a moment), and a stage must not fail on its first read of a topic it just made.
async fn wait_for_leaders(config: &KafkaConfig, names: &[&str]) -> Result<(), KafkaSetupError> {
    let client_config = config.client_config();
    let kafka = config.clone();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config.create().map_err(KafkaSetupError::Client)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        for name in &names {
            loop {
                let metadata = consumer
                    .fetch_metadata(Some(name), Duration::from_secs(10))
                    .map_err(|source| KafkaSetupError::reading(&kafka, name, source))?;
                let led = metadata.topics().iter().all(|t| {
                    t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions().iter().all(|p| p.leader() >= 0 && p.error().is_none())
                });
                if led {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(KafkaSetupError::NoLeader { topic: name.clone() });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| KafkaSetupError::Join)?
}

/// Replaces the settings of `topic` with `settings` (AlterConfigs: settings not named return to the
/// broker's defaults).
pub async fn set_topic_config(
    config: &KafkaConfig,
    topic: &str,
    settings: &[(&str, &str)],
) -> Result<(), KafkaSetupError> {
    let error = |source| KafkaSetupError::CreateTopic { topic: topic.to_string(), source };
    let admin: AdminClient<DefaultClientContext> = config.client_config().create().map_err(KafkaSetupError::Client)?;
    let alter = settings
        .iter()
        .fold(AlterConfig::new(ResourceSpecifier::Topic(topic)), |alter, (key, value)| alter.set(key, value));
    for result in admin.alter_configs(&[alter], &AdminOptions::new()).await.map_err(error)? {
        result.map_err(|(_, code)| KafkaSetupError::CreateTopicRefused { topic: topic.to_string(), code })?;
    }
    Ok(())
}

/// Names of all topics in the cluster. Asks for all of them, not for particular ones, so that a broker
/// with auto-creation on does not create a topic just because we looked.
async fn existing_topics(config: &KafkaConfig) -> Result<std::collections::HashSet<String>, KafkaSetupError> {
    let client_config = config.client_config();
    let kafka = config.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config.create().map_err(KafkaSetupError::Client)?;
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(30))
            .map_err(|source| KafkaSetupError::reading(&kafka, "(all)", source))?;
        if let Some(broken) = metadata.topics().iter().find(|t| t.partitions().is_empty() && t.error().is_none()) {
            return Err(KafkaSetupError::TopicWithoutPartitions { topic: broken.name().to_string() });
        }
        Ok(metadata.topics().iter().map(|t| t.name().to_string()).collect())
    })
    .await
    .map_err(|_| KafkaSetupError::Join)?
}

/// The common partition count of `names`, or an error naming each count when they differ: a stage that
/// joins topics by key (the transform's raw topics and changelog) needs one order's records in the
/// same partition of each.
pub async fn check_co_partitioned(kafka: &KafkaConfig, names: &[&str]) -> Result<i32, KafkaSetupError> {
    let config = kafka.client_config();
    let kafka = kafka.clone();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let counts = tokio::task::spawn_blocking(move || -> Result<Vec<(String, usize)>, KafkaSetupError> {
        let client: BaseConsumer = config.create().map_err(KafkaSetupError::Client)?;
        names
            .into_iter()
            .map(|name| {
                let metadata = client
                    .fetch_metadata(Some(&name), Duration::from_secs(30))
                    .map_err(|source| KafkaSetupError::reading(&kafka, &name, source))?;
                let count = metadata.topics().iter().map(|t| t.partitions().len()).sum();
                Ok((name, count))
            })
            .collect()
    })
    .await
    .map_err(|_| KafkaSetupError::Join)??;
    let mut distinct: Vec<usize> = counts.iter().map(|(_, n)| *n).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() > 1 {
        let counts = counts.iter().map(|(name, n)| format!("{name}: {n}")).collect::<Vec<_>>().join(", ");
        return Err(KafkaSetupError::NotCoPartitioned { counts });
    }
    Ok(counts.first().map_or(1, |(_, n)| *n as i32))
}
