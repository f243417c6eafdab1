//! Decoding Coupang's answers: the envelope, then each record on its own, a record that does not
//! decode named by its id and the field at fault, and kept (for the dead letter) without personal
//! data. Pure functions of the body, so the fuzzer and the contract tests call them directly.

use super::model::{Envelope, OrderSheet};
use super::{ClientError, ORDERSHEETS};

/// One page of a list endpoint: each record decoded on its own.
pub struct Page<T> {
    pub records: Vec<Result<T, ClientError>>,
    /// `None` on the last page.
    pub next_token: Option<String>,
}

/// One page of `endpoint`'s answer for account `alias`: the envelope, then each record on its own (a
/// record that does not decode is an error of its own, named by its `id_field`, kept without personal
/// data). Pure, so it is what the fuzzer feeds arbitrary bytes.
pub fn decode_page<T: serde::de::DeserializeOwned>(
    alias: &str,
    endpoint: &'static str,
    body: &[u8],
    id_field: &str,
) -> Result<Page<T>, ClientError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| bad_envelope(alias, endpoint, e.to_string()))?;
    let next_token = envelope.next_page();
    // Single-record endpoints answer with an object.
    let raw = envelope_records(alias, endpoint, envelope, true)?;
    let records = decode_records(alias, endpoint, raw, id_field, |value| record_id(value, id_field));
    Ok(Page { records, next_token })
}

/// An answer of `endpoint` that is not what its records come in.
pub(super) fn bad_envelope(alias: &str, endpoint: &'static str, reason: String) -> ClientError {
    ClientError::BadEnvelope { alias: alias.to_string(), endpoint, reason }
}

/// The records `envelope` carries, once its code says ok: `data` as a list, none when it is `null` or
/// absent, and an object as one record when `an_object_is_one` (single-record endpoints). A code not ok
/// or any other `data` is a bad envelope.
pub(super) fn envelope_records(
    alias: &str,
    endpoint: &'static str,
    envelope: Envelope,
    an_object_is_one: bool,
) -> Result<Vec<serde_json::Value>, ClientError> {
    if !envelope.code.is_ok() {
        let message = envelope.message.unwrap_or_default();
        return Err(bad_envelope(alias, endpoint, format!("code {}: {message}", envelope.code.0)));
    }
    match envelope.data {
        Some(serde_json::Value::Array(items)) => Ok(items),
        Some(object @ serde_json::Value::Object(_)) if an_object_is_one => Ok(vec![object]),
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(other) => Err(bad_envelope(alias, endpoint, format!("data is {}", json_kind(&other)))),
    }
}

/// Decodes each of `raw` on its own: a record that does not decode is a `BadRecord` named by `id_of`
/// (the field at fault found by `decode_record`, `id_field` naming the record as a whole), kept
/// without personal data.
pub(super) fn decode_records<T: serde::de::DeserializeOwned>(
    alias: &str,
    endpoint: &'static str,
    raw: Vec<serde_json::Value>,
    id_field: &str,
    id_of: impl Fn(&serde_json::Value) -> RecordId,
) -> Vec<Result<T, ClientError>> {
    raw.into_iter()
        .map(|value| {
            decode_record::<T>(&value, id_field).map_err(|fault| ClientError::BadRecord {
                alias: alias.to_string(),
                endpoint,
                record_id: id_of(&value),
                fault: Box::new(fault),
                raw: without_personal_data(&value).to_string(),
            })
        })
        .collect()
}

/// The answer to a single-box look-up (`data` an object, or a list of one): the box asked for, or an
/// error — a look-up that answers another box is never taken as data.
pub fn decode_single_box(alias: &str, body: &[u8], shipment_box_id: i64) -> Result<OrderSheet, ClientError> {
    let mut records = decode_page::<OrderSheet>(alias, ORDERSHEETS, body, "shipmentBoxId")?.records;
    let sheet = match records.len() {
        1 => records.remove(0)?,
        n => {
            return Err(ClientError::BadEnvelope {
                alias: alias.to_string(),
                endpoint: ORDERSHEETS,
                reason: format!("expected one box {shipment_box_id}, got {n}"),
            })
        }
    };
    if sheet.shipment_box_id != shipment_box_id {
        return Err(wrong_record(alias, "shipmentBoxId", shipment_box_id, sheet.shipment_box_id));
    }
    Ok(sheet)
}

/// A look-up of `id_field` = `asked` that answered `answered`.
fn wrong_record(alias: &str, id_field: &str, asked: i64, answered: i64) -> ClientError {
    ClientError::WrongRecord {
        alias: alias.to_string(),
        endpoint: ORDERSHEETS,
        asked: format!("{id_field}={asked}"),
        answered: format!("{id_field}={answered}"),
    }
}

