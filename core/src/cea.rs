//! Coupang's "CEA" HMAC-SHA256 request signature (coupang-api.md §1).
//!
//! message   = signed-date + METHOD + path + query   (nothing between them, no `?`, no body)
//! signature = lower-hex HMAC-SHA256(secret key, message)
//! header    = `CEA algorithm=HmacSHA256, access-key=…, signed-date=…, signature=…`
//!
//! The query must be the exact bytes sent on the wire; callers sign `url.query()` of the URL they send.
//! Both the client and the simulator use this one implementation, and the published test vector pins it.

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SIGNED_DATE_FORMAT: &str = "%y%m%dT%H%M%SZ";

/// `yyMMdd'T'HHmmss'Z'` in UTC, e.g. 2024-01-02 03:04:05 UTC → `240102T030405Z`.
pub fn signed_date(at: DateTime<Utc>) -> String {
    at.format(SIGNED_DATE_FORMAT).to_string()
}

pub fn parse_signed_date(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, SIGNED_DATE_FORMAT).ok().map(|naive| naive.and_utc())
}

pub fn signature(secret_key: &str, signed_date: &str, method: &str, path: &str, query: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()).expect("HMAC-SHA256 accepts keys of any length");
    for part in [signed_date, method, path, query] {
        mac.update(part.as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

pub fn authorization_header(access_key: &str, signed_date: &str, signature: &str) -> String {
    format!("CEA algorithm=HmacSHA256, access-key={access_key}, signed-date={signed_date}, signature={signature}")
}

/// The parts of an `Authorization: CEA …` header, as a verifier reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    pub signed_date: String,
    pub signature: String,
}

/// Parses the header; Coupang's own material separates fields with `", "` or `","`, so both are accepted.
/// `None` means "HMAC format is invalid."
pub fn parse_authorization(header: &str) -> Option<Authorization> {
    let rest = header.strip_prefix("CEA ")?;
    let (mut algorithm, mut access_key, mut signed_date, mut signature) = (None, None, None, None);
    for field in rest.split(',') {
        let (name, value) = field.trim().split_once('=')?;
        let slot = match name {
            "algorithm" => &mut algorithm,
            "access-key" => &mut access_key,
            "signed-date" => &mut signed_date,
            "signature" => &mut signature,
            _ => return None,
        };
        *slot = Some(value.to_string());
    }
    if algorithm.as_deref() != Some("HmacSHA256") {
        return None;
    }
    Some(Authorization { access_key: access_key?, signed_date: signed_date?, signature: signature? })
}

/// Compares two signatures without an early exit, so timing does not reveal how much matched.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const VECTOR_PATH: &str = "/v2/providers/seller_api/apis/api/v1/marketplace/seller-products/123456";

    #[test]
    fn published_test_vector() {
        let at = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let date = signed_date(at);
        assert_eq!(date, "240102T030405Z");
        assert_eq!(
            signature("test-secret", &date, "GET", VECTOR_PATH, ""),
            "585cc27a40a213b6dbcc6786ddd544dd788ba14e3412f1166fcce3380d9043e9"
        );
    }

    #[test]
    fn a_question_mark_is_not_part_of_the_message() {
        let with_mark = signature("test-secret", "240102T030405Z", "GET", VECTOR_PATH, "?");
        assert_ne!(with_mark, "585cc27a40a213b6dbcc6786ddd544dd788ba14e3412f1166fcce3380d9043e9");
    }

    #[test]
    fn header_round_trips_with_either_separator() {
        let header = authorization_header("ak", "240102T030405Z", "abc");
        let parsed = parse_authorization(&header).unwrap();
        assert_eq!(parsed.access_key, "ak");
        assert_eq!(parsed.signed_date, "240102T030405Z");
        assert_eq!(parsed.signature, "abc");
        let tight = header.replace(", ", ",");
        assert_eq!(parse_authorization(&tight), Some(parsed));
    }

    #[test]
    fn malformed_headers_are_rejected() {
        for bad in [
            "",
            "Bearer x",
            "CEA algorithm=HmacSHA1, access-key=a, signed-date=d, signature=s",
            "CEA algorithm=HmacSHA256, access-key=a, signature=s",
            "CEA algorithm=HmacSHA256, access-key=a, signed-date=d, signature=s, extra=1",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad}");
        }
    }

    #[test]
    fn signed_date_round_trips() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 15, 4, 41).unwrap();
        assert_eq!(parse_signed_date(&signed_date(at)), Some(at));
        assert_eq!(parse_signed_date("2026-11-22"), None);
    }

    #[test]
    fn constant_time_compare() {
        assert!(signatures_equal("abcd", "abcd"));
        assert!(!signatures_equal("abcd", "abce"));
        assert!(!signatures_equal("abcd", "abc"));
    }
}
