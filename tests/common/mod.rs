//! Shared set-up of the end-to-end tests: the real services, and names unique to each test so tests
//! run in parallel and re-run without interfering.

#![allow(dead_code)]

use coupang_etl::Config;
use coupang_ingest::IngestConfig;
use coupang_load::{ClickHouseConfig, LoadConfig};
use coupang_sim::{SimConfig, Simulator};
use coupang_transform::TransformConfig;
use etl_core::kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::Duration;

/// Addresses of the broker and ClickHouse started by `deploy/services.sh` (the README's test command
/// exports them). Integration tests never fall back to mocks.
pub fn services() -> (String, String) {
    let kafka = std::env::var("COUPANG_ETL_TEST_KAFKA");
    let clickhouse = std::env::var("COUPANG_ETL_TEST_CLICKHOUSE");
    match (kafka, clickhouse) {
        (Ok(k), Ok(c)) => (k, c),
        _ => panic!(
            "end-to-end tests need the real services: run `deploy/test.sh`, or `deploy/services.sh start` \
             and `eval \"$(deploy/services.sh env)\"` before `cargo test`"
        ),
    }
}

/// A name no other test or earlier run uses.
pub fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{test}_{}_{}", std::process::id(), nanos % 1_000_000_000_000)
}

pub fn config(test: &str, sim: SimConfig) -> Config {
    let (brokers, url) = services();
    let id = unique(test);
    Config {
        kafka: KafkaConfig { brokers, topic_prefix: format!("test.{id}."), partitions: 3, ..KafkaConfig::default() },
        clickhouse: ClickHouseConfig { url, database: format!("t_{id}"), ..ClickHouseConfig::default() },
        ingest: IngestConfig { requests_per_second: 8.0, max_attempts: 3, ..IngestConfig::default() },
        transform: TransformConfig {
            group_id: format!("{id}-transform"),
            batch_wait_ms: 100,
            ..TransformConfig::default()
        },
        load: LoadConfig { group_id: format!("{id}-load"), batch_wait_ms: 200, ..LoadConfig::default() },
        sim,
        accounts: Vec::new(),
    }
}

/// A small but varied world: three vendors, ten days, several pages per status.
pub fn small_world() -> SimConfig {
    SimConfig { days: 10, orders_per_day: 25, ..SimConfig::default() }
}

/// Starts the simulator and points the config's ingest and accounts at it.
pub async fn with_simulator(config: &mut Config) -> Simulator {
    let sim = Simulator::start(&config.sim, ([127, 0, 0, 1], 0).into()).await.unwrap();
    config.ingest.base_url = sim.base_url();
    config.accounts = coupang_etl::demo::sim_accounts(config, etl_core::time::now_kst().date_naive());
    sim
}

/// The collection range that covers the simulated payment days (orders can be placed the day before).
pub fn sim_range(config: &Config) -> (chrono::NaiveDate, chrono::NaiveDate) {
    (config.sim.start_date - chrono::Duration::days(1), config.sim.end_date())
}

/// Every message currently in `topic`, read without a consumer group.
pub fn read_topic(kafka: &KafkaConfig, topic: &str) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = kafka.client_config().set("group.id", unique("reader")).create().unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    for partition in metadata.topics()[0].partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10)).unwrap();
        remaining += high - low;
        assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (out.len() as i64) < remaining && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            out.push(message.detach());
        }
    }
    assert_eq!(out.len() as i64, remaining, "read all of {topic}");
    out
}

pub fn header<'a>(message: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    use rdkafka::message::Headers;
    let headers = message.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
}

/// Drops the test's database once it passed (a failing test leaves it for inspection).
pub async fn drop_database(config: &ClickHouseConfig) {
    let _ = reqwest::Client::new()
        .post(&config.url)
        .body(format!("DROP DATABASE IF EXISTS {}", config.database))
        .send()
        .await;
}

/// Polls `check` every 300 ms until it returns true or `timeout` passes; returns the last answer.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Writes `config`'s Kafka, ClickHouse, stage groups and accounts to a TOML file for running the real
/// binary (the processes must share the test's topics, partition count and consumer groups).
pub fn write_config_file(config: &Config, name: &str) -> std::path::PathBuf {
    let mut text = format!(
        "[kafka]\nbrokers = {:?}\ntopic_prefix = {:?}\npartitions = {}\n\n[clickhouse]\nurl = {:?}\ndatabase = {:?}\n\n\
         [transform]\ngroup_id = {:?}\n\n[load]\ngroup_id = {:?}\n\n[ingest]\n\
         base_url = {:?}\nrequests_per_second = {:?}\nbackfill_requests_per_second = {:?}\nmax_attempts = {}\n",
        config.kafka.brokers,
        config.kafka.topic_prefix,
        config.kafka.partitions,
        config.clickhouse.url,
        config.clickhouse.database,
        config.transform.group_id,
        config.load.group_id,
        config.ingest.base_url,
        config.ingest.requests_per_second,
        config.ingest.backfill_requests_per_second,
        config.ingest.max_attempts
    );
    for account in &config.accounts {
        text.push_str(&format!(
            "\n[[accounts]]\nalias = {:?}\nvendor_id = {:?}\naccess_key = {:?}\nsecret_key = {:?}\nkey_issued_on = {}\n",
            account.alias,
            account.vendor_id,
            account.access_key,
            account.secret_key.expose(),
            account.key_issued_on
        ));
    }
    let path = std::env::temp_dir().join(format!("{}.toml", unique(name)));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the real `coupang-etl` binary and returns its stdout (asserting success).
pub fn coupang_etl(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_coupang-etl")).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "coupang-etl {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A simulated world of the last `days` days before today, ending `ends_days_ago` days ago, so that
/// follow mode's look-back window (based on today) covers it.
pub fn recent_world(days: u32, ends_days_ago: i64, orders_per_day: u32) -> SimConfig {
    let today = etl_core::time::now_kst().date_naive();
    let start = today - chrono::Duration::days(i64::from(days) + ends_days_ago);
    SimConfig { start_date: start, days, orders_per_day, ..SimConfig::default() }
}

/// Follow-mode settings for tests: sweep every second over `lookback_days`.
pub fn follow(config: &mut Config, lookback_days: u32) {
    config.ingest.lookback_days = lookback_days;
    config.ingest.poll_interval_secs = 1;
}

/// Starts ingest in follow mode over the config's accounts; cancel the token to stop it.
pub fn spawn_ingest(
    config: &Config,
) -> (etl_core::Shutdown, tokio::task::JoinHandle<Result<(), coupang_ingest::IngestError>>) {
    let shutdown = etl_core::Shutdown::new();
    let (config, token) = (config.clone(), shutdown.clone());
    let task = tokio::spawn(async move {
        let accounts = coupang_ingest::fixed_accounts(config.accounts.clone());
        coupang_ingest::run(&config.ingest, &config.kafka, accounts, token).await
    });
    (shutdown, task)
}
