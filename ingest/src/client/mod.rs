//! The Coupang WING Open API client: signs every request (CEA HMAC-SHA256), keeps under the vendor's
//! rate limit, retries what is temporary, and surfaces configuration errors at once, naming the account.
//!
//! It talks to api-gateway.coupang.com unchanged; only `base_url` differs for the simulator.

mod lenient;
pub mod model;
mod rate;

use chrono::{NaiveDate, NaiveDateTime, Utc};
use etl_core::account::AccountConfig;
use etl_core::cea;
use etl_core::metrics::{metrics, AccountEndpoint, AccountLabel, ApiCall};
use futures::stream::{self, Stream, StreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{StatusCode, Url};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::IngestConfig;
use model::{Envelope, ErrorBody, OrderSheet, OrderStatus, ReturnRequest, RevenueRecord};
pub use rate::RateLimiter;

/// Query values are encoded like Coupang's own examples (`2025-07-15%2B09:00`): everything but
/// unreserved characters and `:`. The signature covers exactly these bytes.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b':');

/// Names the client to Coupang's gateway (and its logs) as this project, at this version.
pub const USER_AGENT: &str = concat!("coupang-etl/", env!("CARGO_PKG_VERSION"));

/// Day-query windows may span at most 31 calendar days (coupang-api.md §4).
pub const MAX_WINDOW_DAYS: i64 = 31;
pub const MAX_PER_PAGE: u32 = 50;
/// Minute-window queries (`searchType=timeFrame`) may span at most 24 hours.
pub const MAX_TIME_FRAME_HOURS: i64 = 24;

/// Which receipts `returnRequests` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnQuery {
    /// Returns in one status: `RU` release stop requested, `UC` received, `CC` completed, `PR` Coupang check.
    Return(&'static str),
    /// Cancellations, including orders cancelled while still ACCEPT (listed only this way).
    Cancel,
}

impl ReturnQuery {
    pub const ALL: [ReturnQuery; 5] = [
        ReturnQuery::Return("RU"),
        ReturnQuery::Return("UC"),
        ReturnQuery::Return("CC"),
        ReturnQuery::Return("PR"),
        ReturnQuery::Cancel,
    ];
}

const ORDERSHEETS: &str = "ordersheets";
const RETURN_REQUESTS: &str = "returnRequests";
const REVENUE_HISTORY: &str = "revenue-history";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// 401, or 403 for a non-allow-listed IP: the account cannot work until a person fixes its key.
    #[error("account {alias}: Coupang rejected the key (HTTP {status}): {message}")]
    KeyRejected { alias: String, status: u16, message: String },
    /// 401 for a key issued so recently that Coupang may not have activated it yet (up to 24 hours):
    /// the account is tried again at the next sweep instead of stopping.
    #[error("account {alias}: Coupang does not accept the key yet (issued on {issued_on}; a new key can take up to 24 hours): {message}")]
    KeyNotActiveYet { alias: String, issued_on: NaiveDate, message: String },
    /// 400/404 and other refusals that retrying cannot fix.
    #[error("account {alias}: {endpoint} refused (HTTP {status}): {message}")]
    Refused { alias: String, endpoint: &'static str, status: u16, message: String },
    #[error("account {alias}: {endpoint} still failing after {attempts} attempts: {last}")]
    GaveUp { alias: String, endpoint: &'static str, attempts: u32, last: String },
    #[error("account {alias}: {endpoint} answered with something that is not Coupang's envelope: {reason}")]
    BadEnvelope { alias: String, endpoint: &'static str, reason: String },
    /// One record of a page could not be read: `fault` names the field at fault by its JSON path,
    /// with its raw value (or `absent`); `raw` keeps the record for the dead-letter topic.
    #[error("account {alias}: {endpoint} record {record_id}: field {} = {}: {}", fault.field, fault.value, fault.reason)]
    BadRecord { alias: String, endpoint: &'static str, record_id: RecordId, fault: Box<FieldError>, raw: String },
    /// A look-up by id answered with another record than asked: an error, never data.
    #[error("account {alias}: {endpoint} asked for {asked} and answered {answered}")]
    WrongRecord { alias: String, endpoint: &'static str, asked: String, answered: String },
    /// A request that would break a documented limit, refused before sending.
    #[error("account {alias}: {endpoint}: {reason}")]
    InvalidRequest { alias: String, endpoint: &'static str, reason: String },
    #[error("account {alias}: cannot build a request: {reason}")]
    Request { alias: String, reason: String },
}

impl ClientError {
    /// Errors after which polling this account is pointless until its configuration changes.
    pub fn stops_account(&self) -> bool {
        matches!(self, ClientError::KeyRejected { .. })
    }
}

/// 429s in a row before the vendor goes into a cool-down (a short burst is only paced).
const THROTTLED_BEFORE_COOL_DOWN: u32 = 3;

/// What to do after an answer that was not a success.
enum Next {
    /// A temporary failure: try again after the wait, within `max_attempts`.
    Retry(Duration),
    /// A 429: try again after the wait; persistent ones start a cool-down.
    Throttled(Duration),
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
    /// The first cool-down pause after persistent 429s, and how long an episode may last.
    cool_down_first: Duration,
    cool_down_give_up: Duration,
    /// When each endpoint last answered with success.
    last_success: Arc<std::sync::Mutex<BTreeMap<&'static str, chrono::DateTime<Utc>>>>,
}

impl CoupangClient {
    pub fn new(config: &IngestConfig, account: AccountConfig) -> Result<CoupangClient, ClientError> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(Duration::from_secs(config.request_timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Request { alias: account.alias.clone(), reason: e.to_string() })?;
        Ok(CoupangClient {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            limiter: if config.on_loopback() {
                RateLimiter::for_vendor_up_to(&account.vendor_id, config.requests_per_second, f64::INFINITY)
            } else {
                RateLimiter::for_vendor(&account.vendor_id, config.requests_per_second)
            },
            account: Arc::new(account),
            max_attempts: config.max_attempts,
            cool_down_first: Duration::from_secs(config.cool_down_secs),
            cool_down_give_up: Duration::from_secs(config.cool_down_give_up_minutes * 60),
            last_success: Arc::default(),
        })
    }

    pub fn account(&self) -> &AccountConfig {
        &self.account
    }

    /// When each endpoint (`ordersheets`, `returnRequests`, `revenue-history`) last answered with success.
    pub fn last_successes(&self) -> BTreeMap<&'static str, chrono::DateTime<Utc>> {
        self.last_success.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Counts one call's outcome: its HTTP status, or `transport` when no answer came.
    fn count_call(&self, endpoint: &'static str, status: Option<StatusCode>) {
        let status = status.map_or_else(|| "transport".to_string(), |s| s.as_u16().to_string());
        let labels = ApiCall { account: self.account.alias.clone(), endpoint, status };
        metrics().api_calls.get_or_create(&labels).inc();
    }

    /// This vendor's shared pacer (its current rate, slow-downs and cool-down are observable).
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    fn alias(&self) -> String {
        self.account.alias.clone()
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
    async fn get(&self, endpoint: &'static str, path: &str, query: &[(&str, String)]) -> Result<Vec<u8>, ClientError> {
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

    fn invalid(&self, endpoint: &'static str, reason: String) -> ClientError {
        ClientError::InvalidRequest { alias: self.alias(), endpoint, reason }
    }

    fn check_day_window(&self, endpoint: &'static str, from: NaiveDate, to: NaiveDate) -> Result<(), ClientError> {
        if to < from || (to - from).num_days() >= MAX_WINDOW_DAYS {
            return Err(self.invalid(endpoint, format!("window {from}..{to} must be 1 to {MAX_WINDOW_DAYS} days")));
        }
        Ok(())
    }

    fn vendor_path(&self, version: &str, rest: &str) -> String {
        format!("/v2/providers/openapi/apis/api/{version}/vendors/{}{rest}", self.account.vendor_id)
    }

    /// One page of order sheets created (ordered) on the days `from..=to` (Asia/Seoul), in `status`.
    pub async fn order_sheets_page(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        status: &OrderStatus,
        next_token: &str,
    ) -> Result<Page<OrderSheet>, ClientError> {
        self.check_day_window(ORDERSHEETS, from, to)?;
        let mut query = vec![
            ("createdAtFrom", format!("{from}+09:00")),
            ("createdAtTo", format!("{to}+09:00")),
            ("maxPerPage", MAX_PER_PAGE.to_string()),
            ("status", status.as_str().to_string()),
        ];
        if !next_token.is_empty() {
            query.push(("nextToken", next_token.to_string()));
        }
        let body = self.get(ORDERSHEETS, &self.vendor_path("v5", "/ordersheets"), &query).await?;
        self.decode_page(ORDERSHEETS, &body, "shipmentBoxId")
    }

    /// Every order sheet of the day window in `status`, over all pages.
    pub fn order_sheets<'a>(
        &'a self,
        from: NaiveDate,
        to: NaiveDate,
        status: &'a OrderStatus,
    ) -> impl Stream<Item = Result<OrderSheet, ClientError>> + 'a {
        all_pages(move |token| async move { self.order_sheets_page(from, to, status, &token).await })
    }

    /// Order sheets created in a minute window of at most 24 hours (Korea time), unpaged.
    pub async fn order_sheets_time_frame(
        &self,
        from: NaiveDateTime,
        to: NaiveDateTime,
        status: &OrderStatus,
    ) -> Result<Vec<Result<OrderSheet, ClientError>>, ClientError> {
        if to < from || to - from > chrono::Duration::hours(MAX_TIME_FRAME_HOURS) {
            return Err(self.invalid(ORDERSHEETS, format!("time frame {from}..{to} must be at most 24 hours")));
        }
        let minute = |t: NaiveDateTime| format!("{}+09:00", t.format("%Y-%m-%dT%H:%M"));
        let query = [
            ("createdAtFrom", minute(from)),
            ("createdAtTo", minute(to)),
            ("searchType", "timeFrame".to_string()),
            ("status", status.as_str().to_string()),
        ];
        let body = self.get(ORDERSHEETS, &self.vendor_path("v5", "/ordersheets"), &query).await?;
        Ok(self.decode_page(ORDERSHEETS, &body, "shipmentBoxId")?.records)
    }

    /// One shipment box.
    pub async fn order_sheet(&self, shipment_box_id: i64) -> Result<OrderSheet, ClientError> {
        let path = self.vendor_path("v5", &format!("/ordersheets/{shipment_box_id}"));
        let body = self.get(ORDERSHEETS, &path, &[]).await?;
        decode_single_box(&self.account.alias, &body, shipment_box_id)
    }

    /// Every shipment box of one order.
    pub async fn order_sheets_of_order(
        &self,
        order_id: i64,
    ) -> Result<Vec<Result<OrderSheet, ClientError>>, ClientError> {
        let path = self.vendor_path("v5", &format!("/{order_id}/ordersheets"));
        let body = self.get(ORDERSHEETS, &path, &[]).await?;
        decode_order_boxes(&self.account.alias, &body, order_id)
    }

    /// One page of cancel or return receipts requested on `from..=to`.
    pub async fn return_requests_page(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        which: ReturnQuery,
        next_token: &str,
    ) -> Result<Page<ReturnRequest>, ClientError> {
        self.check_day_window(RETURN_REQUESTS, from, to)?;
        let mut query = vec![("createdAtFrom", from.to_string()), ("createdAtTo", to.to_string())];
        match which {
            ReturnQuery::Return(status) => {
                query.push(("status", status.to_string()));
                query.push(("cancelType", "RETURN".to_string()));
            }
            // Orders cancelled while ACCEPT appear only with CANCEL and no status.
            ReturnQuery::Cancel => query.push(("cancelType", "CANCEL".to_string())),
        }
        query.push(("maxPerPage", MAX_PER_PAGE.to_string()));
        if !next_token.is_empty() {
            query.push(("nextToken", next_token.to_string()));
        }
        let body = self.get(RETURN_REQUESTS, &self.vendor_path("v6", "/returnRequests"), &query).await?;
        self.decode_page(RETURN_REQUESTS, &body, "receiptId")
    }

    pub fn return_requests(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        which: ReturnQuery,
    ) -> impl Stream<Item = Result<ReturnRequest, ClientError>> + '_ {
        all_pages(move |token| async move { self.return_requests_page(from, to, which, &token).await })
    }

    /// One page of revenue rows recognised (purchase-confirmed) on `from..=to`. `to` must be before today
    /// in Korea, as Coupang requires.
    pub async fn revenue_history_page(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        token: &str,
    ) -> Result<Page<RevenueRecord>, ClientError> {
        self.check_day_window(REVENUE_HISTORY, from, to)?;
        let today = etl_core::time::now_kst().date_naive();
        if to >= today {
            return Err(self.invalid(REVENUE_HISTORY, format!("recognitionDateTo {to} must be before today ({today})")));
        }
        let query = [
            ("vendorId", self.account.vendor_id.clone()),
            ("recognitionDateFrom", from.to_string()),
            ("recognitionDateTo", to.to_string()),
            // Required, empty on the first page.
            ("token", token.to_string()),
            ("maxPerPage", MAX_PER_PAGE.to_string()),
        ];
        let body = self.get(REVENUE_HISTORY, "/v2/providers/openapi/apis/api/v1/revenue-history", &query).await?;
        self.decode_page(REVENUE_HISTORY, &body, "orderId")
    }

    pub fn revenue_history(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> impl Stream<Item = Result<RevenueRecord, ClientError>> + '_ {
        all_pages(move |token| async move { self.revenue_history_page(from, to, &token).await })
    }

    fn decode_page<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        body: &[u8],
        id_field: &str,
    ) -> Result<Page<T>, ClientError> {
        decode_page(&self.account.alias, endpoint, body, id_field)
    }
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
    let alias = || alias.to_string();
    let bad_envelope = |reason: String| ClientError::BadEnvelope { alias: alias(), endpoint, reason };
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| bad_envelope(e.to_string()))?;
    if !envelope.code.is_ok() {
        let message = envelope.message.clone().unwrap_or_default();
        return Err(bad_envelope(format!("code {}: {message}", envelope.code.0)));
    }
    let next_token = envelope.next_page();
    let raw = match envelope.data {
        Some(serde_json::Value::Array(items)) => items,
        // Single-record endpoints answer with an object.
        Some(object @ serde_json::Value::Object(_)) => vec![object],
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(other) => return Err(bad_envelope(format!("data is {}", json_kind(&other)))),
    };
    let records = raw
        .into_iter()
        .map(|value| {
            decode_record::<T>(&value, id_field).map_err(|fault| ClientError::BadRecord {
                alias: alias(),
                endpoint,
                record_id: record_id(&value, id_field),
                fault: Box::new(fault),
                raw: without_personal_data(&value).to_string(),
            })
        })
        .collect();
    Ok(Page { records, next_token })
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

/// Every record of a paged list endpoint: `fetch(token)` gets one page (`""` for the first). A page
/// that fails ends the stream with its error; records that fail alone are yielded as errors.
fn all_pages<'a, T, F, Fut>(fetch: F) -> impl Stream<Item = Result<T, ClientError>> + 'a
where
    T: 'a,
    F: Fn(String) -> Fut + 'a,
    Fut: std::future::Future<Output = Result<Page<T>, ClientError>> + 'a,
{
    stream::unfold((Some(String::new()), fetch), |(token, fetch)| async move {
        let token = token?;
        match fetch(token).await {
            Ok(page) => Some((stream::iter(page.records), (page.next_token, fetch))),
            Err(error) => Some((stream::iter(vec![Err(error)]), (None, fetch))),
        }
    })
    .flatten()
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
        Ok(ErrorBody { message: Some(message) }) => message,
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
        let config = IngestConfig { base_url: "https://api-gateway.coupang.com".into(), ..IngestConfig::default() };
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
    fn the_secret_never_shows_in_debug_or_errors() {
        let c = client();
        assert!(!format!("{:?}", c.account()).contains("test-secret"));
        let err =
            ClientError::KeyRejected { alias: "brand-a".into(), status: 401, message: "Invalid signature.".into() };
        assert_eq!(err.to_string(), "account brand-a: Coupang rejected the key (HTTP 401): Invalid signature.");
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
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let err = rt
            .block_on(c.order_sheets_page(from, from + chrono::Duration::days(31), &OrderStatus::Accept, ""))
            .err()
            .unwrap();
        assert!(matches!(err, ClientError::InvalidRequest { .. }), "{err}");
        let today = etl_core::time::now_kst().date_naive();
        let err = rt.block_on(c.revenue_history_page(today - chrono::Duration::days(3), today, "")).err().unwrap();
        assert!(err.to_string().contains("before today"), "{err}");
        let at = from.and_hms_opt(0, 0, 0).unwrap();
        let err = rt
            .block_on(c.order_sheets_time_frame(at, at + chrono::Duration::hours(25), &OrderStatus::Accept))
            .err()
            .unwrap();
        assert!(err.to_string().contains("24 hours"), "{err}");
    }

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

    #[tokio::test]
    async fn requests_name_the_project_and_its_version() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let n = socket.read(&mut request).await.unwrap();
            let body = r#"{"code":200,"message":"OK","data":[]}"#;
            let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            socket.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request[..n]).to_ascii_lowercase()
        });
        let config = IngestConfig { base_url, ..IngestConfig::default() };
        let c = CoupangClient::new(&config, client().account().clone()).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
        c.order_sheets_page(day, day, &OrderStatus::Accept, "").await.unwrap();
        let request = server.await.unwrap();
        assert!(request.contains(&format!("user-agent: coupang-etl/{}", env!("CARGO_PKG_VERSION"))), "{request}");
    }

    #[test]
    fn akamai_block_pages_are_recognised() {
        assert!(looks_like_html(b"<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD>"));
        assert!(looks_like_html(b"\n  <!DOCTYPE html><html>"));
        assert!(!looks_like_html(br#"{"code":"ERROR","message":"Not allowed IP"}"#));
    }
}
