//! The exit codes of the commands that end by themselves, as a scheduler sees them: the real binary
//! against the built-in simulator, Apache Kafka and ClickHouse. A clean range run exits 0; a rejected
//! key 6; requests that keep failing 5; a dead-lettered record 3; a bad config or an unreachable
//! ClickHouse 1; a bad command line 2. `status` gives the same codes as a monitoring check.

mod common;

use common::*;
use coupang_sim::config::FaultConfig;
use coupang_sim::SimConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// What one run of the binary left: its exit code, stdout and stderr.
struct Exit {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Exit {
    /// The last line on stderr: the summary line when the command found something wrong.
    fn last_line(&self) -> &str {
        self.stderr.lines().last().unwrap_or_default()
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            tail(&self.stdout, 20),
            tail(&self.stderr, 30)
        )
    }
}

/// Runs `coupang-etl --config FILE ARGS…` to its end, with `env` added.
fn coupang_etl_with(file: Option<&Path>, args: &[&str], env: &[(&str, String)]) -> Exit {
    let started = Instant::now();
    let mut command = match file {
        Some(file) => coupang_etl_command(file),
        None => Command::new(COUPANG_ETL),
    };
    let output = command.args(args).envs(env.iter().map(|(k, v)| (k, v))).output().unwrap();
    let exit = Exit {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    println!("coupang-etl {} → {:?} in {:.1} s", args.join(" "), exit.code, started.elapsed().as_secs_f64());
    exit
}

fn coupang_etl(file: &Path, args: &[&str]) -> Exit {
    coupang_etl_with(Some(file), args, &[])
}

/// `run`, `ingest` or `backfill` arguments over the simulated period.
fn over_range(config: &coupang_etl::Config, command: &[&str]) -> Vec<String> {
    let (from, to) = sim_range(config);
    let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    args.extend(["--from".into(), from.to_string(), "--to".into(), to.to_string()]);
    args
}

fn run_over_range(file: &Path, config: &coupang_etl::Config, command: &[&str]) -> Exit {
    let args = over_range(config, command);
    coupang_etl(file, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A small world: a few days, a few orders, so each run takes seconds.
fn tiny_world() -> SimConfig {
    SimConfig { days: 2, orders_per_day: 6, ..small_world() }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_range_run_exits_0_and_so_does_status() {
    let mut config = config("exit_clean", tiny_world());
    config.sim.vendors.truncate(2);
    let sim = with_simulator(&mut config).await;
    let file = write_config_file(&config, "exit_clean");

    let run = run_over_range(&file, &config, &["run"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("done in"), "{run}");
    assert!(!run.stderr.contains("exit "), "no summary line after a clean run: {run}");

    let status = coupang_etl(&file, &["status"]);
    assert_eq!(status.code, Some(0), "{status}");
    assert!(status.stdout.contains("dead letters    none"), "{status}");

    // A monitoring check that cannot read a source cannot vouch for anything: 1, naming it.
    let clickhouse_down = [("COUPANG_ETL__CLICKHOUSE__URL", format!("http://127.0.0.1:{}", free_port()))];
    let status = coupang_etl_with(Some(&file), &["status"], &clickhouse_down);
    assert_eq!(status.code, Some(1), "{status}");
    assert_eq!(status.last_line(), "exit 1 (failure): could not read ClickHouse", "{status}");

    let validate = coupang_etl(&file, &["validate"]);
    assert_eq!(validate.code, Some(0), "{validate}");
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    finish(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_exits_6_naming_the_account() {
    let mut config = config("exit_stopped", tiny_world());
    config.sim.vendors.truncate(2);
    let sim = with_simulator(&mut config).await;
    // The simulator answers the second account's calls with 401 "Invalid signature.".
    config.accounts[1].secret_key = etl_core::secret::Secret::new("a-wrong-secret-4b1d");
    let stopped = config.accounts[1].alias.clone();
    let file = write_config_file(&config, "exit_stopped");

    let run = run_over_range(&file, &config, &["run"]);
    assert_eq!(run.code, Some(6), "{run}");
    assert_eq!(run.last_line(), format!("exit 6 (account stopped): 1 account stopped ({stopped})"), "{run}");
    assert!(run.stdout.contains("ERROR") && run.stdout.contains("401"), "the report says why: {run}");

    // The check sees the account stopped from the status ingest published.
    let status = coupang_etl(&file, &["status"]);
    assert_eq!(status.code, Some(6), "{status}");
    assert_eq!(status.last_line(), format!("exit 6 (account stopped): 1 account stopped ({stopped})"), "{status}");

    // A backfill of that account ends on the same 401, with the same code.
    let backfill = run_over_range(&file, &config, &["backfill", "--account", &stopped]);
    assert_eq!(backfill.code, Some(6), "{backfill}");
    assert!(backfill.stderr.contains("401"), "{backfill}");
    assert_eq!(backfill.last_line(), format!("exit 6 (account stopped): 1 account stopped ({stopped})"));

    for exit in [&run, &status, &backfill] {
        assert_no_secret_in(&format!("{}{}", exit.stdout, exit.stderr), &secrets_of(&config), "the output");
    }
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    finish(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_keep_failing_exit_5() {
    // Every call is answered 500: with two attempts per request, each account gives up at its first
    // request, a second or two later. (Persistent 429s end the same way, but only after ingest's
    // cool-down, minutes later.)
    let faults = FaultConfig { server_error_rate: 1.0, ..FaultConfig::default() };
    let mut config = config("exit_gave_up", SimConfig { faults, ..tiny_world() });
    config.sim.vendors.truncate(2);
    config.ingest.max_attempts = 2;
    let sim = with_simulator(&mut config).await;
    let aliases: Vec<String> = config.accounts.iter().map(|a| a.alias.clone()).collect();
    let file = write_config_file(&config, "exit_gave_up");

    let ingest = run_over_range(&file, &config, &["ingest"]);
    assert_eq!(ingest.code, Some(5), "{ingest}");
    assert_eq!(
        ingest.last_line(),
        format!("exit 5 (requests gave up): 2 accounts' requests gave up ({})", aliases.join(", ")),
        "{ingest}"
    );
    assert!(ingest.stdout.contains("still failing after 2 attempts"), "{ingest}");

    let backfill = run_over_range(&file, &config, &["backfill", "--account", &aliases[0]]);
    assert_eq!(backfill.code, Some(5), "{backfill}");
    assert_eq!(
        backfill.last_line(),
        format!("exit 5 (requests gave up): 1 account's requests gave up ({})", aliases[0])
    );
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    finish(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_record_exits_3_and_status_reports_it() {
    let mut config = config("exit_dead_letter", tiny_world());
    config.sim.vendors.truncate(1);
    let sim = with_simulator(&mut config).await;
    let file = write_config_file(&config, "exit_dead_letter");
    // The simulator cannot serve a record that stays unreadable (ingest re-fetches an incomplete one
    // alone, and the single-box answer is whole), so the malformed record is put in the raw topic,
    // where the transform stage dead-letters it.
    let topics = config.kafka.topics();
    etl_core::kafka::ensure_topics(&config.kafka, &[&topics.raw_order_sheets, &topics.dead_letter]).await.unwrap();
    let producer: FutureProducer = config.kafka.producer_config().create().unwrap();
    producer
        .send(
            FutureRecord::to(&topics.raw_order_sheets).key("poison").payload("{\"not\": \"avro\"}"),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(error, _)| error)
        .unwrap();

    let run = run_over_range(&file, &config, &["run"]);
    assert_eq!(run.code, Some(3), "{run}");
    assert_eq!(run.last_line(), "exit 3 (records dead-lettered): 1 record dead-lettered (stage transform 1)", "{run}");

    let status = coupang_etl(&file, &["status"]);
    assert_eq!(status.code, Some(3), "{status}");
    assert!(status.stdout.contains("dead letters    transform 1"), "{status}");
    assert_eq!(status.last_line(), "exit 3 (records dead-lettered): 1 record dead-lettered (stage transform 1)");
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    finish(&config).await;
}

/// Records Coupang serves unreadable in every answer (lists and look-ups) are dead-lettered once each,
/// naming the field by its JSON path and quoting its raw value; every other box still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_api_records_are_dead_lettered_once_each_naming_the_field_and_the_run_exits_3() {
    let world =
        SimConfig { faults: FaultConfig { unreadable_record_rate: 0.2, ..FaultConfig::default() }, ..tiny_world() };
    let mut config = config("exit_unreadable", world);
    config.sim.vendors.truncate(1);
    let vendor_id = config.sim.vendors[0].vendor_id.clone();
    let sim = with_simulator(&mut config).await;
    let unreadable = sim.unreadable_boxes(&vendor_id);
    assert!(!unreadable.is_empty(), "the seed spoils some boxes");
    let file = write_config_file(&config, "exit_unreadable");

    let ingest = run_over_range(&file, &config, &["ingest"]);
    assert_eq!(ingest.code, Some(3), "{ingest}");
    let n = unreadable.len();
    assert!(
        ingest.last_line().contains(&format!("{n} record{} dead-lettered", if n == 1 { "" } else { "s" })),
        "{ingest}"
    );

    let dead_letters = read_topic(&config.kafka, &config.kafka.topics().dead_letter);
    let mut named: Vec<i64> = dead_letters
        .iter()
        .map(|message| {
            assert_eq!(header(message, "dlq.field"), Some("orderItems[0].salesPrice"));
            assert_eq!(header(message, "dlq.value"), Some("\"12,900원\""));
            let record = header(message, "dlq.source.record").unwrap_or_default();
            record.strip_prefix("shipmentBoxId=").and_then(|id| id.parse().ok()).unwrap_or_default()
        })
        .collect();
    named.sort_unstable();
    let mut expected = unreadable.clone();
    expected.sort_unstable();
    assert_eq!(named, expected, "each unreadable box once, no other");
    let raw_boxes = read_topic(&config.kafka, &config.kafka.topics().raw_order_sheets).len();
    let world_boxes = sim.world().vendors[&vendor_id].boxes.len();
    assert!(raw_boxes >= world_boxes - n, "{raw_boxes} raw events for {world_boxes} boxes, {n} unreadable");
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    finish(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_or_an_unreachable_clickhouse_exits_1_and_a_bad_command_line_2() {
    let directory = std::env::temp_dir();
    let typo = directory.join(format!("{}.toml", unique("exit_typo")));
    std::fs::write(&typo, "[ingest]\nmax_attempt = 3\n").unwrap();
    let validate = coupang_etl(&typo, &["validate"]);
    assert_eq!(validate.code, Some(1), "{validate}");
    assert!(validate.stderr.contains("max_attempt"), "the setting is named: {validate}");

    let invalid = directory.join(format!("{}.toml", unique("exit_invalid")));
    std::fs::write(&invalid, "[ingest]\nrequests_per_second = 50.0\n").unwrap();
    let validate = coupang_etl(&invalid, &["validate"]);
    assert_eq!(validate.code, Some(1), "{validate}");
    assert!(validate.stderr.contains("requests_per_second"), "{validate}");

    // A range run checks its config before contacting anything: the same 1.
    let run = coupang_etl(&typo, &["run", "--from", "2026-10-01", "--to", "2026-10-02"]);
    assert_eq!(run.code, Some(1), "{run}");

    let unreachable = directory.join(format!("{}.toml", unique("exit_unreachable")));
    std::fs::write(&unreachable, format!("[clickhouse]\nurl = \"http://127.0.0.1:{}\"\n", free_port())).unwrap();
    let migrate = coupang_etl(&unreachable, &["migrate"]);
    assert_eq!(migrate.code, Some(1), "{migrate}");

    let usage = coupang_etl_with(None, &["run", "--from", "2026-10-01"], &[]);
    assert_eq!(usage.code, Some(2), "clap's usage error: {usage}");
    let usage =
        coupang_etl_with(None, &["backfill", "--account", "a", "--from", "yesterday", "--to", "2026-10-01"], &[]);
    assert_eq!(usage.code, Some(2), "{usage}");

    for file in [typo, invalid, unreachable] {
        std::fs::remove_file(file).unwrap();
    }
}

/// Starts `coupang-etl --config FILE ARGS…`, sends it SIGTERM once it is under way, and waits for it.
async fn terminated_after(file: &Path, args: &[String], after: Duration) -> Exit {
    let child = coupang_etl_command(file)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(after).await;
    let signalled = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(signalled.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let exit = Exit {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    println!("coupang-etl {} (SIGTERM after {after:?}) → {:?}", args.join(" "), exit.code);
    exit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_run_ingest_or_backfill_stopped_by_sigterm_exits_4() {
    // Half a year of orders: minutes of calls at the configured rates, so SIGTERM lands mid-way.
    let mut config = config("exit_interrupted", recent_world(180, 1, 3));
    config.sim.vendors.truncate(1);
    let sim = with_simulator(&mut config).await;
    let file = write_config_file(&config, "exit_interrupted");
    let alias = config.accounts[0].alias.clone();

    let backfill =
        terminated_after(&file, &over_range(&config, &["backfill", "--account", &alias]), Duration::from_secs(3)).await;
    assert_eq!(backfill.code, Some(4), "{backfill}");
    assert!(backfill.stdout.contains("interrupted: run it again to resume"), "{backfill}");
    assert_eq!(backfill.last_line(), "exit 4 (interrupted): interrupted before the end", "{backfill}");

    let ingest = terminated_after(&file, &over_range(&config, &["ingest"]), Duration::from_secs(3)).await;
    assert_eq!(ingest.code, Some(4), "{ingest}");
    assert_eq!(ingest.last_line(), "exit 4 (interrupted): interrupted before the end", "{ingest}");

    let run = terminated_after(&file, &over_range(&config, &["run"]), Duration::from_secs(4)).await;
    assert_eq!(run.code, Some(4), "{run}");
    assert!(run.last_line().contains("interrupted (Ctrl-C or SIGTERM) before the range was complete"), "{run}");
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    finish(&config).await;
}
