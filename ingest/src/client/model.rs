//! The Coupang JSON the pipeline reads, typed and tolerant of both documented forms:
//! v5/v6 (money objects, ISO-8601 with offset) and v4 (plain integers, Korea time without offset).
//! Unknown fields are ignored; personal data (orderer, receiver) is never deserialized at all.

use chrono::{DateTime, NaiveDateTime, TimeZone};
use etl_core::time::kst;
use serde::de::{self, Deserializer};
use serde::Deserialize;

/// An amount in won. Accepts `19900`, `"19900"` and `{"currencyCode":"KRW","units":19900,"nanos":0}`.
/// KRW has no minor unit, so non-zero nanos are rounded to the nearest won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Won(pub i64);

impl<'de> Deserialize<'de> for Won {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Int(i64),
            Text(String),
            Object {
                units: Number,
                #[serde(default)]
                nanos: i64,
            },
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Number {
            Int(i64),
            Text(String),
        }
        let number = |n: Number| match n {
            Number::Int(v) => Ok(v),
            Number::Text(t) => t
                .trim()
                .parse::<i64>()
                .map_err(|_| de::Error::custom(format!("amount {t:?} is not a number"))),
        };
        match Form::deserialize(deserializer)
            .map_err(|_| de::Error::custom("amount is neither a number nor a money object"))?
        {
            Form::Int(v) => Ok(Won(v)),
            Form::Text(t) => number(Number::Text(t)).map(Won),
            Form::Object { units, nanos } => {
                let units = number(units)?;
                let rounded = units + (nanos + nanos.signum() * 500_000_000) / 1_000_000_000;
                Ok(Won(rounded))
            }
        }
    }
}

/// An instant from Coupang, as epoch milliseconds. Accepts ISO-8601 with offset (v5), and
/// `yyyy-MM-ddTHH:mm:ss[.f]` or `yyyy-MM-dd HH:mm:ss` without offset, which mean Korea time (v4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoupangTime(pub i64);

impl CoupangTime {
    pub fn parse(text: &str) -> Option<CoupangTime> {
        let text = text.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(CoupangTime(t.timestamp_millis()));
        }
        [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
        ]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .and_then(|naive| kst().from_local_datetime(&naive).single())
        .map(|t| CoupangTime(t.timestamp_millis()))
    }
}

impl<'de> Deserialize<'de> for CoupangTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CoupangTime::parse(&text)
            .ok_or_else(|| de::Error::custom(format!("unrecognised time {text:?}")))
    }
}

/// Optional times arrive as null, absent or `""` before the event happened.
fn optional_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<CoupangTime>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => CoupangTime::parse(&text)
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("unrecognised time {text:?}"))),
    }
}

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
            other => Err(de::Error::custom(format!(
                "code {other} is neither number nor string"
            ))),
        }
    }
}

/// The list envelope. `data` stays raw so each record is decoded on its own: one bad record is
/// reported by id while the rest of the page is still processed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListEnvelope {
    pub code: ResponseCode,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    /// `""` or absent on the last page.
    #[serde(default)]
    pub next_token: Option<String>,
}

/// An error body: gateway (`{"code":"ERROR","message":…}`) or business (`{"code":400,"message":…}`).
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
}

/// One shipment box of an order sheet (`ordersheets`), v4 or v5.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSheet {
    pub shipment_box_id: i64,
    pub order_id: i64,
    #[serde(default, deserialize_with = "optional_time")]
    pub ordered_at: Option<CoupangTime>,
    pub paid_at: CoupangTime,
    pub status: String,
    #[serde(default)]
    pub shipping_price: Won,
    #[serde(default)]
    pub remote_price: Option<Won>,
    #[serde(default)]
    pub remote_area: bool,
    /// Coupang spells it `inTrasitDateTime`.
    #[serde(
        default,
        rename = "inTrasitDateTime",
        deserialize_with = "optional_time"
    )]
    pub in_transit_at: Option<CoupangTime>,
    #[serde(default, rename = "deliveredDate", deserialize_with = "optional_time")]
    pub delivered_at: Option<CoupangTime>,
    pub order_items: Vec<OrderItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    pub vendor_item_id: i64,
    #[serde(default)]
    pub vendor_item_name: String,
    #[serde(default)]
    pub seller_product_id: i64,
    pub shipping_count: i32,
    #[serde(default)]
    pub cancel_count: i32,
    #[serde(default)]
    pub hold_count_for_cancel: i32,
    pub sales_price: Won,
    pub order_price: Won,
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
    #[serde(default)]
    pub canceled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_in_both_forms() {
        let parse = |v: serde_json::Value| serde_json::from_value::<Won>(v).map(|w| w.0);
        assert_eq!(parse(json!(19900)).unwrap(), 19900);
        assert_eq!(parse(json!("19900")).unwrap(), 19900);
        assert_eq!(
            parse(json!({"currencyCode": "KRW", "units": 19900, "nanos": 0})).unwrap(),
            19900
        );
        assert_eq!(
            parse(json!({"currencyCode": "KRW", "units": "19900", "nanos": 0})).unwrap(),
            19900
        );
        assert_eq!(
            parse(json!({"units": 10, "nanos": 600_000_000})).unwrap(),
            11
        );
        assert_eq!(
            parse(json!({"units": -10, "nanos": -600_000_000})).unwrap(),
            -11
        );
        assert!(parse(json!({"currencyCode": "KRW"})).is_err());
        assert!(parse(json!("12a")).is_err());
    }

    #[test]
    fn times_in_both_forms_mean_the_same_instant() {
        let v5 = CoupangTime::parse("2025-07-29T10:11:12+09:00").unwrap();
        let v5_fraction = CoupangTime::parse("2025-07-29T10:11:12.123456+09:00").unwrap();
        let v4 = CoupangTime::parse("2025-07-29T10:11:12").unwrap();
        let v4_space = CoupangTime::parse("2025-07-29 10:11:12").unwrap();
        let utc = CoupangTime::parse("2025-07-29T01:11:12Z").unwrap();
        assert_eq!(v5, v4);
        assert_eq!(v5, v4_space);
        assert_eq!(v5, utc);
        assert_eq!(v5_fraction.0 - v5.0, 123);
        assert_eq!(CoupangTime::parse("yesterday"), None);
    }

    #[test]
    fn code_as_number_or_string() {
        let env: ListEnvelope =
            serde_json::from_value(json!({"code": "200", "message": "OK", "data": []})).unwrap();
        assert!(env.code.is_ok());
        let env: ListEnvelope =
            serde_json::from_value(json!({"code": 200, "data": [], "nextToken": ""})).unwrap();
        assert!(env.code.is_ok());
        let env: ListEnvelope =
            serde_json::from_value(json!({"code": "ERROR", "message": "x"})).unwrap();
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
        assert_eq!(sheet.order_items[0].order_price, Won(19800));
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
}
