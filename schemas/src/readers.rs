//! Readers written by hand for the current schema of the records the transform reads per message: the
//! three raw events and its own state record (each state read decodes the events it holds again).
//!
//! The schema-driven datum reader (`datum.rs`) follows the schema along serde's calls: a match on the
//! schema per value, each field's name handed to the type's derived code to be matched back to a field.
//! These read the fields in the schema's order straight into the types. They are a fast path only: a
//! datum they do not read (`None`) goes to the datum reader, which reads it or says what is wrong, so
//! they never need to explain a failure, only to accept nothing the datum reader refuses and to read
//! what they accept as it does (the property tests below hold them to it, on written and on
//! corrupted records).

use crate::datum::read_long;
use crate::{
    OrderSheetEvent, OrderSheetItem, OrderStateRecord, ReturnRequestEvent, ReturnRequestItem, RevenueEvent,
    RevenueItem, SaleType,
};

/// Items an array makes room for at once, whatever count its block claims.
const RESERVED_ITEMS: usize = 16;

/// The rest of a datum.
struct Cursor<'b>(&'b [u8]);

impl<'b> Cursor<'b> {
    /// A zig-zag varint, read as the datum reader reads it.
    #[inline]
    fn long(&mut self) -> Option<i64> {
        read_long(&mut self.0).ok()
    }

    #[inline]
    fn int(&mut self) -> Option<i32> {
        i32::try_from(self.long()?).ok()
    }

    #[inline]
    fn boolean(&mut self) -> Option<bool> {
        let (&byte, rest) = self.0.split_first()?;
        self.0 = rest;
        match byte {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    #[inline]
    fn bytes(&mut self) -> Option<&'b [u8]> {
        let len = usize::try_from(self.long()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(taken)
    }

    #[inline]
    fn str(&mut self) -> Option<&'b str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    #[inline]
    fn string(&mut self) -> Option<String> {
        self.str().map(str::to_owned)
    }

    /// `["null", T]`: the union's index, then the value if it is not null.
    #[inline]
    fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.long()? {
            0 => Some(None),
            1 => read(self).map(Some),
            _ => None,
        }
    }

    /// An array: blocks of a count (negative: followed by the block's size in bytes) and as many items;
    /// a zero count ends it.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut items = Vec::new();
        loop {
            let count = self.long()?;
            if count == 0 {
                return Some(items);
            }
            if count < 0 {
                self.long()?;
            }
            // Every item of these arrays takes a byte at least: a count past the bytes left cannot read.
            let count = usize::try_from(count.unsigned_abs()).ok().filter(|&count| count <= self.0.len())?;
            // Room for the first few only: the count is the datum's word, and an item takes far more
            // room in memory than its least on the wire (an order sheet's item ~120 bytes against 14).
            items.reserve(count.min(RESERVED_ITEMS));
            for _ in 0..count {
                items.push(item(self)?);
            }
        }
    }

    /// The whole datum read by `read`, with nothing left after it.
    fn whole<T>(datum: &'b [u8], read: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let mut cursor = Cursor(datum);
        let value = read(&mut cursor)?;
        cursor.0.is_empty().then_some(value)
    }
}

// Struct expressions evaluate their fields in the order written: each below is in its schema's order.

pub(crate) fn order_sheet(datum: &[u8]) -> Option<OrderSheetEvent> {
    Cursor::whole(datum, |c| {
        Some(OrderSheetEvent {
            vendor_id: c.string()?,
            account_alias: c.string()?,
            collected_at: c.long()?,
            api_version: c.string()?,
            shipment_box_id: c.long()?,
            order_id: c.long()?,
            status: c.str()?.into(),
            ordered_at: c.nullable(Cursor::long)?,
            paid_at: c.long()?,
            shipping_price: c.long()?,
            remote_price: c.long()?,
            remote_area: c.boolean()?,
            in_transit_at: c.nullable(Cursor::long)?,
            delivered_at: c.nullable(Cursor::long)?,
            items: c.array(|c| {
                Some(OrderSheetItem {
                    vendor_item_id: c.long()?,
                    vendor_item_name: c.string()?,
                    seller_product_id: c.long()?,
                    shipping_count: c.int()?,
                    cancel_count: c.int()?,
                    hold_count_for_cancel: c.int()?,
                    sales_price: c.long()?,
                    order_price: c.long()?,
                    discount_price: c.long()?,
                    instant_coupon_discount: c.long()?,
                    downloadable_coupon_discount: c.long()?,
                    coupang_discount: c.long()?,
                    confirm_date: c.nullable(Cursor::long)?,
                    canceled: c.boolean()?,
                })
            })?,
        })
    })
}

