//! How each kind of field Coupang sends is read, whatever form it arrives in. The decisions are
//! tabled in `docs/coupang-fields.md`; the contract corpus (`ingest/tests/contract/`) holds the bodies
//! that prove them.
//!
//! - Amounts (`Won`): a number, a numeric string or a money object `{currencyCode, units, nanos}`;
//!   `null` and `""` are 0 (Coupang publishes `discountPrice: null` and `settlementAmount: null`).
//! - Ids: a number or a numeric string, up to 2^63 (18-digit box ids exceed 2^53, so never a float).
//!   An id is identity: `null` or absent rejects the record.
//! - Counts: a number or a numeric string; `null` and `""` are 0.
//! - Flags: a boolean, `"true"`/`"false"` or `"Y"`/`"N"`; `null` is false.
//! - Text: a string, a number as its digits; `null` is `""`.
//! - Times: ISO-8601 with an offset (any fraction), or `yyyy-MM-ddTHH:mm:ss[.f]` / `yyyy-MM-dd
//!   HH:mm:ss[.f]` meaning Korea time; `""` and `null` are "not yet" where a time is optional.
//! - Dates: `yyyy-MM-dd`, or anything that starts with it.
//!
//! Each reader fails with the raw value in its message; the decoder adds the field's JSON path.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use etl_core::time::kst;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// An amount in won. KRW has no minor unit, so non-zero nanos round to the nearest won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Won(pub i64);

impl<'de> Deserialize<'de> for Won {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WonVisitor).map(Won)
    }
}

struct WonVisitor;

impl<'de> Visitor<'de> for WonVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an amount: a number, a numeric string or a money object {currencyCode, units, nanos}")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("amount {v} is out of range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        whole_won(v).ok_or_else(|| E::custom(format!("amount {v} is out of range")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        if v.trim().is_empty() {
            return Ok(0);
        }
        parse_won(v).ok_or_else(|| E::custom(format!("amount {v:?} is not a number")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<i64, E> {
        Ok(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<i64, E> {
        Ok(0)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<i64, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<i64, A::Error> {
        let (mut units, mut nanos, mut seen_units) = (0i64, 0i64, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "units" => {
                    units = map.next_value::<Won>()?.0;
                    seen_units = true;
                }
                "nanos" => nanos = map.next_value::<Won>()?.0,
                "currencyCode" => match map.next_value::<Option<String>>()? {
                    Some(code) if !code.is_empty() && code != "KRW" => {
                        return Err(de::Error::custom(format!("currency {code:?} is not KRW")))
                    }
                    _ => {}
                },
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        if !seen_units {
            return Err(de::Error::custom("money object without units"));
        }
        if !(-999_999_999..=999_999_999).contains(&nanos)
            || (units != 0 && nanos != 0 && units.signum() != nanos.signum())
        {
            return Err(de::Error::custom(format!("money object with units {units} and nanos {nanos}")));
        }
        let rounded = (nanos + nanos.signum() * 500_000_000) / 1_000_000_000;
        units.checked_add(rounded).ok_or_else(|| de::Error::custom("amount is out of range"))
    }
}

/// `"19900"`, `"19900.0"`: numeric text as whole won.
fn parse_won(text: &str) -> Option<i64> {
    let text = text.trim();
    text.parse::<i64>().ok().or_else(|| text.parse::<f64>().ok().filter(|v| v.is_finite()).and_then(whole_won))
}

fn whole_won(v: f64) -> Option<i64> {
    let rounded = v.round();
    (rounded.abs() < 9.0e15).then_some(rounded as i64)
}

/// Reads an id: a number or a numeric string, never null.
pub fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(IdVisitor)
}

/// Reads an id that may be absent, `null`, `""` or 0 (e.g. `paymentId`, an item's `shipmentBoxId`).
pub fn optional_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<MaybeId>::deserialize(deserializer)?.and_then(|m| m.0).filter(|id| *id != 0))
}

struct MaybeId(Option<i64>);

impl<'de> Deserialize<'de> for MaybeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Optional;
        impl<'de> Visitor<'de> for Optional {
            type Value = Option<i64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                IdVisitor.expecting(f)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                IdVisitor.visit_i64(v).map(Some)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                IdVisitor.visit_u64(v).map(Some)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.trim().is_empty() {
                    return Ok(None);
                }
                IdVisitor.visit_str(v).map(Some)
            }
        }
        deserializer.deserialize_any(Optional).map(MaybeId)
    }
}

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an id: a whole number or a numeric string")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("id {v} is beyond 2^63")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim().parse::<i64>().map_err(|_| E::custom(format!("id {v:?} is not a whole number")))
    }
}

