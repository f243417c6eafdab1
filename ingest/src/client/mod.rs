//! The Coupang WING Open API client: signs every request (CEA HMAC-SHA256), keeps under the vendor's
//! rate limit, retries what is temporary, and surfaces configuration errors at once, naming the account.
//!
//! It talks to api-gateway.coupang.com unchanged; only `base_url` differs for the simulator.

pub mod model;
mod rate;

use chrono::{NaiveDate, Utc};
use etl_core::account::AccountConfig;
use etl_core::cea;
use futures::stream::{self, Stream, StreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{StatusCode, Url};
use std::sync::Arc;
use std::time::Duration;

use crate::config::IngestConfig;
use model::{ErrorBody, ListEnvelope, OrderSheet};
pub use rate::RateLimiter;

/// Query values are encoded like Coupang's own examples (`2025-07-15%2B09:00`): everything but
/// unreserved characters and `:`. The signature covers exactly these bytes.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// Day-query windows may span at most 31 calendar days (coupang-api.md §4).
pub const MAX_WINDOW_DAYS: i64 = 31;
pub const MAX_PER_PAGE: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// 401, or 403 for a non-allow-listed IP: the account cannot work until a person fixes its key.
    #[error("account {alias}: Coupang rejected the key (HTTP {status}): {message}")]
    KeyRejected {
        alias: String,
        status: u16,
        message: String,
    },
    /// 400/404 and other refusals that retrying cannot fix.
    #[error("account {alias}: {endpoint} refused (HTTP {status}): {message}")]
    Refused {
        alias: String,
        endpoint: &'static str,
        status: u16,
        message: String,
    },
    #[error("account {alias}: {endpoint} still failing after {attempts} attempts: {last}")]
    GaveUp {
        alias: String,
        endpoint: &'static str,
        attempts: u32,
        last: String,
    },
    #[error("account {alias}: {endpoint} answered with something that is not Coupang's envelope: {reason}")]
    BadEnvelope {
        alias: String,
        endpoint: &'static str,
        reason: String,
    },
    /// One record of a page could not be read; `raw` keeps it for the dead-letter topic.
    #[error("account {alias}: {endpoint} record {record_id}: {reason}")]
    BadRecord {
        alias: String,
        endpoint: &'static str,
        record_id: String,
        reason: String,
        raw: String,
    },
    #[error(
        "account {alias}: {endpoint} window {from}..{to} is longer than {MAX_WINDOW_DAYS} days"
    )]
    WindowTooLong {
        alias: String,
        endpoint: &'static str,
        from: NaiveDate,
        to: NaiveDate,
    },
    #[error("account {alias}: cannot build a request: {reason}")]
    Request { alias: String, reason: String },
}

impl ClientError {
    /// Errors after which polling this account is pointless until its configuration changes.
    pub fn stops_account(&self) -> bool {
        matches!(self, ClientError::KeyRejected { .. })
    }
}

/// One page of a list endpoint: each record decoded on its own.
pub struct Page<T> {
    pub records: Vec<Result<T, ClientError>>,
    /// `None` on the last page.
    pub next_token: Option<String>,
}

#[derive(Clone)]
pub struct CoupangClient {
    http: reqwest::Client,
    base_url: String,
    account: Arc<AccountConfig>,
    limiter: Arc<RateLimiter>,
    max_attempts: u32,
}

