//! The loader against Apache Kafka and ClickHouse 18.16: facts loaded twice, older versions
//! arriving after newer ones, and ClickHouse stopped for 30 seconds mid-run. This file is its own test
//! binary because it restarts the shared ClickHouse (binaries run one after another).

mod common;

use common::*;
use coupang_etl::config::Config;
use coupang_load::summary::fact_counts;
use coupang_schemas::{encode, encode_order_facts, PaymentFact};
use coupang_sim::SimConfig;
use etl_core::kafka::{ensure_topics, group_lag};
use etl_core::Shutdown;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

async fn produce(config: &Config, facts: &[PaymentFact]) {
    let producer: FutureProducer = config.kafka.producer_config().create().unwrap();
    let topic = config.kafka.topics().payment_facts;
    for f in facts {
        let payload = encode(f).unwrap();
        producer
            .send(FutureRecord::to(&topic).key(&f.kafka_key()).payload(&payload), Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct CurrentRow {
    order_id: i64,
    vendor_item_id: i64,
    payment_amount: i64,
    version: u64,
}

/// What `item_payments` shows, by key.
async fn current(config: &Config) -> BTreeMap<(i64, i64), (i64, u64)> {
    let client = clickhouse::Client::default()
        .with_url(&config.clickhouse.url)
        .with_database(&config.clickhouse.database)
        .with_validation(false);
    client
        .query("SELECT order_id, vendor_item_id, payment_amount, version FROM item_payments")
        .fetch_all::<CurrentRow>()
        .await
        .unwrap()
        .into_iter()
        .map(|r| ((r.order_id, r.vendor_item_id), (r.payment_amount, r.version)))
        .collect()
}

fn newest(facts: &[PaymentFact]) -> BTreeMap<(i64, i64), (i64, u64)> {
    let mut out: BTreeMap<(i64, i64), (i64, u64)> = BTreeMap::new();
    for f in facts {
        let slot = out.entry((f.order_id, f.vendor_item_id)).or_insert((f.payment_amount, f.version as u64));
        if f.version as u64 >= slot.1 {
            *slot = (f.payment_amount, f.version as u64);
        }
    }
    out
}

fn spawn_load(config: &Config) -> (Shutdown, tokio::task::JoinHandle<Result<(), coupang_load::LoadError>>) {
    let shutdown = Shutdown::new();
    let handle = {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        tokio::spawn(async move { coupang_load::run(&config.load, &config.clickhouse, &config.kafka, shutdown).await })
    };
    (shutdown, handle)
}

async fn loaded(config: &Config) -> bool {
    let topic = config.kafka.topics().payment_facts;
    group_lag(&config.kafka, &config.load.group_id, &topic).await.is_ok_and(|lag| lag == 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_stopped_for_30_seconds_loses_and_duplicates_nothing_and_late_old_versions_never_win() {
    let mut config = config("load", SimConfig::default());
    config.load.batch_rows = 500;
    let topics = config.kafka.topics();
    ensure_topics(&config.kafka, &[&topics.payment_facts, &topics.dead_letter]).await.unwrap();
    let (shutdown, load) = spawn_load(&config);

    // Round 1: 300 keys at versions 2, then the same facts again (a replay).
    let keys: Vec<(i64, i64)> =
        (0..100).flat_map(|order| (1..=3).map(move |item| (24_000_000 + order, item))).collect();
    let round1: Vec<PaymentFact> = keys.iter().map(|&(o, i)| fixtures::payment_fact(o, i, 2)).collect();
    produce(&config, &round1).await;
    produce(&config, &round1).await;
    assert!(eventually(Duration::from_secs(60), || loaded(&config)).await, "round 1 loaded");
    assert_eq!(current(&config).await, newest(&round1));

    // ClickHouse goes away; meanwhile newer versions (3) arrive, and older ones (1) after them.
    services_script(&["stop", "clickhouse"]);
    let round2: Vec<PaymentFact> = keys.iter().map(|&(o, i)| fixtures::payment_fact(o, i, 3)).collect();
    let late_old: Vec<PaymentFact> = keys.iter().map(|&(o, i)| fixtures::payment_fact(o, i, 1)).collect();
    produce(&config, &round2).await;
    produce(&config, &late_old).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!loaded(&config).await, "nothing can be committed while ClickHouse is down");
    services_script(&["start", "clickhouse"]);
    assert!(eventually(Duration::from_secs(120), || loaded(&config)).await, "everything loaded after the restart");

    let all: Vec<PaymentFact> = round1.iter().chain(&round2).chain(&late_old).cloned().collect();
    let expected = newest(&all);
    assert_eq!(current(&config).await, expected, "the newest version of every key, and only that");
    let counts = fact_counts(&config.clickhouse).await.unwrap();
    assert_eq!(counts.current_rows, keys.len() as u64, "one current row per key");

    // An order's message, as the transform sends them, with one fact ClickHouse refuses (more units
    // undone than ordered): the other fact loads, and the message goes to the dead-letter topic once,
    // naming the refused row.
    let order = 25_000_000;
    let good = fixtures::payment_fact(order, 1, 1);
    let impossible = PaymentFact {
        cancelled_quantity: 5,
        cancelled: true,
        status: "CANCELLED".into(),
        ..fixtures::payment_fact(order, 2, 1)
    };
    let payload = encode_order_facts(&good.vendor_id, order, &[good.clone(), impossible]);
    let producer: FutureProducer = config.kafka.producer_config().create().unwrap();
    let key = good.fact_key().order.to_string();
    let record = FutureRecord::to(&topics.payment_facts).key(&key).payload(&payload);
    producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).unwrap();
    assert!(eventually(Duration::from_secs(60), || loaded(&config)).await, "the order's message handled");
    let now = current(&config).await;
    assert_eq!(now.get(&(order, 1)), Some(&(good.payment_amount, 1)), "the fact ClickHouse took is loaded");
    assert_eq!(now.get(&(order, 2)), None, "the refused one is not");
    let dead = read_topic(&config.kafka, &topics.dead_letter);
    let reasons: Vec<&str> = dead.iter().filter_map(|m| header(m, "dlq.reason")).collect();
    assert_eq!(reasons.len(), 1, "the message is dead-lettered once: {reasons:?}");
    assert!(reasons[0].contains(&format!("/{order}/2@1: ")), "{reasons:?}");
    assert!(!reasons[0].contains(&format!("/{order}/1@1")), "{reasons:?}");
    shutdown.cancel();
    load.await.unwrap().unwrap();
    println!(
        "{} keys; {} fact records ({} after a 30 s ClickHouse outage); {} stored versions, {} current rows",
        keys.len(),
        all.len() + round1.len(),
        round2.len() + late_old.len(),
        counts.stored_rows,
        counts.current_rows
    );
    finish(&config).await;
}
