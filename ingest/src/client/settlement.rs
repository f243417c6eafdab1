//! Coupang's payouts (`settlement-histories`): one row per payout cycle of a revenue-recognition month.
//!
//! As met live (coupang-api.md §8): the answer is a **bare JSON array**, with no `code`/`data`
//! envelope, and an empty month is `[]`. An envelope is read too, should Coupang add one. There is no
//! paging and no payout id: a row is named by its type and recognition range. Months after the current
//! one are refused by Coupang (400), so they are refused here before sending. The bank-account fields
//! are personal data: never deserialized, and left out of dead letters.

use chrono::{Datelike, NaiveDate};
use serde::de::Deserializer;
use serde::Deserialize;
use std::fmt;

use super::decode::{bad_envelope, decode_records, envelope_records, json_kind};
use super::lenient::{CoupangDate, Won};
use super::model::{required_text, Envelope};
use super::{ClientError, CoupangClient, RecordId};
use coupang_schemas::{SettlementStatus, SettlementType};

pub(super) const SETTLEMENT_HISTORIES: &str = "settlement-histories";

/// A revenue-recognition month (`YYYY-MM`), the unit payouts are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecognitionMonth {
    first_day: NaiveDate,
}

impl RecognitionMonth {
    /// The month of `day`.
    pub fn of(day: NaiveDate) -> RecognitionMonth {
        RecognitionMonth { first_day: day.with_day(1).unwrap_or(day) }
    }

    pub fn first_day(self) -> NaiveDate {
        self.first_day
    }

    pub fn last_day(self) -> NaiveDate {
        self.next().first_day.pred_opt().unwrap_or(self.first_day)
    }

    pub fn next(self) -> RecognitionMonth {
        let (year, month) = (self.first_day.year(), self.first_day.month());
        let (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
        NaiveDate::from_ymd_opt(year, month, 1).map_or(self, |first_day| RecognitionMonth { first_day })
    }
}

impl fmt::Display for RecognitionMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.first_day.format("%Y-%m"))
    }
}

impl std::str::FromStr for RecognitionMonth {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
            .map(RecognitionMonth::of)
            .map_err(|_| format!("{text:?} is not a month (YYYY-MM)"))
    }
}

/// One payout cycle. Amounts are whole won as Coupang sends them (positive; deductions are subtracted).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettlementRow {
    #[serde(deserialize_with = "settlement_type")]
    pub settlement_type: SettlementType,
    /// The (scheduled) payout day.
    pub settlement_date: CoupangDate,
    pub revenue_recognition_date_from: CoupangDate,
    pub revenue_recognition_date_to: CoupangDate,
    /// Sales + shipping − cancels − seller coupons.
    #[serde(default)]
    pub total_sale: Won,
    /// Coupang's commission (net of preferential-rate refunds).
    #[serde(default)]
    pub service_fee: Won,
    /// `totalSale − serviceFee`: what revenue-history's settlement amounts add up to (reconcile on it).
    #[serde(default)]
    pub settlement_target_amount: Won,
    /// Paid in this cycle: 70% of the target on WEEKLY rows, the 30% on RESERVE rows, 100% on MONTHLY.
    #[serde(default)]
    pub settlement_amount: Won,
    /// Held back for the RESERVE payout (WEEKLY rows).
    #[serde(default)]
    pub last_amount: Won,
    #[serde(default)]
    pub pending_released_amount: Won,
    #[serde(default)]
    pub seller_discount_coupon: Won,
    #[serde(default)]
    pub downloadable_coupon: Won,
    /// The monthly seller service fee.
    #[serde(default)]
    pub seller_service_fee: Won,
    /// Deductions as a subtotal (live: it includes the seller service fee and early-payout withdrawals).
    #[serde(default)]
    pub deduction_amount: Won,
    #[serde(default)]
    pub debt_of_last_week: Won,
    /// What reached the bank account.
    #[serde(default)]
    pub final_amount: Won,
    #[serde(deserialize_with = "settlement_status")]
    pub status: SettlementStatus,
}

