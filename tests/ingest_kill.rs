//! `coupang-etl ingest` killed (SIGKILL) at random moments and started again loses nothing.

mod common;

use common::*;
use coupang_schemas::{decode, OrderSheetEvent, ReturnRequestEvent, RevenueEvent};
use coupang_sim::config::LifecycleConfig;
use coupang_sim::SimConfig;
use rdkafka::Message;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_ingest_at_random_moments_loses_nothing() {
    let today = etl_core::time::now_kst().date_naive();
    let sim = SimConfig {
        start_date: today - chrono::Duration::days(8),
        days: 7,
        orders_per_day: 20,
        lifecycle: LifecycleConfig::realistic(),
        ..SimConfig::default()
    };
    let mut config = config("kill", sim);
    let sim = with_simulator(&mut config).await;
    let file = write_config_file(&config, "kill");
    let logs = ProcessLogs::new("ingest-kill");
    let ingest = || {
        coupang_etl_command(&file)
            .arg("ingest")
            .env("COUPANG_ETL__INGEST__POLL_INTERVAL_SECS", "1")
            .env("COUPANG_ETL__INGEST__LOOKBACK_DAYS", "10")
            .env("COUPANG_ETL_LOG", "debug")
            .stdout(std::process::Stdio::null())
            .stderr(logs.stdio())
            .spawn()
            .unwrap()
    };
    // Topics are made once, at deployment (`coupang-etl migrate`/first start); the kills below target the
    // collection loop (a process killed inside CreateTopics is a deployment accident, not a collection one).
    let topics = config.kafka.topics();
    etl_core::kafka::ensure_topics(
        &config.kafka,
        &[&topics.raw_order_sheets, &topics.raw_return_requests, &topics.raw_revenue, &topics.dead_letter],
    )
    .await
    .unwrap();
    etl_core::kafka::ensure_compacted_topics(&config.kafka, &[&topics.account_status, &topics.checkpoints])
        .await
        .unwrap();
    // Kill it three times (× the soak factor) at pseudo-random moments (fixed seed: the test is repeatable), then let it run.
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let kills = 3 * soak_factor();
    for _ in 0..kills {
        let mut child = ingest();
        tokio::time::sleep(Duration::from_millis(500 + xorshift(&mut rng) % 2_500)).await;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let mut last = ingest();

    let world = sim.world();
    let boxes: HashSet<i64> = world
        .vendors
        .values()
        .flat_map(|v| v.boxes.iter().filter(|b| b.listed || !b.receipts.is_empty()).map(|b| b.shipment_box_id))
        .collect();
    let receipts: HashSet<i64> = world
        .vendors
        .values()
        .flat_map(|v| v.boxes.iter().flat_map(|b| b.receipts.iter().map(|r| r.receipt_id)))
        .collect();
    // Orders with a revenue row recognised before today (what revenue-history answers), 0 for adjustments.
    let today = etl_core::time::now_kst().date_naive();
    let revenue_orders: HashSet<i64> = coupang_sim::revenue::rows_of(&world)
        .values()
        .flatten()
        .filter(|r| r.recognized_on < today)
        .map(|r| r.row["orderId"].as_i64().unwrap_or_default())
        .collect();
    let last_seen = std::sync::Mutex::new(String::new());
    let everything_there = || async {
        let got_boxes: HashSet<i64> = read_topic(&config.kafka, &topics.raw_order_sheets)
            .iter()
            .filter_map(|m| decode::<OrderSheetEvent>(m.payload().unwrap_or_default()).ok())
            .map(|e| e.shipment_box_id)
            .collect();
        let got_receipts: HashSet<i64> = read_topic(&config.kafka, &topics.raw_return_requests)
            .iter()
            .filter_map(|m| decode::<ReturnRequestEvent>(m.payload().unwrap_or_default()).ok())
            .map(|e| e.receipt_id)
            .collect();
        let got_revenue: HashSet<i64> = read_topic(&config.kafka, &topics.raw_revenue)
            .iter()
            .filter_map(|m| decode::<RevenueEvent>(m.payload().unwrap_or_default()).ok())
            .map(|e| e.order_id)
            .collect();
        *last_seen.lock().unwrap() = format!(
            "boxes {}/{}, receipts {}/{}, revenue orders {}/{}",
            got_boxes.intersection(&boxes).count(),
            boxes.len(),
            got_receipts.intersection(&receipts).count(),
            receipts.len(),
            got_revenue.intersection(&revenue_orders).count(),
            revenue_orders.len()
        );
        got_boxes == boxes && got_receipts == receipts && revenue_orders.is_subset(&got_revenue)
    };
    let complete = eventually(Duration::from_secs(90), everything_there).await;
    last.kill().unwrap();
    last.wait().unwrap();
    assert!(
        complete,
        "after the kills and a restart every box, receipt and revenue row is in Kafka: {}\n(ingest's log, last lines)\n{}",
        last_seen.lock().unwrap(),
        logs.tail(20)
    );
    logs.assert_no_secret(&config);

    // Transform and load what the killed ingest left: ClickHouse equals the ground truth.
    let truth = coupang_sim::truth::Truth::of(&world);
    let shutdown = etl_core::Shutdown::new();
    let stages = {
        let (config, token) = (config.clone(), shutdown.clone());
        tokio::spawn(async move {
            let transform = coupang_transform::run(&config.transform, &config.kafka, token.clone());
            let load = coupang_load::run(&config.load, &config.clickhouse, &config.kafka, token.clone());
            let (t, l) = tokio::join!(transform, load);
            t.unwrap();
            l.unwrap();
        })
    };
    let exact = || async {
        coupang_load::summary::daily_payments(&config.clickhouse)
            .await
            .is_ok_and(|daily| coupang_etl::demo::compare(&daily, &truth).is_empty())
    };
    assert!(eventually(Duration::from_secs(120), exact).await, "every vendor-day exact");
    assert_eq!(item_payments(&config.clickhouse).await, truth.items, "every fact key exact");
    shutdown.cancel();
    stages.await.unwrap();
    println!(
        "ingest killed {kills} times: {} boxes, {} receipts, {} orders with revenue rows all collected; \
         {} vendor-days and {} fact keys exact",
        boxes.len(),
        receipts.len(),
        revenue_orders.len(),
        truth.daily.len(),
        truth.items.len()
    );
    std::fs::remove_file(file).unwrap();
    sim.stop().await;
    finish(&config).await;
}
