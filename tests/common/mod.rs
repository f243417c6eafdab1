//! Shared set-up of the end-to-end tests: the real services, and names unique to each test so tests
//! run in parallel and re-run without interfering.

#![allow(dead_code)]

pub mod fixtures;

use coupang_etl::Config;
use coupang_ingest::IngestConfig;
use coupang_load::{ClickHouseConfig, LoadConfig};
use coupang_sim::{SimConfig, Simulator};
use coupang_transform::TransformConfig;
use etl_core::kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
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
    captured_logs();
    watchdog(test, Duration::from_secs(600 * u64::from(soak_factor())));
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
        observability: Default::default(),
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

/// Every message currently in `topic`, read without a consumer group, up to each partition's end.
/// The end is the broker's end-of-partition signal, not a count of offsets: a compacted topic has gaps,
/// and a transactional one has commit markers that take offsets but are never delivered.
pub fn read_topic(kafka: &KafkaConfig, topic: &str) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer =
        kafka.client_config().set("group.id", unique("reader")).set("enable.partition.eof", "true").create().unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut unfinished = std::collections::BTreeSet::new();
    for partition in metadata.topics()[0].partitions() {
        unfinished.insert(partition.id());
        assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !unfinished.is_empty() && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => out.push(message.detach()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                unfinished.remove(&partition);
            }
            Some(Err(error)) => panic!("reading {topic}: {error}"),
            None => {}
        }
    }
    assert!(unfinished.is_empty(), "read all of {topic} within 30 s (partitions {unfinished:?} unfinished)");
    out
}

pub fn header<'a>(message: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    use rdkafka::message::Headers;
    let headers = message.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
}

/// Everything the test process logged (every test of the binary, `tracing` and the `log` records of
/// librdkafka), kept to search for secrets. `COUPANG_ETL_TEST_LOG` sets the filter (default `debug`)
/// and also echoes the logs to stderr, for debugging a test.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let echo = std::env::var("COUPANG_ETL_TEST_LOG").ok();
        let filter = tracing_subscriber::EnvFilter::new(echo.as_deref().unwrap_or("debug"));
        let writer = {
            let buffer = buffer.clone();
            move || LogWriter { buffer: buffer.clone(), echo: echo.is_some() }
        };
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(writer).try_init();
        buffer
    })
}

