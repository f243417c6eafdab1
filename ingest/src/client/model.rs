//! The Coupang JSON the pipeline reads, typed and tolerant of both documented forms:
//! v5/v6 (money objects, ISO-8601 with offset) and v4 (plain integers, Korea time without offset).
//! Unknown fields are ignored; personal data (orderer, receiver) is never deserialized at all.

use chrono::NaiveDate;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::lenient::{count, flag, id, optional_date, optional_id, optional_text, optional_time, text};
pub use super::lenient::{CoupangDate, CoupangTime, Won};
pub use coupang_schemas::{OrderStatus, ReceiptStatus, ReceiptType, SaleType};

/// `code` is sometimes a number and sometimes a string ("200").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseCode(pub String);

impl ResponseCode {
    pub fn is_ok(&self) -> bool {
        matches!(self.0.as_str(), "200" | "SUCCESS" | "OK")
    }
}

impl<'de> Deserialize<'de> for ResponseCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Number(n) => Ok(ResponseCode(n.to_string())),
            serde_json::Value::String(s) => Ok(ResponseCode(s)),
            other => Err(de::Error::custom(format!("code {other} is neither number nor string"))),
        }
    }
}

/// The envelope of every endpoint. `data` stays raw so each record is decoded on its own: one bad
/// record is reported by id while the rest of the page is still processed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub code: ResponseCode,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    /// `""` or absent on the last page.
    #[serde(default)]
    pub next_token: Option<String>,
    /// revenue-history says whether another page follows.
    #[serde(default)]
    pub has_next: Option<bool>,
}

impl Envelope {
    /// The token of the next page, if there is one.
    pub fn next_page(&self) -> Option<String> {
        if self.has_next == Some(false) {
            return None;
        }
        self.next_token.clone().filter(|t| !t.is_empty())
    }
}

/// An error body: gateway (`{"code":"ERROR","message":…}`) or business (`{"code":400,"message":…}`).
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
}

/// One shipment box of an order sheet (`ordersheets`), v4 or v5. Field forms: `lenient`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSheet {
    #[serde(deserialize_with = "id")]
    pub shipment_box_id: i64,
    #[serde(deserialize_with = "id")]
    pub order_id: i64,
    #[serde(default, deserialize_with = "optional_time")]
    pub ordered_at: Option<CoupangTime>,
    /// The payment time: the day every rule groups by, so a sheet without it is rejected.
    pub paid_at: CoupangTime,
    #[serde(deserialize_with = "order_status")]
    pub status: OrderStatus,
    #[serde(default)]
    pub shipping_price: Won,
    /// `null` in lists and `0` in single look-ups for the same box: both mean no surcharge.
    #[serde(default)]
    pub remote_price: Won,
    #[serde(default, deserialize_with = "flag")]
    pub remote_area: bool,
    /// Coupang spells it `inTrasitDateTime`.
    #[serde(default, rename = "inTrasitDateTime", deserialize_with = "optional_time")]
    pub in_transit_at: Option<CoupangTime>,
    #[serde(default, rename = "deliveredDate", deserialize_with = "optional_time")]
    pub delivered_at: Option<CoupangTime>,
    pub order_items: Vec<OrderItem>,
}

/// A shipment box's status: any text (a new status must not reject the record: the transform decides),
/// but never empty.
fn order_status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OrderStatus, D::Error> {
    required_text(deserializer, "status").map(|text| OrderStatus::from(text.as_str()))
}

fn receipt_type<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ReceiptType, D::Error> {
    required_text(deserializer, "receipt type").map(|text| ReceiptType::from(text.as_str()))
}

fn receipt_status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ReceiptStatus, D::Error> {
    required_text(deserializer, "receipt status").map(|text| ReceiptStatus::from(text.as_str()))
}

