//! Avro single-object encoding over serde types.

use apache_avro::rabin::Rabin;
use apache_avro::{from_avro_datum, from_value, write_avro_datum_ref, GenericSingleObjectReader, Schema};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;

use crate::datum::{from_datum, to_datum, Names};
use std::sync::{Mutex, OnceLock};

/// Single-object encoding marker (Avro spec, "Single-object encoding").
const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not an Avro single-object record (it needs the C3 01 marker and an 8-byte schema fingerprint; got {len} bytes)")]
    NotSingleObject { len: usize },
    #[error("{event}: written with an unknown schema (fingerprint {fingerprint})")]
    UnknownSchema { event: &'static str, fingerprint: String },
    #[error("{event}: Avro datum does not decode: {reason}")]
    Malformed { event: &'static str, reason: String },
    #[error("{event}: cannot encode: {reason}")]
    Encode { event: &'static str, reason: String },
}

/// An event with its schema history: the last entry is the current (writer) schema.
pub trait EventType: Serialize + DeserializeOwned {
    const NAME: &'static str;
    fn history() -> &'static [&'static str];
}

struct Schemas {
    current: Schema,
    current_fingerprint: [u8; 8],
    /// Reads records of the current schema with its names resolved once (`from_avro_datum` resolves
    /// them again on every call).
    current_reader: GenericSingleObjectReader,
    /// Named types of the current schema, for the datum reader.
    current_names: Names,
    by_fingerprint: HashMap<[u8; 8], Schema>,
}

fn fingerprint(schema: &Schema) -> [u8; 8] {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[..8]);
    out
}

/// Parsed schemas per event type, built once. The `.avsc` files are compiled in and tested, so a parse
/// failure is a build defect, not a runtime condition.
fn schemas<T: EventType>() -> &'static Schemas {
    static ALL: OnceLock<Mutex<HashMap<&'static str, &'static Schemas>>> = OnceLock::new();
    let mut all = ALL.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    all.entry(T::NAME).or_insert_with(|| {
        let parsed: Vec<Schema> = T::history()
            .iter()
            .map(|text| Schema::parse_str(text).unwrap_or_else(|e| panic!("{}: bad .avsc: {e}", T::NAME)))
            .collect();
        let current = parsed.last().cloned().expect("every event has at least one schema");
        let by_fingerprint = parsed.into_iter().map(|s| (fingerprint(&s), s)).collect();
        let current_reader =
            GenericSingleObjectReader::new(current.clone()).unwrap_or_else(|e| panic!("{}: bad .avsc: {e}", T::NAME));
        Box::leak(Box::new(Schemas {
            current_fingerprint: fingerprint(&current),
            current_names: Names::of(&current),
            current,
            current_reader,
            by_fingerprint,
        }))
    })
}

pub fn encode<T: EventType>(event: &T) -> Result<Vec<u8>, CodecError> {
    let schemas = schemas::<T>();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&schemas.current_fingerprint);
    // Written straight against the schema, field by field (the datum writer): no intermediate `Value`
    // tree, no per-call schema resolution, no per-field name lookup. A value it cannot write (a type
    // whose shape strays from its schema) goes through apache-avro, which says what is wrong.
    if to_datum(event, &schemas.current, &schemas.current_names, &mut out).is_err() {
        out.truncate(HEADER_LEN);
        write_avro_datum_ref(&schemas.current, event, &mut out)
            .map_err(|e| CodecError::Encode { event: T::NAME, reason: e.to_string() })?;
    }
    Ok(out)
}

/// The most apache-avro may allocate for one string, byte array or array length while decoding.
/// Kafka messages are at most about 1 MB, so no honest length is larger; without the bound a poison
/// message claiming a 400-million-item array made the decoder reserve 29 GB and abort the process
/// (found by the `avro_events` fuzz target). Array items still cost up to ~80 bytes each, so a lie
/// costs at most a short-lived ~80 MB.
const MAX_ALLOCATION_BYTES: usize = 1 << 20;

