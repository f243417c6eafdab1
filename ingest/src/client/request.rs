//! The transport of [`CoupangClient`]: signing each request (CEA HMAC-SHA256) over the exact bytes
//! sent, pacing it under the vendor's rate limit, retrying what is temporary and cooling the vendor
//! down after persistent 429s; with the small helpers that read error bodies and transport errors.

use chrono::Utc;
use etl_core::cea;
use etl_core::metrics::{metrics, AccountEndpoint, AccountLabel, ApiCall};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{StatusCode, Url};
use std::time::Duration;

use super::model::ErrorBody;
use super::{ClientError, CoupangClient};

/// Query values are encoded like Coupang's own examples (`2025-07-15%2B09:00`): everything but
/// unreserved characters and `:`. The signature covers exactly these bytes.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b':');

/// 429s in a row before the vendor goes into a cool-down (a short burst is only paced).
const THROTTLED_BEFORE_COOL_DOWN: u32 = 3;

/// What to do after an answer that was not a success.
enum Next {
    /// A temporary failure: try again after the wait, within `max_attempts`.
    Retry(Duration),
    /// A 429: try again after the wait; persistent ones start a cool-down.
    Throttled(Duration),
}

impl CoupangClient {
    /// Counts one call's outcome: its HTTP status, or `transport` when no answer came.
    fn count_call(&self, endpoint: &'static str, status: Option<StatusCode>) {
        let status = status.map_or_else(|| "transport".to_string(), |s| s.as_u16().to_string());
        let labels = ApiCall { account: self.account.alias.clone(), endpoint, status };
        metrics().api_calls.get_or_create(&labels).inc();
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Builds the URL from already-encoded `query` pairs; the signature covers `url.path()` and
    /// `url.query()`: the very bytes that go on the wire, so no re-encoding can break it.
    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, ClientError> {
        let encoded: Vec<String> =
            query.iter().map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, QUERY_VALUE))).collect();
        let mut text = format!("{}{path}", self.base_url);
        if !encoded.is_empty() {
            text.push('?');
            text.push_str(&encoded.join("&"));
        }
        Url::parse(&text).map_err(|e| ClientError::Request { alias: self.alias(), reason: format!("{text}: {e}") })
    }

    fn signed(&self, url: Url, at: chrono::DateTime<Utc>) -> (reqwest::RequestBuilder, String) {
        let signed_date = cea::signed_date(at);
        let signature = cea::signature(
            self.account.secret_key.expose(),
            &signed_date,
            "GET",
            url.path(),
            url.query().unwrap_or(""),
        );
        let request = self
            .http
            .get(url)
            .header("Authorization", cea::authorization_header(&self.account.access_key, &signed_date, &signature))
            .header("Content-Type", "application/json;charset=UTF-8")
            .header("X-Requested-By", &self.account.vendor_id)
            // The gateway cuts list calls at 3 s without it (504).
            .header("X-EXTENDED-TIMEOUT", "90000");
        (request, signature)
    }

    /// Waits for this vendor's next rate slot and signs the request with a signature never used
    /// before: when an identical request was already signed in this second (another task, a quick
    /// retry), it waits for the next second and takes a new slot, so the pacing still holds.
    async fn paced_request(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let url = self.url(path, query)?;
        loop {
            let waiting = std::time::Instant::now();
            self.limiter.acquire().await;
            let waited = waiting.elapsed().as_secs_f64();
            if waited > 0.0 {
                let labels = AccountLabel { account: self.account.alias.clone() };
                metrics().rate_limit_wait_seconds.get_or_create(&labels).inc_by(waited);
            }
            let now = Utc::now();
            let (request, signature) = self.signed(url.clone(), now);
            if self.limiter.claim_signature(now.timestamp(), &signature) {
                return Ok(request);
            }
            let into_second = u64::from(now.timestamp_subsec_millis());
            tokio::time::sleep(Duration::from_millis(1_001 - into_second.min(1_000))).await;
        }
    }

    /// GET with rate limiting and bounded retries; returns the body of a 2xx answer. Temporary failures
    /// are retried up to `max_attempts`; 429s that persist put the vendor in a cool-down instead
    /// (Coupang's block lasts minutes to tens of minutes), until `cool_down_give_up_minutes`.
    pub(super) async fn get(
        &self,
        endpoint: &'static str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<u8>, ClientError> {
        let mut last = String::new();
        // `attempt` counts towards `max_attempts` and starts over after a cool-down; `sent` counts all.
        let (mut attempt, mut sent, mut retried, mut throttled) = (0u32, 0u32, false, 0u32);
        loop {
            attempt += 1;
            sent += 1;
            // A fresh signature per attempt: Coupang refuses a re-used one.
            let request = self.paced_request(path, query).await?;
            let next = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    self.count_call(endpoint, Some(status));
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let body = response.bytes().await.map(|b| b.to_vec());
                    match (status, body) {
                        // The connection broke while the body arrived: like any transport error.
                        (_, Err(error)) => {
                            last = without_url(&error);
                            Next::Retry(backoff(attempt))
                        }
                        // A body cut short or garbled on the way is not Coupang's answer: ask again.
                        (status, Ok(body))
                            if status.is_success()
                                && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() =>
                        {
                            last = format!("HTTP {}: the body is not JSON ({} bytes)", status.as_u16(), body.len());
                            Next::Retry(backoff(attempt))
                        }
                        (status, Ok(body)) if status.is_success() => {
                            self.succeeded(endpoint, retried);
                            return Ok(body);
                        }
                        (StatusCode::TOO_MANY_REQUESTS, Ok(body)) => {
                            self.limiter.slow_down();
                            last = format!("HTTP 429: {}", error_message(&body));
                            Next::Throttled(retry_after.unwrap_or_else(|| backoff(attempt)))
                        }
                        (status, Ok(body)) => {
                            self.after_error(endpoint, status, &body, retry_after, attempt, &mut last)?
                        }
                    }
                }
                Err(error) => {
                    self.count_call(endpoint, None);
                    // Timeouts and connection errors: the request may not have arrived; GETs are safe to repeat.
                    last = without_url(&error);
                    Next::Retry(backoff(attempt))
                }
            };
            let wait = match next {
                Next::Throttled(wait) => {
                    throttled += 1;
                    if throttled < THROTTLED_BEFORE_COOL_DOWN {
                        wait
                    } else {
                        // Persistent: the key is blocked. Wait it out without hammering.
                        if let Some(lasted) = self.cool_down(endpoint) {
                            let last = format!("{last} (blocked for {} min of cool-down)", lasted.as_secs() / 60);
                            return Err(ClientError::GaveUp { alias: self.alias(), endpoint, attempts: sent, last });
                        }
                        (attempt, throttled) = (0, 0);
                        Duration::ZERO
                    }
                }
                Next::Retry(_) if attempt >= self.max_attempts => {
                    return Err(ClientError::GaveUp { alias: self.alias(), endpoint, attempts: attempt, last })
                }
                Next::Retry(wait) => wait,
            };
            retried = true;
            let labels = AccountEndpoint { account: self.account.alias.clone(), endpoint };
            metrics().api_retries.get_or_create(&labels).inc();
            tracing::debug!(account = %self.account.alias, endpoint, attempt, error = %last, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// A call answered with success: noted per endpoint, and counted as recovered when it took retries.
    fn succeeded(&self, endpoint: &'static str, retried: bool) {
        self.last_success.lock().unwrap_or_else(|e| e.into_inner()).insert(endpoint, Utc::now());
        if retried {
            let labels = AccountEndpoint { account: self.account.alias.clone(), endpoint };
            metrics().api_calls_recovered.get_or_create(&labels).inc();
        }
        if self.limiter.end_cool_down() {
            metrics().cool_down_seconds.get_or_create(&AccountLabel { account: self.account.alias.clone() }).set(0);
            tracing::info!(account = %self.account.alias, vendor = %self.account.vendor_id, "Coupang answers again: cool-down over");
        }
    }

    /// Puts the vendor in (or further into) a cool-down; one warning per episode. Once the episode has
    /// lasted `cool_down_give_up_minutes` it ends instead, and how long it lasted is returned: the
    /// call gives up.
    fn cool_down(&self, endpoint: &'static str) -> Option<Duration> {
        let labels = AccountLabel { account: self.account.alias.clone() };
        let (pause, lasted, began) = self.limiter.cool_down(self.cool_down_first);
        if lasted >= self.cool_down_give_up {
            self.limiter.end_cool_down();
            metrics().cool_down_seconds.get_or_create(&labels).set(0);
            return Some(lasted);
        }
        if began {
            metrics().cool_downs.get_or_create(&labels).inc();
            tracing::warn!(account = %self.account.alias, vendor = %self.account.vendor_id, endpoint,
                pause_secs = pause.as_secs(),
                "Coupang keeps answering 429: the vendor's calls pause (one probe per pause, pauses doubling up to 15 min)");
        }
        metrics().cool_down_seconds.get_or_create(&labels).set(pause.as_secs() as i64);
        None
    }

    /// An error answer other than 429: configuration errors end the call at once; temporary ones give
    /// the wait before the next attempt.
    fn after_error(
        &self,
        endpoint: &'static str,
        status: StatusCode,
        body: &[u8],
        retry_after: Option<Duration>,
        attempt: u32,
        last: &mut String,
    ) -> Result<Next, ClientError> {
        let message = error_message(body);
        let alias = self.alias();
        match status {
            // Not the key: the signature's time was off, or the same signature was already used (another
            // process sent the identical request within the same second). A fresh signature in the next
            // second fixes the latter; if it keeps failing, the machine's clock is wrong.
            StatusCode::UNAUTHORIZED if message.contains("signature is expired") => {
                *last = format!("HTTP 401: {message} (re-signed; if this persists, check this machine's clock)");
                Ok(Next::Retry(Duration::from_millis(1_000 + u64::from(attempt) * 250)))
            }
            // A new key can take up to 24 hours to start working (30 minutes after a reissue).
            StatusCode::UNAUTHORIZED if self.account.key_may_be_activating(etl_core::time::now_kst()) => {
                Err(ClientError::KeyNotActiveYet { alias, issued_on: self.account.key_issued_on, message })
            }
            StatusCode::UNAUTHORIZED => Err(ClientError::KeyRejected { alias, status: 401, message }),
            // Live clients see "Not allowed IP", "IP is not allowed" and other wordings.
            StatusCode::FORBIDDEN if message.to_ascii_lowercase().contains("not allowed") => {
                Err(ClientError::KeyRejected { alias, status: 403, message })
            }
            // An HTML 403 is Akamai's temporary block after too many errors: wait it out.
            StatusCode::FORBIDDEN if looks_like_html(body) => {
                self.limiter.slow_down();
                *last = "HTTP 403 (temporary block page)".into();
                Ok(Next::Retry(Duration::from_secs(30)))
            }
            s if s.is_server_error() => {
                *last = format!("HTTP {}: {message}", s.as_u16());
                Ok(Next::Retry(retry_after.unwrap_or_else(|| backoff(attempt))))
            }
            s => Err(ClientError::Refused { alias, endpoint, status: s.as_u16(), message }),
        }
    }
}

