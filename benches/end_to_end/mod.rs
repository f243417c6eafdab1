//! End-to-end backfill (`cargo bench --bench stages -- --end-to-end …`): a simulated world collected by
//! `coupang-etl backfill`, one process per account, while `coupang-etl transform` and `coupang-etl load`
//! run as their own processes, until ClickHouse holds every fact; then ClickHouse is checked against the
//! simulator's ground truth, to the won.
//!
//! Every part is a separate process started from `target/release/coupang-etl`, as an operator runs it:
//! `sim` (the simulator, its rate limit off), `migrate`, `transform`, `load`, and one `backfill` per account.
//! Kafka and ClickHouse are the running services (`deploy/services.sh`), never the in-process mock broker.
//!
//! This module lives in a directory (`benches/end_to_end/mod.rs`) rather than `benches/end_to_end.rs`:
//! Cargo would take a `.rs` file directly under `benches/` for a bench target of its own, which cannot
//! compile alone and would break `cargo clippy --all-targets`.

use super::{cpu_and_peak, metric_at, BINARY};
use coupang_etl::demo::{compare, sim_accounts};
use coupang_etl::Config;
use coupang_load::summary::{daily_payments, fact_counts};
use coupang_sim::truth::Truth;
use coupang_sim::{SimConfig, SimVendor, World};
use etl_core::account::AccountConfig;
use etl_core::kafka::{dead_letters_by_stage, ensure_compacted_topics, ensure_topics, group_lag, KafkaConfig};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What `--end-to-end` runs over.
pub struct EndToEndArgs {
    pub vendors: usize,
    pub days: u32,
    pub orders_per_day: u32,
    pub partitions: i32,
    /// Backfill processes running at once; `None`: every account at once.
    pub concurrency: Option<usize>,
    /// `ingest.backfill_requests_per_second` (per vendor key). Coupang allows 10; against the simulator on
    /// loopback the config accepts more, so the bench measures the pipeline rather than the API budget.
    pub backfill_requests_per_second: f64,
    /// How many days past the last payment day the backfills run (`--to`). 1: through the simulator's
    /// today (its clock stands at 09:00 the morning after the period), as an operator backfills up to
    /// now; 0 stops at the last payment day, and misses cancels requested the morning after it.
    pub days_after: i64,
}

/// Lag is looked at this often: each look creates a consumer per topic, so not much more often.
const TICK: Duration = Duration::from_millis(500);
/// Once every stage is drained, ClickHouse may show fewer current rows than the truth only for as long
/// as an INSERT acknowledged before the last commit takes to be visible; after this the run has lost facts.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

