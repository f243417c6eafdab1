//! Our topics read with a standard Avro library, as a team outside the project would: the pipeline
//! runs against the real broker, then fastavro (Python, in the venv `deploy/python.sh` makes) reads
//! every message of every Avro topic, finding each message's schema among the `.avsc` files by the
//! CRC-64-AVRO fingerprint in its single-object header, and checks it against what Rust decoded.
//!
//! Avro topics read: raw order sheets, raw return requests, raw revenue, raw payouts, payment facts, and the
//! transform's changelog (whose states hold raw records, read as well). Not read: the dead-letter
//! topic (it holds what a stage could not read, as it came) and the JSON bookkeeping topics
//! (ingest's checkpoints and account statuses).

mod common;

use common::*;
use coupang_etl::pipeline::run_range;
use coupang_schemas::{
    decode, EventType, OrderPaymentFacts, OrderSheetEvent, OrderStateRecord, ReturnRequestEvent, RevenueEvent,
    SettlementEvent,
};
use coupang_sim::SimConfig;
use etl_core::kafka::KafkaConfig;
use etl_core::Shutdown;
use rdkafka::Message;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/read_topics_with_fastavro.py");
const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/avro");

/// What the Python side checks of one message, from the Rust side's reading of it: field values
/// (timestamps in epoch milliseconds, dates in days since 1970-01-01), array lengths, and the array
/// fields whose items are single-object records themselves.
struct Expected {
    fields: Value,
    lengths: Value,
    nested: &'static [&'static str],
}

fn order_sheet(e: OrderSheetEvent) -> Expected {
    Expected {
        fields: json!({
            "vendor_id": e.vendor_id, "order_id": e.order_id, "shipment_box_id": e.shipment_box_id,
            "status": e.status, "paid_at": e.paid_at, "shipping_price": e.shipping_price,
        }),
        lengths: json!({ "items": e.items.len() }),
        nested: &[],
    }
}

fn return_request(e: ReturnRequestEvent) -> Expected {
    Expected {
        fields: json!({
            "vendor_id": e.vendor_id, "order_id": e.order_id, "receipt_id": e.receipt_id,
            "receipt_status": e.receipt_status, "created_at": e.created_at,
            "return_shipping_charge": e.return_shipping_charge,
        }),
        lengths: json!({ "items": e.items.len() }),
        nested: &[],
    }
}

fn revenue(e: RevenueEvent) -> Expected {
    Expected {
        fields: json!({
            "vendor_id": e.vendor_id, "order_id": e.order_id, "sale_type": e.sale_type,
            "sale_date": e.sale_date, "recognition_date": e.recognition_date, "delivery_fee": e.delivery_fee,
        }),
        lengths: json!({ "items": e.items.len() }),
        nested: &[],
    }
}

fn payout(p: SettlementEvent) -> Expected {
    Expected {
        fields: json!({
            "vendor_id": p.vendor_id, "settlement_type": p.settlement_type, "settlement_date": p.settlement_date,
            "recognition_date_from": p.recognition_date_from, "settlement_target_amount": p.settlement_target_amount,
            "final_amount": p.final_amount, "status": p.status,
        }),
        lengths: json!({}),
        nested: &[],
    }
}

/// An order's facts: the order, how many, and each fact's identity and amounts.
fn order_facts(o: OrderPaymentFacts) -> Expected {
    let mut fields = json!({ "vendor_id": o.vendor_id, "order_id": o.order_id });
    for (i, f) in o.facts.iter().enumerate() {
        let fact = json!({
            "vendor_id": f.vendor_id, "order_id": f.order_id, "vendor_item_id": f.vendor_item_id,
            "payment_date": f.payment_date, "paid_at": f.paid_at, "quantity": f.quantity,
            "payment_amount": f.payment_amount, "provisional": f.provisional, "cancelled": f.cancelled,
            "version": f.version, "change_cause": f.change_cause.as_str(),
        });
        for (name, value) in fact.as_object().into_iter().flatten() {
            fields[format!("facts/{i}/{name}")] = value.clone();
        }
    }
    Expected { fields, lengths: json!({ "facts": o.facts.len() }), nested: &[] }
}

