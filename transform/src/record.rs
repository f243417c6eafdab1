//! An order's state as its changelog record: the encoded events of its slots.
//!
//! A state read from disk keeps its slots' encoded bytes ([`EncodedSlots`]), and an event that takes a
//! slot brings its own bytes (the raw message's payload), so the record of a changed order is put
//! together from bytes already at hand: nothing is encoded again but the record's frame.

use coupang_schemas::{
    decode, encode, encode_state_record, CodecError, EventType, OrderSheetEvent, OrderStateRecord,
    OrderStateRecordView, ReturnRequestEvent, RevenueEvent,
};
use litemap::LiteMap;
use std::borrow::Cow;

use crate::order::{OrderState, RevenueSlot, SlotKey, Slotted};

/// The encoded event in each slot of an order's state, as far as known.
#[derive(Debug, Default, Clone)]
pub struct EncodedSlots {
    boxes: LiteMap<i64, Vec<u8>>,
    receipts: LiteMap<i64, Vec<u8>>,
    revenue: LiteMap<RevenueSlot, Vec<u8>>,
}

impl EncodedSlots {
    /// Keeps `payload` as the bytes of `slot`, which an event took (see [`crate::order::Folded`]).
    pub fn keep(&mut self, slot: SlotKey, payload: &[u8]) {
        match slot {
            SlotKey::Box(id) => {
                self.boxes.insert(id, payload.to_vec());
            }
            SlotKey::Receipt(id) => {
                self.receipts.insert(id, payload.to_vec());
            }
            SlotKey::Revenue(slot) => {
                self.revenue.insert(slot, payload.to_vec());
            }
        }
    }
}

/// An order's state as the changelog holds it.
pub fn to_record(vendor_id: &str, order_id: i64, state: &OrderState) -> Result<OrderStateRecord, CodecError> {
    fn slots<K, E: EventType>(events: &LiteMap<K, E>) -> Result<Vec<Vec<u8>>, CodecError> {
        events.values().map(encode).collect()
    }
    Ok(OrderStateRecord {
        vendor_id: vendor_id.to_string(),
        order_id,
        source_time: state.source_time,
        boxes: slots(&state.boxes)?,
        receipts: slots(&state.receipts)?,
        revenue: slots(&state.revenue)?,
    })
}

/// The encoded changelog record of an order's state, taking each slot's bytes from `known` where it
/// has them (borrowed, not copied) and encoding only the others.
pub fn encode_record_from(
    vendor_id: &str,
    order_id: i64,
    state: &OrderState,
    known: &EncodedSlots,
) -> Result<Vec<u8>, CodecError> {
    fn slots<'a, K: Ord, E: EventType>(
        events: &LiteMap<K, E>,
        known: &'a LiteMap<K, Vec<u8>>,
    ) -> Result<Vec<Cow<'a, [u8]>>, CodecError> {
        events
            .iter()
            .map(|(slot, event)| match known.get(slot) {
                Some(bytes) => Ok(Cow::Borrowed(bytes.as_slice())),
                None => encode(event).map(Cow::Owned),
            })
            .collect()
    }
    Ok(encode_state_record(&OrderStateRecordView {
        vendor_id,
        order_id,
        source_time: state.source_time,
        boxes: slots(&state.boxes, &known.boxes)?,
        receipts: slots(&state.receipts, &known.receipts)?,
        revenue: slots(&state.revenue, &known.revenue)?,
    }))
}

/// An order's state from its changelog record.
pub fn from_record(record: OrderStateRecord) -> Result<OrderState, CodecError> {
    from_record_keeping_bytes(record).map(|(state, _)| state)
}

/// An order's state from its changelog record, with each slot's bytes (moved out of the record, not
/// copied).
pub fn from_record_keeping_bytes(record: OrderStateRecord) -> Result<(OrderState, EncodedSlots), CodecError> {
    /// Decodes one kind of slot, keeping each record's bytes beside it.
    fn read_slots<E: Slotted>(
        records: Vec<Vec<u8>>,
        state: &mut OrderState,
        known: &mut LiteMap<E::Key, Vec<u8>>,
    ) -> Result<(), CodecError> {
        for bytes in records {
            let record: E = decode(&bytes)?;
            known.insert(record.slot_key(), bytes);
            E::slots_mut(state).insert(record.slot_key(), record);
        }
        Ok(())
    }
    let mut state = OrderState { source_time: record.source_time, ..OrderState::default() };
    let mut known = EncodedSlots::default();
    read_slots::<OrderSheetEvent>(record.boxes, &mut state, &mut known.boxes)?;
    read_slots::<ReturnRequestEvent>(record.receipts, &mut state, &mut known.receipts)?;
    read_slots::<RevenueEvent>(record.revenue, &mut state, &mut known.revenue)?;
    Ok((state, known))
}