impl CoupangClient {
    pub fn new(
        config: &IngestConfig,
        account: AccountConfig,
    ) -> Result<CoupangClient, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.request_timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Request {
                alias: account.alias.clone(),
                reason: e.to_string(),
            })?;
        Ok(CoupangClient {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            limiter: Arc::new(RateLimiter::new(config.requests_per_second)),
            account: Arc::new(account),
            max_attempts: config.max_attempts,
        })
    }

    pub fn account(&self) -> &AccountConfig {
        &self.account
    }

    fn alias(&self) -> String {
        self.account.alias.clone()
    }

    /// Builds the URL from already-encoded `query` pairs and signs `url.path()` + `url.query()`:
    /// the very bytes that go on the wire, so no re-encoding can break the signature.
    fn signed_request(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let encoded: Vec<String> = query
            .iter()
            .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, QUERY_VALUE)))
            .collect();
        let mut text = format!("{}{path}", self.base_url);
        if !encoded.is_empty() {
            text.push('?');
            text.push_str(&encoded.join("&"));
        }
        let url = Url::parse(&text).map_err(|e| ClientError::Request {
            alias: self.alias(),
            reason: format!("{text}: {e}"),
        })?;
        let signed_date = cea::signed_date(Utc::now());
        let signature = cea::signature(
            self.account.secret_key.expose(),
            &signed_date,
            "GET",
            url.path(),
            url.query().unwrap_or(""),
        );
        Ok(self
            .http
            .get(url)
            .header(
                "Authorization",
                cea::authorization_header(&self.account.access_key, &signed_date, &signature),
            )
            .header("Content-Type", "application/json;charset=UTF-8")
            .header("X-Requested-By", &self.account.vendor_id)
            // The gateway cuts list calls at 3 s without it (504).
            .header("X-EXTENDED-TIMEOUT", "90000"))
    }

    /// GET with rate limiting and bounded retries; returns the body of a 2xx answer.
    async fn get(
        &self,
        endpoint: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<u8>, ClientError> {
        let mut last = String::new();
        for attempt in 1..=self.max_attempts {
            self.limiter.acquire().await;
            // A fresh signature per attempt: Coupang refuses a re-used one.
            let request = self.signed_request(path, query)?;
            let wait = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let body = response
                        .bytes()
                        .await
                        .map(|b| b.to_vec())
                        .unwrap_or_default();
                    if status.is_success() {
                        return Ok(body);
                    }
                    let message = error_message(&body);
                    match status {
                        StatusCode::UNAUTHORIZED => {
                            return Err(ClientError::KeyRejected {
                                alias: self.alias(),
                                status: status.as_u16(),
                                message,
                            })
                        }
                        StatusCode::FORBIDDEN if message.contains("Not allowed IP") => {
                            return Err(ClientError::KeyRejected {
                                alias: self.alias(),
                                status: 403,
                                message,
                            })
                        }
                        // An HTML 403 is Akamai's temporary block after too many errors: wait it out.
                        StatusCode::FORBIDDEN if looks_like_html(&body) => {
                            self.limiter.slow_down();
                            last = "HTTP 403 (temporary block page)".into();
                            Duration::from_secs(30)
                        }
                        StatusCode::TOO_MANY_REQUESTS => {
                            self.limiter.slow_down();
                            last = format!("HTTP 429: {message}");
                            retry_after.unwrap_or_else(|| backoff(attempt))
                        }
                        s if s.is_server_error() => {
                            last = format!("HTTP {}: {message}", s.as_u16());
                            retry_after.unwrap_or_else(|| backoff(attempt))
                        }
                        s => {
                            return Err(ClientError::Refused {
                                alias: self.alias(),
                                endpoint,
                                status: s.as_u16(),
                                message,
                            })
                        }
                    }
                }
                Err(error) => {
                    // Timeouts and connection errors: the request may not have arrived; GETs are safe to repeat.
                    last = without_url(&error);
                    backoff(attempt)
                }
            };
            if attempt < self.max_attempts {
                tracing::debug!(account = %self.account.alias, endpoint, attempt, error = %last, "retrying");
                tokio::time::sleep(wait).await;
            }
        }
        Err(ClientError::GaveUp {
            alias: self.alias(),
            endpoint,
            attempts: self.max_attempts,
            last,
        })
    }

    /// One page of order sheets created (ordered) on the days `from..=to` (Asia/Seoul), in `status`.
    pub async fn order_sheets_page(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        status: &str,
        next_token: &str,
    ) -> Result<Page<OrderSheet>, ClientError> {
        const ENDPOINT: &str = "ordersheets";
        if to < from || (to - from).num_days() >= MAX_WINDOW_DAYS {
            return Err(ClientError::WindowTooLong {
                alias: self.alias(),
                endpoint: ENDPOINT,
                from,
                to,
            });
        }
        let path = format!(
            "/v2/providers/openapi/apis/api/v5/vendors/{}/ordersheets",
            self.account.vendor_id
        );
        let mut query = vec![
            ("createdAtFrom", format!("{from}+09:00")),
            ("createdAtTo", format!("{to}+09:00")),
            ("maxPerPage", MAX_PER_PAGE.to_string()),
            ("status", status.to_string()),
        ];
        if !next_token.is_empty() {
            query.push(("nextToken", next_token.to_string()));
        }
        let body = self.get(ENDPOINT, &path, &query).await?;
        self.decode_page(ENDPOINT, &body, "shipmentBoxId")
    }

    /// Every order sheet of the window in `status`, over all pages.
    pub fn order_sheets<'a>(
        &'a self,
        from: NaiveDate,
        to: NaiveDate,
        status: &'a str,
    ) -> impl Stream<Item = Result<OrderSheet, ClientError>> + 'a {
        stream::unfold(Some(String::new()), move |token| async move {
            let token = token?;
            match self.order_sheets_page(from, to, status, &token).await {
                Ok(page) => Some((stream::iter(page.records), page.next_token)),
                Err(error) => Some((stream::iter(vec![Err(error)]), None)),
            }
        })
        .flatten()
    }

    fn decode_page<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        body: &[u8],
        id_field: &str,
    ) -> Result<Page<T>, ClientError> {
        let bad_envelope = |reason: String| ClientError::BadEnvelope {
            alias: self.alias(),
            endpoint,
            reason,
        };
        let envelope: ListEnvelope =
            serde_json::from_slice(body).map_err(|e| bad_envelope(e.to_string()))?;
        if !envelope.code.is_ok() {
            return Err(bad_envelope(format!(
                "code {}: {}",
                envelope.code.0,
                envelope.message.unwrap_or_default()
            )));
        }
        let raw = match envelope.data {
            Some(serde_json::Value::Array(items)) => items,
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(other) => {
                return Err(bad_envelope(format!(
                    "data is not a list but {}",
                    json_kind(&other)
                )))
            }
        };
        let records = raw
            .into_iter()
            .map(|value| {
                let record_id = value
                    .get(id_field)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "(no id)".into());
                let raw = without_personal_data(&value).to_string();
                serde_json::from_value::<T>(value).map_err(|e| ClientError::BadRecord {
                    alias: self.alias(),
                    endpoint,
                    record_id: format!("{id_field}={record_id}"),
                    reason: e.to_string(),
                    raw,
                })
            })
            .collect();
        let next_token = envelope.next_token.filter(|t| !t.is_empty());
        Ok(Page {
            records,
            next_token,
        })
    }
}