fn order_state(s: OrderStateRecord) -> Expected {
    Expected {
        fields: json!({ "vendor_id": s.vendor_id, "order_id": s.order_id, "source_time": s.source_time }),
        lengths: json!({ "boxes": s.boxes.len(), "receipts": s.receipts.len(), "revenue": s.revenue.len() }),
        nested: &["boxes", "receipts", "revenue"],
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Every message of `topic`, decoded by our codec, as lines of the Python script's input; returns how
/// many.
fn messages_of<T: EventType>(
    kafka: &KafkaConfig,
    label: &str,
    topic: &str,
    expect: fn(T) -> Expected,
    lines: &mut String,
) -> usize {
    let messages = read_topic(kafka, topic);
    for message in &messages {
        let payload = message.payload().unwrap_or_else(|| panic!("{label}: a message without a payload"));
        let event = decode::<T>(payload).unwrap_or_else(|e| panic!("{label}: our codec cannot read a message: {e}"));
        let Expected { fields, lengths, nested } = expect(event);
        let line = json!({
            "topic": label, "payload": hex(payload), "record": T::NAME,
            "fields": fields, "lengths": lengths, "nested": nested,
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    messages.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastavro_reads_every_avro_topic_by_the_schema_fingerprint() {
    let python = project_python("fastavro");
    // Three weeks: long enough for purchase confirmations, so payouts too.
    let mut config = config("avro_standard", SimConfig { days: 20, orders_per_day: 10, ..small_world() });
    let sim = with_simulator(&mut config).await;
    let (from, to) = sim_range(&config);
    run_range(&config, from, to, &Shutdown::new()).await.unwrap();

    let topics = config.kafka.topics();
    let mut lines = String::new();
    let kafka = &config.kafka;
    let counts = BTreeMap::from([
        ("raw_order_sheets", messages_of(kafka, "raw_order_sheets", &topics.raw_order_sheets, order_sheet, &mut lines)),
        (
            "raw_return_requests",
            messages_of(kafka, "raw_return_requests", &topics.raw_return_requests, return_request, &mut lines),
        ),
        ("raw_revenue", messages_of(kafka, "raw_revenue", &topics.raw_revenue, revenue, &mut lines)),
        ("raw_settlements", messages_of(kafka, "raw_settlements", &topics.raw_settlements, payout, &mut lines)),
        ("payment_facts", messages_of(kafka, "payment_facts", &topics.payment_facts, order_facts, &mut lines)),
        ("transform_state", messages_of(kafka, "transform_state", &topics.transform_state, order_state, &mut lines)),
    ]);
    for (topic, count) in &counts {
        assert!(*count > 0, "the run wrote to {topic}: {counts:?}");
    }

    let dir = std::env::temp_dir().join(unique("avro_standard"));
    std::fs::create_dir_all(&dir).unwrap();
    let messages = dir.join("messages.jsonl");
    std::fs::write(&messages, lines).unwrap();
    let output = std::process::Command::new(&python).arg(SCRIPT).arg(SCHEMA_DIR).arg(&messages).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "fastavro could not read our topics (the messages are kept in {}):\n{stdout}{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{stdout}");

    // The script's last line: what it read. Every message, not a part the script chose.
    let summary: Value = stdout.lines().last().and_then(|line| serde_json::from_str(line).ok()).unwrap_or_else(|| {
        panic!("the script ends with its JSON summary:\n{stdout}");
    });
    let decoded: BTreeMap<&str, usize> =
        counts.keys().map(|t| (*t, summary["decoded"][t].as_u64().unwrap_or(0) as usize)).collect();
    assert_eq!(decoded, counts, "fastavro decoded every message of every Avro topic");
    assert!(summary["nested"].as_u64().unwrap_or(0) > 0, "the changelog's states hold raw records: {summary}");
    std::fs::remove_dir_all(&dir).ok();
    sim.stop().await;
    finish(&config).await;
}
