//! Arbitrary bytes as a Kafka message payload (what a poison message looks like to transform and load):
//! every decoder refuses or accepts without panicking, `decode` (the hand-written readers, and the datum
//! reader behind them) agrees with apache-avro, and what is accepted goes on through the rules.
#![no_main]

use coupang_etl_fuzz::check_events;
use coupang_schemas::{
    decode, decode_facts, decode_with_apache_avro, EventType, OrderPaymentFacts, OrderSheetEvent, OrderStateRecord,
    PaymentFact, ReturnRequestEvent, RevenueEvent,
};
use coupang_transform::order::RawEvent;
use coupang_transform::store::from_record;
use libfuzzer_sys::fuzz_target;

/// `decode` (by hand where a type has a reader of its own, else the datum reader) and apache-avro's
/// `Value` tree read the same bytes the same way: both refuse them, or both give the same event.
fn same_as_apache_avro<T: EventType + PartialEq + std::fmt::Debug>(data: &[u8]) {
    match (decode::<T>(data), decode_with_apache_avro::<T>(data)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("{}: decode gives {a:?}, apache-avro {b:?}", T::NAME),
    }
}

fuzz_target!(|data: &[u8]| {
    same_as_apache_avro::<OrderSheetEvent>(data);
    same_as_apache_avro::<ReturnRequestEvent>(data);
    same_as_apache_avro::<RevenueEvent>(data);
    same_as_apache_avro::<PaymentFact>(data);
    same_as_apache_avro::<OrderPaymentFacts>(data);
    same_as_apache_avro::<OrderStateRecord>(data);
    let mut events = Vec::new();
    if let Ok(e) = decode::<OrderSheetEvent>(data) {
        events.push(RawEvent::OrderSheet(e));
    }
    if let Ok(e) = decode::<ReturnRequestEvent>(data) {
        events.push(RawEvent::ReturnRequest(e));
    }
    if let Ok(e) = decode::<RevenueEvent>(data) {
        events.push(RawEvent::Revenue(e));
    }
    check_events(&events);
    // Load only decodes facts; ClickHouse's row check judges them, so there is nothing more to hold.
    let _ = decode_facts(data);
    // A changelog record (transform's own state topic): read back without panicking; its events are
    // held to the same checks as events from the raw topics.
    if let Ok(record) = decode::<OrderStateRecord>(data) {
        if let Ok(state) = from_record(record) {
            let boxes = state.boxes.values().cloned().map(RawEvent::OrderSheet);
            let receipts = state.receipts.values().cloned().map(RawEvent::ReturnRequest);
            let revenue = state.revenue.values().cloned().map(RawEvent::Revenue);
            check_events(&boxes.chain(receipts).chain(revenue).collect::<Vec<_>>());
        }
    }
});