/// Reads a count (`shippingCount`, `cancelCount`…): a number or a numeric string; `null` and `""` are 0.
pub fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    let won = Won::deserialize(deserializer)?;
    i32::try_from(won.0).map_err(|_| de::Error::custom(format!("count {} is out of range", won.0)))
}

/// Reads a flag: a boolean, `"true"`/`"false"`, `"Y"`/`"N"`; `null` is false.
pub fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct Flag;
    impl<'de> Visitor<'de> for Flag {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a boolean")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" | "y" | "yes" => Ok(true),
                "false" | "n" | "no" | "" => Ok(false),
                _ => Err(E::custom(format!("flag {v:?} is neither true nor false"))),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_none<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_any(self)
        }
    }
    deserializer.deserialize_any(Flag)
}

/// Reads free text (names): a string, or a number as its digits; `null` is `""`.
pub fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => Ok(String::new()),
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(de::Error::custom(format!("expected text, got {other}"))),
    }
}

/// Reads optional text: `null`, absent and `""` are none.
pub fn optional_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Some(text(deserializer)?).filter(|t| !t.trim().is_empty()))
}

/// An instant from Coupang, as epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoupangTime(pub i64);

impl CoupangTime {
    pub fn parse(text: &str) -> Option<CoupangTime> {
        let text = text.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(CoupangTime(t.timestamp_millis()));
        }
        // An offset without its colon (`+0900`).
        if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
            return Some(CoupangTime(t.timestamp_millis()));
        }
        ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
            .and_then(|naive| kst().from_local_datetime(&naive).single())
            .map(|t| CoupangTime(t.timestamp_millis()))
    }
}

impl<'de> Deserialize<'de> for CoupangTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(RequiredText("a time"))?;
        CoupangTime::parse(&text).ok_or_else(|| de::Error::custom(format!("unrecognised time {text:?}")))
    }
}

/// The text of a required time or date. Read through `deserialize_any`, so an absent field reports
/// serde's "missing field `paidAt`" (which names it) rather than a nameless "null".
struct RequiredText(&'static str);

impl<'de> Visitor<'de> for RequiredText {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(E::custom(format!("{} is required, got null", self.0)))
    }
}

/// Optional times arrive as null, absent or `""` before the event happened.
pub fn optional_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<CoupangTime>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => {
            CoupangTime::parse(&text).map(Some).ok_or_else(|| de::Error::custom(format!("unrecognised time {text:?}")))
        }
    }
}

/// A calendar day. Accepts `yyyy-MM-dd` and anything that starts with it (`2025-07-01T00:00:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CoupangDate(pub NaiveDate);

impl CoupangDate {
    fn parse(text: &str) -> Option<CoupangDate> {
        text.trim().get(..10).and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()).map(CoupangDate)
    }
}

impl<'de> Deserialize<'de> for CoupangDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(RequiredText("a date"))?;
        CoupangDate::parse(&text).ok_or_else(|| de::Error::custom(format!("unrecognised date {text:?}")))
    }
}

