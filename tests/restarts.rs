//! The services under the running pipeline go away and come back: the Kafka broker is restarted, then
//! ClickHouse, both while the pipeline (follow mode: ingest, transform and load) is still collecting and
//! loading. Afterwards every vendor-day, order and fact key equals the simulator's ground truth.
//!
//! This file is its own test binary because it restarts the shared broker and ClickHouse (test binaries
//! run one after another, so no other test sees the outages).

mod common;

use common::*;
use coupang_etl::demo::compare;
use coupang_etl::pipeline::run_follow;
use coupang_load::summary::{daily_payments, fact_counts, order_payments};
use coupang_sim::truth::Truth;
use etl_core::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many vendor-days still differ from the truth (all of them while the views cannot be read).
async fn days_off(config: &coupang_etl::Config, truth: &Truth) -> usize {
    match daily_payments(&config.clickhouse).await {
        Ok(daily) => compare(&daily, truth).len(),
        Err(_) => truth.daily.len(),
    }
}

/// Stops `service` for `seconds` and starts it again; says when, and how far the pipeline had got.
async fn outage(
    service: &'static str,
    seconds: u64,
    config: &coupang_etl::Config,
    truth: &Truth,
    started: Instant,
) -> String {
    let off = days_off(config, truth).await;
    service_outage(service, Duration::from_secs(seconds)).await;
    format!(
        "{service} down {seconds} s at {:.0?} ({off} of {} vendor-days not yet exact)",
        started.elapsed(),
        truth.daily.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_and_clickhouse_restarted_mid_run_lose_and_duplicate_nothing() {
    let scale = soak_factor();
    let mut config = config("restarts", recent_world(7 * scale, 0, 20));
    follow(&mut config, 7 * scale + 2);
    // A slow collection, so the outages fall while events are still flowing.
    config.ingest.requests_per_second = 3.0;
    let sim = with_simulator(&mut config).await;
    let truth = Truth::of(&sim.world());
    let expected_rows: u64 = truth.daily.values().map(|d| d.items).sum();
    let accounts = config.accounts.clone();
    let shutdown = Shutdown::new();
    let mut pipeline = {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        tokio::spawn(async move { run_follow(&config, Arc::new(move || accounts.clone()), shutdown).await })
    };
    let started = Instant::now();
    let mut report = Vec::new();

    // The broker goes away for 8 s once the first rows are in ClickHouse.
    let some_loaded = || async { fact_counts(&config.clickhouse).await.is_ok_and(|c| c.current_rows > 0) };
    eventually_or_explain(Duration::from_secs(120), "the first rows arrive", &mut pipeline, some_loaded).await;
    report.push(outage("kafka", 8, &config, &truth, started).await);
    // Then ClickHouse, for 10 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    report.push(outage("clickhouse", 10, &config, &truth, started).await);

    let exact = || async { days_off(&config, &truth).await == 0 };
    let exact_after = "every vendor-day exact after both restarts";
    eventually_or_explain(Duration::from_secs(180), exact_after, &mut pipeline, exact).await;
    assert_eq!(order_payments(&config.clickhouse).await.unwrap(), truth.orders, "every order exact");
    assert_eq!(item_payments(&config.clickhouse).await, truth.items, "every fact key exact");
    let counts = fact_counts(&config.clickhouse).await.unwrap();
    assert_eq!(counts.current_rows, expected_rows, "one current row per key");
    assert!(!pipeline.is_finished(), "the pipeline rode out both outages without stopping");
    shutdown.cancel();
    pipeline.await.unwrap().unwrap();
    println!(
        "{}; then {} vendor-days, {} orders, {} fact keys exact ({} stored versions) after {:.0?}",
        report.join("; "),
        truth.daily.len(),
        truth.orders.len(),
        expected_rows,
        counts.stored_rows,
        started.elapsed()
    );
    sim.stop().await;
    finish(&config).await;
}