/// Exponential backoff with jitter: 1 s, 2 s, 4 s … capped at 30 s, plus up to 50%. Never under a
/// second, so a retry never reuses the previous attempt's signed-date.
fn backoff(attempt: u32) -> Duration {
    let base_ms = 1_000u64.saturating_mul(1 << attempt.saturating_sub(1).min(5)).min(30_000);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
            as u64;
    Duration::from_millis(base_ms + nanos % (base_ms / 2 + 1))
}

fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { message: Some(message) }) => message,
        _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

fn looks_like_html(body: &[u8]) -> bool {
    let start = String::from_utf8_lossy(&body[..body.len().min(100)]).to_ascii_lowercase();
    start.trim_start().starts_with("<!doctype html") || start.trim_start().starts_with("<html")
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
    use crate::client::tests::client;
    use crate::client::ORDERSHEETS;

    fn signed(query: &[(&str, String)], path: &str) -> (String, String) {
        let c = client();
        let request = c.signed(c.url(path, query).unwrap(), Utc::now()).0.build().unwrap();
        let header = request.headers()["Authorization"].to_str().unwrap().to_string();
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
        let wire_query =
            "createdAtFrom=2025-07-15%2B09:00&createdAtTo=2025-07-25%2B09:00&maxPerPage=50&status=INSTRUCT";
        assert_eq!(url, format!("https://api-gateway.coupang.com{path}?{wire_query}"));
        let auth = cea::parse_authorization(&header).unwrap();
        assert_eq!(auth.access_key, "test-access");
        assert_eq!(auth.signature, cea::signature("test-secret", &auth.signed_date, "GET", path, wire_query));
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
        let wire =
            "vendorId=A00012345&recognitionDateFrom=2025-07-01&recognitionDateTo=2025-07-31&token=&maxPerPage=50";
        assert!(url.ends_with(wire), "{url}");
        let auth = cea::parse_authorization(&header).unwrap();
        assert_eq!(auth.signature, cea::signature("test-secret", &auth.signed_date, "GET", path, wire));

        let path = "/v2/providers/openapi/apis/api/v6/vendors/A00012345/returnRequests";
        let query = [("createdAtFrom", "2025-07-29T00:01".to_string()), ("searchType", "timeFrame".to_string())];
        let (url, _) = signed(&query, path);
        assert!(url.ends_with("createdAtFrom=2025-07-29T00:01&searchType=timeFrame"), "{url}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_secs(1) && backoff(1) <= Duration::from_millis(1_500));
        assert!(backoff(3) >= Duration::from_secs(4));
        assert!(backoff(30) <= Duration::from_secs(45));
    }

    #[test]
    fn an_ip_refusal_stops_the_account_whatever_its_wording() {
        let c = client();
        for message in ["Not allowed IP: 10.0.0.1", "IP is not allowed", "Your IP address 10.0.0.1 is NOT ALLOWED."] {
            let body = serde_json::json!({"code": "ERROR", "message": message}).to_string();
            let mut last = String::new();
            let outcome = c.after_error(ORDERSHEETS, StatusCode::FORBIDDEN, body.as_bytes(), None, 1, &mut last);
            assert!(matches!(outcome, Err(ClientError::KeyRejected { status: 403, .. })), "{message}");
        }
    }

    #[test]
    fn akamai_block_pages_are_recognised() {
        assert!(looks_like_html(b"<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD>"));
        assert!(looks_like_html(b"\n  <!DOCTYPE html><html>"));
        assert!(!looks_like_html(br#"{"code":"ERROR","message":"Not allowed IP"}"#));
    }
}
