//! Each stage's throughput beside its physical limit, measured in one run on one machine
//! (issue #9; method and figures in BENCHMARKS.md).
//!
//! ```sh
//! deploy/services.sh start && eval "$(deploy/services.sh env)"
//! cargo build --release --bin coupang-etl
//! cargo bench --bench stages -- [--broker kafka|mock] [--days N] [--orders-per-day N] [--dump FILE]
//! cargo bench --bench stages -- --transactions      # the transform writes each batch in a transaction
//! cargo bench --bench stages -- --from-dump FILE --copies N --live EVENTS_PER_S [--transactions]
//!                                              # the transform over a live stream (live/mod.rs)
//! cargo bench --bench stages -- --cpu FILE     # the transform's CPU work alone, over dumped events
//! cargo bench --bench stages -- --cpu FILE --by-source-time   # ... ordered by when they happened
//! cargo bench --bench stages -- --cpu FILE --transactions     # ... emitting as in transactions
//! cargo bench --bench stages -- --freshness 32 --orders-per-day 6000   # new orders, real-time clock
//! cargo bench --bench stages -- --ingest-only --broker mock   # API calls per record, per endpoint
//! cargo bench --bench stages -- --end-to-end --vendors 10 --days 31 --orders-per-day 2000
//!                                              # a backfill, every part its own process (end_to_end/mod.rs)
//! ```
//!
//! One run:
//! 1. **ingest**: the simulator (rate limit off, faults off) is collected into the raw topics by
//!    `collect_range`: records/s and API calls per record.
//! 2. **raw read** (the broker's delivery limit): a bare rdkafka consumer that only counts the three raw
//!    topics' messages and bytes.
//! 3. **transform**: `coupang-etl transform` as its own process over the same topics, until its group
//!    has no lag: events/s of wall time and per CPU-second of the process, and its peak RSS.
//! 4. **load**: `coupang-etl load` over the facts the transform made: facts/s and peak RSS.
//! 5. **raw insert** (ClickHouse's limit): the same rows, exported as RowBinary, inserted by
//!    `clickhouse-client` into a fresh table.

use coupang_etl::Config;
use coupang_schemas::{encode, OrderKey};
use coupang_sim::{SimConfig, Simulator};
use coupang_transform::config::TransformConfig;
use coupang_transform::order::{RawEvent, RawStream};
use coupang_transform::rules::Emission;
use coupang_transform::store::{open_state_file, persist, Changelog, PartitionState, Written};
use coupang_transform::{encode_facts, fold_into};
use etl_core::kafka::{ensure_compacted_topics, ensure_topics, group_lag, set_topic_config, KafkaConfig, Topics};
use etl_core::Shutdown;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary's allocator (src/main.rs), so that `--cpu` measures the stage's work as the process does it.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod end_to_end;
mod live;

struct Args {
    broker: String,
    days: u32,
    orders_per_day: u32,
    /// Write the raw events to this file (for `--cpu`).
    dump: Option<std::path::PathBuf>,
    /// Only the transform's CPU work over a dumped file: no broker, no ClickHouse.
    cpu: Option<std::path::PathBuf>,
    /// `--cpu` folds the dumped events by their source time, not in the dump's order (one stream after
    /// the other).
    by_source_time: bool,
    /// Skip ingest: produce copies of a dumped events file (`--from-dump FILE --copies N`).
    from_dump: Option<(std::path::PathBuf, u32)>,
    /// With `--from-dump`: produce the copies at this many events per second while the transform runs
    /// (`live`), instead of before it.
    live: Option<u64>,
    /// Partitions per topic (default: 3 on Kafka, 12 on the mock broker, which keeps ~5 MiB each).
    partitions: Option<i32>,
    /// Freshness of new orders for this many minutes, with the simulator's clock running in real time.
    freshness_minutes: Option<u64>,
    /// The transform writes each batch in one Kafka transaction (`transform.transactions`).
    transactions: bool,
    /// A backfill end to end, every part its own process (`end_to_end`).
    end_to_end: bool,
    /// Simulated vendors (accounts) for `--end-to-end`.
    vendors: usize,
    /// Only step 1 (ingest from the simulator), with the API calls per endpoint: no ClickHouse needed.
    ingest_only: bool,
    /// Backfill processes at once for `--end-to-end` (default: one per account, all at once).
    backfill_concurrency: Option<usize>,
    /// `ingest.backfill_requests_per_second` for `--end-to-end`.
    backfill_requests_per_second: f64,
    /// Days past the last payment day the `--end-to-end` backfills cover (`--to`).
    backfill_days_after: i64,
}

