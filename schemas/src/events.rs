//! Typed events. Field names and order match the `.avsc` files exactly (the codec checks this in tests).

use serde::{Deserialize, Serialize};

use crate::codec::EventType;
use crate::domain::{
    ChangeCause, FactStatus, OrderStatus, ReceiptStatus, ReceiptType, SaleType, SettlementStatus, SettlementType,
};

/// One shipment box of an order sheet as ingest saw it at one poll (`avro/order_sheet_event.v1.avsc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSheetEvent {
    pub vendor_id: String,
    pub account_alias: String,
    pub collected_at: i64,
    pub api_version: String,
    pub shipment_box_id: i64,
    pub order_id: i64,
    pub status: OrderStatus,
    pub ordered_at: Option<i64>,
    pub paid_at: i64,
    pub shipping_price: i64,
    pub remote_price: i64,
    pub remote_area: bool,
    pub in_transit_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub items: Vec<OrderSheetItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSheetItem {
    pub vendor_item_id: i64,
    pub vendor_item_name: String,
    pub seller_product_id: i64,
    pub shipping_count: i32,
    pub cancel_count: i32,
    pub hold_count_for_cancel: i32,
    pub sales_price: i64,
    pub order_price: i64,
    pub discount_price: i64,
    pub instant_coupon_discount: i64,
    pub downloadable_coupon_discount: i64,
    pub coupang_discount: i64,
    pub confirm_date: Option<i64>,
    pub canceled: bool,
}

/// An order's identity: the key of its raw events, its state and its partition, `vendorId:orderId` on
/// the wire. Typed so that nobody splits the string back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderKey {
    pub vendor_id: String,
    pub order_id: i64,
}

impl OrderKey {
    /// `vendorId:orderId`, as [`Display`](std::fmt::Display) writes it, into a string sized for it
    /// once and without the formatting machinery: the transform builds one per event, and
    /// `to_string`'s growing string was 7% of its instructions.
    pub fn text(&self) -> String {
        let mut text = String::with_capacity(self.vendor_id.len() + 21);
        push_key_parts(&mut text, &self.vendor_id, &[self.order_id]);
        text
    }
}

/// Appends `vendor_id`, then `:` and each number, to `key`.
fn push_key_parts(key: &mut String, vendor_id: &str, numbers: &[i64]) {
    key.push_str(vendor_id);
    for number in numbers {
        key.push(':');
        key.push_str(itoa::Buffer::new().format(*number));
    }
}

impl std::fmt::Display for OrderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.vendor_id, self.order_id)
    }
}

/// A payment fact's identity: one (vendor, order, option), written `vendorId:orderId:vendorItemId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FactKey {
    pub order: OrderKey,
    pub vendor_item_id: i64,
}

impl std::fmt::Display for FactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.order, self.vendor_item_id)
    }
}

impl OrderSheetEvent {
    pub fn order_key(&self) -> OrderKey {
        OrderKey { vendor_id: self.vendor_id.clone(), order_id: self.order_id }
    }

    /// Kafka key: all events of one order land in one partition, in order.
    pub fn kafka_key(&self) -> String {
        self.order_key().to_string()
    }
}

/// Current state of one (vendor, order, item) (`avro/payment_fact.v2.avsc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFact {
    pub vendor_id: String,
    pub account_alias: String,
    pub order_id: i64,
    pub vendor_item_id: i64,
    pub shipment_box_id: i64,
    pub vendor_item_name: String,
    /// Days since 1970-01-01 of the Asia/Seoul payment day.
    pub payment_date: i32,
    pub paid_at: i64,
    pub status: FactStatus,
    pub quantity: i32,
    pub cancelled_quantity: i32,
    pub order_price: i64,
    pub shipping_fee: i64,
    pub seller_coupon_discount: i64,
    pub coupang_coupon_discount: i64,
    pub payment_amount: i64,
    pub provisional: bool,
    pub cancelled: bool,
    pub event_time: i64,
    pub version: i64,
    /// Why this version differs from the item's version before it.
    pub change_cause: ChangeCause,
    /// The item's `payment_amount` in its version before; `None` for a new order's first version.
    pub previous_payment_amount: Option<i64>,
}

impl PaymentFact {
    pub fn fact_key(&self) -> FactKey {
        FactKey {
            order: OrderKey { vendor_id: self.vendor_id.clone(), order_id: self.order_id },
            vendor_item_id: self.vendor_item_id,
        }
    }

    /// `vendorId:orderId:vendorItemId`, as [`FactKey`]'s `Display` writes it, into a string sized for
    /// it once (no vendor id cloned into a key first): a fact's identity, and the Kafka key of the
    /// one-fact messages written before [`OrderPaymentFacts`].
    pub fn kafka_key(&self) -> String {
        let mut key = String::with_capacity(self.vendor_id.len() + 42);
        push_key_parts(&mut key, &self.vendor_id, &[self.order_id, self.vendor_item_id]);
        key
    }
}

