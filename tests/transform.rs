//! The transform and load stages against a real broker: killed at random moments, two transforms (and two
//! loaders) sharing the work until one is SIGKILLed, one frozen past its group session and thawed, the
//! changelog compacted under a restore, a restore meeting a transaction a stalled owner left open, and
//! one meeting an older state sent late. The final facts must be exactly what folding every raw event
//! gives (computed here with the pure rules), whatever was interrupted.
mod common;

use common::fixtures;
use common::*;
use coupang_etl::config::Config;
use coupang_etl::demo::compare;
use coupang_load::summary::{daily_payments, fact_counts};
use coupang_schemas::{
    decode, decode_facts, encode, encode_order_facts, ChangeCause, OrderKey, OrderSheetEvent, OrderSheetItem,
    OrderStateRecord, PaymentFact, ReturnRequestEvent, RevenueEvent,
};
use coupang_sim::truth::Truth;
use coupang_sim::SimConfig;
use coupang_transform::order::{OrderState, RawEvent};
use coupang_transform::record::from_record;
use coupang_transform::rules::payment_facts;
use coupang_transform::store::{
    open_state_file, to_record, Changelog, PartitionState, Resend, RestoreMode, Superseded,
};
use etl_core::kafka::{ensure_compacted_topics_with, ensure_topics, group_lag, set_topic_config};
use etl_core::Shutdown;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Fills the raw topics from the simulator (ingest only) and returns the world's truth.
async fn raw_topics_filled(config: &mut Config) -> (coupang_sim::Simulator, Truth) {
    let sim = with_simulator(config).await;
    let truth = Truth::of(&sim.world());
    let (from, to) = sim_range(config);
    coupang_ingest::collect_range(&config.ingest, &config.kafka, &config.accounts, from, to, &Shutdown::new())
        .await
        .unwrap();
    (sim, truth)
}

/// The facts an uninterrupted run must end with: every raw event folded per order, then the rules.
fn reference_facts(config: &Config) -> BTreeMap<String, PaymentFact> {
    let topics = config.kafka.topics();
    let mut events: Vec<RawEvent> = Vec::new();
    for m in read_topic(&config.kafka, &topics.raw_order_sheets) {
        events.extend(decode::<OrderSheetEvent>(m.payload().unwrap_or_default()).ok().map(RawEvent::OrderSheet));
    }
    for m in read_topic(&config.kafka, &topics.raw_return_requests) {
        events.extend(decode::<ReturnRequestEvent>(m.payload().unwrap_or_default()).ok().map(RawEvent::ReturnRequest));
    }
    for m in read_topic(&config.kafka, &topics.raw_revenue) {
        events.extend(decode::<RevenueEvent>(m.payload().unwrap_or_default()).ok().map(RawEvent::Revenue));
    }
    let mut orders: BTreeMap<OrderKey, OrderState> = BTreeMap::new();
    for event in events.iter().filter(|e| e.validate().is_ok() && e.order_id() != 0) {
        orders.entry(event.order_key()).or_default().fold(event);
    }
    orders.values().flat_map(payment_facts).map(|f| (f.kafka_key(), f)).collect()
}

/// What the facts topic says now: per key, the fact with the highest version (the loader's rule), and
/// how many facts it holds.
fn current_facts(config: &Config) -> (BTreeMap<String, PaymentFact>, usize) {
    let messages = read_topic(&config.kafka, &config.kafka.topics().payment_facts);
    let mut current: BTreeMap<String, PaymentFact> = BTreeMap::new();
    let mut sent = 0;
    for m in &messages {
        let payload = m.payload().unwrap_or_default();
        let facts = decode_facts(payload).unwrap();
        assert!(!facts.is_empty(), "a facts message holds a fact");
        let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
        let an_order_s = payload.starts_with(&encode_order_facts("", 0, &[])[..10]);
        for fact in facts {
            let expected_key = if an_order_s { fact.fact_key().order.to_string() } else { fact.kafka_key() };
            assert_eq!(key, expected_key, "an order's facts are keyed by the order, a fact (as before) by itself");
            sent += 1;
            match current.get(&fact.kafka_key()) {
                Some(known) if known.version > fact.version => {}
                _ => {
                    current.insert(fact.kafka_key(), fact);
                }
            }
        }
    }
    (current, sent)
}