/// Exponential backoff with jitter: 1 s, 2 s, 4 s … capped at 30 s, plus up to 50%. Never under a
/// second, so a retry never reuses the previous attempt's signed-date.
fn backoff(attempt: u32) -> Duration {
    let base_ms = 1_000u64
        .saturating_mul(1 << attempt.saturating_sub(1).min(5))
        .min(30_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0) as u64;
    Duration::from_millis(base_ms + nanos % (base_ms / 2 + 1))
}

/// Fields of Coupang records that hold personal data. The pipeline never needs them, and even a record
/// it cannot read is kept (dead-lettered) without them.
const PERSONAL_FIELDS: [&str; 3] = ["orderer", "receiver", "overseaShippingInfoDto"];

fn without_personal_data(value: &serde_json::Value) -> serde_json::Value {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        for field in PERSONAL_FIELDS {
            object.remove(field);
        }
    }
    value
}

fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            message: Some(message),
        }) => message,
        _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

fn looks_like_html(body: &[u8]) -> bool {
    let start = String::from_utf8_lossy(&body[..body.len().min(100)]).to_ascii_lowercase();
    start.trim_start().starts_with("<!doctype html") || start.trim_start().starts_with("<html")
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Object(_) => "an object",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Null => "null",
    }
}

/// reqwest errors print the URL; ours carry no secret, but keep messages short and uniform.
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    match std::error::Error::source(error) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etl_core::secret::Secret;

    fn client() -> CoupangClient {
        let config = IngestConfig {
            base_url: "https://api-gateway.coupang.com".into(),
            ..IngestConfig::default()
        };
        let account = AccountConfig {
            alias: "brand-a".into(),
            vendor_id: "A00012345".into(),
            access_key: "test-access".into(),
            secret_key: Secret::new("test-secret"),
            key_issued_on: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        };
        CoupangClient::new(&config, account).unwrap()
    }

    fn signed(query: &[(&str, String)], path: &str) -> (String, String) {
        let request = client()
            .signed_request(path, query)
            .unwrap()
            .build()
            .unwrap();
        let header = request.headers()["Authorization"]
            .to_str()
            .unwrap()
            .to_string();
        (request.url().to_string(), header)
    }

    #[test]
    fn signs_the_exact_query_sent_on_the_wire() {
        let path = "/v2/providers/openapi/apis/api/v5/vendors/A00012345/ordersheets";
        let query = [
            ("createdAtFrom", "2025-07-15+09:00".to_string()),
            ("createdAtTo", "2025-07-25+09:00".to_string()),
            ("maxPerPage", "50".to_string()),
            ("status", "INSTRUCT".to_string()),
        ];
        let (url, header) = signed(&query, path);
        let wire_query = "createdAtFrom=2025-07-15%2B09:00&createdAtTo=2025-07-25%2B09:00&maxPerPage=50&status=INSTRUCT";
        assert_eq!(
            url,
            format!("https://api-gateway.coupang.com{path}?{wire_query}")
        );
        let auth = cea::parse_authorization(&header).unwrap();
        assert_eq!(auth.access_key, "test-access");
        assert_eq!(
            auth.signature,
            cea::signature("test-secret", &auth.signed_date, "GET", path, wire_query)
        );
    }

    #[test]
    fn revenue_history_and_return_request_paths_sign_their_encoded_queries() {
        let path = "/v2/providers/openapi/apis/api/v1/revenue-history";
        let query = [
            ("vendorId", "A00012345".to_string()),
            ("recognitionDateFrom", "2025-07-01".to_string()),
            ("recognitionDateTo", "2025-07-31".to_string()),
            ("token", String::new()),
            ("maxPerPage", "50".to_string()),
        ];
        let (url, header) = signed(&query, path);
        let wire = "vendorId=A00012345&recognitionDateFrom=2025-07-01&recognitionDateTo=2025-07-31&token=&maxPerPage=50";
        assert!(url.ends_with(wire), "{url}");
        let auth = cea::parse_authorization(&header).unwrap();
        assert_eq!(
            auth.signature,
            cea::signature("test-secret", &auth.signed_date, "GET", path, wire)
        );

        let path = "/v2/providers/openapi/apis/api/v6/vendors/A00012345/returnRequests";
        let query = [
            ("createdAtFrom", "2025-07-29T00:01".to_string()),
            ("searchType", "timeFrame".to_string()),
        ];
        let (url, _) = signed(&query, path);
        assert!(
            url.ends_with("createdAtFrom=2025-07-29T00:01&searchType=timeFrame"),
            "{url}"
        );
    }

    #[test]
    fn the_secret_never_shows_in_debug_or_errors() {
        let c = client();
        assert!(!format!("{:?}", c.account()).contains("test-secret"));
        let err = ClientError::KeyRejected {
            alias: "brand-a".into(),
            status: 401,
            message: "Invalid signature.".into(),
        };
        assert_eq!(
            err.to_string(),
            "account brand-a: Coupang rejected the key (HTTP 401): Invalid signature."
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_secs(1) && backoff(1) <= Duration::from_millis(1_500));
        assert!(backoff(3) >= Duration::from_secs(4));
        assert!(backoff(30) <= Duration::from_secs(45));
    }

    #[test]
    fn too_long_windows_are_refused_before_sending() {
        let c = client();
        let from = NaiveDate::from_ymd_opt(2025, 7, 1).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt
            .block_on(c.order_sheets_page(from, from + chrono::Duration::days(31), "ACCEPT", ""))
            .err()
            .unwrap();
        assert!(matches!(err, ClientError::WindowTooLong { .. }), "{err}");
    }
}