impl EventType for OrderSheetEvent {
    const NAME: &'static str = "OrderSheetEvent";
    fn history() -> &'static [&'static str] {
        &[include_str!("../avro/order_sheet_event.v1.avsc")]
    }

    fn read_current(datum: &[u8]) -> Option<Self> {
        crate::readers::order_sheet(datum)
    }
}

impl EventType for PaymentFact {
    const NAME: &'static str = "PaymentFact";
    fn history() -> &'static [&'static str] {
        &[include_str!("../avro/payment_fact.v1.avsc"), include_str!("../avro/payment_fact.v2.avsc")]
    }
}

/// The payment facts of one order that one change made or restated, sent as one message
/// (`avro/order_payment_facts.v1.avsc`) keyed by the order: a consumer gets the items an event restated
/// together, and an order's messages in order. A message may hold only some of the order's items
/// (those a restore sends again, say); per item the highest version wins. Read a facts-topic message
/// with [`crate::decode_facts`], which also reads the one-fact messages written before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPaymentFacts {
    pub vendor_id: String,
    pub order_id: i64,
    pub facts: Vec<PaymentFact>,
}

impl EventType for OrderPaymentFacts {
    const NAME: &'static str = "OrderPaymentFacts";
    fn history() -> &'static [&'static str] {
        &[include_str!("../avro/order_payment_facts.v1.avsc")]
    }
}

/// One cancel or return receipt as ingest saw it at one poll (`avro/return_request_event.v1.avsc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnRequestEvent {
    pub vendor_id: String,
    pub account_alias: String,
    pub collected_at: i64,
    pub api_version: String,
    pub receipt_id: i64,
    pub order_id: i64,
    pub payment_id: Option<i64>,
    pub receipt_type: ReceiptType,
    pub receipt_status: ReceiptStatus,
    pub created_at: i64,
    pub modified_at: Option<i64>,
    pub complete_confirm_date: Option<i64>,
    pub cancel_count_sum: i32,
    pub return_shipping_charge: i64,
    pub fault_by_type: Option<String>,
    pub reason_code: Option<String>,
    pub items: Vec<ReturnRequestItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnRequestItem {
    pub vendor_item_id: i64,
    pub vendor_item_name: String,
    pub purchase_count: i32,
    pub cancel_count: i32,
    pub shipment_box_id: Option<i64>,
    pub seller_product_id: Option<i64>,
}

/// One revenue-history row with seller-perspective signs (`avro/revenue_event.v3.avsc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevenueEvent {
    pub vendor_id: String,
    pub account_alias: String,
    pub collected_at: i64,
    pub order_id: i64,
    pub sale_type: SaleType,
    /// Days since 1970-01-01.
    pub sale_date: i32,
    pub recognition_date: i32,
    pub delivery_fee: i64,
    pub items: Vec<RevenueItem>,
    /// Which row of this order, sale type and recognition day it is (0, 1, …): two partial refunds
    /// recognised on one day are two rows, never one overwriting the other.
    pub same_day_row: i32,
    /// `deliveryFee.settlementAmount`, seller-signed: the shipping fee less its commission (on an
    /// adjustment row, the adjusted amount). `None` on rows written before v3.
    pub delivery_fee_settlement: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevenueItem {
    pub vendor_item_id: i64,
    pub quantity: i32,
    pub sale_price: i64,
    pub seller_discount_coupon: i64,
    pub downloadable_coupon: i64,
    pub coupang_discount_coupon: i64,
    pub sale_amount: i64,
    pub settlement_amount: i64,
}

impl ReturnRequestEvent {
    pub fn order_key(&self) -> OrderKey {
        OrderKey { vendor_id: self.vendor_id.clone(), order_id: self.order_id }
    }

    /// Same key as the order's other events: one partition, in order.
    pub fn kafka_key(&self) -> String {
        self.order_key().to_string()
    }
}

impl RevenueEvent {
    pub fn order_key(&self) -> OrderKey {
        OrderKey { vendor_id: self.vendor_id.clone(), order_id: self.order_id }
    }

    pub fn kafka_key(&self) -> String {
        self.order_key().to_string()
    }
}

impl EventType for ReturnRequestEvent {
    const NAME: &'static str = "ReturnRequestEvent";
    fn history() -> &'static [&'static str] {
        &[include_str!("../avro/return_request_event.v1.avsc")]
    }

    fn read_current(datum: &[u8]) -> Option<Self> {
        crate::readers::return_request(datum)
    }
}

