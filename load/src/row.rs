//! The ClickHouse row of a payment fact. Field order is the INSERT's column order (RowBinary).

use clickhouse::Row;
use coupang_schemas::{ChangeCause, FactStatus, PaymentFact};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct FactRow {
    pub vendor_id: String,
    pub account_alias: String,
    pub order_id: i64,
    pub vendor_item_id: i64,
    pub shipment_box_id: i64,
    pub vendor_item_name: String,
    /// `Date`: days since 1970-01-01.
    pub payment_date: u16,
    /// `DateTime('Asia/Seoul')`: seconds since the epoch.
    pub paid_at: u32,
    pub status: FactStatus,
    pub quantity: i32,
    pub cancelled_quantity: i32,
    pub order_price: i64,
    pub shipping_fee: i64,
    pub seller_coupon_discount: i64,
    pub coupang_coupon_discount: i64,
    pub payment_amount: i64,
    pub provisional: u8,
    pub cancelled: u8,
    pub event_time: u32,
    pub version: u64,
    pub change_cause: ChangeCause,
    /// `Nullable(Int64)`.
    pub previous_payment_amount: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{record} {key}: {what} is outside what ClickHouse's column holds")]
pub struct RowError {
    /// What the record is: `fact`, `revenue row`, `payout`.
    pub record: &'static str,
    pub key: String,
    pub what: &'static str,
}

impl TryFrom<&PaymentFact> for FactRow {
    type Error = RowError;

    fn try_from(fact: &PaymentFact) -> Result<Self, RowError> {
        let out_of_range = |what| RowError { record: "fact", key: fact.kafka_key(), what };
        let seconds = |millis: i64, what| u32::try_from(millis.div_euclid(1_000)).map_err(|_| out_of_range(what));
        Ok(FactRow {
            vendor_id: fact.vendor_id.clone(),
            account_alias: fact.account_alias.clone(),
            order_id: fact.order_id,
            vendor_item_id: fact.vendor_item_id,
            shipment_box_id: fact.shipment_box_id,
            vendor_item_name: fact.vendor_item_name.clone(),
            payment_date: u16::try_from(fact.payment_date).map_err(|_| out_of_range("payment_date"))?,
            paid_at: seconds(fact.paid_at, "paid_at")?,
            status: fact.status.clone(),
            quantity: fact.quantity,
            cancelled_quantity: fact.cancelled_quantity,
            order_price: fact.order_price,
            shipping_fee: fact.shipping_fee,
            seller_coupon_discount: fact.seller_coupon_discount,
            coupang_coupon_discount: fact.coupang_coupon_discount,
            payment_amount: fact.payment_amount,
            provisional: u8::from(fact.provisional),
            cancelled: u8::from(fact.cancelled),
            event_time: seconds(fact.event_time, "event_time")?,
            version: u64::try_from(fact.version).map_err(|_| out_of_range("version"))?,
            change_cause: fact.change_cause.clone(),
            previous_payment_amount: fact.previous_payment_amount,
        })
    }
}