pub fn optional_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<CoupangDate>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(None),
        Some(text) => {
            CoupangDate::parse(&text).map(Some).ok_or_else(|| de::Error::custom(format!("unrecognised date {text:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        won: Won,
        #[serde(default, deserialize_with = "count")]
        count: i32,
        #[serde(default, deserialize_with = "flag")]
        flag: bool,
        #[serde(default, deserialize_with = "text")]
        text: String,
        #[serde(default, deserialize_with = "optional_id")]
        optional_id: Option<i64>,
    }

    fn won(v: serde_json::Value) -> Result<i64, String> {
        serde_json::from_value::<Won>(v).map(|w| w.0).map_err(|e| e.to_string())
    }

    #[test]
    fn amounts_in_every_form_coupang_uses() {
        let table = [
            (json!(19900), 19900),
            (json!("19900"), 19900),
            (json!(" 19900 "), 19900),
            (json!(19900.0), 19900),
            (json!("19900.0"), 19900),
            (json!(null), 0),
            (json!(""), 0),
            (json!(-3000), -3000),
            (json!({"currencyCode": "KRW", "units": 19900, "nanos": 0}), 19900),
            (json!({"currencyCode": "KRW", "units": "19900", "nanos": 0}), 19900),
            (json!({"units": 10, "nanos": 600_000_000}), 11),
            (json!({"units": -10, "nanos": -600_000_000}), -11),
            (json!({"units": 0, "nanos": -600_000_000}), -1),
            (json!({"currencyCode": "KRW", "units": null, "nanos": null}), 0),
            (json!({"currencyCode": null, "units": 5}), 5),
        ];
        for (raw, expected) in table {
            assert_eq!(won(raw.clone()), Ok(expected), "{raw}");
        }
        for bad in
            [json!({"currencyCode": "KRW"}), json!("12a"), json!({"currencyCode": "USD", "units": 1}), json!([1])]
        {
            assert!(won(bad.clone()).is_err(), "{bad}");
        }
        assert!(won(json!({"units": 1, "nanos": -5})).unwrap_err().contains("nanos"));
    }

    #[test]
    fn nulls_and_empties_read_as_nothing() {
        let probe: Probe =
            serde_json::from_value(json!({"won": null, "count": null, "flag": null, "text": null, "optional_id": ""}))
                .unwrap();
        assert_eq!(
            (probe.won, probe.count, probe.flag, probe.text.as_str(), probe.optional_id),
            (Won(0), 0, false, "", None)
        );
        let probe: Probe =
            serde_json::from_value(json!({"count": "3", "flag": "Y", "text": 123, "optional_id": "24000057163001"}))
                .unwrap();
        assert_eq!(
            (probe.count, probe.flag, probe.text.as_str(), probe.optional_id),
            (3, true, "123", Some(24000057163001))
        );
    }

    #[test]
    fn ids_beyond_2_pow_53_stay_exact() {
        #[derive(Deserialize)]
        struct Box {
            #[serde(deserialize_with = "id")]
            id: i64,
        }
        let exact = 642538971006401429i64;
        let from_number: Box = serde_json::from_str(&format!(r#"{{"id": {exact}}}"#)).unwrap();
        let from_text: Box = serde_json::from_str(&format!(r#"{{"id": "{exact}"}}"#)).unwrap();
        assert_eq!((from_number.id, from_text.id), (exact, exact));
        assert!(serde_json::from_str::<Box>(r#"{"id": null}"#).is_err());
        assert!(serde_json::from_str::<Box>(r#"{"id": 1.5}"#).is_err());
        assert!(serde_json::from_str::<Box>(r#"{"id": 18446744073709551615}"#).is_err());
    }

    #[test]
    fn times_in_every_form_mean_the_same_instant() {
        let v5 = CoupangTime::parse("2025-07-29T10:11:12+09:00").unwrap();
        let same = [
            "2025-07-29T10:11:12",
            "2025-07-29 10:11:12",
            "2025-07-29T01:11:12Z",
            "2025-07-29T10:11:12+0900",
            "2025-07-29T10:11:12.000+09:00",
        ];
        for text in same {
            assert_eq!(CoupangTime::parse(text), Some(v5), "{text}");
        }
        let micros = CoupangTime::parse("2025-07-29T10:11:12.123456+09:00").unwrap();
        assert_eq!(micros.0 - v5.0, 123);
        assert_eq!(CoupangTime::parse("2025-07-29 10:11:12.5").unwrap().0 - v5.0, 500);
        assert_eq!(CoupangTime::parse("yesterday"), None);
    }
}
