//! Records written before the codec switched to the Avro specification's fingerprint (CRC-64-AVRO of
//! the Parsing Canonical Form) carry apache-avro 0.21's fingerprint instead. Topics hold such records,
//! so they must stay readable: the v1 fixtures are exactly such records.

use apache_avro::rabin::Rabin;
use apache_avro::Schema;
use coupang_schemas::*;
use std::fmt::Debug;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// apache-avro's fingerprint of the first schema in `T`'s history, which wrote the v1 fixtures.
fn legacy_fingerprint_of_v1<T: EventType>() -> Vec<u8> {
    let v1 = Schema::parse_str(T::history()[0]).unwrap();
    v1.fingerprint::<Rabin>().bytes
}

/// The fixture carries the legacy fingerprint (so this test reads what it means to), both readers read
/// it the same way, and the event written again carries another fingerprint and reads back the same.
fn a_legacy_record_decodes<T: EventType + PartialEq + Debug>(name: &str) {
    let legacy = fixture(name);
    assert_eq!(legacy[2..10], legacy_fingerprint_of_v1::<T>()[..], "{name} was written with apache-avro's fingerprint");
    let event = decode::<T>(&legacy).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(decode_with_apache_avro::<T>(&legacy).unwrap(), event, "{name}");
    let rewritten = encode(&event).unwrap();
    assert_ne!(rewritten[2..10], legacy[2..10], "{name}: written now with the specification's fingerprint");
    assert_eq!(decode::<T>(&rewritten).unwrap(), event, "{name}");
}

#[test]
fn records_with_apache_avros_fingerprint_still_decode() {
    a_legacy_record_decodes::<OrderSheetEvent>("order_sheet_event.v1.avro");
    a_legacy_record_decodes::<ReturnRequestEvent>("return_request_event.v1.avro");
    a_legacy_record_decodes::<RevenueEvent>("revenue_event.v1.avro");
    a_legacy_record_decodes::<PaymentFact>("payment_fact.v1.avro");
}