/// Text that decides a rule (a status, a receipt type): `null` or `""` rejects the record.
pub(super) fn required_text<'de, D: Deserializer<'de>>(deserializer: D, what: &str) -> Result<String, D::Error> {
    optional_text(deserializer)?
        .map(|t| t.trim().to_string())
        .ok_or_else(|| de::Error::custom(format!("{what} is empty")))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    #[serde(deserialize_with = "id")]
    pub vendor_item_id: i64,
    #[serde(default, deserialize_with = "text")]
    pub vendor_item_name: String,
    #[serde(default, deserialize_with = "optional_id")]
    pub seller_product_id: Option<i64>,
    #[serde(default, deserialize_with = "count")]
    pub shipping_count: i32,
    #[serde(default, deserialize_with = "count")]
    pub cancel_count: i32,
    #[serde(default, deserialize_with = "count")]
    pub hold_count_for_cancel: i32,
    #[serde(default)]
    pub sales_price: Won,
    /// `None` when Coupang leaves it out or `null`: then it is `salesPrice × shippingCount`.
    #[serde(default)]
    order_price: Option<Won>,
    #[serde(default)]
    pub discount_price: Won,
    #[serde(default)]
    pub instant_coupon_discount: Won,
    #[serde(default)]
    pub downloadable_coupon_discount: Won,
    #[serde(default)]
    pub coupang_discount: Won,
    #[serde(default, deserialize_with = "optional_time")]
    pub confirm_date: Option<CoupangTime>,
    #[serde(default, deserialize_with = "flag")]
    pub canceled: bool,
}

impl OrderItem {
    /// What the item costs before discounts: `orderPrice`, or `salesPrice × shippingCount` when
    /// Coupang sends none (its documented definition).
    pub fn order_price(&self) -> Won {
        self.order_price.unwrap_or(Won(self.sales_price.0.saturating_mul(i64::from(self.shipping_count))))
    }
}

/// A cancel or return receipt (`returnRequests`, v4 or v6).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnRequest {
    #[serde(deserialize_with = "id")]
    pub receipt_id: i64,
    #[serde(deserialize_with = "id")]
    pub order_id: i64,
    #[serde(default, deserialize_with = "optional_id")]
    pub payment_id: Option<i64>,
    #[serde(deserialize_with = "receipt_type")]
    pub receipt_type: ReceiptType,
    #[serde(deserialize_with = "receipt_status")]
    pub receipt_status: ReceiptStatus,
    pub created_at: CoupangTime,
    #[serde(default, deserialize_with = "optional_time")]
    pub modified_at: Option<CoupangTime>,
    #[serde(default, deserialize_with = "count")]
    pub cancel_count_sum: i32,
    /// `None` when absent or `null`; negative when the buyer pays it.
    #[serde(default)]
    pub return_shipping_charge: Option<Won>,
    #[serde(default, deserialize_with = "optional_text")]
    pub fault_by_type: Option<String>,
    #[serde(default, deserialize_with = "optional_text")]
    pub reason_code: Option<String>,
    #[serde(default, deserialize_with = "optional_time")]
    pub complete_confirm_date: Option<CoupangTime>,
    #[serde(default)]
    pub return_items: Vec<ReturnItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnItem {
    #[serde(deserialize_with = "id")]
    pub vendor_item_id: i64,
    #[serde(default, deserialize_with = "text")]
    pub vendor_item_name: String,
    #[serde(default, deserialize_with = "count")]
    pub purchase_count: i32,
    #[serde(default, deserialize_with = "count")]
    pub cancel_count: i32,
    #[serde(default, deserialize_with = "optional_id")]
    pub shipment_box_id: Option<i64>,
    #[serde(default, deserialize_with = "optional_id")]
    pub seller_product_id: Option<i64>,
}