fn args() -> Args {
    let mut args = Args {
        broker: "kafka".into(),
        days: 10,
        orders_per_day: 2_000,
        dump: None,
        cpu: None,
        by_source_time: false,
        partitions: None,
        from_dump: None,
        live: None,
        freshness_minutes: None,
        transactions: false,
        end_to_end: false,
        vendors: 3,
        ingest_only: false,
        backfill_concurrency: None,
        // As `ingest_from_simulator` lifts the limit for a simulator on loopback.
        backfill_requests_per_second: 1_000.0,
        backfill_days_after: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--broker" => args.broker = it.next().expect("--broker kafka|mock"),
            "--days" => args.days = it.next().and_then(|v| v.parse().ok()).expect("--days N"),
            "--orders-per-day" => {
                args.orders_per_day = it.next().and_then(|v| v.parse().ok()).expect("--orders-per-day N")
            }
            "--dump" => args.dump = it.next().map(Into::into),
            "--cpu" => args.cpu = it.next().map(Into::into),
            "--by-source-time" => args.by_source_time = true,
            "--from-dump" => args.from_dump = it.next().map(|p| (p.into(), 1)),
            "--copies" => {
                let copies = it.next().and_then(|v| v.parse().ok()).expect("--copies N");
                args.from_dump = args.from_dump.take().map(|(p, _)| (p, copies));
            }
            "--live" => args.live = Some(it.next().and_then(|v| v.parse().ok()).expect("--live EVENTS_PER_S")),
            "--partitions" => args.partitions = it.next().and_then(|v| v.parse().ok()),
            "--freshness" => args.freshness_minutes = it.next().and_then(|v| v.parse().ok()),
            "--transactions" => args.transactions = true,
            "--end-to-end" => args.end_to_end = true,
            "--ingest-only" => args.ingest_only = true,
            "--vendors" => args.vendors = it.next().and_then(|v| v.parse().ok()).expect("--vendors N"),
            "--backfill-concurrency" => {
                args.backfill_concurrency =
                    Some(it.next().and_then(|v| v.parse().ok()).expect("--backfill-concurrency N"))
            }
            "--backfill-days-after" => {
                args.backfill_days_after = it.next().and_then(|v| v.parse().ok()).expect("--backfill-days-after N")
            }
            "--backfill-rps" => {
                args.backfill_requests_per_second =
                    it.next().and_then(|v| v.parse().ok()).expect("--backfill-rps CALLS_PER_SECOND")
            }
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

/// CPU seconds (user + system) and peak RSS (MiB) of a process, from /proc.
fn cpu_and_peak(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime and stime are the 12th and 13th.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, peak_kib / 1024.0)
}

fn self_cpu() -> f64 {
    cpu_and_peak(std::process::id()).0
}

/// The run's topics go with it: a broker keeps every bench's otherwise, and the changelog's one-second
/// segments alone once took this machine's broker past its open-files limit.
async fn delete_topics(config: &Config) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    if let Ok(admin) = config.kafka.client_config().create::<AdminClient<rdkafka::client::DefaultClientContext>>() {
        let _ = admin.delete_topics(&config.kafka.topics().all(), &AdminOptions::new()).await;
    }
}

fn write_config(config: &Config) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("bench-{}.toml", std::process::id()));
    std::fs::write(&path, config.to_toml()).expect("write the bench config");
    path
}

/// Where the `i`th process of the stage under measurement serves its metrics (one stage runs at a time).
fn stage_metrics(i: usize) -> String {
    format!("127.0.0.1:{}", 19_464 + i)
}

/// The sum of a metric's samples in the stage processes' own `/metrics` (0 when it cannot be read).
async fn stage_metric(processes: usize, name: &str) -> f64 {
    let mut sum = 0.0;
    for i in 0..processes {
        sum += metric_at(&stage_metrics(i), name).await.unwrap_or(0.0);
    }
    sum
}

