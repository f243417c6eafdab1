//! How the gateway writes what it serves: the API versions' formats, envelopes, business errors, and
//! the parameters every list shares (days, minutes, page sizes, numeric tokens).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde_json::{json, Value};
use std::collections::HashMap;

pub(super) const MAX_PER_PAGE: usize = 50;
/// "≤ 31 days": a window may span at most 31 calendar days, both ends included.
pub(super) const MAX_RANGE_DAYS: i64 = 31;

/// The response formats of Coupang's API versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ApiFormat {
    /// v5/v6: money objects, ISO-8601 times with offset.
    Current,
    /// v5/v6 as some records come: times with microseconds (`…T10:11:12.123456+09:00`).
    CurrentWithMicros,
    /// v4: plain integer won, Korea time without offset.
    V4,
}

impl ApiFormat {
    pub(super) fn of_path(path: &str) -> ApiFormat {
        if path.contains("/api/v4/") {
            ApiFormat::V4
        } else {
            ApiFormat::Current
        }
    }

    pub(super) fn money(self, won: i64) -> Value {
        match self {
            ApiFormat::Current | ApiFormat::CurrentWithMicros => {
                json!({"currencyCode": "KRW", "units": won, "nanos": 0})
            }
            ApiFormat::V4 => json!(won),
        }
    }

    pub(super) fn time(self, t: DateTime<FixedOffset>) -> String {
        match self {
            ApiFormat::Current => t.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            // The instant stays the world's (whole seconds): only the text carries the fraction.
            ApiFormat::CurrentWithMicros => t.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string(),
            ApiFormat::V4 => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        }
    }

    /// `confirmDate` is `yyyy-MM-dd HH:mm:ss` in v4.
    pub(super) fn confirm_time(self, t: DateTime<FixedOffset>) -> String {
        match self {
            ApiFormat::V4 => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            current => current.time(t),
        }
    }
}

pub(super) fn business_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"code": status.as_u16(), "message": message}))).into_response()
}

/// A business error answer (`{"code":400,"message":…}`), returned with `?` from handlers.
pub(super) struct Refusal(pub StatusCode, pub String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        business_error(self.0, &self.1)
    }
}

pub(super) fn bad_request(message: &str) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message.to_string())
}

pub(super) type Answer = Result<Response, Refusal>;

/// A successful answer's envelope.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    code: u16,
    message: &'static str,
    data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

/// A page of a list, with the token of the next page (`""` on the last).
pub(super) fn ok_list<T: serde::Serialize>(data: Vec<T>, next_token: &str) -> Response {
    Json(Envelope { code: 200, message: "OK", data, next_token: Some(next_token.to_string()) }).into_response()
}

/// A look-up's answer.
pub(super) fn ok_one<T: serde::Serialize>(data: T) -> Response {
    Json(Envelope { code: 200, message: "OK", data, next_token: None }).into_response()
}

/// `createdAtFrom`/`createdAtTo` arrive as `yyyy-MM-dd` optionally followed by an offset (`+09:00`,
/// which a form decoder may have turned into ` 09:00`): the day is what selects.
pub(super) fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

/// A minute of Korea time: `yyyy-MM-ddTHH:mm`, optionally followed by seconds or an offset.
pub(super) fn parse_minute(text: &str) -> Option<DateTime<FixedOffset>> {
    let naive = chrono::NaiveDateTime::parse_from_str(text.get(..16)?, "%Y-%m-%dT%H:%M").ok()?;
    naive.and_local_timezone(etl_core::time::kst()).single()
}

/// The two days of a day query, checked against `max_days` (both ends included).
pub(super) fn day_range(
    params: &HashMap<String, String>,
    (from_key, to_key): (&str, &str),
    max_days: i64,
    too_long: &str,
) -> Result<(NaiveDate, NaiveDate), Refusal> {
    let (Some(from), Some(to)) =
        (params.get(from_key).and_then(|s| parse_day(s)), params.get(to_key).and_then(|s| parse_day(s)))
    else {
        return Err(bad_request(&format!("{from_key} and {to_key} are required as yyyy-MM-dd.")));
    };
    if to < from || (to - from).num_days() >= max_days {
        return Err(bad_request(too_long));
    }
    Ok((from, to))
}

/// `createdAtFrom`/`createdAtTo` of a list by day: at most 31 days.
pub(super) fn created_days(
    params: &HashMap<String, String>,
    keys: (&str, &str),
) -> Result<(NaiveDate, NaiveDate), Refusal> {
    day_range(params, keys, MAX_RANGE_DAYS, "endTime-startTime range should less than31.")
}

pub(super) fn page_size(params: &HashMap<String, String>, key: &str, max: usize) -> Result<usize, Refusal> {
    match params.get(key).map(|s| s.parse::<usize>()) {
        None => Ok(max),
        Some(Ok(n)) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(bad_request(&format!("{key} must be between 1 and {max}."))),
    }
}

/// A numeric continuation token: the key of the first record of the next page (absent or `""` on the
/// first page).
pub(super) fn token(params: &HashMap<String, String>, key: &str) -> Result<Option<i64>, Refusal> {
    match params.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(t) => t.parse::<i64>().map(Some).map_err(|_| bad_request(&format!("{key} is invalid."))),
    }
}

/// One page of `keyed` records (in key order) from `start`: the page and the token of the next one.
pub(super) fn page_by_key<T>(
    keyed: impl Iterator<Item = (i64, T)>,
    start: Option<i64>,
    per_page: usize,
) -> (Vec<T>, String) {
    let mut page = Vec::with_capacity(per_page);
    for (key, record) in keyed.skip_while(|(key, _)| start.is_some_and(|s| *key < s)) {
        if page.len() == per_page {
            return (page, key.to_string());
        }
        page.push(record);
    }
    (page, String::new())
}