pub(crate) fn return_request(datum: &[u8]) -> Option<ReturnRequestEvent> {
    Cursor::whole(datum, |c| {
        Some(ReturnRequestEvent {
            vendor_id: c.string()?,
            account_alias: c.string()?,
            collected_at: c.long()?,
            api_version: c.string()?,
            receipt_id: c.long()?,
            order_id: c.long()?,
            payment_id: c.nullable(Cursor::long)?,
            receipt_type: c.str()?.into(),
            receipt_status: c.str()?.into(),
            created_at: c.long()?,
            modified_at: c.nullable(Cursor::long)?,
            complete_confirm_date: c.nullable(Cursor::long)?,
            cancel_count_sum: c.int()?,
            return_shipping_charge: c.long()?,
            fault_by_type: c.nullable(Cursor::string)?,
            reason_code: c.nullable(Cursor::string)?,
            items: c.array(|c| {
                Some(ReturnRequestItem {
                    vendor_item_id: c.long()?,
                    vendor_item_name: c.string()?,
                    purchase_count: c.int()?,
                    cancel_count: c.int()?,
                    shipment_box_id: c.nullable(Cursor::long)?,
                    seller_product_id: c.nullable(Cursor::long)?,
                })
            })?,
        })
    })
}

pub(crate) fn revenue(datum: &[u8]) -> Option<RevenueEvent> {
    Cursor::whole(datum, |c| {
        Some(RevenueEvent {
            vendor_id: c.string()?,
            account_alias: c.string()?,
            collected_at: c.long()?,
            order_id: c.long()?,
            // A sale type no rule knows is refused: the datum reader says so.
            sale_type: SaleType::try_from(c.str()?).ok()?,
            sale_date: c.int()?,
            recognition_date: c.int()?,
            delivery_fee: c.long()?,
            items: c.array(|c| {
                Some(RevenueItem {
                    vendor_item_id: c.long()?,
                    quantity: c.int()?,
                    sale_price: c.long()?,
                    seller_discount_coupon: c.long()?,
                    downloadable_coupon: c.long()?,
                    coupang_discount_coupon: c.long()?,
                    sale_amount: c.long()?,
                    settlement_amount: c.long()?,
                })
            })?,
            same_day_row: c.int()?,
            delivery_fee_settlement: c.nullable(Cursor::long)?,
        })
    })
}