/// The sum of a metric's samples in the `/metrics` served at `address`; `None` when it cannot be read.
async fn metric_at(address: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{address}/metrics")).await.ok()?.text().await.ok()?;
    Some(
        text.lines()
            .filter(|line| line.split([' ', '{']).next() == Some(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, |sum, value| sum + value), // not `sum()`: an empty one is -0.0
    )
}

/// The release build of the CLI the stage processes run (`cargo build --release --bin coupang-etl`).
const BINARY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/coupang-etl");

fn stage(config_file: &std::path::Path, stage: &str, metrics: &str) -> Child {
    Command::new(BINARY)
        .args(["--config", config_file.to_str().unwrap_or_default(), stage])
        .env("COUPANG_ETL_LOG", "warn")
        .env("COUPANG_ETL__OBSERVABILITY__METRICS_LISTEN", metrics)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{BINARY}: {e} (run `cargo build --release --bin coupang-etl` first)"))
}

/// Waits until the `i`th process of the stage under measurement reports ready, at most 120 s from
/// `spawned`.
async fn wait_until_ready(name: &str, i: usize, spawned: Instant) {
    let ready = format!("http://{}/health/ready", stage_metrics(i));
    while !reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success()) {
        assert!(spawned.elapsed() < Duration::from_secs(120), "{name} never became ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What `group` has not consumed yet of `topics` (a huge number while it cannot be read).
async fn lag_of(config: &Config, group: &str, topics: &[&str]) -> i64 {
    let mut lag = 0;
    for topic in topics {
        lag += group_lag(&config.kafka, group, topic).await.unwrap_or(i64::MAX / 8);
    }
    lag
}

/// Runs a stage process until its group has consumed everything.
async fn run_stage(config: &Config, file: &std::path::Path, name: &str, group: &str, topics: &[&str]) -> StageRun {
    run_stage_processes(config, file, name, group, topics, 1, "-TERM").await
}

/// Runs `processes` processes of a stage in one group until it has consumed everything, then stops
/// them with `signal` (`-TERM`, or `-KILL` to leave what a crash leaves): CPU seconds are their sum,
/// peak RSS the largest.
async fn run_stage_processes(
    config: &Config,
    file: &std::path::Path,
    name: &str,
    group: &str,
    topics: &[&str],
    processes: usize,
    signal: &str,
) -> StageRun {
    let started = Instant::now();
    let mut children: Vec<Child> = (0..processes).map(|i| stage(file, name, &stage_metrics(i))).collect();
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    // Start-up (migrations, topics, connections) until every process reports ready: not a wait for
    // records, not work on them either.
    for i in 0..processes {
        wait_until_ready(name, i, started).await;
    }
    let startup = started.elapsed().as_secs_f64();
    let mut first: Option<(Instant, i64)> = None;
    let mut initial = None;
    let usage = loop {
        // Not more often: each look at the lag is a few requests to the broker under measurement.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let lag = lag_of(config, group, topics).await;
        // Read before the processes are stopped: /proc forgets them once they are reaped.
        let usage = pids
            .iter()
            .map(|pid| cpu_and_peak(*pid))
            .fold((0.0, 0.0), |(cpu, peak), (c, p)| (cpu + c, f64::max(peak, p)));
        let initial = *initial.get_or_insert(lag);
        if first.is_none() && lag < initial {
            first = Some((Instant::now(), lag));
        }
        if lag == 0 {
            break usage;
        }
        for child in &mut children {
            assert!(child.try_wait().ok().flatten().is_none(), "{name} exited early");
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let steady = first.map_or(0.0, |(at, lag)| lag as f64 / at.elapsed().as_secs_f64().max(1e-3));
    // Where the time went, from the stage's own metrics.
    let inserts = (
        stage_metric(processes, "coupang_etl_clickhouse_insert_seconds_count").await,
        stage_metric(processes, "coupang_etl_clickhouse_insert_seconds_sum").await,
    );
    // Waits averaged over the processes: they wait side by side.
    let batches = (
        stage_metric(processes, "coupang_etl_batch_records_count").await,
        stage_metric(processes, "coupang_etl_fetch_wait_seconds_total").await / processes as f64,
    );
    for (pid, child) in pids.iter().zip(&mut children) {
        let _ = Command::new("kill").args([signal, &pid.to_string()]).status();
        let _ = child.wait();
    }
    StageRun { wall, startup, cpu: usage.0, peak_mib: usage.1, steady_per_s: steady, batches, inserts }
}

impl StageRun {
    /// Records per second of the time neither starting up nor waiting for records.
    fn not_waiting_per_s(&self, count: u64) -> f64 {
        count as f64 / (self.wall - self.startup - self.batches.1).max(1e-3)
    }

    fn describe(&self, count: u64, unit: &str) -> String {
        let mut line = format!(
            "{count:>9} {unit} in {:>6.2} s (start-up included) = {:>9.0} {unit}/s; steady {:>9.0} {unit}/s; \
             {:.0} {unit}/CPU-s; peak RSS {:.0} MiB; {:.0} batches of {:.0} on average",
            self.wall,
            count as f64 / self.wall.max(1e-3),
            self.steady_per_s,
            count as f64 / self.cpu.max(1e-3),
            self.peak_mib,
            self.batches.0,
            count as f64 / self.batches.0.max(1.0)
        );
        if self.batches.1 > 0.0 {
            line += &format!(
                "; started in {:.2} s, then waited {:.2} s for records; not waiting: {:.0} {unit}/s",
                self.startup,
                self.batches.1,
                self.not_waiting_per_s(count)
            );
        }
        let (inserts, insert_s) = self.inserts;
        if inserts > 0.0 {
            line += &format!(
                "; {inserts:.0} INSERTs, {:.0} ms each, {:.0}% of the wall time",
                1000.0 * insert_s / inserts,
                100.0 * insert_s / self.wall.max(1e-3)
            );
        }
        line
    }
}

/// Starts the transform over the state files its last run left (or none, with `delete`) and times it
/// from spawn until every partition's state is restored: what a restart costs against the state's size.
async fn restart_transform(config: &Config, file: &std::path::Path, delete: bool) -> String {
    let state = config.transform.state_dir.join(config.kafka.topics().transform_state);
    if delete {
        let _ = std::fs::remove_dir_all(&state);
    }
    let log = std::env::temp_dir().join(format!("bench-{}-restart.log", std::process::id()));
    let started = Instant::now();
    let mut child = Command::new(BINARY)
        .args(["--config", file.to_str().unwrap_or_default(), "transform"])
        .env("COUPANG_ETL_LOG", "info")
        .env("COUPANG_ETL__OBSERVABILITY__METRICS_LISTEN", stage_metrics(0))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("restart log"))
        .spawn()
        .expect("transform");
    let partitions = usize::try_from(config.kafka.partitions).unwrap_or(0);
    let restored = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<String> =
            text.lines().filter(|l| l.contains("state restored from the changelog")).map(String::from).collect();
        if lines.len() >= partitions {
            break lines;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "the transform never restored its state:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let (_, peak) = cpu_and_peak(child.id());
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let field = |line: &str, name: &str| -> String {
        let value = line.split(&format!("{name}=")).nth(1).and_then(|v| v.split_whitespace().next());
        value.unwrap_or_default().trim_matches('"').to_string()
    };
    let sum = |name: &str| restored.iter().map(|l| field(l, name).parse::<u64>().unwrap_or(0)).sum::<u64>();
    let reading: f64 = restored.iter().map(|l| field(l, "seconds").parse::<f64>().unwrap_or(0.0)).sum();
    let mut modes = std::collections::BTreeMap::<String, usize>::new();
    restored.iter().for_each(|l| *modes.entry(field(l, "mode")).or_default() += 1);
    let on_disk: u64 = std::fs::read_dir(&state)
        .map(|dir| dir.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    let _ = std::fs::remove_file(&log);
    format!(
        "{:>9} orders ({:.0} MiB on disk) restored {seconds:>6.2} s after spawn (group join included), \
         {reading:.2} s of it restoring; {:>9} changelog records read; peak RSS {peak:.0} MiB; partitions by mode {modes:?}",
        sum("orders"),
        on_disk as f64 / 1048576.0,
        sum("records")
    )
}

/// A full restore of every changelog partition: (records read, live orders, seconds).
async fn restore_everything(config: &Config) -> (usize, usize, f64) {
    let changelog = Changelog::new(&config.kafka, config.kafka.topics().transform_state);
    let started = Instant::now();
    let (records, orders) = changelog.restore_all(config.kafka.partitions).await.expect("restore");
    (records, orders, started.elapsed().as_secs_f64())
}

/// The transform's restore time against its changelog's size, before and after compaction.
async fn restore_before_and_after_compaction(config: &Config) {
    let before = restore_everything(config).await;
    let topic = config.kafka.topics().transform_state;
    let unlagged = [("cleanup.policy", "compact"), ("segment.ms", "1000"), ("min.cleanable.dirty.ratio", "0.01")];
    set_topic_config(&config.kafka, &topic, &unlagged).await.expect("alter the changelog's settings");
    // Until the record count stops falling: the cleaner never touches the newest segment.
    let mut after = before;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let previous = after.0;
        after = restore_everything(config).await;
        if after.0 < before.0 && after.0 == previous {
            break;
        }
    }
    let line = |(records, orders, seconds): (usize, usize, f64)| {
        format!(
            "{records:>7} records for {orders} orders in {seconds:>5.2} s = {:>7.0} records/s",
            records as f64 / seconds.max(1e-3)
        )
    };
    println!("  restore       before compaction {}\n                after compaction  {}", line(before), line(after));
}

/// One stage process's run over a backlog.
struct StageRun {
    /// From start (group join included) until nothing is left.
    wall: f64,
    /// From start until every process reported ready (before it joins its group).
    startup: f64,
    cpu: f64,
    peak_mib: f64,
    /// Records per second from the first commit to the end (the steady rate, start-up excluded).
    steady_per_s: f64,
    /// Batches committed, and the seconds the stage waited for records, from the stage's metrics.
    batches: (f64, f64),
    /// Acknowledged INSERTs and their total seconds (load), from the stage's metrics.
    inserts: (f64, f64),
}

/// Messages, bytes, wall seconds, CPU seconds.
type ReadStats = (u64, u64, f64, f64);

/// Reads every message of `topics` with a bare consumer; returns (messages, bytes, wall s, CPU s),
/// and the payloads with their topic's index when `keep`.
fn raw_read(kafka: &KafkaConfig, topics: &[&str], keep: bool) -> (ReadStats, Vec<(u8, Vec<u8>)>) {
    let mut kept = Vec::new();
    let stats = read_each(kafka, topics, |index, payload| {
        if keep {
            kept.push((index, payload.to_vec()));
        }
    });
    (stats, kept)
}

/// The facts in the facts topic `topic` (a message holds one order's facts, or one fact), and its
/// messages.
pub(crate) fn facts_in(kafka: &KafkaConfig, topic: &str) -> (usize, u64) {
    let mut facts = 0;
    let (messages, ..) = read_each(kafka, &[topic], |_, payload| {
        facts += coupang_schemas::decode_facts(payload).map_or(0, |read| read.len());
    });
    (facts, messages)
}

/// Reads every message of `topics` with a bare consumer, handing each payload to `each` with its
/// topic's index; returns (messages, bytes, wall s, CPU s).
fn read_each(kafka: &KafkaConfig, topics: &[&str], mut each: impl FnMut(u8, &[u8])) -> ReadStats {
    // Until every partition's position reaches its end, not a count of offsets: a transactional topic
    // (the facts, with `--transactions`) has commit markers that take offsets but are never delivered.
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", "bench-raw-read")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
        for partition in metadata.topics()[0].partitions() {
            let (_, high) =
                consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10)).expect("watermarks");
            ends.insert((topic.to_string(), partition.id()), high);
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).expect("assign");
        }
    }
    let (cpu0, started) = (self_cpu(), Instant::now());
    consumer.assign(&assignment).expect("assign");
    let (mut messages, mut bytes) = (0u64, 0u64);
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) => {
                messages += 1;
                bytes += message.payload().map_or(0, |p| p.len() as u64);
                let index = topics.iter().position(|t| *t == message.topic()).unwrap_or(0) as u8;
                each(index, message.payload().unwrap_or_default());
            }
            // A partition's end (the signal names no topic): drop every partition read to its end.
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {
                for element in consumer.position().expect("position").elements() {
                    let key = (element.topic().to_string(), element.partition());
                    let reached =
                        matches!(element.offset(), Offset::Offset(at) if ends.get(&key).is_some_and(|end| at >= *end));
                    if reached || ends.get(&key) == Some(&0) {
                        ends.remove(&key);
                    }
                }
            }
            _ => {}
        }
    }
    (messages, bytes, started.elapsed().as_secs_f64(), self_cpu() - cpu0)
}