/// A `coupang-etl transform` process; `cache_mib` is its state file's cache (0: the least, 1 MiB).
/// Its batches also end once they read 1 KiB of stored states (a few orders' worth), so that most
/// end early and hand their other messages to the next batch: the kills land there too.
fn transform_process(file: &std::path::Path, batch_size: &str, cache_mib: &str, log: Stdio) -> Child {
    coupang_etl_command(file)
        .arg("transform")
        .env("COUPANG_ETL__TRANSFORM__BATCH_SIZE", batch_size)
        .env("COUPANG_ETL__TRANSFORM__BATCH_STATE_KIB", "1")
        .env("COUPANG_ETL__TRANSFORM__STATE_CACHE_MIB", cache_mib)
        .env("COUPANG_ETL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The lines of a transform process's log that say a partition's state was restored.
fn restore_lines(log: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter(|l| l.contains("state restored from the changelog")).map(String::from).collect()
}

async fn transform_lag(config: &Config) -> i64 {
    let topics = config.kafka.topics();
    let mut lag = 0;
    for raw in [&topics.raw_order_sheets, &topics.raw_return_requests, &topics.raw_revenue] {
        lag += group_lag(&config.kafka, &config.transform.group_id, raw).await.unwrap_or(i64::MAX / 4);
    }
    lag
}

/// Keys whose facts differ. Why a fact last changed (`change_cause`, and the amount before) names the
/// path the events took, which the order they arrive in decides: it is left out. In transactions an
/// event that changes nothing an order's facts say emits nothing, so a fact's version and source time
/// are those of its last change, at most the fold's (`transactions`); otherwise exactly the fold's.
fn differences(
    got: &BTreeMap<String, PaymentFact>,
    expected: &BTreeMap<String, PaymentFact>,
    transactions: bool,
) -> Vec<String> {
    let content = |f: &PaymentFact| PaymentFact {
        change_cause: ChangeCause::Unrecorded,
        previous_payment_amount: None,
        version: if transactions { 0 } else { f.version },
        event_time: if transactions { 0 } else { f.event_time },
        ..f.clone()
    };
    let later = |g: &PaymentFact, f: &PaymentFact| g.version > f.version || g.event_time > f.event_time;
    let mut out = Vec::new();
    for (key, fact) in expected {
        match got.get(key) {
            None => out.push(format!("{key}: missing")),
            Some(g) if content(g) != content(fact) || later(g, fact) => {
                out.push(format!("{key}: got {g:?}, expected {fact:?}"))
            }
            _ => {}
        }
    }
    out.extend(got.keys().filter(|k| !expected.contains_key(*k)).map(|k| format!("{k}: unexpected")));
    out.truncate(5);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_transform_at_random_moments_changes_no_fact() {
    transform_killed_at_random_moments(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_transactional_transform_at_random_moments_changes_no_fact() {
    transform_killed_at_random_moments(true).await;
}

async fn transform_killed_at_random_moments(transactions: bool) {
    let name = if transactions { "tkill_tx" } else { "tkill" };
    let mut config = config(name, SimConfig { days: 12 * soak_factor(), orders_per_day: 30, ..small_world() });
    config.transform.transactions = transactions;
    let (sim, truth) = raw_topics_filled(&mut config).await;
    let expected = reference_facts(&config);
    let file = write_config_file(&config, name);
    let logs = ProcessLogs::new(name);

    // SIGKILL four times at pseudo-random moments (fixed seed), each time after some progress.
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut kills = 0;
    for _ in 0..4 * soak_factor() {
        // The least cache: batches read their orders from the state file, which a SIGKILL leaves at
        // its last durable commit.
        let mut child = transform_process(&file, "10", "0", logs.stdio());
        tokio::time::sleep(Duration::from_millis(1_000 + xorshift(&mut rng) % 2_000)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        // The broker notices the dead member after the session timeout (10 s) and only then hands
        // its partitions to the next process.
        tokio::time::sleep(Duration::from_secs(12)).await;
        if transform_lag(&config).await == 0 {
            break;
        }
    }
    // The last process logs apart, so that its own restores can be told from the killed ones'.
    let partitions = usize::try_from(config.kafka.partitions).unwrap();
    let last_log = std::env::temp_dir().join(format!("{}-last.log", unique(name)));
    let mut last = transform_process(&file, "10", "0", Stdio::from(std::fs::File::create(&last_log).unwrap()));
    // Generous: the test's other processes share the machine.
    let drained = eventually(Duration::from_secs(400), || async {
        restore_lines(&last_log).len() == partitions && transform_lag(&config).await == 0
    })
    .await;
    // A clean stop leaves the state file complete: the next start reads nothing from the changelog.
    Command::new("kill").arg("-TERM").arg(last.id().to_string()).status().unwrap();
    last.wait().unwrap();
    assert!(
        drained,
        "the last transform process caught up:\n{}",
        std::fs::read_to_string(&last_log).unwrap_or_default()
    );
    let restart_log = std::env::temp_dir().join(format!("{}-restart.log", unique(name)));
    let mut restarted = transform_process(&file, "10", "0", Stdio::from(std::fs::File::create(&restart_log).unwrap()));
    let restored =
        eventually(Duration::from_secs(90), || async { restore_lines(&restart_log).len() == partitions }).await;
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    let restores = restore_lines(&restart_log);
    assert!(restored, "the restarted process restored every partition: {restores:?}");
    for line in &restores {
        assert!(line.contains("mode=reuse") && line.contains("records=0"), "a clean restart read again: {line}");
    }
    for log in [last_log, restart_log] {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_no_secret_in(&text, &secrets_of(&config), "the transform processes' logs");
        let _ = std::fs::remove_file(log);
    }

    let (got, emitted) = current_facts(&config);
    assert_eq!(differences(&got, &expected, transactions), Vec::<String>::new());
    // Then through load into ClickHouse: the views equal the simulator's truth.
    let shutdown = Shutdown::new();
    let load = {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        tokio::spawn(async move { coupang_load::run(&config.load, &config.clickhouse, &config.kafka, shutdown).await })
    };
    assert!(eventually(Duration::from_secs(60), || async { load_lag(&config).await == 0 }).await);
    shutdown.cancel();
    load.await.unwrap().unwrap();
    let summary = assert_loaded_exactly(&config, &truth, &expected).await;
    println!("transactions {transactions}: {kills} kills; {} facts identical to an uninterrupted fold ({emitted} facts emitted); {summary}", expected.len());
    logs.assert_no_secret(&config);
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    finish(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_work_and_state_follows_its_partitions_when_one_is_killed() {
    two_processes_one_killed(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_transactional_processes_share_the_work_and_state_follows_its_partitions_when_one_is_killed() {
    two_processes_one_killed(true).await;
}

async fn two_processes_one_killed(transactions: bool) {
    let mut config = config("rebalance", SimConfig { days: 12, orders_per_day: 30, ..small_world() });
    config.transform.transactions = transactions;
    let (sim, _truth) = raw_topics_filled(&mut config).await;
    let expected = reference_facts(&config);
    let file = write_config_file(&config, "rebalance");
    let log_b = std::env::temp_dir().join(format!("{}-b.log", unique("rebalance")));

    // A starts alone; B joins (rebalance: partitions split); then A is SIGKILLed mid-batch: it neither
    // finishes its batch nor leaves the group. The broker notices when A's session times out (10 s)
    // and rebalances: B takes all, restoring A's partitions' state from the changelog.
    // Tiny batches, so that A still has work in its partitions when it dies.
    let mut a = transform_process(&file, "2", "1", Stdio::null());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut b = transform_process(&file, "2", "1", Stdio::from(std::fs::File::create(&log_b).unwrap()));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let lag_when_a_died = transform_lag(&config).await;
    a.kill().unwrap();
    a.wait().unwrap();
    // One line per partition restored: B restores its own share on joining, then A's partitions, with
    // the orders A had folded, when they move to it.
    let restored_lines = || {
        let partitions: std::collections::BTreeSet<String> = restore_lines(&log_b)
            .iter()
            .filter_map(|line| line.split("partition=").nth(1)?.split_whitespace().next().map(String::from))
            .collect();
        partitions.len()
    };
    let drained =
        eventually(Duration::from_secs(150), || async { restored_lines() == 3 && transform_lag(&config).await == 0 })
            .await;
    b.kill().unwrap();
    b.wait().unwrap();
    let log = std::fs::read_to_string(&log_b).unwrap_or_default();
    assert!(drained, "B took over every partition and caught up alone:\n{log}");
    let restored: Vec<(String, u64)> = restore_lines(&log_b)
        .iter()
        .filter_map(|line| {
            let field =
                |name: &str| line.split(&format!("{name}=")).nth(1)?.split_whitespace().next().map(String::from);
            Some((field("partition")?, field("orders")?.parse().ok()?))
        })
        .collect();
    let restores = restored.len();
    let partitions: std::collections::BTreeSet<&String> = restored.iter().map(|(p, _)| p).collect();
    assert_eq!(partitions.len(), 3, "B ends up restoring every partition:\n{log}");
    assert!(restored.iter().skip(1).any(|(_, orders)| *orders > 0), "A's state moved to B:\n{log}");
    // With transactions, the batch A left open holds back read_committed readers (this one too) until
    // the broker aborts it: up to the transaction timeout (15 s) plus the broker's abort sweep.
    let complete = || async { differences(&current_facts(&config).0, &expected, transactions).is_empty() };
    eventually(Duration::from_secs(if transactions { 60 } else { 0 }), complete).await;
    let (got, emitted) = current_facts(&config);
    assert_eq!(differences(&got, &expected, transactions), Vec::<String>::new());
    println!(
        "transactions {transactions}: lag when A was killed: {lag_when_a_died}; B restored partition state {restores} times; {} facts exact \
         ({emitted} facts emitted)",
        expected.len()
    );
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    std::fs::remove_file(log_b).ok();
    remove_state_files(&config);
}

/// What the changelog says last for each order, as facts: what a process restoring it would go on from.
fn changelog_facts(config: &Config) -> BTreeMap<String, PaymentFact> {
    let mut latest: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for m in read_topic(&config.kafka, &config.kafka.topics().transform_state) {
        latest.insert(m.key().unwrap_or_default().to_vec(), m.payload().unwrap_or_default().to_vec());
    }
    let states = latest.values().map(|payload| from_record(decode::<OrderStateRecord>(payload).unwrap()).unwrap());
    states.flat_map(|state| payment_facts(&state)).map(|f| (f.kafka_key(), f)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_frozen_past_its_session_then_thawed_changes_no_fact_and_no_state() {
    transform_frozen_and_thawed(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_transform_frozen_past_its_session_then_thawed_changes_no_fact_and_no_state() {
    transform_frozen_and_thawed(true).await;
}

/// A process frozen whole (SIGSTOP: a VM paused, a host swapping) mid-batch for longer than the group's
/// session, then thawed: its partitions moved to B meanwhile, and B folded newer snapshots of every
/// order. What A then sends late (the rest of its batch) must neither change a fact nor stay the last
/// state of an order on the changelog, where the next restore of that order would go on from it. When
/// A thaws, B is folding newer snapshots of half the orders, so B writes after A's late states too.
async fn transform_frozen_and_thawed(transactions: bool) {
    let name = if transactions { "freeze_tx" } else { "freeze" };
    let mut config = config(name, SimConfig { days: 24, orders_per_day: 30, ..small_world() });
    config.transform.transactions = transactions;
    let (sim, _truth) = raw_topics_filled(&mut config).await;
    let sheets = read_topic(&config.kafka, &config.kafka.topics().raw_order_sheets);
    let file = write_config_file(&config, name);
    let logs = ProcessLogs::new(name);

    // Tiny batches and the least cache: the two processes are still busy when A freezes.
    let mut a = transform_process(&file, "2", "0", logs.stdio());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut b = transform_process(&file, "2", "0", logs.stdio());
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(transactions);
    tokio::time::sleep(Duration::from_millis(2_000 + xorshift(&mut rng) % 1_000)).await;
    let lag_when_frozen = transform_lag(&config).await;
    let frozen = Frozen::stop(&a);
    // Past the session (10 s): B takes A's partitions, and folds a newer snapshot of every order.
    tokio::time::sleep(Duration::from_secs(13)).await;
    produce_newer_snapshots(&config, &sheets, 1, |_| true);
    let b_alone = eventually(Duration::from_secs(300), || async { transform_lag(&config).await == 0 }).await;
    produce_newer_snapshots(&config, &sheets, 2, |order_id| order_id % 2 == 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(frozen);
    // A's failed commit restarts its stage, which rejoins: another rebalance, and restores.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = eventually(Duration::from_secs(180), || async {
        transform_lag(&config).await == 0
            && differences(&changelog_facts(&config), &reference_facts(&config), false).is_empty()
    })
    .await;
    for child in [&mut a, &mut b] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(lag_when_frozen > 0, "A was frozen with work in hand");
    assert!(b_alone, "B caught up alone while A was frozen:\n{}", logs.tail(40));
    let expected = reference_facts(&config);
    let (got, emitted) = current_facts(&config);
    assert_eq!(differences(&got, &expected, transactions), Vec::<String>::new(), "facts");
    let states = changelog_facts(&config);
    assert_eq!(differences(&states, &expected, false), Vec::<String>::new(), "the changelog's last states");
    assert!(settled);
    let log = logs.tail(100_000);
    let (resent, foreign) = (log.matches("sent it again").count(), log.matches("another process wrote").count());
    println!(
        "transactions {transactions}: A frozen for 13 s with a lag of {lag_when_frozen}, while B folded a newer \
         snapshot of each of {} sheets; {} facts exact ({emitted} facts emitted), and every order's last state \
         on the changelog ({resent} restores sent a newer state again; {foreign} batches met another \
         process's writes)",
        sheets.len(),
        expected.len()
    );
    logs.assert_no_secret(&config);
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    finish(&config).await;
}

/// A process stopped with SIGSTOP, continued when this is dropped (a failing test leaves none frozen).
struct Frozen(u32);

impl Frozen {
    fn stop(child: &Child) -> Frozen {
        Command::new("kill").arg("-STOP").arg(child.id().to_string()).status().unwrap();
        Frozen(child.id())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-CONT").arg(self.0.to_string()).status();
    }
}

/// Produces, for each of `sheets` whose order `pick` takes, the same sheet collected `hours` later and
/// delivered then: a newer snapshot of the order (a higher version).
fn produce_newer_snapshots(config: &Config, sheets: &[OwnedMessage], hours: i64, pick: impl Fn(i64) -> bool) {
    let later = hours * 3_600_000;
    let topic = config.kafka.topics().raw_order_sheets;
    let producer: BaseProducer = config.kafka.producer_config().create().unwrap();
    for m in sheets {
        let mut sheet: OrderSheetEvent = decode(m.payload().unwrap_or_default()).unwrap();
        if !pick(sheet.order_id) {
            continue;
        }
        let newest = coupang_transform::order::EventRef::OrderSheet(&sheet).source_time();
        (sheet.delivered_at, sheet.collected_at) = (Some(newest + later), sheet.collected_at + later);
        let payload = encode(&sheet).unwrap();
        let record = BaseRecord::to(&topic).partition(m.partition()).key(m.key().unwrap_or_default()).payload(&payload);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Runs the transform in-process until every raw event is folded: the facts topic is complete.
async fn facts_topic_filled(config: &Config) {
    let shutdown = Shutdown::new();
    let transform = {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        tokio::spawn(async move { coupang_transform::run(&config.transform, &config.kafka, shutdown).await })
    };
    assert!(eventually(Duration::from_secs(120), || async { transform_lag(config).await == 0 }).await);
    shutdown.cancel();
    transform.await.unwrap().unwrap();
}

/// A `coupang-etl load` process with tiny batches, so that it is still loading when it is killed.
fn loader_process(file: &std::path::Path, log: Stdio) -> Child {
    coupang_etl_command(file)
        .arg("load")
        .env("COUPANG_ETL__LOAD__BATCH_ROWS", "10")
        .env("COUPANG_ETL_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn load_lag(config: &Config) -> i64 {
    let facts_topic = config.kafka.topics().payment_facts;
    group_lag(&config.kafka, &config.load.group_id, &facts_topic).await.unwrap_or(i64::MAX)
}

/// ClickHouse's views equal the simulator's truth, with one current row per fact key.
async fn assert_loaded_exactly(config: &Config, truth: &Truth, expected: &BTreeMap<String, PaymentFact>) -> String {
    let daily = daily_payments(&config.clickhouse).await.unwrap();
    assert_eq!(compare(&daily, truth), vec![]);
    let counts = fact_counts(&config.clickhouse).await.unwrap();
    assert_eq!(counts.current_rows, expected.len() as u64, "one current row per key");
    format!(
        "{} vendor-days exact, {} current rows ({} stored versions)",
        truth.daily.len(),
        counts.current_rows,
        counts.stored_rows
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_loader_at_random_moments_loses_and_duplicates_nothing() {
    let mut config = config("lkill", SimConfig { days: 12 * soak_factor(), orders_per_day: 30, ..small_world() });
    let (sim, truth) = raw_topics_filled(&mut config).await;
    let expected = reference_facts(&config);
    // Facts first (transform in-process), then the loader as a real process, killed with SIGKILL.
    facts_topic_filled(&config).await;
    let file = write_config_file(&config, "lkill");
    let logs = ProcessLogs::new("lkill");
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut kills = 0;
    for _ in 0..3 * soak_factor() {
        let mut child = loader_process(&file, logs.stdio());
        // Joining the group takes about 3 s: kill while it loads.
        tokio::time::sleep(Duration::from_millis(3_500 + xorshift(&mut rng) % 2_500)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        // A killed member's partitions move on when its session expires (10 s).
        tokio::time::sleep(Duration::from_secs(12)).await;
    }
    let mut last = loader_process(&file, logs.stdio());
    let loaded = eventually(Duration::from_secs(180), || async { load_lag(&config).await == 0 }).await;
    last.kill().unwrap();
    last.wait().unwrap();
    assert!(loaded, "the last loader caught up");
    let summary = assert_loaded_exactly(&config, &truth, &expected).await;
    println!("loader killed {kills} times: {summary}");
    logs.assert_no_secret(&config);
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    finish(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_loaders_share_the_facts_and_the_survivor_takes_over_when_one_is_killed() {
    let mut config = config("l2", SimConfig { days: 12, orders_per_day: 30, ..small_world() });
    let (sim, truth) = raw_topics_filled(&mut config).await;
    let expected = reference_facts(&config);
    facts_topic_filled(&config).await;
    let file = write_config_file(&config, "l2");
    let logs = ProcessLogs::new("l2");
    // A and B share the facts topic's partitions; A is SIGKILLed mid-batch. Only after A's session
    // times out does the broker give A's partitions to B, which loads from A's last committed offsets.
    let lag_before = load_lag(&config).await;
    let mut a = loader_process(&file, logs.stdio());
    let mut b = loader_process(&file, logs.stdio());
    // Kill A as soon as loading has begun (the lag drops), not after a fixed time: on an idle machine
    // the two loaders finish within seconds of joining.
    let loading = eventually(Duration::from_secs(60), || async { load_lag(&config).await < lag_before }).await;
    assert!(loading, "the loaders started loading:\n{}", logs.tail(40));
    let lag_when_a_died = load_lag(&config).await;
    a.kill().unwrap();
    a.wait().unwrap();
    let loaded = eventually(Duration::from_secs(180), || async { load_lag(&config).await == 0 }).await;
    b.kill().unwrap();
    b.wait().unwrap();
    assert!(loaded, "B took over A's partitions and caught up alone:\n{}", logs.tail(40));
    assert!(lag_when_a_died > 0, "A was killed while there was still work");
    let summary = assert_loaded_exactly(&config, &truth, &expected).await;
    println!("lag when A was killed: {lag_when_a_died}; B alone finished: {summary}");
    logs.assert_no_secret(&config);
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    finish(&config).await;
}

/// A full restore of every partition of the changelog: (records read, live orders, seconds).
async fn restore_everything(config: &Config) -> (usize, usize, f64) {
    let changelog = Changelog::new(&config.kafka, config.kafka.topics().transform_state);
    let started = std::time::Instant::now();
    let (records, orders) = changelog.restore_all(config.kafka.partitions).await.unwrap();
    (records, orders, started.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_changelog_is_compacted_and_a_restore_then_reads_about_the_live_orders_only() {
    let mut config = config("compact", SimConfig { days: 12, orders_per_day: 30, ..small_world() });
    // Segments roll every second, but nothing is cleaned while the transform runs (compaction lag
    // 1 h), so the first restore below reads the whole history.
    let lagged = [("segment.ms", "1000"), ("min.cleanable.dirty.ratio", "0.01"), ("min.compaction.lag.ms", "3600000")];
    for (key, value) in lagged {
        config.kafka.compacted_topic_config.insert(key.into(), value.into());
    }
    // Tiny batches: an order's state is written again at nearly every event.
    config.transform.batch_size = 3;
    let (sim, _truth) = raw_topics_filled(&mut config).await;
    facts_topic_filled(&config).await;
    let (records_before, orders, seconds_before) = restore_everything(&config).await;

    // Let the cleaner in, as the default settings do (no compaction lag).
    let topic = config.kafka.topics().transform_state;
    let unlagged = [("cleanup.policy", "compact"), ("segment.ms", "1000"), ("min.cleanable.dirty.ratio", "0.01")];
    set_topic_config(&config.kafka, &topic, &unlagged).await.unwrap();
    // The cleaner never touches a partition's active (newest) segment, which holds the last second of
    // writes (a segment rolls only when a later write arrives): allow for it, and wait for the rest to go.
    let last_second = (records_before / 5).max(50);
    let compacted =
        eventually(Duration::from_secs(120), || async { restore_everything(&config).await.0 <= orders + last_second })
            .await;
    let (records_after, orders_after, seconds_after) = restore_everything(&config).await;
    assert!(compacted, "compacted: {records_before} → {records_after} records for {orders} orders");
    assert_eq!(orders_after, orders, "compaction keeps every order's latest state");
    assert!(records_before > orders * 5 / 4, "the history had older states to drop ({records_before} for {orders})");
    assert!(records_after < records_before, "compaction dropped records: {records_before} → {records_after}");
    println!(
        "changelog of {orders} orders: {records_before} records restored in {seconds_before:.2} s before \
         compaction, {records_after} records in {seconds_after:.2} s after"
    );
    sim.stop().await;
    finish(&config).await;
}

/// A previous owner stalled past its group session with a transaction open on the changelog may still
/// commit it, offsets included (its successor's consumer then starts after that batch's events): the
/// wait before a restore lasts until it ends, and the restore reads what it commits. One that ends
/// aborted instead (a killed owner's) is waited for too, and left out. The wait gives up at its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_waits_for_a_transaction_left_open_on_the_changelog_and_reads_what_it_commits() {
    const CALL: Duration = Duration::from_secs(30);
    let config = config("stalled", small_world());
    let topic = config.kafka.topics().transform_state;
    ensure_compacted_topics_with(&config.kafka, &[&topic], config.kafka.partitions).await.unwrap();
    let mut producer_config = config.kafka.producer_config();
    producer_config.set("transactional.id", unique("stalled")).set("transaction.timeout.ms", "60000");
    let stalled: BaseProducer = producer_config.set("message.timeout.ms", "60000").create().unwrap();
    stalled.init_transactions(CALL).unwrap();
    let send = |order_id: i64| {
        let (key, state) = (format!("V:{order_id}"), to_record("V", order_id, &OrderState::default()).unwrap());
        let payload = encode(&state).unwrap();
        stalled.send(BaseRecord::to(&topic).partition(0).key(&key).payload(&payload)).map_err(|(e, _)| e).unwrap();
        stalled.flush(CALL).unwrap();
    };
    let changelog = Changelog::new(&config.kafka, topic.clone());
    let wait_in_background = |limit: Duration| {
        let changelog = changelog.clone();
        tokio::spawn(async move { changelog.wait_for_open_transactions(&[0, 1], limit).await })
    };
    // One batch committed, then the stalled one: sent, its commit late.
    stalled.begin_transaction().unwrap();
    send(1);
    stalled.commit_transaction(CALL).unwrap();
    stalled.begin_transaction().unwrap();
    send(2);
    let open = changelog.wait_for_open_transactions(&[0, 1], Duration::from_secs(1)).await.unwrap();
    assert_eq!(open, [0], "the wait gives up at its limit, naming the partition");

    let wait = wait_in_background(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!wait.is_finished(), "the wait lasts while the transaction is open");
    stalled.commit_transaction(CALL).unwrap();
    assert_eq!(wait.await.unwrap().unwrap(), Vec::<i32>::new());
    let file = open_state_file(&config.transform.state_dir, &topic, 0, 1 << 20).unwrap();
    let restored = changelog.catch_up(0, None, &file).await.unwrap();
    assert_eq!((restored.orders().unwrap(), restored.records_restored), (2, 2), "both batches restored");

    // Left open again, and aborted this time.
    stalled.begin_transaction().unwrap();
    send(3);
    let wait = wait_in_background(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!wait.is_finished(), "the wait lasts while the transaction is open");
    stalled.abort_transaction(CALL).unwrap();
    assert_eq!(wait.await.unwrap().unwrap(), Vec::<i32>::new());
    let end = changelog.end_offset(0).await.unwrap();
    let restored = changelog.catch_up(0, Some(restored), &file).await.unwrap();
    assert_eq!((restored.orders().unwrap(), restored.changelog_end), (2, end), "the aborted state is left out");
    drop((restored, file));
    finish(&config).await;
}

/// An order's state after `sheets`.
fn state_of(sheets: &[OrderSheetEvent]) -> OrderState {
    let mut state = OrderState::default();
    for sheet in sheets {
        state.fold(&RawEvent::OrderSheet(sheet.clone()));
    }
    state
}

/// Two snapshots of box `box_id` of order `order_id` with `items`, that differ only in the box's
/// shipping fee (same status, same times): one version, and the fold keeps one of the two by content.
/// Gives (the one kept, the other).
fn content_only_snapshots(
    order_id: i64,
    box_id: i64,
    items: Vec<OrderSheetItem>,
) -> (OrderSheetEvent, OrderSheetEvent) {
    let first = OrderSheetEvent { order_id, shipment_box_id: box_id, items, ..fixtures::order_sheet() };
    let changed = OrderSheetEvent { shipping_price: first.shipping_price + 500, ..first.clone() };
    if state_of(&[first.clone(), changed.clone()]) == state_of(std::slice::from_ref(&first)) {
        (first, changed)
    } else {
        (changed, first)
    }
}

/// A process frozen past its group session, thawed, may send a state after its successor sent a newer
/// one of the same order (nothing fences it without transactions). A restore keeps the state that
/// knows more (it holds every snapshot the other holds, or a newer one, even at an equal version), or
/// the join of two that each know something the other does not; it reports them to be sent again,
/// and once they are, a rebuild of the whole changelog finds nothing more to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_keeps_the_newer_state_when_an_older_one_comes_last_and_says_which_to_send_again() {
    let config = config("late_state", small_world());
    let topic = config.kafka.topics().transform_state;
    ensure_compacted_topics_with(&config.kafka, &[&topic], config.kafka.partitions).await.unwrap();
    let producer: BaseProducer = config.kafka.producer_config().create().unwrap();
    // Order 1 accepted, then (an hour later) delivered; order 2 accepted.
    let accepted = |order_id| OrderSheetEvent { order_id, ..fixtures::order_sheet() };
    let state_after = |sheets: &[OrderSheetEvent]| {
        let mut state = OrderState::default();
        for sheet in sheets {
            state.fold(&RawEvent::OrderSheet(sheet.clone()));
        }
        encode(&to_record(fixtures::VENDOR_ID, sheets[0].order_id, &state).unwrap()).unwrap()
    };
    let delivered = OrderSheetEvent {
        status: "FINAL_DELIVERY".into(),
        delivered_at: Some(accepted(1).paid_at + 3_600_000),
        ..accepted(1)
    };
    let (older, newer) = (state_after(&[accepted(1)]), state_after(&[accepted(1), delivered]));
    let other = state_after(&[accepted(2)]);
    // Order 3's box listed twice with only its shipping fee changed: one version, and the fold keeps
    // one of the two by content. Order 4 has two such boxes, and each of two states knows the kept
    // snapshot of one box only: their join knows both.
    let snapshots = |order_id, box_id| content_only_snapshots(order_id, box_id, vec![]);
    let (kept_3, lost_3) = snapshots(3, 31);
    let (newer_3, older_3) = (state_after(&[kept_3]), state_after(&[lost_3]));
    let ((kept_41, lost_41), (kept_42, lost_42)) = (snapshots(4, 41), snapshots(4, 42));
    let (knows_41, knows_42) = (state_after(&[kept_41.clone(), lost_42]), state_after(&[lost_41, kept_42.clone()]));
    let joined_4 = state_after(&[kept_41, kept_42]);
    let key = |order_id: i64| format!("{}:{order_id}", fixtures::VENDOR_ID);
    let send = |order_id: i64, record: &[u8]| {
        let key = key(order_id);
        let record = BaseRecord::to(&topic).partition(0).key(&key).payload(record);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
    };
    let changelog = Changelog::new(&config.kafka, topic.clone());
    let file = open_state_file(&config.transform.state_dir, &topic, 0, 1 << 20).unwrap();

    // The successor's newer states, then the frozen process's older ones, last (offsets 5 to 7).
    send(1, &older);
    send(1, &newer);
    send(2, &other);
    send(3, &newer_3);
    send(4, &knows_41);
    send(1, &older);
    send(3, &older_3);
    send(4, &knows_42);
    let rebuilt = changelog.catch_up(0, None, &file).await.unwrap();
    // Each with the late state, whose facts the loader may hold.
    // Each with the late state and the one whose facts went out before it: the state kept, or the one
    // the join was made with.
    let late =
        |record: &[u8], before: &[u8]| Superseded::Late { record: record.to_vec(), sent_before: Some(before.to_vec()) };
    let resend =
        |order_id, record: &[u8], superseded| Resend { key: key(order_id), record: record.to_vec(), superseded };
    let expected = vec![
        resend(1, &newer, late(&older, &newer)),
        resend(3, &newer_3, late(&older_3, &newer_3)),
        resend(4, &joined_4, late(&knows_42, &knows_41)),
    ];
    assert_eq!(file.get(0, &key(1)).unwrap().as_deref(), Some(&newer[..]), "a rebuild keeps the newer state");
    assert_eq!(file.get(0, &key(2)).unwrap().as_deref(), Some(&other[..]));
    assert_eq!(file.get(0, &key(3)).unwrap().as_deref(), Some(&newer_3[..]), "also at an equal version");
    assert_eq!(rebuilt.resend, expected, "and names them to be sent again, or the join of the two");
    let until_sent = "the file keeps the state held before a join until the join is sent";
    assert_eq!(file.get(0, &key(4)).unwrap().as_deref(), Some(&knows_41[..]), "{until_sent}");
    assert_eq!(file.applied_end(0).unwrap(), Some(5), "the file's end stays at the first older record until then");

    // Not sent again (a crash, a failed send): the next restore finds them again, the join too.
    drop(rebuilt);
    let again = changelog.catch_up(0, None, &file).await.unwrap();
    assert_eq!((again.records_restored, again.resend.clone()), (3, expected));
    assert_eq!(file.get(0, &key(1)).unwrap().as_deref(), Some(&newer[..]));
    assert_eq!(file.get(0, &key(4)).unwrap().as_deref(), Some(&knows_41[..]), "{until_sent}");

    // Sent again (offsets 8 to 10), as the stage does.
    for (order_id, record) in [(1, &newer), (3, &newer_3), (4, &joined_4)] {
        send(order_id, record);
    }
    // Had other records come between them, the file takes the states sent but keeps its end: the next
    // restore reads from there again, and finds nothing more to send.
    let mut again = again;
    again.resent(None).unwrap();
    assert_eq!(file.applied_end(0).unwrap(), Some(5));
    assert_eq!(file.get(0, &key(4)).unwrap().as_deref(), Some(&joined_4[..]), "the file takes the join once sent");
    let healed = changelog.catch_up(0, Some(again), &file).await.unwrap();
    assert_eq!((healed.records_restored, healed.resend.len()), (6, 0));
    assert_eq!(file.applied_end(0).unwrap(), Some(11));
    assert_eq!(file.get(0, &key(1)).unwrap().as_deref(), Some(&newer[..]));
    // A rebuild of the whole changelog now finds each kept state last: nothing more to send.
    drop(healed);
    file.clear(0).unwrap();
    let rebuilt = changelog.catch_up(0, None, &file).await.unwrap();
    assert_eq!((rebuilt.records_restored, rebuilt.resend.len()), (11, 0));
    for (order_id, record) in [(1, &newer), (2, &other), (3, &newer_3), (4, &joined_4)] {
        assert_eq!(file.get(0, &key(order_id)).unwrap().as_deref(), Some(&record[..]));
    }

    // A record that does not decode, last of order 2 (offset 11): the order keeps its state, which is
    // sent again, so that compaction cannot leave the bad record as all a later rebuild finds of it.
    send(2, b"\xc3\x01not a state");
    let caught_up = changelog.catch_up(0, Some(rebuilt), &file).await.unwrap();
    let corrupt_offsets = |restored: &PartitionState| restored.corrupt.iter().map(|c| c.offset).collect::<Vec<_>>();
    assert_eq!(caught_up.restore_mode, RestoreMode::CatchUp);
    assert_eq!(corrupt_offsets(&caught_up), vec![11]);
    let corrupt = vec![resend(2, &other, Superseded::Corrupt)];
    assert_eq!(caught_up.resend, corrupt, "a catch-up sends the state held again");
    assert_eq!(file.get(0, &key(2)).unwrap().as_deref(), Some(&other[..]));
    assert_eq!(file.applied_end(0).unwrap(), Some(11));
    drop(caught_up);
    file.clear(0).unwrap();
    let mut rebuilt = changelog.catch_up(0, None, &file).await.unwrap();
    assert_eq!(corrupt_offsets(&rebuilt), vec![11]);
    assert_eq!(rebuilt.resend, corrupt, "so does a rebuild");
    send(2, &other);
    rebuilt.resent(Some(13)).unwrap();
    drop(rebuilt);
    file.clear(0).unwrap();
    let rebuilt = changelog.catch_up(0, None, &file).await.unwrap();
    assert_eq!((rebuilt.records_restored, rebuilt.resend.len()), (13, 0));
    assert_eq!(corrupt_offsets(&rebuilt), vec![11], "dead-lettered again until compaction removes it");
    assert_eq!(file.get(0, &key(2)).unwrap().as_deref(), Some(&other[..]));
    drop((rebuilt, file));
    finish(&config).await;
}

/// A restore that keeps a state over a late one sends the facts the late ones may hide along with it:
/// at an equal version the loader keeps the fact inserted last (a snapshot that changed only in
/// content), and a join's facts never went out. The stage's first restore finds both here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_sends_again_the_facts_that_late_states_hide() {
    restore_sends_again_the_facts_that_late_states_hide(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_restore_sends_again_the_facts_that_late_states_hide() {
    restore_sends_again_the_facts_that_late_states_hide(true).await;
}

async fn restore_sends_again_the_facts_that_late_states_hide(transactions: bool) {
    let mut config = config(if transactions { "late_facts_tx" } else { "late_facts" }, small_world());
    config.transform.transactions = transactions;
    let topics = config.kafka.topics();
    ensure_topics(&config.kafka, &[&topics.payment_facts]).await.unwrap();
    ensure_compacted_topics_with(&config.kafka, &[&topics.transform_state], config.kafka.partitions).await.unwrap();
    // Order 3: one box listed twice with only its fee changed; the successor's state keeps one
    // snapshot, the frozen process's late one holds the other. Orders 4 and 5: two such boxes, and each
    // of the two states knows the kept snapshot of one box only.
    let items = |id| vec![fixtures::order_line(id, 2, 10_000), fixtures::order_line(id + 1, 1, 5_000)];
    let (kept_3, lost_3) = content_only_snapshots(3, 31, items(7));
    let newer_3 = state_of(&[kept_3]);
    let mut late = vec![(newer_3.clone(), state_of(&[lost_3]))];
    let mut expected = vec![newer_3];
    for order_id in [4, 5] {
        let ((kept_1, lost_1), (kept_2, lost_2)) = (
            content_only_snapshots(order_id, order_id * 10 + 1, items(7)),
            content_only_snapshots(order_id, order_id * 10 + 2, items(9)),
        );
        late.push((state_of(&[kept_1.clone(), lost_2]), state_of(&[lost_1, kept_2.clone()])));
        expected.push(state_of(&[kept_1, kept_2]));
    }
    // As a batch sends them: its facts, then its state; the successor's first, the late ones after.
    // Of order 5 the late facts come first, then the successor's facts and state, then the late state.
    let producer: BaseProducer = config.kafka.producer_config().create().unwrap();
    let send_facts = |state: &OrderState| {
        let facts = payment_facts(state);
        let (vendor_id, order_id) = (&facts[0].vendor_id, facts[0].order_id);
        let (payload, key) = (encode_order_facts(vendor_id, order_id, &facts), format!("{vendor_id}:{order_id}"));
        let record = BaseRecord::to(&topics.payment_facts).key(&key).payload(&payload);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
    };
    let send_state = |state: &OrderState| {
        let order_id = state.boxes.values().next().unwrap().order_id;
        let key = format!("{}:{order_id}", fixtures::VENDOR_ID);
        let payload = encode(&to_record(fixtures::VENDOR_ID, order_id, state).unwrap()).unwrap();
        let record = BaseRecord::to(&topics.transform_state).partition(0).key(&key).payload(&payload);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();
    };
    for (successor, frozen) in &late[..2] {
        for state in [successor, frozen] {
            send_facts(state);
            send_state(state);
        }
    }
    let (successor, frozen) = &late[2];
    send_facts(frozen);
    send_facts(successor);
    send_state(successor);
    send_state(frozen);
    let expected: BTreeMap<String, PaymentFact> =
        expected.iter().flat_map(payment_facts).map(|f| (f.kafka_key(), f)).collect();
    let (before, sent_before) = current_facts(&config);
    let hidden = differences(&before, &expected, false);
    // Item 7 of orders 3 and 4 carries its box's fee: the late facts won at the loader there; item 9 of
    // order 5, where the successor's facts came last.
    assert_eq!(hidden.len(), 3, "{hidden:?}");

    let shutdown = Shutdown::new();
    let transform = {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        tokio::spawn(async move { coupang_transform::run(&config.transform, &config.kafka, shutdown).await })
    };
    let healed = eventually(Duration::from_secs(60), || async {
        differences(&current_facts(&config).0, &expected, false).is_empty()
    })
    .await;
    shutdown.cancel();
    transform.await.unwrap().unwrap();
    let (after, sent_after) = current_facts(&config);
    assert_eq!(differences(&after, &expected, false), Vec::<String>::new());
    assert!(healed);
    // Order 3's item 7; of orders 4 and 5 items 7 and 9, where the two states' facts tie but differ
    // (which was inserted last is not known).
    assert_eq!((sent_before, sent_after), (20, 25), "only the facts the loader may not hold went out again");
    for (order_id, item) in [(3, 7), (4, 7), (5, 9)] {
        let key = format!("{}:{order_id}:{item}", fixtures::VENDOR_ID);
        let (fact, late) = (&after[&key], &before[&key]);
        assert_eq!(fact.change_cause, ChangeCause::Correction, "explained against the fact the loader held");
        assert_eq!(fact.previous_payment_amount, Some(late.payment_amount));
    }
    assert_eq!(
        differences(&changelog_facts(&config), &expected, false),
        Vec::<String>::new(),
        "the changelog's last states"
    );
    finish(&config).await;
}