pub fn decode<T: EventType>(bytes: &[u8]) -> Result<T, CodecError> {
    let (schemas, writer, fp) = writer_of::<T>(bytes)?;
    if fp != schemas.current_fingerprint {
        return decode_with_apache_avro(bytes);
    }
    // Written with the current schema (nearly every record): read straight from the bytes.
    let malformed = |reason: String| CodecError::Malformed { event: T::NAME, reason };
    let mut datum = &bytes[HEADER_LEN..];
    let event = from_datum::<T>(writer, &schemas.current_names, &mut datum).map_err(|e| malformed(e.0))?;
    if !datum.is_empty() {
        return Err(malformed(format!("{} trailing bytes", datum.len())));
    }
    Ok(event)
}

/// The header's schema, checked: the event's schemas, the writer's schema and its fingerprint.
fn writer_of<T: EventType>(bytes: &[u8]) -> Result<(&'static Schemas, &'static Schema, [u8; 8]), CodecError> {
    if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
        return Err(CodecError::NotSingleObject { len: bytes.len() });
    }
    let schemas = schemas::<T>();
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[2..HEADER_LEN]);
    let writer = schemas.by_fingerprint.get(&fp).ok_or_else(|| CodecError::UnknownSchema {
        event: T::NAME,
        fingerprint: fp.iter().map(|b| format!("{b:02x}")).collect(),
    })?;
    Ok((schemas, writer, fp))
}