/// The raw events as `[stream u8][length u32 LE][payload]` records.
fn write_events(path: &std::path::Path, events: &[(u8, Vec<u8>)]) {
    let mut out = Vec::new();
    for (stream, payload) in events {
        out.push(*stream);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
    }
    std::fs::write(path, out).expect("write the events file");
}

fn read_events(path: &std::path::Path) -> Vec<(RawStream, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("read the events file");
    let mut events = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= 5 {
        let stream = [RawStream::OrderSheets, RawStream::ReturnRequests, RawStream::Revenue][usize::from(rest[0] % 3)];
        let len = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let end = (5 + len).min(rest.len());
        events.push((stream, rest[5..end].to_vec()));
        rest = &rest[end..];
    }
    events
}

/// The transform stage's CPU work without Kafka, on the stage's own state path: per batch of 2,000 (the
/// default), decode and validate, read each order's state from a state file, fold, rules, keep the
/// event's bytes; then the facts and the changed states' records encoded, and the states written to
/// the file as after a committed batch. Returns the facts, their messages (one per order's change) and
/// the states written.
fn transform_core(events: &[(RawStream, Vec<u8>)], emission: Emission) -> (usize, usize, usize) {
    let dir = std::env::temp_dir().join(format!("bench-cpu-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = open_state_file(&dir, "cpu", 16 << 20, TransformConfig::default().state_segment_bytes())
        .expect("open a state file");
    let mut partition = PartitionState::new(file.clone(), 0);
    let (mut facts_written, mut messages, mut states_written, mut offset) = (0, 0, 0, 0);
    for batch in events.chunks(2_000) {
        let mut facts = 0;
        // Ordered by order id first, as the stage's batch orders its changed states.
        let mut dirty: Vec<(i64, OrderKey)> = Vec::new();
        for (stream, payload) in batch {
            let Ok(Some(event)) = RawEvent::read(*stream, payload) else { continue };
            let folded = fold_into(&mut partition, event, payload, emission).expect("read a state");
            if let Some(key) = folded.changed {
                dirty.push((key.order_id, key));
            }
            // One message per order's facts, as the stage sends them.
            let sent = std::hint::black_box(encode_facts(std::slice::from_ref(&folded.facts)));
            messages += sent.len();
            facts += folded.facts.len();
        }
        dirty.sort_unstable();
        dirty.dedup();
        let records: Vec<(String, Vec<u8>)> = dirty
            .iter()
            .filter_map(|(_, key)| {
                let text = key.text();
                let record = partition.encoded_record(&text, &key.vendor_id, key.order_id).expect("encode a state");
                record.map(|payload| (text, payload))
            })
            .collect();
        let written: Vec<Written<'_>> = records
            .iter()
            .map(|(key, payload)| {
                offset += 1;
                Written { key, payload, offset: offset - 1 }
            })
            .collect();
        persist(&file, [(&mut partition, written)]).expect("write the states");
        facts_written += facts;
        states_written += records.len();
    }
    drop((partition, file));
    let _ = std::fs::remove_dir_all(&dir);
    (facts_written, messages, states_written)
}

/// Roughly as a live stream brings them: a sheet when it was paid (the dump has only its last snapshot),
/// then the receipts and revenue rows that change the order, when they happened. Events that do not
/// decode go first.
fn sort_by_source_time(events: &mut [(RawStream, Vec<u8>)]) {
    events.sort_by_cached_key(|(stream, payload)| match RawEvent::read(*stream, payload) {
        Ok(Some(RawEvent::OrderSheet(sheet))) => sheet.paid_at,
        Ok(Some(event)) => event.source_time(),
        _ => i64::MIN,
    });
}

fn cpu_only(path: &std::path::Path, by_source_time: bool, emission: Emission) {
    let mut events = read_events(path);
    if by_source_time {
        sort_by_source_time(&mut events);
    }
    let bytes: usize = events.iter().map(|(_, p)| p.len()).sum();
    let (cpu0, started) = (self_cpu(), Instant::now());
    let (facts, messages, states) = transform_core(&events, emission);
    let (wall, cpu) = (started.elapsed().as_secs_f64(), self_cpu() - cpu0);
    println!(
        "transform CPU work: {} events ({:.1} MB) in {wall:.2} s (CPU {cpu:.2} s) = {:.0} events/s on one core; {facts} facts in {messages} messages and {states} state records encoded",
        events.len(),
        bytes as f64 / 1e6,
        events.len() as f64 / wall
    );
}

fn clickhouse(query: &str, input: Option<&std::path::Path>) -> (Vec<u8>, f64) {
    let mut command = Command::new("clickhouse-client");
    command.args(["--host", "127.0.0.1", "--query", query]);
    if let Some(path) = input {
        command.stdin(std::fs::File::open(path).expect("input file"));
    }
    let started = Instant::now();
    let output = command.output().expect("clickhouse-client");
    assert!(output.status.success(), "{query}: {}", String::from_utf8_lossy(&output.stderr));
    (output.stdout, started.elapsed().as_secs_f64())
}

/// Collects a simulated world into the raw topics; returns the lines describing the world and ingest.
async fn ingest_from_simulator(config: &mut Config, args: &Args) -> (String, String) {
    let today = etl_core::time::now_kst().date_naive();
    config.sim = SimConfig {
        start_date: today - chrono::Duration::days(i64::from(args.days) + 40),
        days: args.days,
        orders_per_day: args.orders_per_day,
        rate_limit_per_second: 0,
        ..SimConfig::default()
    };
    let generated = Instant::now();
    let sim = Simulator::start(&config.sim, ([127, 0, 0, 1], 0).into()).await.expect("simulator");
    let items: usize = sim.world().vendors.values().flat_map(|v| v.boxes.iter().map(|b| b.lines.len())).sum();
    let generated = generated.elapsed().as_secs_f64();
    config.ingest.base_url = sim.base_url();
    config.ingest.requests_per_second = 1_000.0;
    config.ingest.backfill_requests_per_second = 1_000.0;
    config.accounts = coupang_etl::demo::sim_accounts(config, today);
    let (from, to) = (config.sim.start_date - chrono::Duration::days(1), config.sim.end_date());
    let (cpu0, started) = (self_cpu(), Instant::now());
    let report =
        coupang_ingest::collect_range(&config.ingest, &config.kafka, &config.accounts, from, to, &Shutdown::new())
            .await
            .expect("ingest");
    let ingest_wall = started.elapsed().as_secs_f64();
    let ingest_cpu = self_cpu() - cpu0;
    let (boxes, sheets, receipts, revenue) = report.ingest_totals();
    let records = sheets + receipts + revenue;
    let orders_read_alone: u64 = report.accounts.values().map(|a| a.orders_fetched).sum();
    let stats = sim.stats();
    let calls: u64 = stats.values().sum();
    let mut by_endpoint = std::collections::BTreeMap::<&str, u64>::new();
    for ((_, endpoint, _), n) in &stats {
        *by_endpoint.entry(endpoint.as_str()).or_default() += n;
    }
    let by_endpoint: Vec<String> = by_endpoint.iter().map(|(endpoint, n)| format!("{endpoint} {n}")).collect();
    sim.stop().await;
    let per = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    (
        format!("{boxes} boxes, {items} order items (generated in {generated:.1} s)"),
        format!(
            "{records:>9} records in {ingest_wall:>6.1} s = {:>9.0} records/s ({:.0}/CPU-s of bench process incl. simulator); {calls} API calls = {:.3} calls/record ({}; {orders_read_alone} of them orders read alone); floor 1 call per 50 records = {:.2}× of it",
            per(records, ingest_wall),
            per(records, ingest_cpu),
            calls as f64 / records.max(1) as f64,
            by_endpoint.join(", "),
            calls as f64 * 50.0 / records.max(1) as f64
        ),
    )
}

/// A dumped event as copy number `copy`, under other vendor ids: (topic, key, payload), or `None` when it
/// does not decode.
fn event_copy(
    topics: &Topics,
    (stream, payload): &(RawStream, Vec<u8>),
    copy: u32,
) -> Option<(String, String, Vec<u8>)> {
    use coupang_schemas::{decode, OrderSheetEvent, ReturnRequestEvent, RevenueEvent};
    let vendor = |v: &str| format!("{v}{copy:02}");
    let (topic, key, bytes) = match stream {
        RawStream::OrderSheets => {
            let mut e = decode::<OrderSheetEvent>(payload).ok()?;
            e.vendor_id = vendor(&e.vendor_id);
            (&topics.raw_order_sheets, format!("{}:{}", e.vendor_id, e.order_id), encode(&e))
        }
        RawStream::ReturnRequests => {
            let mut e = decode::<ReturnRequestEvent>(payload).ok()?;
            e.vendor_id = vendor(&e.vendor_id);
            (&topics.raw_return_requests, format!("{}:{}", e.vendor_id, e.order_id), encode(&e))
        }
        RawStream::Revenue => {
            let mut e = decode::<RevenueEvent>(payload).ok()?;
            e.vendor_id = vendor(&e.vendor_id);
            (&topics.raw_revenue, format!("{}:{}", e.vendor_id, e.order_id), encode(&e))
        }
    };
    Some((topic.clone(), key, bytes.expect("encode a copy")))
}

/// Produces `copies` copies of the dumped raw events, each copy under other vendor ids (so they are
/// other orders): 10 copies put 10× the data in flight without a 10× simulator.
async fn produce_copies(config: &Config, path: &std::path::Path, copies: u32) -> (String, String) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let events = read_events(path);
    let producer: FutureProducer = config.kafka.producer_config().create().expect("producer");
    let topics = config.kafka.topics();
    let started = Instant::now();
    let mut sent = 0u64;
    for copy in 0..copies {
        let records: Vec<_> = events.iter().filter_map(|event| event_copy(&topics, event, copy)).collect();
        for chunk in records.chunks(10_000) {
            let deliveries = chunk.iter().map(|(topic, key, bytes)| {
                producer.send(FutureRecord::to(topic).key(key).payload(bytes), Duration::from_secs(120))
            });
            for delivery in futures::future::join_all(deliveries).await {
                delivery.map_err(|(e, _)| e).expect("produce a copy");
            }
        }
        sent += records.len() as u64;
    }
    (
        format!("{} dumped raw events × {copies} copies under other vendor ids", events.len()),
        format!("{sent:>9} records produced directly in {:.1} s (no ingest)", started.elapsed().as_secs_f64()),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    if let Some(path) = &args.cpu {
        // With `--transactions`, the fold emits as a transactional stage does.
        let emission = if args.transactions { Emission::OnContentChange } else { Emission::OnVersionChange };
        cpu_only(path, args.by_source_time, emission);
        return;
    }
    if args.end_to_end {
        assert_eq!(args.broker, "kafka", "--end-to-end runs on Apache Kafka only (deploy/services.sh), never the mock");
        let e2e = end_to_end::EndToEndArgs {
            vendors: args.vendors,
            days: args.days,
            orders_per_day: args.orders_per_day,
            partitions: args.partitions.unwrap_or(3),
            concurrency: args.backfill_concurrency,
            backfill_requests_per_second: args.backfill_requests_per_second,
            days_after: args.backfill_days_after,
        };
        end_to_end::run(e2e).await;
        return;
    }
    let clickhouse_url =
        std::env::var("COUPANG_ETL_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let id = std::process::id();
    let mut config = Config::default();
    config.kafka.topic_prefix = format!("bench.{id}.");
    config.kafka.partitions = 3;
    config.clickhouse.url = clickhouse_url;
    config.clickhouse.database = format!("bench_{id}");
    config.transform.group_id = format!("bench-{id}-transform");
    config.transform.transactions = args.transactions;
    // The changelog rolls a segment every second but is not cleaned during the run (compaction lag
    // 1 h), so the restore measured after the stages reads the whole history; then the cleaner is let
    // in and the restore measured again.
    for (key, value) in
        [("segment.ms", "1000"), ("min.cleanable.dirty.ratio", "0.01"), ("min.compaction.lag.ms", "3600000")]
    {
        config.kafka.compacted_topic_config.insert(key.into(), value.into());
    }
    config.load.group_id = format!("bench-{id}-load");
    // In the config file the stage processes read, any free port (the one measured is given STAGE_METRICS).
    config.observability.metrics_listen = "127.0.0.1:0".into();
    let _mock = if args.broker == "mock" {
        // The mock broker keeps only ~5 MiB per partition: spread the data wider.
        config.kafka.partitions = args.partitions.unwrap_or(12);
        let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        config.kafka.brokers = cluster.bootstrap_servers();
        for topic in config.kafka.topics().all() {
            cluster.create_topic(topic, config.kafka.partitions, 1).expect("mock topic");
        }
        Some(cluster)
    } else {
        config.kafka.brokers = std::env::var("COUPANG_ETL_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
        config.kafka.partitions = args.partitions.unwrap_or(3);
        None
    };
    let topics = config.kafka.topics();
    ensure_topics(
        &config.kafka,
        &[
            &topics.raw_order_sheets,
            &topics.raw_return_requests,
            &topics.raw_revenue,
            &topics.payment_facts,
            &topics.dead_letter,
        ],
    )
    .await
    .expect("topics");
    ensure_compacted_topics(&config.kafka, &[&topics.transform_state, &topics.account_status, &topics.checkpoints])
        .await
        .expect("topics");
    if let Some(events_per_s) = args.live {
        let (path, copies) = args.from_dump.clone().expect("--live needs --from-dump FILE [--copies N]");
        live::run(&config, live::LiveArgs { path, copies, events_per_s }).await;
        return;
    }
    if args.ingest_only {
        let (world_line, ingest_line) = ingest_from_simulator(&mut config, &args).await;
        println!(
            "coupang-etl ingest benchmark: broker {}, {} vendors × {} days × ~{} orders/day",
            args.broker,
            config.accounts.len(),
            args.days,
            args.orders_per_day
        );
        println!("  world: {world_line}\n  ingest        {ingest_line}");
        return;
    }
    coupang_load::migrate(&config.clickhouse).await.expect("migrate");
    if let Some(minutes) = args.freshness_minutes {
        freshness(config, minutes, args.orders_per_day).await;
        return;
    }

    // 1. Ingest from the simulator, its rate limit off; or copies of dumped events, produced directly.
    let (world_line, ingest_line) = match &args.from_dump {
        Some((path, copies)) => produce_copies(&config, path, *copies).await,
        None => ingest_from_simulator(&mut config, &args).await,
    };

    // 2. The broker's delivery limit.
    let raw = [topics.raw_order_sheets.as_str(), topics.raw_return_requests.as_str(), topics.raw_revenue.as_str()];
    let keep = args.dump.is_some();
    let ((messages, bytes, read_wall, read_cpu), kept) = tokio::task::spawn_blocking({
        let kafka = config.kafka.clone();
        let raw = raw.map(String::from);
        move || raw_read(&kafka, &[&raw[0], &raw[1], &raw[2]], keep)
    })
    .await
    .expect("raw read");
    if let Some(path) = &args.dump {
        write_events(path, &kept);
    }
    drop(kept);

    // 3. Transform, 4. load, as their own processes.
    let file = write_config(&config);
    // SIGKILLed at the end, so that the restarts below start from what a crash leaves on disk.
    let t = run_stage_processes(&config, &file, "transform", &config.transform.group_id, &raw, 1, "-KILL").await;
    let restarts = [("after SIGKILL", false), ("after a clean stop", false), ("state files deleted", true)];
    let mut restart_lines = Vec::new();
    for (label, delete) in restarts {
        restart_lines.push(format!("{label:<20} {}", restart_transform(&config, &file, delete).await));
    }
    // The state files are this run's alone (about 1 KB per order, a GB at 30×): they go with it.
    let _ = std::fs::remove_dir_all(config.transform.state_dir.join(&topics.transform_state));
    let (facts, fact_messages) = tokio::task::spawn_blocking({
        let kafka = config.kafka.clone();
        let topic = topics.payment_facts.clone();
        move || facts_in(&kafka, &topic)
    })
    .await
    .expect("facts read");
    let facts = facts as u64;
    let l = run_stage(&config, &file, "load", &config.load.group_id, &[&topics.payment_facts]).await;

    // 5. ClickHouse's own insert rate for the same rows.
    let db = &config.clickhouse.database;
    let dump = std::env::temp_dir().join(format!("bench-{id}.rowbinary"));
    let (rows, _) = clickhouse(&format!("SELECT * FROM {db}.payment_facts FORMAT RowBinary"), None);
    std::fs::write(&dump, &rows).expect("dump");
    let stored: u64 = String::from_utf8_lossy(&clickhouse(&format!("SELECT count() FROM {db}.payment_facts"), None).0)
        .trim()
        .parse()
        .unwrap_or(0);
    let raw_db = format!("bench_raw_{id}");
    let mut raw_config = config.clickhouse.clone();
    raw_config.database = raw_db.clone();
    coupang_load::migrate(&raw_config).await.expect("migrate");
    let (_, insert_wall) = clickhouse(&format!("INSERT INTO {raw_db}.payment_facts FORMAT RowBinary"), Some(&dump));

    let per = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    println!(
        "coupang-etl stage benchmark: broker {}{}, {} vendors × {} days × ~{} orders/day",
        args.broker,
        if args.transactions { " (transform in transactions)" } else { "" },
        config.accounts.len(),
        args.days,
        args.orders_per_day
    );
    println!("  world: {world_line}");
    println!("  ingest        {ingest_line}");
    println!(
        "  raw read      {messages:>9} messages ({:.1} MB) in {read_wall:>6.2} s = {:>9.0} msg/s ({:.0}/CPU-s)",
        bytes as f64 / 1e6,
        per(messages, read_wall),
        per(messages, read_cpu)
    );
    println!(
        "  transform     {}; steady = {:.0}% of the raw read rate",
        t.describe(messages, "events"),
        100.0 * t.steady_per_s / per(messages, read_wall).max(1.0)
    );
    for line in &restart_lines {
        println!("  restart       {line}");
    }
    println!("  facts topic     {facts} facts in {fact_messages} messages (one per order's change)");
    println!("  load          {}", l.describe(facts, "facts"));
    let raw_rate = per(stored, insert_wall).max(1.0);
    println!(
        "  raw insert    {stored:>9} rows   in {insert_wall:>6.2} s = {:>9.0} rows/s (clickhouse-client, RowBinary, {:.1} MB); steady load = {:.0}% of it; load not waiting = {:.0}% of it",
        raw_rate,
        rows.len() as f64 / 1e6,
        100.0 * l.steady_per_s / raw_rate,
        100.0 * l.not_waiting_per_s(facts) / raw_rate
    );

    // 6. The same facts loaded again by 2 and 3 loader processes in one group, each time into a fresh
    // database: how load scales with processes on this machine.
    let mut scaled_dbs = Vec::new();
    for processes in [2, 3] {
        let mut scaled = config.clone();
        scaled.clickhouse.database = format!("bench_{id}_loaders{processes}");
        scaled.load.group_id = format!("bench-{id}-loaders{processes}");
        coupang_load::migrate(&scaled.clickhouse).await.expect("migrate");
        let file = write_config(&scaled);
        let run = run_stage_processes(
            &scaled,
            &file,
            "load",
            &scaled.load.group_id,
            &[&topics.payment_facts],
            processes,
            "-TERM",
        )
        .await;
        println!(
            "  load × {processes}     {}; steady = {:.0}% of the raw insert",
            run.describe(facts, "facts"),
            100.0 * run.steady_per_s / raw_rate
        );
        scaled_dbs.push(scaled.clickhouse.database);
    }

    let _ = std::fs::remove_file(&dump);
    if args.broker != "mock" {
        restore_before_and_after_compaction(&config).await;
    }
    let _ = std::fs::remove_file(&file);
    for db in [db.as_str(), raw_db.as_str()].into_iter().chain(scaled_dbs.iter().map(String::as_str)) {
        clickhouse(&format!("DROP DATABASE IF EXISTS {db}"), None);
    }
    if args.broker != "mock" {
        delete_topics(&config).await;
    }
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct OrderSeen {
    vendor_id: String,
    order_id: i64,
}

/// Freshness: how long after an order becomes visible in the API (the simulator's clock runs in real
/// time, orders show 10 minutes after payment) it is current in ClickHouse, with follow mode at its
/// default settings, and what each vendor spent of its API budget. ClickHouse is polled every second for
/// orders not seen before. The world holds two days (`--orders-per-day` per vendor): with a running
/// clock the simulator draws a day again once a simulated second (a box shows up to 1 s late), and a
/// large world would slow the API, not the pipeline.
/// The freshness bench's calls are also counted without its first minutes, when the start-up sweep
/// catches up on the look-back days, revenue and payouts.
const FRESHNESS_WARM_UP_SECS: u64 = 300;

async fn freshness(mut config: Config, minutes: u64, orders_per_day: u32) {
    let now = etl_core::time::now_kst();
    config.sim = SimConfig {
        start_date: now.date_naive() - chrono::Duration::days(1),
        days: 2,
        orders_per_day,
        time_scale: 1.0,
        clock_start: Some(now.naive_local()),
        ..SimConfig::default()
    };
    let sim = Simulator::start(&config.sim, ([127, 0, 0, 1], 0).into()).await.expect("simulator");
    config.ingest.base_url = sim.base_url();
    config.accounts = coupang_etl::demo::sim_accounts(&config, now.date_naive());
    let ingest = config.ingest.clone();
    let started = chrono::Utc::now();
    let shutdown = Shutdown::new();
    let pipeline = {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        let accounts = coupang_ingest::fixed_accounts(config.accounts.clone());
        tokio::spawn(async move { coupang_etl::pipeline::run_follow(&config, accounts, shutdown).await })
    };
    let client = config.clickhouse.client();
    let mut first_seen: HashMap<(String, i64), chrono::DateTime<chrono::Utc>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(minutes * 60);
    // The calls after the start-up sweep (a cold catch-up of the look-back days, revenue and payouts).
    let warm_up = Instant::now() + Duration::from_secs(FRESHNESS_WARM_UP_SECS);
    let mut calls_after_warm_up: Option<(chrono::DateTime<chrono::Utc>, coupang_sim::RequestStats)> = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if calls_after_warm_up.is_none() && Instant::now() >= warm_up {
            calls_after_warm_up = Some((chrono::Utc::now(), sim.stats()));
        }
        let Ok(rows) =
            client.query("SELECT DISTINCT vendor_id, order_id FROM item_payments").fetch_all::<OrderSeen>().await
        else {
            continue;
        };
        let seen_at = chrono::Utc::now();
        for row in rows {
            first_seen.entry((row.vendor_id, row.order_id)).or_insert(seen_at);
        }
    }
    shutdown.cancel();
    let _ = pipeline.await;
    let ended = chrono::Utc::now();
    let elapsed = (ended - started).num_milliseconds() as f64 / 1000.0;
    let mut calls_per_vendor = std::collections::BTreeMap::<String, (u64, u64)>::new();
    let (warm, at_warm_up) = calls_after_warm_up.unwrap_or((ended, Default::default()));
    for (key, n) in sim.stats() {
        let entry = calls_per_vendor.entry(key.0.clone()).or_default();
        entry.0 += n;
        entry.1 += n - at_warm_up.get(&key).copied().unwrap_or(0);
    }
    let warm_elapsed = ((ended - warm).num_milliseconds() as f64 / 1000.0).max(1e-3);
    // Visible in the API 10 minutes after payment; only orders that became visible after the start.
    let visibility = chrono::Duration::minutes(config.sim.visibility_delay_minutes);
    let world = sim.world();
    let mut ages: Vec<f64> = world
        .vendors
        .values()
        .flat_map(|v| v.boxes.iter().map(move |b| ((v.vendor_id.clone(), b.order_id), b.paid_at)))
        .filter_map(|(key, paid_at)| {
            let visible = paid_at.with_timezone(&chrono::Utc) + visibility;
            let seen = first_seen.get(&key)?;
            (visible > started).then(|| (*seen - visible).num_milliseconds() as f64 / 1000.0)
        })
        .collect();
    sim.stop().await;
    ages.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ages.get(((ages.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    println!(
        "freshness over {minutes} min, {} vendors × ~{orders_per_day} orders/day; new orders polled every {} s over {} min, \
         sweeps of {} days at least {} s apart within {}% of the calls: {} orders became visible and were loaded; \
         p50 {:.0} s, p90 {:.0} s, p99 {:.0} s, max {:.0} s",
        calls_per_vendor.len(),
        ingest.new_orders_poll_secs,
        ingest.new_orders_window_minutes,
        ingest.lookback_days,
        ingest.poll_interval_secs,
        ingest.follow_api_share * 100.0,
        ages.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        ages.last().copied().unwrap_or(f64::NAN)
    );
    for (vendor, (calls, warm_calls)) in &calls_per_vendor {
        let (per_second, warm_per_second) = (*calls as f64 / elapsed, *warm_calls as f64 / warm_elapsed);
        println!(
            "  API calls of {vendor}: {calls} in {elapsed:.0} s = {:.2}% of Coupang's 10 calls/s; \
             after the first {FRESHNESS_WARM_UP_SECS} s: {warm_calls} in {warm_elapsed:.0} s = {:.2}%",
            per_second * 10.0,
            warm_per_second * 10.0
        );
    }
    clickhouse(&format!("DROP DATABASE IF EXISTS {}", config.clickhouse.database), None);
}