/// One revenue-history row: an order's sale or refund, recognised at purchase confirmation.
/// Amounts are as Coupang sends them; use [`RevenueRecord::signed`] for seller-perspective signs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevenueRecord {
    /// 0 for adjustments that belong to no order.
    #[serde(deserialize_with = "id")]
    pub order_id: i64,
    pub sale_type: SaleType,
    /// The payment date.
    pub sale_date: CoupangDate,
    pub recognition_date: CoupangDate,
    #[serde(default, deserialize_with = "optional_date")]
    pub settlement_date: Option<CoupangDate>,
    #[serde(default)]
    pub delivery_fee: Option<DeliveryFee>,
    /// Empty for orders cancelled or returned before confirmation (since 2024-07-01); `null` too.
    #[serde(default, deserialize_with = "items_or_none")]
    pub items: Vec<RevenueItem>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryFee {
    #[serde(default)]
    pub amount: Won,
    #[serde(default)]
    pub fee: Won,
    #[serde(default)]
    pub fee_vat: Won,
    #[serde(default)]
    pub settlement_amount: Won,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevenueItem {
    #[serde(deserialize_with = "id")]
    pub vendor_item_id: i64,
    #[serde(default, deserialize_with = "text")]
    pub vendor_item_name: String,
    #[serde(default, deserialize_with = "optional_id")]
    pub product_id: Option<i64>,
    /// Unit price × quantity.
    #[serde(default)]
    pub sale_price: Won,
    #[serde(default, deserialize_with = "count")]
    pub quantity: i32,
    #[serde(default)]
    pub coupang_discount_coupon: Won,
    #[serde(default)]
    pub seller_discount_coupon: Won,
    #[serde(default)]
    pub downloadable_coupon: Won,
    #[serde(default)]
    pub sale_amount: Won,
    #[serde(default)]
    pub service_fee: Won,
    #[serde(default)]
    pub service_fee_vat: Won,
    #[serde(default)]
    pub settlement_amount: Won,
}

fn items_or_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<RevenueItem>, D::Error> {
    Ok(Option::<Vec<RevenueItem>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A revenue row with seller-perspective signs: a SALE adds, a REFUND subtracts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRevenue {
    pub order_id: i64,
    pub sale_type: SaleType,
    pub sale_date: NaiveDate,
    pub recognition_date: NaiveDate,
    pub delivery_fee: i64,
    /// `deliveryFee.settlementAmount` (`null` or absent: 0).
    pub delivery_fee_settlement: i64,
    pub items: Vec<SignedRevenueItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRevenueItem {
    pub vendor_item_id: i64,
    /// Signed like the amounts: negative on REFUND rows.
    pub quantity: i32,
    pub sale_price: i64,
    pub coupang_discount_coupon: i64,
    pub seller_discount_coupon: i64,
    pub downloadable_coupon: i64,
    pub sale_amount: i64,
    pub settlement_amount: i64,
}

/// THE place where revenue-history's sign conventions are normalised (coupang-api.md §6): on REFUND
/// rows Coupang sends item amounts positive and deliveryFee amounts already negative. Both become
/// negative here, whichever sign arrives, so a refund always subtracts; SALE amounts keep their sign.
pub fn seller_sign(sale_type: SaleType, amount: i64) -> i64 {
    match sale_type {
        SaleType::Sale => amount,
        SaleType::Refund => -amount.abs(),
    }
}

impl RevenueRecord {
    pub fn signed(&self) -> SignedRevenue {
        let sign = |amount: Won| seller_sign(self.sale_type, amount.0);
        SignedRevenue {
            order_id: self.order_id,
            sale_type: self.sale_type,
            sale_date: self.sale_date.0,
            recognition_date: self.recognition_date.0,
            delivery_fee: self.delivery_fee.as_ref().map_or(0, |fee| sign(fee.amount)),
            delivery_fee_settlement: self.delivery_fee.as_ref().map_or(0, |fee| sign(fee.settlement_amount)),
            items: self
                .items
                .iter()
                .map(|item| SignedRevenueItem {
                    vendor_item_id: item.vendor_item_id,
                    quantity: seller_sign(self.sale_type, i64::from(item.quantity)) as i32,
                    sale_price: sign(item.sale_price),
                    coupang_discount_coupon: sign(item.coupang_discount_coupon),
                    seller_discount_coupon: sign(item.seller_discount_coupon),
                    downloadable_coupon: sign(item.downloadable_coupon),
                    sale_amount: sign(item.sale_amount),
                    settlement_amount: sign(item.settlement_amount),
                })
                .collect(),
        }
    }

    /// Rows with `orderId = 0` are settlement adjustments, not sales of an order.
    pub fn is_adjustment(&self) -> bool {
        self.order_id == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn code_as_number_or_string() {
        let env: Envelope = serde_json::from_value(json!({"code": "200", "message": "OK", "data": []})).unwrap();
        assert!(env.code.is_ok());
        let env: Envelope = serde_json::from_value(json!({"code": 200, "data": [], "nextToken": ""})).unwrap();
        assert!(env.code.is_ok());
        let env: Envelope = serde_json::from_value(json!({"code": "ERROR", "message": "x"})).unwrap();
        assert!(!env.code.is_ok());
    }

    #[test]
    fn v4_order_sheet_with_empty_times_and_unknown_fields() {
        let sheet: OrderSheet = serde_json::from_value(json!({
            "shipmentBoxId": 642538971006401429u64, "orderId": 24000057163001u64,
            "orderedAt": "2025-07-29T10:11:00", "paidAt": "2025-07-29T10:11:12",
            "status": "INSTRUCT", "shippingPrice": 3000, "remotePrice": null, "remoteArea": false,
            "inTrasitDateTime": "", "deliveredDate": "", "someNewField": {"x": 1},
            "orderer": {"name": "홍길동"},
            "orderItems": [{"vendorItemId": 1, "shippingCount": 2, "salesPrice": 9900, "orderPrice": 19800,
                            "confirmDate": "2025-08-08 12:00:00"}]
        }))
        .unwrap();
        assert_eq!(sheet.shipping_price, Won(3000));
        assert_eq!(sheet.in_transit_at, None);
        assert_eq!(sheet.order_items[0].order_price(), Won(19800));
        assert!(sheet.order_items[0].confirm_date.is_some());
    }

    #[test]
    fn missing_required_field_is_an_error() {
        let err = serde_json::from_value::<OrderSheet>(
            json!({"shipmentBoxId": 1, "orderId": 2, "status": "ACCEPT", "orderItems": []}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("paidAt"), "{err}");
    }

    fn revenue(v: serde_json::Value) -> RevenueRecord {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn refund_rows_subtract_whatever_sign_coupang_sends() {
        let refund = revenue(json!({
            "orderId": 24000000000001u64, "saleType": "REFUND", "saleDate": "2025-07-01",
            "recognitionDate": "2025-07-12", "settlementDate": "2025-08-10",
            "deliveryFee": {"amount": -3000, "fee": -300, "feeVat": -30, "settlementAmount": -2670},
            "items": [{"vendorItemId": 7, "salePrice": 19800, "quantity": 2, "coupangDiscountCoupon": 1000,
                       "sellerDiscountCoupon": 500, "downloadableCoupon": 0, "saleAmount": 18300,
                       "settlementAmount": 16000, "unknownNewField": 1}]
        }))
        .signed();
        assert_eq!(refund.delivery_fee, -3000);
        let item = &refund.items[0];
        assert_eq!((item.quantity, item.sale_price, item.sale_amount), (-2, -19800, -18300));
        assert_eq!((item.coupang_discount_coupon, item.seller_discount_coupon), (-1000, -500));
        let sale = revenue(json!({
            "orderId": 1, "saleType": "SALE", "saleDate": "2025-07-01", "recognitionDate": "2025-07-12",
            "deliveryFee": {"amount": 3000}, "items": [{"vendorItemId": 7, "salePrice": 19800, "quantity": 2}]
        }))
        .signed();
        assert_eq!((sale.delivery_fee, sale.items[0].sale_price, sale.items[0].quantity), (3000, 19800, 2));
    }

    #[test]
    fn empty_item_rows_and_order_zero_adjustments() {
        let cancelled = revenue(json!({"orderId": 5, "saleType": "SALE", "saleDate": "2025-07-01",
            "recognitionDate": "2025-07-03", "deliveryFee": {"amount": 0}, "items": []}));
        assert!(cancelled.items.is_empty() && !cancelled.is_adjustment());
        let adjustment = revenue(json!({"orderId": 0, "saleType": "SALE", "saleDate": "2025-07-01T00:00:00",
            "recognitionDate": "2025-07-03"}));
        assert!(adjustment.is_adjustment());
        assert_eq!(adjustment.signed().delivery_fee, 0);
        assert!(serde_json::from_value::<RevenueRecord>(json!({"orderId": 1, "saleType": "GIFT",
            "saleDate": "2025-07-01", "recognitionDate": "2025-07-03"}))
        .is_err());
    }

    #[test]
    fn return_requests_in_v4_and_v6_forms() {
        let v6: ReturnRequest = serde_json::from_value(json!({
            "receiptId": 91, "orderId": 24000000000001u64, "paymentId": 3, "receiptType": "RETURN",
            "receiptStatus": "RETURNS_COMPLETED", "createdAt": "2025-07-10T10:00:00+09:00",
            "modifiedAt": "2025-07-12T10:00:00+09:00", "cancelCountSum": 1,
            "returnShippingCharge": {"currencyCode": "KRW", "units": -5000, "nanos": 0},
            "returnItems": [{"vendorItemId": 7, "purchaseCount": 2, "cancelCount": 1, "shipmentBoxId": 640000000000000001u64}]
        }))
        .unwrap();
        assert_eq!(v6.return_shipping_charge, Some(Won(-5000)));
        let v4: ReturnRequest = serde_json::from_value(json!({
            "receiptId": 92, "orderId": 1, "receiptType": "CANCEL", "receiptStatus": "RETURNS_COMPLETED",
            "createdAt": "2025-07-10T10:00:00", "returnShippingCharge": 0,
            "returnItems": [{"vendorItemId": 7, "cancelCount": 2}]
        }))
        .unwrap();
        assert_eq!(v4.created_at, v6.created_at);
    }
}
