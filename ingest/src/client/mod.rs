//! The Coupang WING Open API client: signs every request (CEA HMAC-SHA256), keeps under the vendor's
//! rate limit, retries what is temporary, and surfaces configuration errors at once, naming the account.
//!
//! It talks to api-gateway.coupang.com unchanged; only `base_url` differs for the simulator.
//!
//! This file holds the public constants, [`ReturnQuery`] and [`CoupangClient`] with its endpoint
//! methods. The rest lives beside it: `request` signs, paces and retries each call, `decode` reads
//! Coupang's answers record by record, `error` names what a call can end with, `rate` paces each
//! vendor, `model` and `lenient` are the records' shapes.

mod decode;
mod error;
mod lenient;
pub mod model;
mod rate;
mod request;
mod settlement;

use chrono::{NaiveDate, NaiveDateTime, Utc};
use etl_core::account::AccountConfig;
use futures::stream::{self, Stream, StreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::IngestConfig;
pub use decode::{decode_order_boxes, decode_page, decode_record, decode_single_box, FieldError, Page, RecordId};
pub use error::ClientError;
use model::{OrderSheet, OrderStatus, ReturnRequest, RevenueRecord};
pub use rate::RateLimiter;
pub use settlement::{decode_settlements, RecognitionMonth, SettlementRow};

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
    /// Requests sent through this client (every attempt, answered or not): what it spent of the budget.
    calls: Arc<std::sync::atomic::AtomicU64>,
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
            calls: Arc::default(),
        })
    }

    pub fn account(&self) -> &AccountConfig {
        &self.account
    }

    /// When each endpoint (`ordersheets`, `returnRequests`, `revenue-history`) last answered with success.
    pub fn last_successes(&self) -> BTreeMap<&'static str, chrono::DateTime<Utc>> {
        self.last_success.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Requests this client has sent, every attempt counted.
    pub fn calls_made(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This vendor's shared pacer (its current rate, slow-downs and cool-down are observable).
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    fn alias(&self) -> String {
        self.account.alias.clone()
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

#[cfg(test)]
mod tests {
    use super::*;
    use etl_core::secret::Secret;

    pub(super) fn client() -> CoupangClient {
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
        // Tomorrow: not before today even when midnight (Korea time) passes meanwhile.
        let tomorrow = etl_core::time::now_kst().date_naive() + chrono::Duration::days(1);
        let err =
            rt.block_on(c.revenue_history_page(tomorrow - chrono::Duration::days(3), tomorrow, "")).err().unwrap();
        assert!(err.to_string().contains("before today"), "{err}");
        let at = from.and_hms_opt(0, 0, 0).unwrap();
        let err = rt
            .block_on(c.order_sheets_time_frame(at, at + chrono::Duration::hours(25), &OrderStatus::Accept))
            .err()
            .unwrap();
        assert!(err.to_string().contains("24 hours"), "{err}");
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
}
