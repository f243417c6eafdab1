//! Inputs the fuzzers found, kept as regressions: each must be refused with an error, never crash the
//! process (a poison message goes to the dead-letter topic; the stage goes on).

use coupang_schemas::*;

#[test]
fn a_state_record_claiming_a_400_million_item_array_is_refused_not_an_abort() {
    let bytes = include_bytes!("poison/state-with-a-400-million-item-array.bin");
    // The datum reader reads items one by one until the bytes make no sense; it never reserves for
    // the claim (it gives serde no size hint).
    let error = decode::<OrderStateRecord>(bytes).unwrap_err().to_string();
    assert!(error.contains("OrderState: Avro datum does not decode"), "{error}");
    // apache-avro (older schemas go through it) refuses the allocation.
    let error = decode_with_apache_avro::<OrderStateRecord>(bytes).unwrap_err().to_string();
    assert!(error.contains("OrderState") && error.contains("allocate"), "{error}");
    // The same bytes read as any other event are refused just as cleanly.
    assert!(decode::<OrderSheetEvent>(bytes).is_err());
    assert!(decode::<PaymentFact>(bytes).is_err());
}

#[test]
fn a_ten_byte_varint_reads_as_apache_avro_reads_it() {
    // Found by the avro_events fuzz target: a varint whose 10th byte carries bits past the 64th. The
    // datum reader refused it while apache-avro dropped the extra bits; both now read it the same way.
    let bytes = include_bytes!("poison/receipt-with-a-10-byte-varint.bin");
    let fast = decode::<ReturnRequestEvent>(bytes).map_err(|e| e.to_string());
    let reference = decode_with_apache_avro::<ReturnRequestEvent>(bytes).map_err(|e| e.to_string());
    assert_eq!(fast.is_ok(), reference.is_ok(), "{fast:?} / {reference:?}");
    assert_eq!(fast.ok(), reference.ok());
}

#[path = "v1_events/mod.rs"]
mod v1_events;

/// Both readers refuse every strict prefix of `event`'s encoding and read the whole of it the same.
fn every_truncation_is_refused<T: EventType + PartialEq + std::fmt::Debug>(event: &T) {
    let bytes = encode(event).unwrap();
    assert_eq!(&decode::<T>(&bytes).unwrap(), event);
    assert_eq!(&decode_with_apache_avro::<T>(&bytes).unwrap(), event);
    for len in 0..bytes.len() {
        let cut = &bytes[..len];
        assert!(decode::<T>(cut).is_err(), "{} cut to {len} bytes decodes", T::NAME);
        let reference = decode_with_apache_avro::<T>(cut);
        assert!(reference.is_err(), "{} cut to {len} bytes decodes as {reference:?}", T::NAME);
    }
}

#[test]
fn a_message_cut_before_its_trailing_optional_field_is_refused_by_both_readers() {
    // Found by the avro_events fuzz target: apache-avro read a union index that the input's end cut off
    // as null, so a fact or revenue row truncated before its last (optional) field decoded, without it.
    let mut revenue = v1_events::revenue();
    revenue.delivery_fee_settlement = Some(2_500);
    every_truncation_is_refused(&revenue);
    let mut fact = v1_events::fact();
    fact.previous_payment_amount = Some(41_000);
    every_truncation_is_refused(&fact);
    every_truncation_is_refused(&v1_events::order_sheet());
    every_truncation_is_refused(&v1_events::return_request());
}
