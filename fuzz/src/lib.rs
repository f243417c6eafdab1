//! What every fuzz target checks once its bytes became raw events: the pipeline's own invariants.
//!
//! - Every event survives its Avro encoding unchanged (what ingest writes, transform reads).
//! - Events that pass validation fold into order states in any order to the same facts.
//! - Every fact is self-consistent: amount = price + shipping − coupons, nothing negative, no more
//!   units undone than ordered. (ClickHouse refuses rows that break these; the rules must never make one.)

use coupang_schemas::{decode, encode, OrderKey, OrderSheetEvent, ReturnRequestEvent, RevenueEvent};
use coupang_transform::order::{OrderState, RawEvent};
use coupang_transform::rules::payment_facts;
use std::collections::BTreeMap;

pub fn check_events(events: &[RawEvent]) {
    for event in events {
        assert_round_trip(event);
    }
    let valid: Vec<&RawEvent> = events.iter().filter(|e| e.validate().is_ok()).collect();
    let forward = facts_of(valid.iter().copied());
    let backward = facts_of(valid.iter().rev().copied());
    assert_eq!(forward, backward, "the facts depend on the order events arrive in");
    for fact in forward.values().flatten() {
        assert_consistent(fact);
    }
}

/// Facts per order after folding `events` in the given order.
fn facts_of<'a>(events: impl Iterator<Item = &'a RawEvent>) -> BTreeMap<OrderKey, Vec<coupang_schemas::PaymentFact>> {
    let mut states: BTreeMap<OrderKey, OrderState> = BTreeMap::new();
    for event in events {
        states.entry(event.order_key()).or_default().fold(event);
    }
    states.iter().map(|(key, state)| (key.clone(), payment_facts(state))).collect()
}

pub fn assert_consistent(fact: &coupang_schemas::PaymentFact) {
    let amount = fact.order_price + fact.shipping_fee - fact.seller_coupon_discount - fact.coupang_coupon_discount;
    assert_eq!(fact.payment_amount, amount, "{fact:?}");
    for value in [fact.order_price, fact.shipping_fee, fact.seller_coupon_discount, fact.coupang_coupon_discount] {
        assert!(value >= 0, "{fact:?}");
    }
    assert!(0 <= fact.cancelled_quantity && fact.cancelled_quantity <= fact.quantity, "{fact:?}");
}

fn assert_round_trip(event: &RawEvent) {
    match event {
        RawEvent::OrderSheet(e) => assert_eq!(&decode::<OrderSheetEvent>(&encode(e).unwrap()).unwrap(), e),
        RawEvent::ReturnRequest(e) => assert_eq!(&decode::<ReturnRequestEvent>(&encode(e).unwrap()).unwrap(), e),
        RawEvent::Revenue(e) => assert_eq!(&decode::<RevenueEvent>(&encode(e).unwrap()).unwrap(), e),
    }
}