impl EventType for RevenueEvent {
    const NAME: &'static str = "RevenueEvent";
    fn history() -> &'static [&'static str] {
        &[
            include_str!("../avro/revenue_event.v1.avsc"),
            include_str!("../avro/revenue_event.v2.avsc"),
            include_str!("../avro/revenue_event.v3.avsc"),
        ]
    }

    fn read_current(datum: &[u8]) -> Option<Self> {
        crate::readers::revenue(datum)
    }
}

/// One payout cycle of `settlement-histories` as ingest saw it at one poll
/// (`avro/settlement_event.v1.avsc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementEvent {
    pub vendor_id: String,
    pub account_alias: String,
    pub collected_at: i64,
    /// `YYYY-MM`.
    pub recognition_month: String,
    pub settlement_type: SettlementType,
    /// Days since 1970-01-01.
    pub settlement_date: i32,
    pub recognition_date_from: i32,
    pub recognition_date_to: i32,
    pub total_sale: i64,
    pub service_fee: i64,
    pub settlement_target_amount: i64,
    pub settlement_amount: i64,
    pub last_amount: i64,
    pub pending_released_amount: i64,
    pub seller_discount_coupon: i64,
    pub downloadable_coupon: i64,
    pub seller_service_fee: i64,
    pub deduction_amount: i64,
    pub debt_of_last_week: i64,
    pub final_amount: i64,
    pub status: SettlementStatus,
}

impl SettlementEvent {
    /// Kafka key: a payout has no id at Coupang, so it is named by its vendor, type and recognition
    /// range (`vendorId:WEEKLY:20574:20576`, days since 1970-01-01); its payout day may still move
    /// while it is scheduled, so it is not part of the key.
    pub fn kafka_key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.vendor_id, self.settlement_type, self.recognition_date_from, self.recognition_date_to
        )
    }
}

impl EventType for SettlementEvent {
    const NAME: &'static str = "SettlementEvent";
    fn history() -> &'static [&'static str] {
        &[include_str!("../avro/settlement_event.v1.avsc")]
    }
}

/// The transform stage's changelog record of one order (`avro/order_state.v1.avsc`). Each element is a
/// raw event in its own single-object encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStateRecord {
    pub vendor_id: String,
    pub order_id: i64,
    pub source_time: i64,
    #[serde(with = "byte_lists")]
    pub boxes: Vec<Vec<u8>>,
    #[serde(with = "byte_lists")]
    pub receipts: Vec<Vec<u8>>,
    #[serde(with = "byte_lists")]
    pub revenue: Vec<Vec<u8>>,
}

impl EventType for OrderStateRecord {
    const NAME: &'static str = "OrderState";
    fn history() -> &'static [&'static str] {
        &[include_str!("../avro/order_state.v1.avsc")]
    }

    fn read_current(datum: &[u8]) -> Option<Self> {
        crate::readers::state_record(datum)
    }
}

/// An [`OrderStateRecord`] of borrowed parts, written with [`crate::encode_state_record`]: the transform
/// puts a changed order's record together from event bytes it already holds, without copying them first.
#[derive(Debug, Serialize)]
pub struct OrderStateRecordView<'a> {
    pub vendor_id: &'a str,
    pub order_id: i64,
    pub source_time: i64,
    #[serde(serialize_with = "byte_lists::serialize")]
    pub boxes: Vec<std::borrow::Cow<'a, [u8]>>,
    #[serde(serialize_with = "byte_lists::serialize")]
    pub receipts: Vec<std::borrow::Cow<'a, [u8]>>,
    #[serde(serialize_with = "byte_lists::serialize")]
    pub revenue: Vec<std::borrow::Cow<'a, [u8]>>,
}

/// Avro `bytes` elements: serde would otherwise write a `Vec<u8>` as an array of ints.
mod byte_lists {
    use serde::de::Deserializer;
    use serde::ser::{SerializeSeq, Serializer};
    use serde::Deserialize;

    #[derive(serde::Serialize)]
    struct Bytes<'a>(#[serde(with = "apache_avro::serde_avro_bytes")] &'a [u8]);
    #[derive(Deserialize)]
    struct OwnedBytes(#[serde(with = "apache_avro::serde_avro_bytes")] Vec<u8>);

    pub fn serialize<S: Serializer, B: AsRef<[u8]>>(lists: &[B], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(lists.len()))?;
        for bytes in lists {
            seq.serialize_element(&Bytes(bytes.as_ref()))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Ok(Vec::<OwnedBytes>::deserialize(deserializer)?.into_iter().map(|b| b.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::OrderKey;

    #[test]
    fn an_order_key_text_is_what_display_writes() {
        for order_id in [0, 7, 10, 24_000_000_000_001, -1, -305, i64::MAX, i64::MIN] {
            let key = OrderKey { vendor_id: "A00012345".into(), order_id };
            assert_eq!(key.text(), format!("A00012345:{order_id}"));
        }
        assert_eq!(OrderKey { vendor_id: String::new(), order_id: 9 }.text(), ":9");
    }
}
