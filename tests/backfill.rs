//! `coupang-etl backfill` as users run it: a simulated year for two accounts at once, one of them killed
//! (SIGKILL) half-way and started again; and a backfill over days live polling already covered, which
//! must change nothing.

mod common;

use common::*;
use coupang_ingest::Stream;
use coupang_load::summary::{daily_payments, fact_counts, order_payments, DailyPayment};
use coupang_schemas::{decode, OrderSheetEvent};
use coupang_sim::config::LifecycleConfig;
use coupang_sim::SimConfig;
use etl_core::Shutdown;
use rdkafka::Message;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Child;
use std::time::{Duration, Instant};

fn backfill(
    config_file: &std::path::Path,
    alias: &str,
    (from, to): (chrono::NaiveDate, chrono::NaiveDate),
    logs: &ProcessLogs,
) -> Child {
    coupang_etl_command(config_file)
        .args(["backfill", "--account", alias])
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .env("COUPANG_ETL_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(logs.stdio())
        .spawn()
        .unwrap()
}

fn finish_backfill(child: Child, within: Duration) -> String {
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(started.elapsed() < within);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "backfill failed: {stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_year_for_two_accounts_survives_a_kill_and_never_exceeds_the_rate() {
    let today = etl_core::time::now_kst().date_naive();
    let sim = SimConfig {
        start_date: today - chrono::Duration::days(366),
        days: 365,
        orders_per_day: 4,
        ..SimConfig::default()
    };
    let mut config = config("year", sim);
    config.sim.vendors.truncate(2);
    config.ingest.requests_per_second = 5.0;
    config.ingest.backfill_requests_per_second = 5.0;
    config.ingest.max_attempts = 6;
    let sim = with_simulator(&mut config).await;
    let file = write_config_file(&config, "year");
    let (from, to) = (config.sim.start_date - chrono::Duration::days(1), config.sim.end_date());
    let (a, b) = (config.accounts[0].clone(), config.accounts[1].clone());

    let logs = ProcessLogs::new("year");
    let first_a = backfill(&file, &a.alias, (from, to), &logs);
    let run_b = backfill(&file, &b.alias, (from, to), &logs);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut first_a = first_a;
    first_a.kill().unwrap(); // SIGKILL: no chance to clean up
    first_a.wait().unwrap();
    let resumed = finish_backfill(backfill(&file, &a.alias, (from, to), &logs), Duration::from_secs(300));
    let other = finish_backfill(run_b, Duration::from_secs(300));
    assert!(resumed.contains("done") && other.contains("done"), "{resumed}\n{other}");
    assert!(
        !resumed.contains("(0 resumed"),
        "the restarted backfill skipped the windows done before the kill: {resumed}"
    );

    let mut collected: HashMap<String, HashSet<i64>> = HashMap::new();
    for message in read_topic(&config.kafka, &config.kafka.topics().raw_order_sheets) {
        let event = decode::<OrderSheetEvent>(message.payload().unwrap_or_default()).unwrap();
        collected.entry(event.vendor_id).or_default().insert(event.shipment_box_id);
    }
    let world = sim.world();
    for account in [&a, &b] {
        let expected: HashSet<i64> =
            world.vendors[&account.vendor_id].boxes.iter().map(|x| x.shipment_box_id).collect();
        assert_eq!(collected.get(&account.vendor_id), Some(&expected), "{}: every box of the year", account.alias);
        let peak = sim.peak_per_second(&account.vendor_id);
        assert!(peak <= 5, "{}: peak {peak} calls in a second at a backfill rate of 5", account.alias);
    }
    println!("{}{}", resumed, other);
    println!(
        "year backfill: {} + {} boxes, peaks {} and {} calls/s (limit 5), {} calls in all",
        collected[&a.vendor_id].len(),
        collected[&b.vendor_id].len(),
        sim.peak_per_second(&a.vendor_id),
        sim.peak_per_second(&b.vendor_id),
        sim.stats().values().sum::<u64>()
    );
    logs.assert_no_secret(&config);
    std::fs::remove_file(file).unwrap();
    sim.stop().await;
}

/// What ClickHouse shows: every vendor-day, every order, every fact key, and the current row count.
async fn snapshot(config: &coupang_etl::Config) -> (Vec<DailyPayment>, BTreeMap<(String, i64), i64>, Items, u64) {
    (
        daily_payments(&config.clickhouse).await.unwrap(),
        order_payments(&config.clickhouse).await.unwrap(),
        item_payments(&config.clickhouse).await,
        fact_counts(&config.clickhouse).await.unwrap().current_rows,
    )
}

type Items = BTreeMap<(String, i64, i64), coupang_sim::truth::ItemTruth>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_over_days_live_polling_covered_changes_nothing() {
    use coupang_etl::demo::compare;
    use coupang_etl::pipeline::{drained, run_follow};
    use coupang_sim::truth::Truth;

    let mut config = config("overlap", recent_world(7, 0, 15));
    follow(&mut config, 9);
    let sim = with_simulator(&mut config).await;
    let truth = Truth::of(&sim.world());
    let shutdown = etl_core::Shutdown::new();
    let pipeline = {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        let accounts = coupang_ingest::fixed_accounts(config.accounts.clone());
        tokio::spawn(async move { run_follow(&config, accounts, shutdown).await })
    };
    // Every fact key, not only the days' sums: an item cancelled whole adds a row but no amount, so
    // the sums can match the truth before its row is loaded.
    let exact = || async {
        daily_payments(&config.clickhouse).await.is_ok_and(|daily| compare(&daily, &truth).is_empty())
            && item_payments(&config.clickhouse).await == truth.items
    };
    assert!(eventually(Duration::from_secs(90), exact).await, "live polling loads everything");
    let before = snapshot(&config).await;
    let raw_before = read_topic(&config.kafka, &config.kafka.topics().raw_order_sheets).len();

    // Every account backfilled over the whole period while live polling goes on.
    let file = write_config_file(&config, "overlap");
    let (from, to) = sim_range(&config);
    let logs = ProcessLogs::new("overlap");
    let runs: Vec<Child> = config.accounts.iter().map(|a| backfill(&file, &a.alias, (from, to), &logs)).collect();
    for run in runs {
        finish_backfill(run, Duration::from_secs(300));
    }
    let raw_after = read_topic(&config.kafka, &config.kafka.topics().raw_order_sheets).len();
    assert!(raw_after > raw_before, "the backfill sent the order sheets again");
    let settled = || async { drained(&config).await.unwrap_or(false) };
    assert!(eventually(Duration::from_secs(120), settled).await, "transform and load caught up");
    let after = snapshot(&config).await;
    assert_eq!(after.0, before.0, "every vendor-day unchanged");
    assert_eq!(after.1, before.1, "every order unchanged");
    assert_eq!(after.2, before.2, "every fact key unchanged");
    assert_eq!(after.3, before.3, "no duplicated row");
    assert_eq!(after.2, truth.items, "and every fact key is the truth");
    shutdown.cancel();
    pipeline.await.unwrap().unwrap();
    println!(
        "backfilled {} accounts over {from}..{to} on top of live polling: {} order-sheet events sent again; \
         {} vendor-days, {} orders, {} fact keys unchanged",
        config.accounts.len(),
        raw_after - raw_before,
        before.0.len(),
        before.1.len(),
        before.3
    );
    logs.assert_no_secret(&config);
    std::fs::remove_file(file).unwrap();
    sim.stop().await;
    finish(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_reads_the_cancels_of_its_last_day_requested_after_it() {
    // Half the orders are cancelled whole within hours of payment: those paid late on the range's last
    // day are cancelled the next day, after `--to`, and have left the order-sheet lists by then.
    let today = etl_core::time::now_kst().date_naive();
    let lifecycle = LifecycleConfig { cancel_before_dispatch_rate: 0.5, ..LifecycleConfig::plain() };
    let world = SimConfig {
        start_date: today - chrono::Duration::days(10),
        days: 2,
        orders_per_day: 60,
        lifecycle,
        ..SimConfig::default()
    };
    let mut config = config("late-cancels", world);
    config.sim.vendors.truncate(1);
    let sim = with_simulator(&mut config).await;
    let (from, to) = (config.sim.start_date, config.sim.end_date());
    let streams = [Stream::OrderSheets, Stream::ReturnRequests, Stream::Revenue];
    let account = config.accounts[0].clone();
    coupang_ingest::backfill(&config.ingest, &config.kafka, &account, (from, to), &streams, &|_| {}, &Shutdown::new())
        .await
        .unwrap();

    let world = sim.world();
    let boxes = &world.vendors[&account.vendor_id].boxes;
    let late = boxes.iter().filter(|b| b.receipts.iter().any(|r| r.created_at.date_naive() > to)).count();
    assert!(late > 0, "the world has cancels requested after the range");
    let expected: HashSet<i64> = boxes.iter().map(|b| b.shipment_box_id).collect();
    let collected: HashSet<i64> = read_topic(&config.kafka, &config.kafka.topics().raw_order_sheets)
        .iter()
        .map(|m| decode::<OrderSheetEvent>(m.payload().unwrap_or_default()).unwrap().shipment_box_id)
        .collect();
    assert_eq!(collected, expected, "every box of the range, those cancelled after it too");
    println!("backfill {from}..{to}: {} boxes, {late} cancelled after the range", expected.len());
    sim.stop().await;
}