pub(crate) fn state_record(datum: &[u8]) -> Option<OrderStateRecord> {
    let bytes = |c: &mut Cursor<'_>| c.bytes().map(<[u8]>::to_vec);
    Cursor::whole(datum, |c| {
        Some(OrderStateRecord {
            vendor_id: c.string()?,
            order_id: c.long()?,
            source_time: c.long()?,
            boxes: c.array(bytes)?,
            receipts: c.array(bytes)?,
            revenue: c.array(bytes)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{current_header, decode_with_datum_reader};
    use crate::{encode, EventType, OrderStatus, ReceiptStatus, ReceiptType};
    use proptest::array::{uniform2, uniform3, uniform5, uniform7};
    use proptest::collection::vec;
    use proptest::option::of;
    use proptest::prelude::*;

    /// A word of an open vocabulary: one it knows, or any text.
    fn word<W: Clone + std::fmt::Debug + for<'a> From<&'a str>>(known: &'static [W]) -> impl Strategy<Value = W> {
        prop_oneof![prop::sample::select(known), ".{0,12}".prop_map(|text| W::from(text.as_str()))]
    }

    prop_compose! {
        fn order_sheet_item()(
            longs in proptest::array::uniform8(any::<i64>()), ints in uniform3(any::<i32>()), name in ".{0,24}",
            confirm_date in of(any::<i64>()), canceled in any::<bool>(),
        ) -> OrderSheetItem {
            OrderSheetItem {
                vendor_item_id: longs[0], vendor_item_name: name, seller_product_id: longs[1],
                shipping_count: ints[0], cancel_count: ints[1], hold_count_for_cancel: ints[2],
                sales_price: longs[2], order_price: longs[3], discount_price: longs[4],
                instant_coupon_discount: longs[5], downloadable_coupon_discount: longs[6],
                coupang_discount: longs[7], confirm_date, canceled,
            }
        }
    }

    prop_compose! {
        fn order_sheet()(
            texts in uniform3(".{0,24}"), longs in proptest::array::uniform6(any::<i64>()),
            status in word(OrderStatus::KNOWN), times in uniform3(of(any::<i64>())), remote_area in any::<bool>(),
            items in vec(order_sheet_item(), 0..4),
        ) -> OrderSheetEvent {
            let [vendor_id, account_alias, api_version] = texts;
            OrderSheetEvent {
                vendor_id, account_alias, collected_at: longs[0], api_version, shipment_box_id: longs[1],
                order_id: longs[2], status, ordered_at: times[0], paid_at: longs[3], shipping_price: longs[4],
                remote_price: longs[5], remote_area, in_transit_at: times[1], delivered_at: times[2], items,
            }
        }
    }

    prop_compose! {
        fn return_request()(
            texts in uniform3(".{0,24}"), longs in uniform5(any::<i64>()), times in uniform3(of(any::<i64>())),
            receipt_type in word(ReceiptType::KNOWN), receipt_status in word(ReceiptStatus::KNOWN),
            cancel_count_sum in any::<i32>(), reasons in uniform2(of(".{0,12}")),
            items in vec((any::<i64>(), ".{0,24}", uniform2(any::<i32>()), uniform2(of(any::<i64>()))), 0..4),
        ) -> ReturnRequestEvent {
            let [vendor_id, account_alias, api_version] = texts;
            let [fault_by_type, reason_code] = reasons;
            let items = items
                .into_iter()
                .map(|(vendor_item_id, vendor_item_name, counts, ids)| ReturnRequestItem {
                    vendor_item_id, vendor_item_name, purchase_count: counts[0], cancel_count: counts[1],
                    shipment_box_id: ids[0], seller_product_id: ids[1],
                })
                .collect();
            ReturnRequestEvent {
                vendor_id, account_alias, collected_at: longs[0], api_version, receipt_id: longs[1],
                order_id: longs[2], payment_id: times[0], receipt_type, receipt_status, created_at: longs[3],
                modified_at: times[1], complete_confirm_date: times[2], cancel_count_sum,
                return_shipping_charge: longs[4], fault_by_type, reason_code, items,
            }
        }
    }

    prop_compose! {
        fn revenue_event()(
            texts in uniform2(".{0,24}"), longs in uniform3(any::<i64>()),
            sale_type in prop::sample::select(vec![SaleType::Sale, SaleType::Refund]), ints in uniform3(any::<i32>()),
            items in vec((uniform7(any::<i64>()), any::<i32>()), 0..4), settlement in of(any::<i64>()),
        ) -> RevenueEvent {
            let [vendor_id, account_alias] = texts;
            let items = items
                .into_iter()
                .map(|(longs, quantity)| RevenueItem {
                    vendor_item_id: longs[0], quantity, sale_price: longs[1], seller_discount_coupon: longs[2],
                    downloadable_coupon: longs[3], coupang_discount_coupon: longs[4], sale_amount: longs[5],
                    settlement_amount: longs[6],
                })
                .collect();
            RevenueEvent {
                vendor_id, account_alias, collected_at: longs[0], order_id: longs[1], sale_type,
                sale_date: ints[0], recognition_date: ints[1], delivery_fee: longs[2], items,
                same_day_row: ints[2], delivery_fee_settlement: settlement,
            }
        }
    }

    prop_compose! {
        fn state_record()(
            vendor_id in ".{0,24}", longs in uniform2(any::<i64>()),
            lists in uniform3(vec(vec(any::<u8>(), 0..60), 0..4)),
        ) -> OrderStateRecord {
            let [boxes, receipts, revenue] = lists;
            OrderStateRecord { vendor_id, order_id: longs[0], source_time: longs[1], boxes, receipts, revenue }
        }
    }

    /// `event` as the schema-driven writer writes its datum (without the header).
    fn datum_of<T: EventType>(event: &T) -> Result<Vec<u8>, TestCaseError> {
        let written = encode(event).map_err(|e| TestCaseError::fail(e.to_string()))?;
        Ok(written[current_header::<T>().len()..].to_vec())
    }

    /// The hand-written reader and the datum reader on one datum: both refuse it, or both read the same.
    fn agree<T: EventType + PartialEq + std::fmt::Debug>(datum: &[u8]) -> Result<(), TestCaseError> {
        let framed = [current_header::<T>(), datum.to_vec()].concat();
        match (T::read_current(datum), decode_with_datum_reader::<T>(&framed)) {
            (Some(by_hand), Ok(by_schema)) => prop_assert_eq!(by_hand, by_schema),
            (None, Err(_)) => {}
            (by_hand, by_schema) => {
                prop_assert!(
                    false,
                    "{}: by hand {:?}, by the schema {:?}, for {:02x?}",
                    T::NAME,
                    by_hand,
                    by_schema,
                    datum
                )
            }
        }
        Ok(())
    }

    /// `event` reads back by hand as written, and corrupted (a byte changed, the datum cut short or
    /// grown) the readers still agree.
    fn reads_back<T: EventType + PartialEq + std::fmt::Debug>(
        event: &T,
        at: prop::sample::Index,
        byte: u8,
        cut: usize,
        grow: usize,
    ) -> Result<(), TestCaseError> {
        let datum = datum_of(event)?;
        let read = T::read_current(&datum);
        prop_assert_eq!(read.as_ref(), Some(event));
        agree::<T>(&datum)?;
        let mut corrupted = datum.to_vec();
        corrupted[at.index(datum.len())] = byte;
        corrupted.truncate(corrupted.len() - cut.min(corrupted.len()));
        corrupted.extend(std::iter::repeat_n(byte, grow));
        agree::<T>(&corrupted)
    }

    proptest! {
        #[test]
        fn every_record_reads_back_by_hand_as_the_schema_reads_it(
            sheet in order_sheet(), receipt in return_request(), row in revenue_event(), record in state_record(),
            at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in 0usize..4, grow in 0usize..3,
        ) {
            reads_back(&sheet, at, byte, cut, grow)?;
            reads_back(&receipt, at, byte, cut, grow)?;
            reads_back(&row, at, byte, cut, grow)?;
            reads_back(&record, at, byte, cut, grow)?;
        }

        /// Any bytes, alone (most end in the first field) and after the start of a record of each
        /// type (so that they land in any field).
        #[test]
        fn on_any_bytes_the_readers_agree(
            tail in vec(any::<u8>(), 0..160), sheet in order_sheet(), receipt in return_request(),
            row in revenue_event(), record in state_record(), at in any::<prop::sample::Index>(),
        ) {
            fn after_the_start_of<T: EventType + PartialEq + std::fmt::Debug>(
                event: &T, at: &prop::sample::Index, tail: &[u8],
            ) -> Result<(), TestCaseError> {
                agree::<T>(tail)?;
                let datum = datum_of(event)?;
                agree::<T>(&[&datum[..at.index(datum.len())], tail].concat())
            }
            after_the_start_of(&sheet, &at, &tail)?;
            after_the_start_of(&receipt, &at, &tail)?;
            after_the_start_of(&row, &at, &tail)?;
            after_the_start_of(&record, &at, &tail)?;
        }
    }

    /// `value` as a zig-zag varint.
    fn zigzag(value: i64) -> Vec<u8> {
        let mut out = Vec::new();
        crate::datum::write_long(&mut out, value);
        out
    }

    /// Arrays in blocks, as other writers may write them: a negative count followed by the block's
    /// size in bytes, several blocks, and blocks past the datum writer's own size.
    #[test]
    fn arrays_in_blocks_of_any_form_read_as_the_schema_reads_them() {
        let item = |n: u8| [zigzag(1), vec![n]].concat();
        let head = [zigzag(3), b"A01".to_vec(), zigzag(7), zigzag(9)].concat();
        // boxes: a block of -2 items (4 bytes), then a block of 1, then the end; receipts: empty.
        let lists = [zigzag(-2), zigzag(4), item(1), item(2), zigzag(1), item(3), zigzag(0), zigzag(0)].concat();
        // revenue: 3,000 items in one block that claims `count`.
        let revenue = |count: i64| {
            let items: Vec<u8> = (0..3_000).flat_map(|n| item(n as u8)).collect();
            [zigzag(count), items, zigzag(0)].concat()
        };
        let datum = [head.clone(), lists.clone(), revenue(3_000)].concat();
        let record = OrderStateRecord::read_current(&datum).expect("read by hand");
        assert_eq!(record.boxes, vec![vec![1], vec![2], vec![3]]);
        assert_eq!(record.revenue.len(), 3_000);
        agree::<OrderStateRecord>(&datum).unwrap();
        // A block claiming more items than it holds, or more than there are bytes left, or any count a
        // varint holds; and the last item cut short: refused, by both.
        for count in [3_001, 1_000_000, i64::MAX, i64::MIN] {
            let wrong = [head.clone(), lists.clone(), revenue(count)].concat();
            assert!(OrderStateRecord::read_current(&wrong).is_none(), "{count}");
            agree::<OrderStateRecord>(&wrong).unwrap();
        }
        let short = &datum[..datum.len() - 2];
        assert!(OrderStateRecord::read_current(short).is_none());
        agree::<OrderStateRecord>(short).unwrap();
    }

    /// An event's items in blocks of every form, a varint carrying bits past the 64th (both drop them),
    /// and an item's union index out of range (both refuse it).
    #[test]
    fn an_events_items_read_in_any_blocks_and_are_refused_when_wrong() {
        let item = |id: i64| ReturnRequestItem {
            vendor_item_id: id,
            vendor_item_name: "양말".into(),
            purchase_count: 2,
            cancel_count: 1,
            shipment_box_id: Some(9),
            seller_product_id: None,
        };
        let mut event = ReturnRequestEvent {
            vendor_id: "A01".into(),
            account_alias: "b".into(),
            collected_at: 1,
            api_version: "v5".into(),
            receipt_id: 2,
            order_id: 3,
            payment_id: None,
            receipt_type: "CANCEL".into(),
            receipt_status: "RELEASE_STOP_UNCHECKED".into(),
            created_at: 4,
            modified_at: None,
            complete_confirm_date: None,
            cancel_count_sum: 1,
            return_shipping_charge: 0,
            fault_by_type: None,
            reason_code: None,
            items: vec![],
        };
        let empty = datum_of(&event).unwrap();
        // Everything before the items: the empty array is the datum's last byte.
        let head = &empty[..empty.len() - 1];
        event.items = vec![item(1), item(2), item(3)];
        let one_block = datum_of(&event).unwrap();
        let items = &one_block[head.len() + 1..one_block.len() - 1];
        let (first, rest) = items.split_at(items.len() / 3);
        let blocks = [
            head.to_vec(),
            zigzag(-1),
            zigzag(first.len() as i64),
            first.to_vec(),
            zigzag(2),
            rest.to_vec(),
            zigzag(0),
        ]
        .concat();
        assert_eq!(ReturnRequestEvent::read_current(&blocks), Some(event.clone()));
        agree::<ReturnRequestEvent>(&blocks).unwrap();
        // The first item's vendor_item_id as ten bytes whose last carries bits past the 64th.
        let long_id = [vec![0x82], vec![0x80; 8], vec![0x7E]].concat();
        let count = &one_block[head.len()..head.len() + 1];
        let wide = [head, count, &long_id, &items[1..], &[0u8]].concat();
        assert_eq!(ReturnRequestEvent::read_current(&wide).map(|e| e.items[0].vendor_item_id), Some(1));
        agree::<ReturnRequestEvent>(&wide).unwrap();
        // The first item's shipment_box_id union index (after its id, name and two counts) as 2 or -1.
        let at = head.len() + 1 + 1 + 1 + "양말".len() + 1 + 1;
        assert_eq!(one_block[at], 2, "the union's index of Some");
        for index in [4, 1] {
            let mut wrong = one_block.clone();
            wrong[at] = index;
            assert_eq!(ReturnRequestEvent::read_current(&wrong), None);
            agree::<ReturnRequestEvent>(&wrong).unwrap();
        }
    }

    /// Each way a datum can be wrong, in a record that reads: both readers refuse it.
    #[test]
    fn what_the_datum_reader_refuses_is_refused_by_hand() {
        let text = |text: &[u8]| [zigzag(text.len() as i64), text.to_vec()].concat();
        // A revenue row with no items, field by field, each part replaceable.
        let row = |sale_type: &[u8], sale_date: Vec<u8>, settlement: Vec<u8>| {
            let parts = [text(b"A01"), text(b"b"), zigzag(5), zigzag(7), text(sale_type), sale_date, zigzag(20_000)];
            [parts.concat(), zigzag(0), zigzag(0), zigzag(0), settlement].concat()
        };
        let good = row(b"SALE", zigzag(20_000), [zigzag(1), zigzag(-300)].concat());
        assert_eq!(RevenueEvent::read_current(&good).map(|row| row.delivery_fee_settlement), Some(Some(-300)));
        let wrong = [
            ("a sale type no rule knows", row(b"GIFT", zigzag(20_000), zigzag(0))),
            ("an int past 32 bits", row(b"SALE", zigzag(1 << 31), zigzag(0))),
            ("a union index past its branches", row(b"SALE", zigzag(20_000), [zigzag(2), zigzag(1)].concat())),
            ("a negative union index", row(b"SALE", zigzag(20_000), [zigzag(-1), zigzag(1)].concat())),
            ("a trailing byte", [good.clone(), vec![0]].concat()),
            ("the datum cut short", good[..good.len() - 1].to_vec()),
            ("a varint of 11 bytes", [vec![0x80; 10], vec![0]].concat()),
            ("a negative length", [zigzag(-1), good[1..].to_vec()].concat()),
            ("a string that is not UTF-8", [text(&[0xC3, 0x28, 0x41]), good[4..].to_vec()].concat()),
        ];
        for (what, datum) in wrong {
            assert_eq!(RevenueEvent::read_current(&datum), None, "{what}");
            agree::<RevenueEvent>(&datum).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        // A boolean is 0 or 1.
        let sheet = order_sheet_with_remote_area_byte(0);
        assert!(OrderSheetEvent::read_current(&sheet).is_some());
        for byte in [2, 0xFF] {
            let datum = order_sheet_with_remote_area_byte(byte);
            assert_eq!(OrderSheetEvent::read_current(&datum), None);
            agree::<OrderSheetEvent>(&datum).unwrap();
        }
    }

    /// An order sheet with no items whose `remote_area` byte is `byte`.
    fn order_sheet_with_remote_area_byte(byte: u8) -> Vec<u8> {
        let event = OrderSheetEvent {
            vendor_id: "A01".into(),
            account_alias: "b".into(),
            collected_at: 1,
            api_version: "v5".into(),
            shipment_box_id: 2,
            order_id: 3,
            status: "ACCEPT".into(),
            ordered_at: None,
            paid_at: 4,
            shipping_price: 5,
            remote_price: 6,
            remote_area: false,
            in_transit_at: None,
            delivered_at: None,
            items: vec![],
        };
        let mut datum = datum_of(&event).unwrap();
        // After remote_area: two nulls and the empty array, a byte each.
        let at = datum.len() - 4;
        assert_eq!(datum[at], 0);
        datum[at] = byte;
        datum
    }

    /// The hand-written readers read one version of their schemas: a new version must change them.
    #[test]
    fn the_hand_written_readers_read_the_current_schemas() {
        let current = |history: &[&'static str]| history.last().copied();
        assert_eq!(current(OrderSheetEvent::history()), Some(include_str!("../avro/order_sheet_event.v1.avsc")));
        assert_eq!(current(ReturnRequestEvent::history()), Some(include_str!("../avro/return_request_event.v1.avsc")));
        assert_eq!(current(RevenueEvent::history()), Some(include_str!("../avro/revenue_event.v3.avsc")));
        assert_eq!(current(OrderStateRecord::history()), Some(include_str!("../avro/order_state.v1.avsc")));
    }
}