fn settlement_type<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SettlementType, D::Error> {
    required_text(deserializer, "settlement type").map(|text| SettlementType::from(text.as_str()))
}

fn settlement_status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SettlementStatus, D::Error> {
    required_text(deserializer, "settlement status").map(|text| SettlementStatus::from(text.as_str()))
}

/// The id of a settlement row in errors and dead letters: `settlement=WEEKLY 2026-05-01..2026-05-03`.
fn settlement_id(value: &serde_json::Value) -> RecordId {
    let text = |field: &str| value.get(field).and_then(|v| v.as_str()).unwrap_or("?").to_string();
    let (kind, from, to) =
        (text("settlementType"), text("revenueRecognitionDateFrom"), text("revenueRecognitionDateTo"));
    RecordId { field: "settlement".into(), value: format!("{kind} {from}..{to}") }
}

/// A month's payout rows for account `alias`, each decoded on its own (a row that does not decode is
/// an error of its own, kept without personal data). Pure, so it is what the fuzzer can feed.
pub fn decode_settlements(alias: &str, body: &[u8]) -> Result<Vec<Result<SettlementRow, ClientError>>, ClientError> {
    let bad = |reason: String| bad_envelope(alias, SETTLEMENT_HISTORIES, reason);
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let rows = match value {
        serde_json::Value::Array(rows) => rows,
        object @ serde_json::Value::Object(_) => {
            let envelope: Envelope = serde_json::from_value(object).map_err(|e| bad(e.to_string()))?;
            envelope_records(alias, SETTLEMENT_HISTORIES, envelope, false)?
        }
        other => return Err(bad(format!("the answer is {}, not a list of payouts", json_kind(&other)))),
    };
    Ok(decode_records(alias, SETTLEMENT_HISTORIES, rows, "settlementType", settlement_id))
}