/// The answer to a by-order look-up (`data` a list, or an object in older answers): every box of the
/// order, each decoded on its own; a box of another order makes the whole answer an error.
pub fn decode_order_boxes(
    alias: &str,
    body: &[u8],
    order_id: i64,
) -> Result<Vec<Result<OrderSheet, ClientError>>, ClientError> {
    let records = decode_page::<OrderSheet>(alias, ORDERSHEETS, body, "shipmentBoxId")?.records;
    if let Some(other) = records.iter().flatten().find(|sheet| sheet.order_id != order_id) {
        return Err(wrong_record(alias, "orderId", order_id, other.order_id));
    }
    Ok(records)
}

/// A record's id as Coupang sent it: its id field and raw value. Shown as `field=value`
/// (`shipmentBoxId=642538971006401429`) in errors and the dead letter's `dlq.source.record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordId {
    pub field: String,
    /// The value, quotes dropped; `(no id)` when the field is absent.
    pub value: String,
}

impl RecordId {
    /// The shipment box a record names, when its id is one (order sheets).
    pub fn shipment_box_id(&self) -> Option<i64> {
        (self.field == "shipmentBoxId").then(|| self.value.parse().ok()).flatten()
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.field, self.value)
    }
}

fn record_id(value: &serde_json::Value, id_field: &str) -> RecordId {
    let id = match value.get(id_field) {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => "(no id)".into(),
    };
    RecordId { field: id_field.to_string(), value: id }
}

/// Why one record did not decode: the field's JSON path within the record, its raw value and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub value: String,
    pub reason: String,
}

/// Raw values quoted in dead letters and errors are cut here (a whole sub-object can be at fault).
const MAX_QUOTED_VALUE: usize = 200;

/// Decodes one record, naming the field at fault: its JSON path (`orderItems[0].discountPrice`) and
/// raw value, or `absent` when a required field is missing.
pub fn decode_record<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    id_field: &str,
) -> Result<T, FieldError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|error| {
        let reason = error.inner().to_string();
        let mut pointer = String::new();
        let mut field = String::new();
        for segment in error.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    pointer.push_str(&format!("/{index}"));
                    field.push_str(&format!("[{index}]"));
                }
                serde_path_to_error::Segment::Map { key } => {
                    pointer.push_str(&format!("/{}", key.replace('~', "~0").replace('/', "~1")));
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(key);
                }
                serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
            }
        }
        // serde reports a missing field at its parent, naming it in the message.
        if let Some(missing) = reason.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(missing);
            return FieldError { field, value: "absent".into(), reason };
        }
        if field.is_empty() {
            // The record as a whole (not an object, say): it is in the dead letter, not quoted here.
            return FieldError { field: format!("(the {id_field} record)"), value: "(the record)".into(), reason };
        }
        let quoted = value.pointer(&pointer).map_or_else(|| "absent".to_string(), |v| v.to_string());
        let quoted = match quoted.char_indices().nth(MAX_QUOTED_VALUE) {
            Some((cut, _)) => format!("{}…", &quoted[..cut]),
            None => quoted,
        };
        FieldError { field, value: quoted, reason }
    })
}

/// Fields of Coupang records that hold personal data. The pipeline never needs them, and even a record
/// it cannot read is kept (dead-lettered) without them.
const PERSONAL_FIELDS: [&str; 6] =
    ["orderer", "receiver", "overseaShippingInfoDto", "bankAccountHolder", "bankName", "bankAccount"];

pub(super) fn without_personal_data(value: &serde_json::Value) -> serde_json::Value {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        for field in PERSONAL_FIELDS {
            object.remove(field);
        }
    }
    value
}

pub(super) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Object(_) => "an object",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tests::client;

    #[test]
    fn one_bad_record_is_named_and_the_rest_of_the_page_still_decodes() {
        let body = serde_json::json!({
            "code": "200", "message": "OK", "nextToken": "",
            "data": [
                {"shipmentBoxId": 1, "orderId": 11, "paidAt": "2025-07-29T10:11:12+09:00", "status": "ACCEPT",
                 "orderItems": [{"vendorItemId": 7, "shippingCount": 1, "salesPrice": 100, "orderPrice": 100}]},
                {"shipmentBoxId": 2, "orderId": 12, "status": "ACCEPT", "orderItems": [],
                 "receiver": {"name": "홍길동", "addr1": "서울"}}
            ]
        });
        let page =
            client().decode_page::<OrderSheet>("ordersheets", body.to_string().as_bytes(), "shipmentBoxId").unwrap();
        assert_eq!(page.next_token, None);
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.records[0].as_ref().unwrap().order_id, 11);
        match &page.records[1] {
            Err(ClientError::BadRecord { alias, endpoint, record_id, fault, raw }) => {
                let reason = &fault.reason;
                assert_eq!(
                    (
                        alias.as_str(),
                        *endpoint,
                        record_id.to_string().as_str(),
                        fault.field.as_str(),
                        fault.value.as_str()
                    ),
                    ("brand-a", "ordersheets", "shipmentBoxId=2", "paidAt", "absent")
                );
                assert!(reason.contains("paidAt"), "{reason}");
                assert!(!raw.contains("홍길동") && !raw.contains("receiver"), "personal data is dropped: {raw}");
            }
            other => panic!("expected a bad record, got {other:?}"),
        }
    }
}
