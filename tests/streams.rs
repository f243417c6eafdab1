//! Ingest's three streams against the real broker: order sheets, cancel/return receipts and revenue rows.

mod common;

use chrono::{Datelike, NaiveDate};
use common::*;
use coupang_ingest::{account_statuses, collect_range};
use coupang_schemas::{decode, OrderStatus, ReturnRequestEvent, RevenueEvent, SaleType, SettlementEvent};
use coupang_sim::config::LifecycleConfig;
use coupang_sim::SimConfig;
use etl_core::kafka::group_lag;
use etl_core::Shutdown;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_faults_on_every_box_receipt_and_revenue_row_is_emitted_once() {
    let sim = SimConfig {
        days: 12,
        orders_per_day: 25,
        lifecycle: LifecycleConfig::realistic(),
        faults: coupang_sim::config::FaultConfig::all_at(0.08),
        ..SimConfig::default()
    };
    let mut config = config("streams", sim);
    config.ingest.max_attempts = 8;
    let sim = with_simulator(&mut config).await;
    let world = sim.world();
    // Confirmations run past the period's end, up to the world's moment the next morning.
    let (from, to) =
        (config.sim.start_date - chrono::Duration::days(1), config.sim.end_date() + chrono::Duration::days(1));
    let report =
        collect_range(&config.ingest, &config.kafka, &config.accounts, from, to, &Shutdown::new()).await.unwrap();

    let expected_receipts: HashSet<i64> = world
        .vendors
        .values()
        .flat_map(|v| v.boxes.iter().flat_map(|b| b.receipts.iter().map(|r| r.receipt_id)))
        .collect();
    // Every row revenue-history lists, each with its rank among the order's rows of its type and day.
    let mut expected_revenue = HashSet::new();
    for (vendor, rows) in coupang_sim::revenue::rows_of(&world) {
        let mut seen: HashMap<(i64, String, i32), i32> = HashMap::new();
        for row in rows {
            let order = row.row["orderId"].as_i64().unwrap();
            let kind = row.row["saleType"].as_str().unwrap().to_string();
            let day = etl_core::time::days_since_epoch(row.recognized_on);
            let rank = seen.entry((order, kind.clone(), day)).or_default();
            expected_revenue.insert((vendor.clone(), order, kind, day, *rank));
            *rank += 1;
        }
    }
    let topics = config.kafka.topics();
    let receipts: Vec<ReturnRequestEvent> =
        read_topic(&config.kafka, &topics.raw_return_requests).iter().map(|m| decode(payload(m)).unwrap()).collect();
    let revenue: Vec<RevenueEvent> =
        read_topic(&config.kafka, &topics.raw_revenue).iter().map(|m| decode(payload(m)).unwrap()).collect();

    let boxes: HashSet<i64> = read_topic(&config.kafka, &topics.raw_order_sheets)
        .iter()
        .map(|m| decode::<coupang_schemas::OrderSheetEvent>(payload(m)).unwrap().shipment_box_id)
        .collect();
    // Boxes cancelled whole or returned have left the lists: they reach Kafka as receipts.
    let expected_boxes: HashSet<i64> = world
        .vendors
        .values()
        .flat_map(|v| v.boxes.iter().filter(|b| b.listed || !b.receipts.is_empty()).map(|b| b.shipment_box_id))
        .collect();
    same(&boxes, &expected_boxes, "shipment boxes (listed, or read alone through a receipt)");
    let got_receipts: HashSet<i64> = receipts.iter().map(|r| r.receipt_id).collect();
    assert_eq!(receipts.len(), got_receipts.len(), "each receipt once");
    same(&got_receipts, &expected_receipts, "receipts");
    let got_revenue: HashSet<_> = revenue
        .iter()
        .map(|r| (r.vendor_id.clone(), r.order_id, r.sale_type.to_string(), r.recognition_date, r.same_day_row))
        .collect();
    assert_eq!(revenue.len(), got_revenue.len(), "each revenue row once");
    same(&got_revenue, &expected_revenue, "revenue rows");

    // Every payout the simulator shows for the range's months (computed from its own revenue rows), once.
    let today = config.sim.end_date() + chrono::Duration::days(1);
    let months: std::collections::BTreeSet<NaiveDate> =
        [from, to].iter().map(|d| NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap()).collect();
    let mut expected_payouts = HashSet::new();
    for (vendor, rows) in coupang_sim::revenue::rows_of(&world) {
        for month in &months {
            for p in coupang_sim::settlement::payout_rows(&rows, *month, today, 0) {
                let text = |field: &str| p[field].as_str().unwrap().to_string();
                let target = p["settlementTargetAmount"].as_i64().unwrap();
                expected_payouts.insert((
                    vendor.clone(),
                    text("settlementType"),
                    text("revenueRecognitionDateFrom"),
                    target,
                ));
            }
        }
    }
    let payouts: Vec<SettlementEvent> =
        read_topic(&config.kafka, &topics.raw_settlements).iter().map(|m| decode(payload(m)).unwrap()).collect();
    let got_payouts: HashSet<_> = payouts
        .iter()
        .map(|p| {
            let from = etl_core::time::date_from_days(p.recognition_date_from).unwrap().to_string();
            (p.vendor_id.clone(), p.settlement_type.to_string(), from, p.settlement_target_amount)
        })
        .collect();
    assert_eq!(payouts.len(), got_payouts.len(), "each payout once");
    assert!(!expected_payouts.is_empty(), "the world has payouts");
    same(&got_payouts, &expected_payouts, "payouts");
    assert!(revenue
        .iter()
        .filter(|r| r.sale_type == SaleType::Refund)
        .all(|r| r.items.iter().all(|i| i.sale_price < 0)));
    assert!(report.accounts.values().all(|a| a.error.is_none() && a.bad_records() == 0), "{report:?}");
    let calls: u64 = sim.stats().values().sum();
    let changes = boxes.len() + receipts.len() + revenue.len();
    println!(
        "under faults {:?}: {} boxes, {} receipts, {} revenue rows ({} refunds) from {calls} API calls \
         ({:.3} calls per collected record)",
        sim.faults_injected(),
        boxes.len(),
        receipts.len(),
        revenue.len(),
        revenue.iter().filter(|r| r.sale_type == SaleType::Refund).count(),
        calls as f64 / changes as f64
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeping_an_unchanged_world_again_sends_nothing() {
    let mut config = config("unchanged", recent_world(5, 0, 15));
    follow(&mut config, 7);
    let sim = with_simulator(&mut config).await;
    let boxes: i64 = sim.world().vendors.values().map(|v| v.boxes.len() as i64).sum();
    let (shutdown, ingest) = spawn_ingest(&config);
    let topic = config.kafka.topics().raw_order_sheets;
    let messages = || async { group_lag(&config.kafka, &unique("count"), &topic).await.unwrap_or(0) };
    assert!(eventually(Duration::from_secs(60), || async { messages().await == boxes }).await, "first sweep");
    // Wait for two more sweeps of every account to finish.
    for _ in 0..2 {
        let before = account_statuses(&config.kafka, Duration::from_secs(5)).await.unwrap();
        let swept_again = || async {
            let now = account_statuses(&config.kafka, Duration::from_secs(5)).await.unwrap_or_default();
            before.iter().all(|(alias, s)| now.get(alias).is_some_and(|n| n.updated_at > s.updated_at))
        };
        assert!(eventually(Duration::from_secs(60), swept_again).await);
    }
    assert_eq!(messages().await, boxes, "unchanged boxes were not sent again");
    shutdown.cancel();
    ingest.await.unwrap().unwrap();
    println!("{boxes} boxes sent once over three sweeps");
    sim.stop().await;
}

/// Set equality that names only the differences.
fn same<T: std::hash::Hash + Eq + std::fmt::Debug>(got: &HashSet<T>, expected: &HashSet<T>, what: &str) {
    let missing: Vec<_> = expected.difference(got).take(5).collect();
    let extra: Vec<_> = got.difference(expected).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{what}: missing {missing:?}, unexpected {extra:?} (first 5 each)");
}

fn payload(message: &rdkafka::message::OwnedMessage) -> &[u8] {
    use rdkafka::Message;
    message.payload().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_downtime_longer_than_the_look_back_the_checkpoint_closes_the_gap() {
    let today = etl_core::time::now_kst().date_naive();
    let mut config = config("downtime", recent_world(12, 0, 10));
    // The look-back alone covers 2 days; the process was last running 11 days ago.
    follow(&mut config, 2);
    let sim = with_simulator(&mut config).await;
    let boxes: i64 = sim.world().vendors.values().map(|v| v.boxes.len() as i64).sum();
    let topics = config.kafka.topics();
    etl_core::kafka::ensure_compacted_topics(&config.kafka, &[&topics.checkpoints]).await.unwrap();
    let producer: rdkafka::producer::FutureProducer = config.kafka.producer_config().create().unwrap();
    for account in &config.accounts {
        for stream in ["ordersheets", "returnrequests", "revenue"] {
            let checkpoint = coupang_ingest::Checkpoint {
                alias: account.alias.clone(),
                vendor_id: account.vendor_id.clone(),
                stream: stream.into(),
                swept_from: today - chrono::Duration::days(20),
                swept_through: today - chrono::Duration::days(11),
                completed_at: chrono::Utc::now() - chrono::Duration::days(11),
            };
            let payload = serde_json::to_vec(&checkpoint).unwrap();
            let key = format!("{}:{stream}", account.alias);
            let record = rdkafka::producer::FutureRecord::to(&topics.checkpoints).key(&key).payload(&payload);
            producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).unwrap();
        }
    }

    let (shutdown, ingest) = spawn_ingest(&config);
    let messages = || async { group_lag(&config.kafka, &unique("count"), &topics.raw_order_sheets).await.unwrap_or(0) };
    assert!(
        eventually(Duration::from_secs(60), || async { messages().await == boxes }).await,
        "every box of the 12 days was collected, not only the look-back's 2"
    );
    let moved = || async {
        coupang_ingest::load_checkpoints(&config.kafka).await.is_ok_and(|c| {
            c.values().filter(|c| c.stream == "ordersheets").count() == 3
                // Ingest's today, read when it planned the sweep: past `today` when midnight (Korea
                // time) passed since the test read it.
                && c.values().filter(|c| c.stream == "ordersheets").all(|c| c.swept_through >= today)
        })
    };
    assert!(eventually(Duration::from_secs(30), moved).await, "checkpoints moved to today");
    shutdown.cancel();
    ingest.await.unwrap().unwrap();
    println!("{boxes} boxes over 12 days collected after 11 days of downtime with a 2-day look-back");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backfill_resumes_where_it_stopped() {
    use coupang_ingest::{backfill, BackfillProgress, Stream};
    let mut config = config("backfill", SimConfig { days: 40, orders_per_day: 10, ..SimConfig::default() });
    config.ingest.requests_per_second = 5.0;
    config.ingest.backfill_requests_per_second = 5.0;
    let sim = with_simulator(&mut config).await;
    let account = config.accounts[0].clone();
    let range = (config.sim.start_date - chrono::Duration::days(1), config.sim.end_date());
    let streams = [Stream::OrderSheets, Stream::ReturnRequests, Stream::Revenue];

    // The first run is stopped after its first window.
    let stop = Shutdown::new();
    let stop_after_one = |p: &BackfillProgress| {
        if p.windows_done >= 1 {
            stop.cancel();
        }
    };
    let first =
        backfill(&config.ingest, &config.kafka, &account, range, &streams, &stop_after_one, &stop).await.unwrap();
    assert!(first.windows_done < first.windows_total, "interrupted: {first:?}");

    let second =
        backfill(&config.ingest, &config.kafka, &account, range, &streams, &|_| {}, &Shutdown::new()).await.unwrap();
    assert_eq!(second.windows_done, second.windows_total, "{second:?}");
    assert!(second.windows_skipped >= first.windows_done, "resumed after the recorded windows: {second:?}");

    let topic = config.kafka.topics().raw_order_sheets;
    let collected: HashSet<i64> = read_topic(&config.kafka, &topic)
        .iter()
        .map(|m| decode::<coupang_schemas::OrderSheetEvent>(payload(m)).unwrap().shipment_box_id)
        .collect();
    let expected: HashSet<i64> =
        sim.world().vendors[&account.vendor_id].boxes.iter().map(|b| b.shipment_box_id).collect();
    assert_eq!(collected, expected, "every box of the account, none of another");
    println!(
        "backfill: first run {}/{} windows, second run resumed {} and finished; {} boxes",
        first.windows_done,
        first.windows_total,
        second.windows_skipped,
        collected.len()
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_of_orders_inside_the_look_back_are_caught() {
    // The world runs at two simulated hours per real second, starting three days ago.
    let today = etl_core::time::now_kst().date_naive();
    let start = today - chrono::Duration::days(3);
    let sim = SimConfig {
        start_date: start,
        days: 4,
        orders_per_day: 20,
        time_scale: 7_200.0,
        clock_start: Some(start.and_hms_opt(6, 0, 0).unwrap()),
        ..SimConfig::default()
    };
    let mut config = config("moving", sim);
    config.ingest.lookback_days = 5;
    config.ingest.poll_interval_secs = 1;
    config.ingest.follow_api_share = 1.0;
    let sim = with_simulator(&mut config).await;
    let (shutdown, ingest) = spawn_ingest(&config);
    tokio::time::sleep(Duration::from_secs(15)).await;
    shutdown.cancel();
    ingest.await.unwrap().unwrap();
    let simulated = sim.now();

    // Events of one box share its key, hence its partition: read in order, its statuses only move on,
    // and each event says something new (a status, or a cancel requested or counted).
    let mut seen: std::collections::HashMap<i64, Vec<OrderStatus>> = std::collections::HashMap::new();
    let mut snapshots: std::collections::HashMap<i64, Vec<coupang_schemas::OrderSheetEvent>> = Default::default();
    let events = read_topic(&config.kafka, &config.kafka.topics().raw_order_sheets);
    for message in &events {
        let mut event = decode::<coupang_schemas::OrderSheetEvent>(payload(message)).unwrap();
        seen.entry(event.shipment_box_id).or_default().push(event.status.clone());
        event.collected_at = 0;
        snapshots.entry(event.shipment_box_id).or_default().push(event);
    }
    for sent in snapshots.values() {
        assert!(sent.windows(2).all(|w| w[0] != w[1]), "each change sent once: {sent:?}");
    }
    let rank = |status: &OrderStatus| OrderStatus::KNOWN.iter().position(|known| known == status).unwrap();
    let changed = seen.values().filter(|statuses| statuses.len() > 1).count();
    for statuses in seen.values() {
        assert!(statuses.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])), "statuses in order: {statuses:?}");
    }
    assert!(changed > 10, "status changes caught: {changed} of {} boxes", seen.len());
    let calls: u64 = sim.stats().values().sum();
    println!(
        "simulated clock reached {simulated}; {} boxes, {changed} caught changing status, {} events from {calls} API calls \
         ({:.2} calls per collected change)",
        seen.len(),
        events.len(),
        calls as f64 / events.len() as f64
    );
    sim.stop().await;
}