/// Which state a restore keeps when it reads `incoming` after `held` for the same order.
#[derive(Debug, PartialEq, Eq)]
pub enum Kept {
    /// The record read last: it knows all `held` knew (the usual case).
    Incoming,
    /// The state held knows all the record read last does, and more: the changelog's last record of
    /// the order is an older state.
    Held,
    /// Each knows something the other does not: their join, encoded.
    Joined { record: Vec<u8> },
}

/// Which of two changelog records of an order a restore keeps: the one that knows all the other knows
/// ([`OrderState::knows_all_of`]), or else their join ([`OrderState::merge`]). One process writes
/// each state after the one before it, so the record read last is the usual answer; a process frozen
/// past its group session sends older states late, and when it had read further into one input topic
/// and less into another than its successor, neither state holds the other. A `held` record that does
/// not decode is replaced, as before.
pub fn kept(held: &[u8], incoming: &OrderState, incoming_record: &[u8]) -> Kept {
    if held == incoming_record {
        return Kept::Incoming;
    }
    let Ok(mut record) = decode::<OrderStateRecord>(held) else { return Kept::Incoming };
    // Moved out, not cloned: only a join needs it, and `from_record` does not read it.
    let (vendor_id, order_id) = (std::mem::take(&mut record.vendor_id), record.order_id);
    let Ok(held) = from_record(record) else { return Kept::Incoming };
    if incoming.knows_all_of(&held) {
        return Kept::Incoming;
    }
    if held.knows_all_of(incoming) {
        return Kept::Held;
    }
    let mut joined = held;
    joined.merge(incoming);
    // A defect if it fails (the schemas are compiled in): the record read last then stays.
    match to_record(&vendor_id, order_id, &joined).and_then(|record| encode(&record)) {
        Ok(record) => Kept::Joined { record },
        Err(_) => Kept::Incoming,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::tests::{line, receipt, revenue, sheet};
    use crate::order::RawEvent;
    use coupang_schemas::{OrderSheetEvent, SaleType};

    fn events() -> Vec<RawEvent> {
        vec![
            RawEvent::OrderSheet(sheet(1, "INSTRUCT", vec![line(7, 2, 1_000)], 3_000)),
            RawEvent::OrderSheet(sheet(2, "FINAL_DELIVERY", vec![line(7, 2, 1_000)], 3_000)),
            RawEvent::ReturnRequest(receipt(9, "RETURN", true, &[(7, 1)])),
            RawEvent::Revenue(revenue(SaleType::Sale, 10, &[(7, 2, 1_000, 100, 50)])),
        ]
    }

    fn payload(event: &RawEvent) -> Vec<u8> {
        match event {
            RawEvent::OrderSheet(e) => encode(e),
            RawEvent::ReturnRequest(e) => encode(e),
            RawEvent::Revenue(e) => encode(e),
        }
        .unwrap()
    }

    #[test]
    fn a_state_survives_the_changelog_encoding() {
        let mut state = OrderState::default();
        state.fold(&RawEvent::OrderSheet(sheet(1, "FINAL_DELIVERY", vec![line(7, 2, 1_000)], 3_000)));
        state.fold(&RawEvent::ReturnRequest(receipt(9, "RETURN", true, &[(7, 1)])));
        state.fold(&RawEvent::Revenue(revenue(SaleType::Sale, 10, &[(7, 2, 1_000, 100, 50)])));
        let record = to_record("A00012345", 24_000_000_000_001, &state).unwrap();
        let bytes = encode(&record).unwrap();
        let back = from_record(decode::<OrderStateRecord>(&bytes).unwrap()).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.version(), state.version());
    }

    #[test]
    fn a_record_from_kept_bytes_is_the_record_encoded_anew() {
        let mut state = OrderState::default();
        let mut known = EncodedSlots::default();
        for event in &events() {
            if state.fold_event(event).took_slot {
                known.keep(event.slot(), &payload(event));
            }
        }
        let anew = encode(&to_record("A00012345", 5, &state).unwrap()).unwrap();
        let kept = encode_record_from("A00012345", 5, &state, &known).unwrap();
        assert_eq!(kept, anew);
        // Read back with its bytes, changed by one more event, and put together again.
        let (mut back, mut known) = from_record_keeping_bytes(decode(&kept).unwrap()).unwrap();
        assert_eq!(back, state);
        let late = RawEvent::Revenue(revenue(SaleType::Refund, 20, &[(7, 1, 1_000, 100, 50)]));
        assert!(back.fold_event(&late).took_slot);
        known.keep(late.slot(), &payload(&late));
        let expected = encode(&to_record("A00012345", 5, &back).unwrap()).unwrap();
        assert_eq!(encode_record_from("A00012345", 5, &back, &known).unwrap(), expected);
        // A slot whose bytes are not at hand is encoded anew.
        assert_eq!(encode_record_from("A00012345", 5, &back, &EncodedSlots::default()).unwrap(), expected);
    }

    #[test]
    fn a_restore_keeps_the_state_that_knows_more_even_at_equal_versions() {
        let state_of = |events: &[&RawEvent]| {
            let mut state = OrderState::default();
            for event in events {
                state.fold(event);
            }
            state
        };
        let record_of = |state: &OrderState| encode(&to_record("A00012345", 5, state).unwrap()).unwrap();
        // Two snapshots of each of two boxes that differ only in content (the shipping fee): same status,
        // same times. The fold keeps one of each pair by content, the same in every process.
        let pair = |box_id: i64, item: i64| {
            let first = sheet(box_id, "INSTRUCT", vec![line(item, 2, 1_000)], 3_000);
            let changed = OrderSheetEvent { shipping_price: 2_500, ..first.clone() };
            let (first, changed) = (RawEvent::OrderSheet(first), RawEvent::OrderSheet(changed));
            let both = state_of(&[&first, &changed]);
            if both == state_of(&[&first]) {
                (first, changed)
            } else {
                (changed, first)
            }
        };
        let ((kept_1, lost_1), (kept_2, lost_2)) = (pair(1, 7), pair(2, 8));
        let (newer, older) = (state_of(&[&kept_1]), state_of(&[&lost_1]));
        assert_eq!(newer.version(), older.version());
        assert_ne!(newer, older);
        assert_eq!(kept(&record_of(&newer), &older, &record_of(&older)), Kept::Held);
        assert_eq!(kept(&record_of(&older), &newer, &record_of(&newer)), Kept::Incoming);
        assert_eq!(kept(&record_of(&newer), &newer, &record_of(&newer)), Kept::Incoming);
        // A later event makes a newer state, which knows all the one before it did.
        let sale = RawEvent::Revenue(revenue(SaleType::Sale, 10, &[(7, 2, 1_000, 100, 50)]));
        let confirmed = state_of(&[&kept_1, &sale]);
        assert!(confirmed.version() > newer.version());
        assert_eq!(kept(&record_of(&confirmed), &newer, &record_of(&newer)), Kept::Held);
        assert_eq!(kept(&record_of(&newer), &confirmed, &record_of(&confirmed)), Kept::Incoming);
        // A higher version that lacks another's snapshot of a box is joined with it, not taken whole.
        let confirmed_without = state_of(&[&lost_1, &sale]);
        assert!(confirmed_without.version() > newer.version());
        let Kept::Joined { record } = kept(&record_of(&newer), &confirmed_without, &record_of(&confirmed_without))
        else {
            panic!("a higher version that knows less was taken whole")
        };
        assert_eq!(from_record(decode(&record).unwrap()).unwrap(), confirmed);
        // Each knows something the other does not, at one version: their join.
        let (a, b) = (state_of(&[&kept_1, &lost_2]), state_of(&[&lost_1, &kept_2]));
        let joined = state_of(&[&kept_1, &kept_2]);
        assert_eq!(a.version(), b.version());
        let Kept::Joined { record } = kept(&record_of(&a), &b, &record_of(&b)) else {
            panic!("two states that each know more were not joined")
        };
        assert_eq!(from_record(decode(&record).unwrap()).unwrap(), joined);
        assert_eq!(kept(b"not a record", &older, &record_of(&older)), Kept::Incoming);
    }
}