struct LogWriter {
    buffer: Arc<Mutex<Vec<u8>>>,
    echo: bool,
}

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(bytes);
        if self.echo {
            std::io::stderr().write_all(bytes)?;
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every secret of `config`: the accounts' secret keys and the ClickHouse password.
pub fn secrets_of(config: &Config) -> Vec<String> {
    let mut secrets: Vec<String> = config.accounts.iter().map(|a| a.secret_key.expose().to_string()).collect();
    secrets.extend(config.clickhouse.password.iter().map(|p| p.expose().to_string()));
    secrets.retain(|s| !s.is_empty());
    secrets
}

/// Asserts that none of `secrets` appears in `output`; returns how many lines were searched.
pub fn assert_no_secret_in(output: &str, secrets: &[String], whose: &str) -> usize {
    for secret in secrets {
        assert!(!output.contains(secret.as_str()), "a secret leaked into {whose}");
    }
    output.lines().count()
}

/// The end of every end-to-end test: no secret of the config appeared in anything this test process
/// logged so far, and the test's database is dropped (a failing test leaves it for inspection).
pub async fn finish(config: &Config) {
    let logs = logged_text();
    let lines = assert_no_secret_in(&logs, &secrets_of(config), "the test process's logs");
    println!("secrets: none of {} in {lines} log lines of this test process", secrets_of(config).len());
    drop_database(&config.clickhouse).await;
    remove_state_files(config);
}

/// Removes the transform's state files of this test's changelog (under the temp directory by default).
pub fn remove_state_files(config: &Config) {
    let _ = std::fs::remove_dir_all(config.transform.state_dir.join(config.kafka.topics().transform_state));
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

/// Like [`eventually`], but a check that never holds panics with why: the pipeline's own error when it
/// stopped, else the last warnings and errors this test process logged.
pub async fn eventually_or_explain<F, Fut>(
    timeout: Duration,
    what: &str,
    pipeline: &mut tokio::task::JoinHandle<Result<(), coupang_etl::pipeline::PipelineError>>,
    check: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    if eventually(timeout, check).await {
        return;
    }
    if pipeline.is_finished() {
        panic!("{what}: no, the pipeline stopped: {:?}", pipeline.await);
    }
    panic!("{what}: not within {timeout:?}; the last warnings and errors logged:\n{}", logged_warnings(40));
}

/// Everything this test process logged so far (every test of the binary).
fn logged_text() -> String {
    String::from_utf8_lossy(&captured_logs().lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// How many lines this test process logged (every test of the binary) contain `text`.
pub fn logged_lines_with(text: &str) -> usize {
    logged_text().lines().filter(|line| line.contains(text)).count()
}

/// The last `lines` WARN and ERROR lines this test process logged (every test of the binary).
pub fn logged_warnings(lines: usize) -> String {
    let logs = logged_text();
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
    warnings[warnings.len().saturating_sub(lines)..].join("\n")
}

/// Writes `config` to a TOML file for running the real binary (the processes must share the test's
/// topics, partition count, consumer groups and accounts; [`Config::to_toml`] says what it holds), each
/// process serving its metrics on a port of its own.
pub fn write_config_file(config: &Config, name: &str) -> PathBuf {
    let mut config = config.clone();
    config.observability.metrics_listen = "127.0.0.1:0".into();
    let path = std::env::temp_dir().join(format!("{}.toml", unique(name)));
    std::fs::write(&path, config.to_toml()).unwrap();
    path
}

/// The `coupang-etl` binary under test.
pub const COUPANG_ETL: &str = env!("CARGO_BIN_EXE_coupang-etl");

/// `coupang-etl --config CONFIG_FILE`, for the test to add the subcommand, its arguments, environment
/// and stdio, then run or spawn.
pub fn coupang_etl_command(config_file: &Path) -> Command {
    let mut command = Command::new(COUPANG_ETL);
    command.arg("--config").arg(config_file);
    command
}

/// Runs the real `coupang-etl` binary and returns its stdout (asserting success).
pub fn coupang_etl(args: &[&str]) -> String {
    let output = Command::new(COUPANG_ETL).args(args).output().unwrap();
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

/// Follow-mode settings for tests: sweep every second over `lookback_days` (the simulator's budget is
/// not Coupang's).
pub fn follow(config: &mut Config, lookback_days: u32) {
    config.ingest.lookback_days = lookback_days;
    config.ingest.poll_interval_secs = 1;
    config.ingest.follow_api_share = 1.0;
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

/// The last `lines` lines of `text`, for failure messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `deploy/services.sh` with `args` (the tests that stop and start the shared services).
pub fn services_script(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/services.sh");
    let status = std::process::Command::new("bash").arg(script).args(args).status().unwrap();
    assert!(status.success(), "deploy/services.sh {args:?}");
}

/// Stops `service` (`kafka` or `clickhouse`) for `down` and starts it again, on a thread of its own:
/// the outage ends on time whatever the pipeline under test is doing to the async runtime.
pub async fn service_outage(service: &'static str, down: Duration) {
    tokio::task::spawn_blocking(move || {
        services_script(&["stop", service]);
        std::thread::sleep(down);
        services_script(&["start", service]);
    })
    .await
    .unwrap();
}

/// Ends the whole test process if `test` is still running after `limit`, with the tail of what it
/// logged: a hang then fails this test binary in minutes, naming the test, instead of eating CI's
/// time budget in silence.
fn watchdog(test: &str, limit: Duration) {
    let test = test.to_string();
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        let logs = match captured_logs().try_lock() {
            Ok(buffer) => tail(&String::from_utf8_lossy(&buffer), 60),
            Err(_) => "(the log buffer is locked)".to_string(),
        };
        eprintln!("test {test}: still running after {limit:?}; it hangs. Its last log lines:\n{logs}");
        std::process::exit(101);
    });
}

/// How much longer the soak variants run: `COUPANG_ETL_SOAK=N` multiplies the simulated period, the
/// kills and the restarts of the end-to-end tests by N (default 1, the CI size).
pub fn soak_factor() -> u32 {
    std::env::var("COUPANG_ETL_SOAK").ok().and_then(|v| v.parse().ok()).filter(|n| *n >= 1).unwrap_or(1)
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct ItemRow {
    vendor_id: String,
    order_id: i64,
    vendor_item_id: i64,
    quantity: i64,
    cancelled_quantity: i64,
    order_price: i64,
    seller_coupon_discount: i64,
    coupang_coupon_discount: i64,
    provisional: u8,
}

/// Every current fact in ClickHouse's `item_payments` view, by fact key, in the ground truth's terms
/// (shipping excluded: the truth does not say which item row carries a box's fee).
pub async fn item_payments(
    config: &ClickHouseConfig,
) -> std::collections::BTreeMap<(String, i64, i64), coupang_sim::truth::ItemTruth> {
    let client =
        clickhouse::Client::default().with_url(&config.url).with_database(&config.database).with_validation(false);
    let rows = client
        .query(
            "SELECT vendor_id, order_id, vendor_item_id, toInt64(quantity) AS quantity, \
             toInt64(cancelled_quantity) AS cancelled_quantity, order_price, seller_coupon_discount, \
             coupang_coupon_discount, toUInt8(provisional) AS provisional FROM item_payments",
        )
        .fetch_all::<ItemRow>()
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| {
            let item = coupang_sim::truth::ItemTruth {
                units: r.quantity,
                remaining_units: r.quantity - r.cancelled_quantity,
                order_price: r.order_price,
                seller_coupon: r.seller_coupon_discount,
                coupang_coupon: r.coupang_coupon_discount,
                provisional: r.provisional != 0,
            };
            ((r.vendor_id, r.order_id, r.vendor_item_id), item)
        })
        .collect()
}

/// The next number of a seeded xorshift sequence: the tests' "random" moments, repeatable run to run.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One file collecting the stderr of every `coupang-etl` process a test starts (appended, so killed
/// and restarted processes all land there), searched for secrets at the end like the test's own logs.
pub struct ProcessLogs {
    pub path: std::path::PathBuf,
}

impl ProcessLogs {
    pub fn new(test: &str) -> ProcessLogs {
        ProcessLogs { path: std::env::temp_dir().join(format!("{}.log", unique(test))) }
    }

    /// A handle for a child's stderr.
    pub fn stdio(&self) -> std::process::Stdio {
        std::fs::OpenOptions::new().create(true).append(true).open(&self.path).unwrap().into()
    }

    pub fn tail(&self, lines: usize) -> String {
        tail(&std::fs::read_to_string(&self.path).unwrap_or_default(), lines)
    }

    /// Asserts that no secret of `config` is in the processes' logs, prints how much was searched, and
    /// removes the file.
    pub fn assert_no_secret(self, config: &Config) {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let lines = assert_no_secret_in(&text, &secrets_of(config), "a coupang-etl process's logs");
        println!("secrets: none of {} in {lines} log lines of the coupang-etl processes", secrets_of(config).len());
        std::fs::remove_file(&self.path).ok();
    }
}

/// The interpreter of the project's venv, which `deploy/python.sh` exports as `COUPANG_ETL_PYTHON`
/// (the test command runs it), checked to import `module`. Like the services, never optional: without
/// it the test fails and says what to run.
pub fn project_python(module: &str) -> String {
    let python = std::env::var("COUPANG_ETL_PYTHON").unwrap_or_else(|_| {
        panic!(
            "this test needs {module} from the project's venv: run `deploy/test.sh`, or \
             `eval \"$(deploy/python.sh)\"` before `cargo test`"
        )
    });
    match std::process::Command::new(&python).args(["-c", &format!("import {module}")]).output() {
        Ok(output) if output.status.success() => python,
        Ok(output) => panic!(
            "{python} cannot import {module} ({}): run `deploy/python.sh`",
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("no message")
        ),
        Err(error) => panic!("cannot run {python} ({error}): run `deploy/python.sh`"),
    }
}

/// The ```sql blocks of docs/analysts.md.
pub fn analyst_examples() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/analysts.md")).unwrap();
    doc.split("```sql\n").skip(1).filter_map(|block| block.split("```").next()).map(str::to_string).collect()
}

/// Runs `sql` in the configured database over HTTP; its rows as TSV, or ClickHouse's message.
pub async fn sql_tsv(clickhouse: &ClickHouseConfig, sql: &str) -> Result<String, String> {
    let url = format!("{}/?database={}", clickhouse.url, clickhouse.database);
    let response = reqwest::Client::new()
        .post(url)
        .body(format!("{} FORMAT TSV", sql.trim_end()))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let ok = response.status().is_success();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if ok {
        Ok(text)
    } else {
        Err(text)
    }
}

/// The statements of deploy/clickhouse-cluster.sql, comments taken out, placeholders as written.
pub fn cluster_ddl_statements() -> Vec<String> {
    let sql = include_str!("../../deploy/clickhouse-cluster.sql");
    let without_comments: String =
        sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    let statements: Vec<String> =
        without_comments.split(';').filter(|s| !s.trim().is_empty()).map(str::to_string).collect();
    assert_eq!(statements.len(), 3, "database, local table, distributed table");
    statements
}

/// A cluster statement as one server without ZooKeeper can take it, in database `db`: no ON CLUSTER,
/// the replicated engine made a plain one, the Distributed table pointed at `test_shard_localhost`.
pub fn local_form(statement: &str, db: &str) -> String {
    statement
        .replace(" ON CLUSTER {cluster}", "")
        .replace("{db}", db)
        .replace(
            &format!("ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{db}/payment_facts_local', '{{replica}}', version)"),
            "ReplacingMergeTree(version)",
        )
        .replace("Distributed({cluster},", "Distributed(test_shard_localhost,")
}
