//! sim → ingest → Kafka (real broker) → transform → load → ClickHouse (real server), compared with the
//! simulator's ground truth exactly.

mod common;

use common::*;
use coupang_etl::demo::compare;
use coupang_etl::pipeline::run_range;
use coupang_load::summary::{daily_payments, fact_counts, optimize_facts, order_payments};
use coupang_schemas::{encode, encode_order_facts, OrderSheetEvent, PaymentFact};
use coupang_sim::truth::Truth;
use coupang_sim::SimConfig;
use etl_core::kafka::ensure_topics;
use etl_core::Shutdown;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_month_is_exact_and_a_rerun_of_the_same_window_changes_nothing() {
    // Enough orders a day that every lifecycle path a real shop takes is taken at its default rate.
    let world = SimConfig { days: 30 * soak_factor(), orders_per_day: 30, ..small_world() };
    let mut config = config("exact", world);
    let sim = with_simulator(&mut config).await;
    let truth = Truth::of(&sim.world());
    let lifecycle = lifecycle_counts(&sim.world(), &config.sim.lifecycle);
    let (from, to) = sim_range(&config);
    let shutdown = Shutdown::new();

    let first = run_range(&config, from, to, &shutdown).await.unwrap();
    let boxes: u64 = sim.world().vendors.values().map(|v| v.boxes.len() as u64).sum();
    let collected: u64 = first.ingest.accounts.values().map(|a| a.events).sum();
    assert_eq!(collected, boxes, "one raw event per shipment box");

    let expected_rows: u64 = truth.daily.values().map(|d| d.items).sum();
    let daily = daily_payments(&config.clickhouse).await.unwrap();
    assert_eq!(compare(&daily, &truth), vec![], "every vendor and payment day matches");
    assert_eq!(order_payments(&config.clickhouse).await.unwrap(), truth.orders, "every order matches");
    assert_eq!(item_payments(&config.clickhouse).await, truth.items, "every fact key matches");
    let counts = fact_counts(&config.clickhouse).await.unwrap();
    assert_eq!(counts.current_rows, expected_rows);

    // The same window again: every event and fact is produced a second time, and nothing changes.
    run_range(&config, from, to, &shutdown).await.unwrap();
    assert_eq!(daily_payments(&config.clickhouse).await.unwrap(), daily);
    assert_eq!(order_payments(&config.clickhouse).await.unwrap(), truth.orders);
    let again = fact_counts(&config.clickhouse).await.unwrap();
    assert_eq!(again.current_rows, expected_rows, "no duplicated row");
    optimize_facts(&config.clickhouse).await.unwrap();
    let merged = fact_counts(&config.clickhouse).await.unwrap();
    assert_eq!(merged.stored_rows, expected_rows, "after merging, one physical row per key");

    println!(
        "checked {} vendor-days, {} orders, {} fact keys; orders per path: {lifecycle}; rerun stored {} versions, merged back to {}",
        truth.daily.len(),
        truth.orders.len(),
        expected_rows,
        again.stored_rows,
        merged.stored_rows
    );
    sim.stop().await;
    finish(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_stops_its_account_alone_and_names_it() {
    let mut config = config("badkey", small_world());
    let sim = with_simulator(&mut config).await;
    let truth = Truth::of(&sim.world());
    let bad_secret = "definitely-not-the-secret";
    config.accounts[1].secret_key = etl_core::secret::Secret::new(bad_secret);
    let bad = config.accounts[1].clone();
    let (from, to) = sim_range(&config);

    let report = run_range(&config, from, to, &Shutdown::new()).await.unwrap();
    let failed = &report.ingest.accounts[&bad.alias];
    let error = failed.error.as_deref().expect("the account with a wrong secret reports an error");
    assert!(error.contains(&bad.alias) && error.contains("401") && error.contains("Invalid signature."), "{error}");
    assert!(!error.contains(bad_secret), "{error}");
    assert_eq!(failed.events, 0);

    // The other accounts are exact; the failed one has no rows rather than partial ones.
    let daily = daily_payments(&config.clickhouse).await.unwrap();
    assert!(daily.iter().all(|d| d.vendor_id != bad.vendor_id));
    let mut others = truth.clone();
    others.daily.retain(|(vendor, _), _| *vendor != bad.vendor_id);
    assert_eq!(compare(&daily, &others), vec![]);
    println!("{} stopped with: {error}; {} other vendor-days exact", bad.alias, others.daily.len());
    sim.stop().await;
    finish(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dead_letter_topic_and_the_rest_stays_exact() {
    let mut config = config("poison", SimConfig { days: 4, ..small_world() });
    let sim = with_simulator(&mut config).await;
    let truth = Truth::of(&sim.world());
    let topics = config.kafka.topics();
    let raw = [&topics.raw_order_sheets, &topics.raw_return_requests, &topics.raw_revenue];
    let data: [&str; 6] = [raw[0], raw[1], raw[2], &topics.raw_settlements, &topics.payment_facts, &topics.dead_letter];
    ensure_topics(&config.kafka, &data).await.unwrap();

    // Garbage, and a well-formed event with an impossible status, in the raw topics; garbage in the facts topic.
    let producer: FutureProducer = config.kafka.producer_config().create().unwrap();
    let impossible = encode(&OrderSheetEvent { status: "TELEPORTED".into(), ..fixtures::order_sheet() }).unwrap();
    // A well-formed fact no rule could produce: more units undone than ordered. Only ClickHouse's own
    // check on the table refuses it.
    let impossible_fact = encode(&PaymentFact {
        vendor_item_name: "impossible".into(),
        status: "CANCELLED".into(),
        cancelled_quantity: 5,
        cancelled: true,
        ..fixtures::payment_fact(1, 1, 1)
    })
    .unwrap();
    // An order's facts as the transform sends them, two of them impossible: the message goes to the
    // dead-letter topic once, with both reasons.
    let impossible_order = [1, 2].map(|item| PaymentFact {
        vendor_item_name: "impossible".into(),
        status: "CANCELLED".into(),
        cancelled_quantity: 5,
        cancelled: true,
        ..fixtures::payment_fact(2, item, 1)
    });
    let impossible_order = encode_order_facts(&impossible_order[0].vendor_id, 2, &impossible_order);
    // The bookkeeping topics too: the transform's changelog (dead-lettered when restored) and ingest's
    // checkpoints and account statuses (skipped with a warning).
    etl_core::kafka::ensure_compacted_topics(
        &config.kafka,
        &[&topics.transform_state, &topics.checkpoints, &topics.account_status],
    )
    .await
    .unwrap();
    let poison: [(&str, &[u8]); 11] = [
        (&topics.raw_order_sheets, b"{\"not\": \"avro\"}"),
        (&topics.raw_order_sheets, &impossible),
        (&topics.raw_return_requests, b"\xc3\x01\x00\x00\x00\x00\x00\x00\x00\x00 unknown schema"),
        (&topics.raw_revenue, b"\xc3\x01"),
        (&topics.raw_settlements, b"\xc3\x01 not a payout"),
        (&topics.payment_facts, b"\xc3\x01garbage!"),
        (&topics.payment_facts, &impossible_fact),
        (&topics.payment_facts, &impossible_order),
        (&topics.transform_state, b"\xc3\x01not a state"),
        (&topics.checkpoints, b"{\"swept_through\": 7}"),
        (&topics.account_status, b"\x00\x01"),
    ];
    for (topic, payload) in poison {
        producer
            .send(FutureRecord::to(topic).key("poison").payload(payload), Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    let (from, to) = sim_range(&config);
    run_range(&config, from, to, &Shutdown::new()).await.unwrap();
    assert_eq!(compare(&daily_payments(&config.clickhouse).await.unwrap(), &truth), vec![]);

    let dead = read_topic(&config.kafka, &topics.dead_letter);
    // Raw order sheets, receipts and revenue are dead-lettered by the transform, payouts and facts by
    // the loader (which reads revenue too, and leaves its poison to the transform).
    assert_eq!(dead.len(), 9, "each poison record of a data topic or the changelog is dead-lettered once");
    let reasons: Vec<(&str, &str)> =
        dead.iter().map(|m| (header(m, "dlq.stage").unwrap(), header(m, "dlq.reason").unwrap())).collect();
    assert!(
        reasons.iter().any(|(stage, r)| *stage == "transform" && r.contains("not an Avro single-object")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|(stage, r)| *stage == "transform" && r.contains("TELEPORTED")), "{reasons:?}");
    assert!(
        reasons.iter().any(|(_, r)| r.contains("ReturnRequestEvent: written with an unknown schema")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|(_, r)| r.contains("got 2 bytes")), "{reasons:?}");
    assert!(reasons.iter().any(|(stage, r)| *stage == "load" && r.contains("PaymentFact")), "{reasons:?}");
    assert!(reasons.iter().any(|(stage, r)| *stage == "load" && r.contains("SettlementEvent")), "{reasons:?}");
    assert!(
        reasons.iter().any(|(stage, r)| *stage == "transform" && r.contains("changelog") && r.contains("poison")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(stage, r)| *stage == "load" && r.contains("ClickHouse rejected the row") && r.contains("395")),
        "the server's own message: {reasons:?}"
    );
    let order_rejected = |r: &&str| ["/2/1@1: ", "; ", "/2/2@1: "].iter().all(|part| r.contains(part));
    assert!(reasons.iter().any(|(_, r)| order_rejected(r)), "both rows of the order named: {reasons:?}");
    println!("dead-lettered: {reasons:?}");
    sim.stop().await;
    finish(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_simulator_fault_on_the_numbers_stay_exact() {
    let faults = coupang_sim::config::FaultConfig::all_at(0.12);
    let mut config = config("faults", SimConfig { days: 6 * soak_factor(), faults, ..small_world() });
    config.ingest.max_attempts = 8;
    let sim = with_simulator(&mut config).await;
    let truth = Truth::of(&sim.world());
    let (from, to) = sim_range(&config);

    let report = run_range(&config, from, to, &Shutdown::new()).await.unwrap();
    for (alias, account) in &report.ingest.accounts {
        assert_eq!(account.error, None, "{alias} finished");
        assert_eq!(account.bad_records(), 0, "{alias}: every incomplete record came whole when asked alone");
    }
    assert_eq!(compare(&daily_payments(&config.clickhouse).await.unwrap(), &truth), vec![]);
    assert_eq!(order_payments(&config.clickhouse).await.unwrap(), truth.orders);
    let expected_rows: u64 = truth.daily.values().map(|d| d.items).sum();
    assert_eq!(fact_counts(&config.clickhouse).await.unwrap().current_rows, expected_rows);

    let injected = sim.faults_injected();
    let stats = sim.stats();
    let throttled: u64 = stats.iter().filter(|((_, _, s), _)| *s == 429).map(|(_, n)| n).sum();
    let repeated: u64 = report.ingest.accounts.values().map(|a| a.unchanged).sum();
    for kind in ["server_error", "slow", "reset", "malformed_json", "missing_field", "repeated_record"] {
        assert!(injected.get(kind).copied().unwrap_or(0) > 0, "{kind} was injected: {injected:?}");
    }
    assert!(throttled > 0 && repeated > 0);
    println!("exact under faults: {injected:?}, {throttled} × 429; {repeated} repeated records sent once");
    sim.stop().await;
    finish(&config).await;
}

/// How many orders took each lifecycle path; fails when a path that is switched on was taken by none.
fn lifecycle_counts(world: &coupang_sim::World, lifecycle: &coupang_sim::config::LifecycleConfig) -> String {
    let (paths, adjustments) = coupang_sim::lifecycle::coverage(world);
    for (path, orders) in &paths {
        assert!(!path.enabled(lifecycle) || *orders > 0, "no order took \"{}\": {paths:?}", path.name());
    }
    let mut lines: Vec<String> = paths.iter().map(|(path, orders)| format!("{}: {orders}", path.name())).collect();
    lines.push(format!("orderId 0 adjustment rows: {adjustments}"));
    lines.join(", ")
}