impl CoupangClient {
    /// The payout rows of one revenue-recognition month (one call, no paging).
    pub async fn settlement_histories(
        &self,
        month: RecognitionMonth,
    ) -> Result<Vec<Result<SettlementRow, ClientError>>, ClientError> {
        let this_month = RecognitionMonth::of(etl_core::time::now_kst().date_naive());
        if month > this_month {
            return Err(self.invalid(SETTLEMENT_HISTORIES, format!("month {month} is after this month ({this_month})")));
        }
        let query = [("revenueRecognitionYearMonth", month.to_string())];
        let path = "/v2/providers/marketplace_openapi/apis/api/v1/settlement-histories";
        let body = self.get(SETTLEMENT_HISTORIES, path, &query).await?;
        decode_settlements(&self.account.alias, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WEEKLY row shaped like one live clients recorded (amounts from their fixture), with masked
    /// bank fields as Coupang sends them.
    const WEEKLY: &str = r#"{"settlementType": "WEEKLY", "settlementDate": "2026-05-26",
        "revenueRecognitionYearMonth": "2026-05", "revenueRecognitionDateFrom": "2026-05-01",
        "revenueRecognitionDateTo": "2026-05-03", "totalSale": 1789400, "serviceFee": 208648,
        "settlementTargetAmount": 1580752, "settlementAmount": 1106527, "lastAmount": 474225,
        "pendingReleasedAmount": 0, "sellerDiscountCoupon": 0, "downloadableCoupon": 0,
        "sellerServiceFee": 0, "deductionAmount": 0, "debtOfLastWeek": 0, "finalAmount": 1106527,
        "status": "DONE", "bankAccountHolder": "MASKED", "bankName": "MASKED", "bankAccount": "100560****"}"#;

    #[test]
    fn a_bare_array_of_payouts_reads_and_its_identities_hold() {
        let rows = decode_settlements("brand-a", format!("[{WEEKLY}]").as_bytes()).unwrap();
        let row = rows[0].as_ref().unwrap();
        assert_eq!(row.settlement_type, SettlementType::Weekly);
        assert_eq!(row.status, SettlementStatus::Done);
        assert_eq!(row.revenue_recognition_date_to.0, NaiveDate::from_ymd_opt(2026, 5, 3).unwrap());
        assert_eq!(row.total_sale.0 - row.service_fee.0, row.settlement_target_amount.0);
        assert_eq!(row.settlement_amount.0 + row.last_amount.0, row.settlement_target_amount.0);
        assert!(decode_settlements("brand-a", b"[]").unwrap().is_empty(), "an empty month");
    }

    #[test]
    fn an_envelope_is_read_too_and_anything_else_is_named() {
        let rows = decode_settlements("brand-a", format!(r#"{{"code": 200, "data": [{WEEKLY}]}}"#).as_bytes());
        assert_eq!(rows.unwrap().len(), 1);
        let refused = decode_settlements("brand-a", br#"{"code": "ERROR", "message": "no"}"#).unwrap_err();
        assert!(refused.to_string().contains("code ERROR: no"), "{refused}");
        let odd = decode_settlements("brand-a", b"\"nothing\"").unwrap_err();
        assert!(odd.to_string().contains("settlement-histories"), "{odd}");
    }

    #[test]
    fn a_bad_row_is_named_by_its_cycle_and_kept_without_bank_data() {
        let bad = WEEKLY.replace("\"totalSale\": 1789400", "\"totalSale\": \"lots\"");
        let rows = decode_settlements("brand-a", format!("[{bad}, {WEEKLY}]").as_bytes()).unwrap();
        let error = rows[0].as_ref().unwrap_err();
        let text = error.to_string();
        assert!(text.contains("settlement=WEEKLY 2026-05-01..2026-05-03") && text.contains("totalSale"), "{text}");
        let ClientError::BadRecord { raw, .. } = error else { panic!("{error:?}") };
        assert!(!raw.contains("MASKED") && !raw.contains("100560"), "{raw}");
        assert!(rows[1].is_ok(), "the other row still reads");
    }

    #[test]
    fn a_payout_without_its_type_or_status_is_refused_not_unknown() {
        for (field, spelled, what) in
            [("settlementType", "\"WEEKLY\"", "settlement type"), ("status", "\"DONE\"", "settlement status")]
        {
            for empty in ["null", "\"\"", "\"  \""] {
                let row = WEEKLY.replace(&format!("\"{field}\": {spelled}"), &format!("\"{field}\": {empty}"));
                let rows = decode_settlements("brand-a", format!("[{row}]").as_bytes()).unwrap();
                let Err(ClientError::BadRecord { fault, .. }) = &rows[0] else {
                    panic!("{field} {empty}: {:?}", rows[0])
                };
                assert_eq!(fault.field, field, "{field} {empty}");
                assert!(fault.reason.contains(&format!("{what} is empty")), "{field} {empty}: {}", fault.reason);
            }
        }
    }

    #[test]
    fn a_payout_becomes_its_raw_event_and_round_trips_through_avro() {
        let rows = decode_settlements("brand-a", format!("[{WEEKLY}]").as_bytes()).unwrap();
        let row = rows[0].as_ref().unwrap();
        let event = crate::settlement_event("A00012345", "brand-a", 1, "2026-05".parse().unwrap(), row);
        assert_eq!(event.kafka_key(), "A00012345:WEEKLY:20574:20576");
        assert_eq!((event.settlement_target_amount, event.final_amount), (1_580_752, 1_106_527));
        let bytes = coupang_schemas::encode(&event).unwrap();
        assert_eq!(coupang_schemas::decode::<coupang_schemas::SettlementEvent>(&bytes).unwrap(), event);
    }

    #[test]
    fn months_read_and_step() {
        let may: RecognitionMonth = "2026-05".parse().unwrap();
        assert_eq!(may.to_string(), "2026-05");
        assert_eq!(may.last_day(), NaiveDate::from_ymd_opt(2026, 5, 31).unwrap());
        assert_eq!("2026-12".parse::<RecognitionMonth>().unwrap().next().to_string(), "2027-01");
        assert!("2026-13".parse::<RecognitionMonth>().is_err());
    }
}