pub async fn run(args: EndToEndArgs) {
    assert!(
        (1..=26).contains(&args.vendors),
        "--vendors {}: between 1 and 26 (accounts are named demo-a … demo-z)",
        args.vendors
    );
    let id = std::process::id();
    let work_dir = std::env::temp_dir().join(format!("bench-e2e-{id}"));
    std::fs::create_dir_all(&work_dir).expect("a directory for the run's config and process logs");
    let today = etl_core::time::now_kst().date_naive();
    let sim_port = free_port();

    let mut config = Config::default();
    config.kafka.brokers = std::env::var("COUPANG_ETL_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    config.kafka.topic_prefix = format!("bench-e2e.{id}.");
    config.kafka.partitions = args.partitions;
    config.clickhouse.url =
        std::env::var("COUPANG_ETL_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    config.clickhouse.database = format!("bench_e2e_{id}");
    config.transform.group_id = format!("bench-e2e-{id}-transform");
    config.load.group_id = format!("bench-e2e-{id}-load");
    // Wholly in the past (ending 40 days ago), so revenue rows, which a backfill reads only up to
    // yesterday, are all collectable. The simulator's clock stays at 09:00 the morning after the last
    // day, and the ground truth is of that same moment.
    config.sim = SimConfig {
        start_date: today - chrono::Duration::days(i64::from(args.days) + 40),
        days: args.days,
        orders_per_day: args.orders_per_day,
        rate_limit_per_second: 0,
        vendors: sim_vendors(args.vendors),
        ..SimConfig::default()
    };
    config.ingest.base_url = format!("http://127.0.0.1:{sim_port}");
    // Live polling's rate, unused by a backfill: only kept within what the config accepts beside it.
    config.ingest.requests_per_second = args.backfill_requests_per_second;
    config.ingest.backfill_requests_per_second = args.backfill_requests_per_second;
    config.accounts = sim_accounts(&config, today);
    // Processes side by side must not share a port: in the file, any free one (most are given their own).
    config.observability.metrics_listen = "127.0.0.1:0".into();
    // The run's config file: Kafka, ClickHouse, ingest against the simulator, the stages' groups, the
    // simulator's world and the accounts for its vendors.
    let config_file = work_dir.join("coupang-etl.toml");
    std::fs::write(&config_file, config.to_toml()).expect("write the run's config");
    // What the processes will read (the file and any COUPANG_ETL__ overrides): the truth is of that world.
    let config = Config::load(Some(&config_file)).unwrap_or_else(|e| panic!("the bench's own config: {e}"));

    // The world and its truth, in this process, before anything is timed.
    let generating = Instant::now();
    let world = World::generate(&config.sim);
    let truth = Truth::of(&world);
    let boxes: usize = world.vendors.values().map(|v| v.boxes.len()).sum();
    let generated_s = generating.elapsed().as_secs_f64();
    drop(world);
    let expected_items: u64 = truth.daily.values().map(|d| d.items).sum();
    let expected_orders = truth.orders.len();

    // Topics and schema, as a deployment has them before a backfill: `coupang-etl migrate` for ClickHouse.
    let topics = config.kafka.topics();
    let raw = [topics.raw_order_sheets.as_str(), topics.raw_return_requests.as_str(), topics.raw_revenue.as_str()];
    ensure_topics(&config.kafka, &[raw[0], raw[1], raw[2], &topics.payment_facts, &topics.dead_letter])
        .await
        .expect("create the run's topics");
    ensure_compacted_topics(&config.kafka, &[&topics.transform_state, &topics.account_status, &topics.checkpoints])
        .await
        .expect("create the run's compacted topics");
    let migrate = Command::new(BINARY)
        .args(["--config", path_str(&config_file), "migrate"])
        .env("COUPANG_ETL_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("{BINARY}: {e} (run `cargo build --release --bin coupang-etl` first)"));
    assert!(migrate.status.success(), "coupang-etl migrate: {}", String::from_utf8_lossy(&migrate.stderr));

    let services = ServiceCpu::now();
    let machine_before = machine_cpu();
    let mut processes = Processes::new(&work_dir, &config_file);

    // The simulator, until it answers.
    let sim_started = Instant::now();
    let sim_address = format!("127.0.0.1:{sim_port}");
    processes.spawn("simulator", &["sim", "--listen", &sim_address], None);
    let sim_base = format!("http://{sim_address}");
    while reqwest::get(format!("{sim_base}/sim/clock")).await.map_or(true, |r| !r.status().is_success()) {
        processes.sample_all();
        processes.assert_running("simulator");
        assert!(sim_started.elapsed() < Duration::from_secs(600), "the simulator did not answer within 10 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sim_ready_s = sim_started.elapsed().as_secs_f64();

    // Transform and load are services: running before the backfill starts, as in a deployment.
    let transform_metrics = format!("127.0.0.1:{}", free_port());
    let load_metrics = format!("127.0.0.1:{}", free_port());
    processes.spawn("transform", &["transform"], Some(transform_metrics.clone()));
    processes.spawn("load", &["load"], Some(load_metrics.clone()));

    // One backfill per account, from the day before the first payment day (an order created just before
    // midnight is paid the next day) up to the simulator's today: a backfill reads receipts only as far
    // as `--to`, and a cancel can be requested after the last payment day.
    let from = config.sim.start_date - chrono::Duration::days(1);
    let to = config.sim.end_date() + chrono::Duration::days(args.days_after);
    let (from_day, to_day) = (from.to_string(), to.to_string());
    let concurrency = args.concurrency.unwrap_or(config.accounts.len()).max(1);
    let mut waiting: VecDeque<AccountConfig> = config.accounts.iter().cloned().collect();
    let started = Instant::now();
    let mut timeline = Timeline::default();
    let mut max_transform_lag = 0i64;
    let mut last_lag_look = Instant::now();
    let mut drained_since: Option<Instant> = None;
    let current_rows = loop {
        while processes.backfills_running() < concurrency {
            let Some(account) = waiting.pop_front() else { break };
            let name = format!("backfill {}", account.alias);
            let backfill_args = ["backfill", "--account", &account.alias, "--from", &from_day, "--to", &to_day];
            processes.spawn(&name, &backfill_args, Some(format!("127.0.0.1:{}", free_port())));
        }
        tokio::time::sleep(TICK).await;
        processes.sample_all();
        processes.scrape_backfill_metrics().await;
        for name in ["simulator", "transform", "load"] {
            processes.assert_running(name);
        }
        processes.assert_backfills_succeeded();

        if timeline.ingest_done.is_none() {
            if waiting.is_empty() && processes.backfills_running() == 0 {
                timeline.ingest_done = Some(started.elapsed());
            } else {
                // How far behind the transform falls while ingest runs (not every tick: each look costs).
                if last_lag_look.elapsed() >= Duration::from_secs(5) {
                    max_transform_lag =
                        max_transform_lag.max(lag(&config.kafka, &config.transform.group_id, &raw).await);
                    last_lag_look = Instant::now();
                }
                continue;
            }
        }
        // In this order: facts made from the last raw events exist once the transform has committed them.
        if lag(&config.kafka, &config.transform.group_id, &raw).await > 0 {
            drained_since = None;
            continue;
        }
        timeline.transform_caught_up.get_or_insert(started.elapsed());
        if lag(&config.kafka, &config.load.group_id, &[&topics.payment_facts]).await > 0 {
            drained_since = None;
            continue;
        }
        timeline.load_caught_up.get_or_insert(started.elapsed());
        let drained_at = *drained_since.get_or_insert_with(Instant::now);
        let current_rows = fact_counts(&config.clickhouse).await.map_or(0, |c| c.current_rows);
        if current_rows == expected_items {
            timeline.all_in_clickhouse = Some(started.elapsed());
            break current_rows;
        }
        if drained_at.elapsed() > SETTLE_LIMIT {
            break current_rows; // the comparison below says what is missing
        }
    };
    let wall_s = started.elapsed().as_secs_f64();
    let machine = machine_cpu().since(&machine_before);
    let services = services.since();

    // What the stages say about themselves, before they are stopped.
    let transform = StageMetrics::scrape(&transform_metrics).await;
    let load = StageMetrics::scrape(&load_metrics).await;
    let calls = api_calls(&sim_base).await;
    processes.stop_all();

    // The check: ClickHouse against the simulator's ground truth, to the won.
    let daily = daily_payments(&config.clickhouse).await.expect("read the daily payments from ClickHouse");
    let mismatches = compare(&daily, &truth);
    let dead_letters =
        dead_letters_by_stage(&config.kafka, Duration::from_secs(30)).await.expect("read the dead-letter topic");
    let raw_events = topic_messages(&config.kafka, &raw).await;
    let facts_produced = topic_messages(&config.kafka, &[&topics.payment_facts]).await;

    let backfills = processes.backfills();
    let ingest_s = timeline.ingest_done.unwrap_or_default().as_secs_f64();
    let records: u64 = backfills.iter().map(|b| b.records().unwrap_or(0)).sum();
    let per = |n: f64, s: f64| if s > 0.0 { n / s } else { 0.0 };
    let mode = if concurrency >= config.accounts.len() {
        "all at once".to_string()
    } else {
        format!("{concurrency} at a time")
    };
    println!(
        "coupang-etl end-to-end backfill: Apache Kafka at {} ({} partitions), ClickHouse at {}",
        config.kafka.brokers, config.kafka.partitions, config.clickhouse.url
    );
    println!(
        "  world       {} vendors × {} days × ~{} orders/day: {expected_orders} orders, {boxes} shipment boxes, \
         {expected_items} order items (generated in-process in {generated_s:.1} s; the simulator process answered after {sim_ready_s:.1} s)",
        config.sim.vendors.len(),
        config.sim.days,
        config.sim.orders_per_day
    );
    println!(
        "  wall        {wall_s:.1} s from the first backfill's start until ClickHouse held every fact and both groups had \
         no lag: ingest done at {ingest_s:.1} s, transform caught up at {}, load at {}, every fact current at {}",
        at(timeline.transform_caught_up),
        at(timeline.load_caught_up),
        at(timeline.all_in_clickhouse)
    );
    println!(
        "  ingest      {raw_events} raw events into Kafka by {} backfill processes (--from {from} --to {to}, {mode}, \
         {} calls/s per key allowed) in {ingest_s:.1} s = {:.0} events/s; the backfills reported {records} records \
         (boxes seen, receipts and revenue rows sent); {} API calls = {:.3} calls/event ({}); rate-limit wait \
         {:.1} s, retries {:.0} (summed over the backfills)",
        backfills.len(),
        args.backfill_requests_per_second,
        per(raw_events as f64, ingest_s),
        calls.total,
        per(calls.total as f64, raw_events as f64),
        calls.by_status(),
        backfills.iter().map(|b| b.last_metric("coupang_etl_rate_limit_wait_seconds_total")).sum::<f64>(),
        backfills.iter().map(|b| b.last_metric("coupang_etl_api_retries_total")).sum::<f64>(),
    );
    let transform_s = timeline.transform_caught_up.unwrap_or_default().as_secs_f64();
    let load_s = timeline.load_caught_up.unwrap_or_default().as_secs_f64();
    let transform_process = processes.get("transform");
    let load_process = processes.get("load");
    println!(
        "  transform   {:.0} events in → {:.0} facts out; {:.0} events/s over the run (bounded by ingest), \
         {:.0} events/CPU-s; caught up {:.1} s after ingest; most lag seen during ingest {max_transform_lag} events; \
         waited {:.1} s for records; {:.0} batches",
        transform.records_in,
        transform.records_out,
        per(transform.records_in, transform_s),
        per(transform.records_in, transform_process.cpu_s),
        transform_s - ingest_s,
        transform.fetch_wait_s,
        transform.batches
    );
    println!(
        "  load        {:.0} facts in → {:.0} rows out ({facts_produced} messages of orders' facts in Kafka); {:.0} facts/s over the run, \
         {:.0} facts/CPU-s; caught up {:.1} s after the transform; {:.0} INSERTs, {:.0} ms each; waited {:.1} s for records",
        load.records_in,
        load.records_out,
        per(load.records_in, load_s),
        per(load.records_in, load_process.cpu_s),
        load_s - transform_s,
        load.inserts,
        1000.0 * per(load.insert_s, load.inserts),
        load.fetch_wait_s
    );
    println!("  peak RSS and CPU per process (VmHWM and utime+stime from /proc, sampled every {TICK:?} until exit):");
    for process in processes.all() {
        let life = process.ended.map_or(wall_s, |(at, _)| (at - process.started).as_secs_f64());
        let records = process.records().map(|r| format!(", {r} records")).unwrap_or_default();
        println!(
            "    {:<22} peak {:>7.0} MiB  CPU {:>7.1} s over {life:>6.1} s{records}",
            process.name, process.peak_mib, process.cpu_s
        );
    }
    println!(
        "  machine     CPU busy {:.0}% of {} cores over the run (all processes on the machine, the services and \
         anything else running included); Kafka {}, ClickHouse {}",
        100.0 * machine.busy_fraction(),
        machine.cores,
        services.kafka.map_or("?".into(), |s| format!("{s:.1} CPU-s")),
        services.clickhouse.map_or("?".into(), |s| format!("{s:.1} CPU-s")),
    );

    let failures = failures(&mismatches, &dead_letters, current_rows, expected_items, &backfills);
    if !failures.is_empty() {
        // Left in place for inspection: the database, the topics and the processes' logs.
        panic!(
            "END-TO-END CHECK FAILED (database {}, topics {}*, logs in {}):\n{}",
            config.clickhouse.database,
            config.kafka.topic_prefix,
            work_dir.display(),
            failures.join("\n")
        );
    }
    let provisional_days = daily.iter().filter(|d| d.provisional_amount != 0).count();
    println!(
        "  truth       ✓ {} vendor-days, {expected_orders} orders and {expected_items} current fact rows match the \
         simulator's ground truth to the won; no dead letters; {provisional_days} vendor-days still hold provisional \
         amounts (orders not yet confirmed at the simulator's clock, 09:00 the day after the period)",
        truth.daily.len()
    );
    clean_up(&config, &work_dir).await;
}

/// Everything that makes the run wrong, one line each (empty when it is right).
fn failures(
    mismatches: &[coupang_etl::demo::Mismatch],
    dead_letters: &BTreeMap<String, u64>,
    current_rows: u64,
    expected_items: u64,
    backfills: &[&Process],
) -> Vec<String> {
    let mut failures = Vec::new();
    if !mismatches.is_empty() {
        failures.push(format!("{} vendor-days differ from the ground truth (orders, won):", mismatches.len()));
        for m in mismatches.iter().take(40) {
            failures.push(format!(
                "  {} {}: ClickHouse {:?}, truth {:?}",
                m.vendor_id, m.payment_date, m.clickhouse, m.truth
            ));
        }
    }
    if current_rows != expected_items {
        failures
            .push(format!("ClickHouse holds {current_rows} current fact rows; the truth has {expected_items} items"));
    }
    if !dead_letters.is_empty() {
        failures.push(format!("records were dead-lettered, by stage: {dead_letters:?}"));
    }
    for backfill in backfills {
        if backfill.records().is_none() {
            failures.push(format!("{} did not report what it collected: {}", backfill.name, backfill.stdout()));
        }
    }
    failures
}

/// The simulator's vendors: the demo's three, then more in the same pattern (they open nothing real).
fn sim_vendors(count: usize) -> Vec<SimVendor> {
    let mut vendors = coupang_sim::config::default_vendors();
    let template = vendors[0].clone();
    for index in vendors.len()..count {
        let vendor_id = format!("A{:08}", 10_001 + index);
        vendors.push(SimVendor {
            access_key: format!("sim-access-{}", (b'a' + index as u8) as char),
            secret_key: etl_core::secret::Secret::new(format!("sim-secret-for-{vendor_id}")),
            vendor_id,
            // Whatever else a vendor has (no key expiry, any IP), as the demo's first.
            ..template.clone()
        });
    }
    vendors.truncate(count);
    vendors
}

/// A port free now on loopback (the process given it binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on 127.0.0.1")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("the temp directory's path is UTF-8")
}

/// A group's lag summed over topics; a lag that cannot be read counts as not drained.
async fn lag(kafka: &KafkaConfig, group: &str, topics: &[&str]) -> i64 {
    let mut total = 0;
    for topic in topics {
        total += group_lag(kafka, group, topic).await.unwrap_or(i64::MAX / 8);
    }
    total
}

/// Messages written to `topics` (high − low watermark): the lag of a group that never commits.
async fn topic_messages(kafka: &KafkaConfig, topics: &[&str]) -> i64 {
    lag(kafka, &format!("bench-e2e-{}-never-commits", std::process::id()), topics).await
}

#[derive(Default)]
struct Timeline {
    /// Every backfill process has exited.
    ingest_done: Option<Duration>,
    /// After that, the transform group's lag reached 0 on every raw topic.
    transform_caught_up: Option<Duration>,
    /// After that, the load group's lag reached 0.
    load_caught_up: Option<Duration>,
    /// ClickHouse showed as many current fact rows as the truth has items.
    all_in_clickhouse: Option<Duration>,
}

fn at(moment: Option<Duration>) -> String {
    moment.map_or_else(|| "never".into(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// One process of the run, sampled until it exits.
struct Process {
    name: String,
    child: Child,
    pid: u32,
    started: Instant,
    /// Where it serves `/metrics`, for the processes the bench reads them from.
    metrics: Option<String>,
    /// Its stdout and stderr, in files (a pipe nobody reads could block it).
    stdout: PathBuf,
    stderr: PathBuf,
    cpu_s: f64,
    peak_mib: f64,
    /// The last values read from its metrics while it ran (a backfill's vanish with it).
    metrics_seen: BTreeMap<&'static str, f64>,
    ended: Option<(Instant, ExitStatus)>,
}

impl Process {
    /// Reads its CPU time and peak RSS, then reaps it if it has exited. /proc is read first because a
    /// reaped process's entry is gone, and an exited one's VmHWM line too: the peak is the highest seen.
    fn sample(&mut self) {
        if self.ended.is_some() {
            return;
        }
        let (cpu_s, peak_mib) = cpu_and_peak(self.pid);
        self.cpu_s = self.cpu_s.max(cpu_s);
        self.peak_mib = self.peak_mib.max(peak_mib);
        if let Ok(Some(status)) = self.child.try_wait() {
            self.ended = Some((Instant::now(), status));
        }
    }

    /// SIGTERM, as an operator stops a service, then waits for it to finish its batch and exit.
    fn stop(&mut self) {
        self.sample();
        if self.ended.is_none() {
            let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.ended.is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                self.sample();
            }
        }
        if self.ended.is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.ended = Some((Instant::now(), status));
            }
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default().trim().to_string()
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// What a backfill says it collected, from its last line: "…, N records; done".
    fn records(&self) -> Option<u64> {
        let out = self.stdout();
        let line = out.lines().rev().find(|l| l.starts_with("backfill ") && l.ends_with("; done"))?;
        let (before, _) = line.rsplit_once(" records; ")?;
        before.rsplit(' ').next()?.parse().ok()
    }

    fn last_metric(&self, name: &str) -> f64 {
        self.metrics_seen.get(name).copied().unwrap_or(0.0)
    }

    fn is_backfill(&self) -> bool {
        self.name.starts_with("backfill ")
    }
}

impl Drop for Process {
    /// A bench that fails half-way leaves no process of its own behind.
    fn drop(&mut self) {
        if self.ended.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The run's processes, in the order they were started.
struct Processes {
    dir: PathBuf,
    config_file: PathBuf,
    list: Vec<Process>,
}

impl Processes {
    fn new(dir: &Path, config_file: &Path) -> Processes {
        Processes { dir: dir.into(), config_file: config_file.into(), list: Vec::new() }
    }

    fn spawn(&mut self, name: &str, args: &[&str], metrics: Option<String>) {
        let file = |ext: &str| self.dir.join(format!("{}.{ext}", name.replace(' ', "-")));
        let (stdout, stderr) = (file("out"), file("log"));
        let open = |path: &Path| std::fs::File::create(path).expect("a log file for a process");
        let mut command = Command::new(BINARY);
        command
            .args(["--config", path_str(&self.config_file)])
            .args(args)
            .env("COUPANG_ETL_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(open(&stdout))
            .stderr(open(&stderr));
        // Each process its own port: they run side by side (the simulator serves no metrics).
        command.env("COUPANG_ETL__OBSERVABILITY__METRICS_LISTEN", metrics.as_deref().unwrap_or(""));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{BINARY}: {e} (run `cargo build --release --bin coupang-etl` first)"));
        let pid = child.id();
        self.list.push(Process {
            name: name.into(),
            child,
            pid,
            started: Instant::now(),
            metrics,
            stdout,
            stderr,
            cpu_s: 0.0,
            peak_mib: 0.0,
            metrics_seen: BTreeMap::new(),
            ended: None,
        });
    }

    fn sample_all(&mut self) {
        self.list.iter_mut().for_each(Process::sample);
    }

    fn get(&self, name: &str) -> &Process {
        self.list.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no process {name}"))
    }

    fn all(&self) -> &[Process] {
        &self.list
    }

    fn backfills(&self) -> Vec<&Process> {
        self.list.iter().filter(|p| p.is_backfill()).collect()
    }

    fn backfills_running(&self) -> usize {
        self.list.iter().filter(|p| p.is_backfill() && p.ended.is_none()).count()
    }

    /// A service that ended before it was stopped has failed the run.
    fn assert_running(&self, name: &str) {
        let process = self.get(name);
        if let Some((_, status)) = process.ended {
            panic!("{name} exited on its own ({status}):\n{}", process.stderr_tail());
        }
    }

    /// Every backfill exits 0; anything else (3 dead letters, 5 gave up, 6 key rejected…) fails the run.
    fn assert_backfills_succeeded(&self) {
        for process in self.list.iter().filter(|p| p.is_backfill()) {
            if let Some((_, status)) = process.ended.filter(|(_, status)| !status.success()) {
                panic!("{} failed ({status}): {}\n{}", process.name, process.stdout(), process.stderr_tail());
            }
        }
    }

    /// The running backfills' own counters, kept from the last read before each exits.
    async fn scrape_backfill_metrics(&mut self) {
        const KEPT: [&str; 2] = ["coupang_etl_rate_limit_wait_seconds_total", "coupang_etl_api_retries_total"];
        for process in self.list.iter_mut().filter(|p| p.is_backfill() && p.ended.is_none()) {
            let Some(address) = &process.metrics else { continue };
            for name in KEPT {
                if let Some(value) = metric_at(address, name).await {
                    process.metrics_seen.insert(name, value);
                }
            }
        }
    }

    /// The services, stopped the way an operator stops them; the backfills have exited already.
    fn stop_all(&mut self) {
        self.list.iter_mut().rev().for_each(Process::stop);
    }
}

/// A stage's counters from its own `/metrics`.
struct StageMetrics {
    records_in: f64,
    records_out: f64,
    batches: f64,
    fetch_wait_s: f64,
    inserts: f64,
    insert_s: f64,
}

impl StageMetrics {
    async fn scrape(address: &str) -> StageMetrics {
        let read = |name: &'static str| async move { metric_at(address, name).await.unwrap_or(0.0) };
        StageMetrics {
            records_in: read("coupang_etl_records_in_total").await,
            records_out: read("coupang_etl_records_out_total").await,
            batches: read("coupang_etl_batch_records_count").await,
            fetch_wait_s: read("coupang_etl_fetch_wait_seconds_total").await,
            inserts: read("coupang_etl_clickhouse_insert_seconds_count").await,
            insert_s: read("coupang_etl_clickhouse_insert_seconds_sum").await,
        }
    }
}

/// Calls the simulator answered (`GET /sim/stats`), by HTTP status.
struct ApiCalls {
    total: u64,
    statuses: BTreeMap<String, u64>,
}

impl ApiCalls {
    fn by_status(&self) -> String {
        self.statuses.iter().map(|(status, n)| format!("{n} × {status}")).collect::<Vec<_>>().join(", ")
    }
}

async fn api_calls(sim_base: &str) -> ApiCalls {
    let rows: Vec<serde_json::Value> = match reqwest::get(format!("{sim_base}/sim/stats")).await {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut calls = ApiCalls { total: 0, statuses: BTreeMap::new() };
    for row in rows {
        let count = row["count"].as_u64().unwrap_or(0);
        let status = match &row["status"] {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        calls.total += count;
        *calls.statuses.entry(status).or_default() += count;
    }
    calls
}

/// The machine's CPU time from /proc/stat, in clock ticks: (busy, total).
struct MachineCpu {
    busy: u64,
    total: u64,
    cores: usize,
}

impl MachineCpu {
    fn since(&self, before: &MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: self.busy.saturating_sub(before.busy),
            total: self.total.saturating_sub(before.total),
            cores: self.cores,
        }
    }

    fn busy_fraction(&self) -> f64 {
        self.busy as f64 / (self.total as f64).max(1.0)
    }
}

fn machine_cpu() -> MachineCpu {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .map(|line| line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal: idle and iowait are the time nothing ran.
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    let cores = stat.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count();
    MachineCpu { busy: total.saturating_sub(idle), total, cores }
}

/// CPU seconds of the Kafka broker and ClickHouse server over the run, from the pid files
/// `deploy/services.sh` keeps (read only; `None` when they are not ours to find).
struct ServiceCpu {
    kafka: Option<(u32, f64)>,
    clickhouse: Option<(u32, f64)>,
}

struct ServiceCpuUsed {
    kafka: Option<f64>,
    clickhouse: Option<f64>,
}

impl ServiceCpu {
    fn now() -> ServiceCpu {
        let state = std::env::var("COUPANG_ETL_STATE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".state"));
        let service = |name: &str| {
            let pid: u32 = std::fs::read_to_string(state.join(name).join("pid")).ok()?.trim().parse().ok()?;
            let (cpu, _) = cpu_and_peak(pid);
            (cpu > 0.0).then_some((pid, cpu))
        };
        ServiceCpu { kafka: service("kafka"), clickhouse: service("clickhouse") }
    }

    fn since(&self) -> ServiceCpuUsed {
        let used = |service: Option<(u32, f64)>| service.map(|(pid, before)| cpu_and_peak(pid).0 - before);
        ServiceCpuUsed { kafka: used(self.kafka), clickhouse: used(self.clickhouse) }
    }
}

/// After a run that passed: its database, topics and files (the transform's state files too) go.
async fn clean_up(config: &Config, work_dir: &Path) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    let _ = reqwest::Client::new()
        .post(&config.clickhouse.url)
        .body(format!("DROP DATABASE IF EXISTS {}", config.clickhouse.database))
        .send()
        .await;
    if let Ok(admin) = config.kafka.client_config().create::<AdminClient<rdkafka::client::DefaultClientContext>>() {
        let topics = config.kafka.topics();
        let _ = admin.delete_topics(&topics.all(), &AdminOptions::new()).await;
    }
    let _ = std::fs::remove_dir_all(work_dir);
    let _ = std::fs::remove_dir_all(config.transform.state_dir.join(config.kafka.topics().transform_state));
}