/// Decodes through apache-avro's `Value` tree: records of older schemas (resolved against the current
/// one), and the reference the datum reader is tested against.
pub fn decode_with_apache_avro<T: EventType>(bytes: &[u8]) -> Result<T, CodecError> {
    // The limit is process-wide and set once; the first decode sets it.
    apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
    let (schemas, writer, fp) = writer_of::<T>(bytes)?;
    let malformed = |reason: String| CodecError::Malformed { event: T::NAME, reason };
    let mut datum = &bytes[HEADER_LEN..];
    let value = if fp == schemas.current_fingerprint {
        let mut whole = bytes;
        let value = schemas.current_reader.read_value(&mut whole);
        datum = whole;
        value
    } else {
        // Written with an older schema: resolved against the current one.
        from_avro_datum(writer, &mut datum, Some(&schemas.current))
    }
    .map_err(|e| malformed(e.to_string()))?;
    if !datum.is_empty() {
        return Err(malformed(format!("{} trailing bytes", datum.len())));
    }
    from_value::<T>(&value).map_err(|e| malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OrderSheetEvent, OrderSheetItem, PaymentFact};
    use proptest::prelude::*;

    fn item(id: i64) -> OrderSheetItem {
        OrderSheetItem {
            vendor_item_id: id,
            vendor_item_name: "양말 3켤레".into(),
            seller_product_id: 77,
            shipping_count: 2,
            cancel_count: 0,
            hold_count_for_cancel: 0,
            sales_price: 9_900,
            order_price: 19_800,
            discount_price: 0,
            instant_coupon_discount: 0,
            downloadable_coupon_discount: 0,
            coupang_discount: 0,
            confirm_date: None,
            canceled: false,
        }
    }

    fn event() -> OrderSheetEvent {
        OrderSheetEvent {
            vendor_id: "A00012345".into(),
            account_alias: "brand-a".into(),
            collected_at: 1_760_000_000_000,
            api_version: "v5".into(),
            shipment_box_id: 642_538_971_006_401_429,
            order_id: 24_000_057_163_001,
            status: "INSTRUCT".into(),
            ordered_at: Some(1_759_999_000_000),
            paid_at: 1_759_999_100_000,
            shipping_price: 3_000,
            remote_price: 0,
            remote_area: false,
            in_transit_at: None,
            delivered_at: Some(1_760_100_000_000),
            items: vec![item(1), item(2)],
        }
    }

    #[test]
    fn order_sheet_round_trips() {
        let e = event();
        let bytes = encode(&e).unwrap();
        assert_eq!(&bytes[..2], &MAGIC);
        assert_eq!(decode::<OrderSheetEvent>(&bytes).unwrap(), e);
    }

    /// The encoder before it serialized straight against the schema: through a resolved `Value` tree.
    fn encode_via_value<T: EventType>(event: &T) -> Vec<u8> {
        let schemas = schemas::<T>();
        let value = apache_avro::to_value(event).unwrap().resolve(&schemas.current).unwrap();
        let datum = apache_avro::to_avro_datum(&schemas.current, value).unwrap();
        [&MAGIC[..], &schemas.current_fingerprint[..], &datum[..]].concat()
    }

    #[test]
    fn the_direct_encoder_writes_the_same_bytes_as_the_value_tree() {
        let mut e = event();
        e.items[1].confirm_date = Some(1_760_200_000_000);
        assert_eq!(encode(&e).unwrap(), encode_via_value(&e));
        let state = crate::OrderStateRecord {
            vendor_id: "A00012345".into(),
            order_id: 7,
            source_time: 9,
            boxes: vec![encode(&e).unwrap()],
            receipts: vec![],
            revenue: vec![vec![1, 2, 3]],
        };
        assert_eq!(encode(&state).unwrap(), encode_via_value(&state));
    }

    /// The datum writer itself (not its apache-avro fallback), against apache-avro's writer.
    fn written_directly_as_apache_avro_writes<T: EventType>(event: &T) {
        let schemas = schemas::<T>();
        let mut direct = Vec::new();
        to_datum(event, &schemas.current, &schemas.current_names, &mut direct)
            .unwrap_or_else(|e| panic!("{}: the datum writer refused it: {e}", T::NAME));
        let mut reference = Vec::new();
        write_avro_datum_ref(&schemas.current, event, &mut reference).unwrap();
        assert_eq!(direct, reference, "{}", T::NAME);
    }

    #[test]
    fn the_datum_writer_writes_every_event_type_as_apache_avro_does() {
        let mut sheet = event();
        sheet.items[0].confirm_date = Some(1_760_300_000_000);
        sheet.ordered_at = None;
        written_directly_as_apache_avro_writes(&sheet);
        let item = |id, shipment_box_id| crate::ReturnRequestItem {
            vendor_item_id: id,
            vendor_item_name: "양말".into(),
            purchase_count: 2,
            cancel_count: 1,
            shipment_box_id,
            seller_product_id: None,
        };
        let receipt = crate::ReturnRequestEvent {
            vendor_id: "A00012345".into(),
            account_alias: "brand-a".into(),
            collected_at: 1,
            api_version: "v6".into(),
            receipt_id: -5,
            order_id: i64::MAX,
            payment_id: Some(i64::MIN),
            receipt_type: "RETURN".into(),
            receipt_status: "RETURNS_COMPLETED".into(),
            created_at: 0,
            modified_at: None,
            complete_confirm_date: Some(3),
            cancel_count_sum: i32::MIN,
            return_shipping_charge: 2_500,
            fault_by_type: Some("CUSTOMER".into()),
            reason_code: None,
            items: vec![item(1, Some(9)), item(2, None)],
        };
        written_directly_as_apache_avro_writes(&receipt);
        let revenue = crate::RevenueEvent {
            vendor_id: "A00012345".into(),
            account_alias: "".into(),
            collected_at: 1,
            order_id: 2,
            sale_type: "REFUND".into(),
            sale_date: -3,
            recognition_date: i32::MAX,
            delivery_fee: -2_500,
            items: vec![],
        };
        written_directly_as_apache_avro_writes(&revenue);
        // Over 1,025 items, where apache-avro starts a second block.
        let state = crate::OrderStateRecord {
            vendor_id: "A00012345".into(),
            order_id: 7,
            source_time: 9,
            boxes: (0..2_100).map(|i| vec![i as u8; i % 3]).collect(),
            receipts: vec![],
            revenue: vec![vec![1, 2, 3]],
        };
        written_directly_as_apache_avro_writes(&state);
        assert_eq!(decode::<crate::OrderStateRecord>(&encode(&state).unwrap()).unwrap(), state);
    }

    #[test]
    fn garbage_is_a_clear_error_not_a_panic() {
        assert!(matches!(decode::<OrderSheetEvent>(b"{}"), Err(CodecError::NotSingleObject { .. })));
        let mut unknown = encode(&event()).unwrap();
        unknown[5] ^= 0xff;
        assert!(matches!(decode::<OrderSheetEvent>(&unknown), Err(CodecError::UnknownSchema { .. })));
        let bytes = encode(&event()).unwrap();
        let truncated = &bytes[..bytes.len() - 3];
        assert!(matches!(decode::<OrderSheetEvent>(truncated), Err(CodecError::Malformed { .. })));
        // A fact is not an order sheet: the fingerprint tells them apart.
        assert!(matches!(decode::<PaymentFact>(&bytes), Err(CodecError::UnknownSchema { .. })));
    }

    proptest! {
        #[test]
        fn facts_round_trip(order_id in any::<i64>(), amount in any::<i64>(), date in any::<i32>(),
                            provisional in any::<bool>(), name in ".{0,20}") {
            let fact = PaymentFact {
                vendor_id: "C00000001".into(), account_alias: "b".into(), order_id,
                vendor_item_id: 5, shipment_box_id: 6, vendor_item_name: name,
                payment_date: date, paid_at: 1, status: "ACCEPT".into(), quantity: 1,
                cancelled_quantity: 0, order_price: amount, shipping_fee: 0,
                seller_coupon_discount: 0, coupang_coupon_discount: 0, payment_amount: amount,
                provisional, cancelled: false, event_time: 2, version: 3,
            };
            prop_assert_eq!(encode(&fact).unwrap(), encode_via_value(&fact));
            written_directly_as_apache_avro_writes(&fact);
            prop_assert_eq!(decode::<PaymentFact>(&encode(&fact).unwrap()).unwrap(), fact);
        }

        /// The datum reader against apache-avro, on corrupted records of every event type: a byte
        /// changed, the datum cut short or grown. Both refuse, or both read the same event.
        #[test]
        fn the_datum_reader_agrees_with_apache_avro_on_corrupted_records(
            at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in 0usize..4, grow in 0usize..3,
            confirmed in any::<bool>(),
        ) {
            let mut sheet = event();
            if confirmed {
                sheet.items[0].confirm_date = Some(1_760_300_000_000);
            }
            let state = crate::OrderStateRecord {
                vendor_id: "A00012345".into(), order_id: 7, source_time: 9,
                boxes: vec![encode(&sheet).unwrap()], receipts: vec![], revenue: vec![vec![1, 2, 3]],
            };
            fn agree<T: EventType + PartialEq + std::fmt::Debug>(
                good: Vec<u8>, at: &prop::sample::Index, byte: u8, cut: usize, grow: usize,
            ) -> Result<(), TestCaseError> {
                let mut bytes = good.clone();
                let i = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
                bytes[i] = byte;
                bytes.truncate(bytes.len() - cut.min(bytes.len() - HEADER_LEN));
                bytes.extend(std::iter::repeat_n(byte, grow));
                let fast = decode::<T>(&bytes);
                let reference = decode_with_apache_avro::<T>(&bytes);
                match (&fast, &reference) {
                    (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                    (Err(_), Err(_)) => {}
                    _ => prop_assert!(false, "reader {:?} but apache-avro {:?} for {:02x?}", fast, reference, bytes),
                }
                Ok(())
            }
            agree::<OrderSheetEvent>(encode(&sheet).unwrap(), &at, byte, cut, grow)?;
            agree::<crate::OrderStateRecord>(encode(&state).unwrap(), &at, byte, cut, grow)?;
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode::<OrderSheetEvent>(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&schemas::<OrderSheetEvent>().current_fingerprint);
            framed.extend_from_slice(&bytes);
            let _ = decode::<OrderSheetEvent>(&framed);
        }
    }
}
