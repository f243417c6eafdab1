//! Schema evolution: records written with every released schema version still decode with the
//! current one. The fixtures were written once, while v1 was current, by what is now
//! `cargo run -p coupang-schemas --example write_v1_fixtures` (it refuses to overwrite them), and are
//! never rewritten: a schema change that breaks them is not backward compatible. The events they hold
//! are in `v1_events/mod.rs`; when a field is added (with a default), extend them with it.

mod v1_events;

use coupang_schemas::*;
use v1_events::{fact, order_sheet, return_request, revenue};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

#[test]
fn records_written_by_v1_still_decode() {
    let read = |name: &str| std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    assert_eq!(decode::<OrderSheetEvent>(&read("order_sheet_event.v1.avro")).unwrap(), order_sheet());
    assert_eq!(decode::<ReturnRequestEvent>(&read("return_request_event.v1.avro")).unwrap(), return_request());
    assert_eq!(decode::<RevenueEvent>(&read("revenue_event.v1.avro")).unwrap(), revenue());
    assert_eq!(decode::<PaymentFact>(&read("payment_fact.v1.avro")).unwrap(), fact());
    // The facts topic's reader takes a v1 fact (legacy fingerprint) as a message of one fact.
    assert_eq!(decode_facts(&read("payment_fact.v1.avro")).unwrap(), vec![fact()]);
}

#[test]
fn every_event_round_trips() {
    assert_eq!(decode::<OrderSheetEvent>(&encode(&order_sheet()).unwrap()).unwrap(), order_sheet());
    assert_eq!(decode::<ReturnRequestEvent>(&encode(&return_request()).unwrap()).unwrap(), return_request());
    assert_eq!(decode::<RevenueEvent>(&encode(&revenue()).unwrap()).unwrap(), revenue());
}

/// The events typed since the fixtures were written (statuses, receipt types and fact statuses became
/// enums) encode to the fixtures' very datums: nothing changed on the wire. Only the datum is compared,
/// after the 10-byte single-object header: the fixtures carry the fingerprint earlier releases wrote
/// (apache-avro's), records now carry the specification's (see the codec).
#[test]
fn typed_events_encode_to_the_fixtures_datums() {
    let datum = |bytes: Vec<u8>| bytes[10..].to_vec();
    let read = |name: &str| datum(std::fs::read(fixture(name)).unwrap());
    assert_eq!(datum(encode(&order_sheet()).unwrap()), read("order_sheet_event.v1.avro"));
    assert_eq!(datum(encode(&return_request()).unwrap()), read("return_request_event.v1.avro"));
    // PaymentFact is at v2: its datum is v1's, then the cause (a string: length 10 zigzag-encoded as
    // 0x14, then its bytes) and the previous amount (union branch 0, null).
    let mut v2 = read("payment_fact.v1.avro");
    v2.push(0x14);
    v2.extend_from_slice(b"UNRECORDED");
    v2.push(0x00);
    assert_eq!(datum(encode(&fact()).unwrap()), v2);
}
