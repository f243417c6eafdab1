//! The simulated gateway: CEA signature check, then the order-sheet endpoint with Coupang's
//! parameters, limits, paging and error bodies (coupang-api.md §1, §3, §4).

use axum::extract::{ConnectInfo, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use etl_core::{cea, Shutdown};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

use crate::config::{FaultConfig, SimConfig};
use crate::world::{BoxStatus, Receipt, ReceiptKind, ShipmentBox, VendorWorld, World};

const ORDERSHEETS_V5: &str = "/v2/providers/openapi/apis/api/v5/vendors/{vendor_id}/ordersheets";
const ORDERSHEET_V5: &str = "/v2/providers/openapi/apis/api/v5/vendors/{vendor_id}/ordersheets/{shipment_box_id}";
const ORDER_V5: &str = "/v2/providers/openapi/apis/api/v5/vendors/{vendor_id}/{order_id}/ordersheets";
const RETURN_REQUESTS_V6: &str = "/v2/providers/openapi/apis/api/v6/vendors/{vendor_id}/returnRequests";
// The v4 paths still work on Coupang and answer in the v4 formats (plain won, Korea time without offset).
const ORDERSHEETS_V4: &str = "/v2/providers/openapi/apis/api/v4/vendors/{vendor_id}/ordersheets";
const ORDERSHEET_V4: &str = "/v2/providers/openapi/apis/api/v4/vendors/{vendor_id}/ordersheets/{shipment_box_id}";
const ORDER_V4: &str = "/v2/providers/openapi/apis/api/v4/vendors/{vendor_id}/{order_id}/ordersheets";
const RETURN_REQUESTS_V4: &str = "/v2/providers/openapi/apis/api/v4/vendors/{vendor_id}/returnRequests";
const REVENUE_HISTORY_V1: &str = "/v2/providers/openapi/apis/api/v1/revenue-history";
/// Minute windows (`searchType=timeFrame`) may span at most 24 hours.
const MAX_TIME_FRAME_HOURS: i64 = 24;
const MAX_PER_PAGE: usize = 50;
/// "≤ 31 days": a window may span at most 31 calendar days, both ends included.
const MAX_RANGE_DAYS: i64 = 31;

/// Requests the gateway answered, by (vendor id or "-", endpoint, HTTP status), for tests to assert on.
pub type RequestStats = BTreeMap<(String, String, u16), u64>;

struct SimState {
    /// The world at the last moment it was generated for; with a time scale it is regenerated as the
    /// simulated clock advances.
    world: RwLock<(Arc<World>, Instant)>,
    config: SimConfig,
    clock: SimClock,
    seed: u64,
    /// access key → the key's vendor and rules. Re-linking replaces a vendor's entry.
    keys: RwLock<HashMap<String, KeyEntry>>,
    clock_skew_secs: i64,
    rate_limit_per_second: u32,
    faults: FaultConfig,
    /// Signatures already used, with when they may be forgotten (once their signed-date is stale anyway).
    used_signatures: Mutex<HashMap<String, i64>>,
    traffic: Mutex<HashMap<String, VendorTraffic>>,
    stats: Mutex<RequestStats>,
    faults_injected: Mutex<BTreeMap<&'static str, u64>>,
    /// Vendors Coupang blocks for a while (every call answered 429), as after sustained overuse.
    blocked_until: Mutex<HashMap<String, Instant>>,
}

#[derive(Clone)]
struct KeyEntry {
    vendor_id: String,
    secret: String,
    expires_on: Option<NaiveDate>,
    allowed_ips: Vec<IpAddr>,
    /// A new key Coupang has not activated yet (it can take up to 24 hours): refused with 401.
    inactive: bool,
}

/// Calls of one vendor: for the rate limit, the burst fault and the peak-rate statistic.
#[derive(Default)]
struct VendorTraffic {
    /// Arrival times of calls in the last second.
    recent: VecDeque<Instant>,
    peak_per_second: usize,
    calls: u64,
}

/// A running simulator on a local port.
pub struct Simulator {
    addr: SocketAddr,
    state: Arc<SimState>,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Simulator {
    /// Generates the world and serves it on `bind` (use port 0 for any free port).
    pub async fn start(config: &SimConfig, bind: SocketAddr) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SimState::new(config));
        let shutdown = Shutdown::new();
        let task = tokio::spawn(serve_state(state.clone(), listener, shutdown.clone()));
        Ok(Simulator { addr, state, shutdown, task })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The world as it stands now (on the simulated clock).
    pub fn world(&self) -> Arc<World> {
        self.state.world()
    }

    /// The simulated clock's time.
    pub fn now(&self) -> DateTime<FixedOffset> {
        self.state.clock.now()
    }

    pub fn stats(&self) -> RequestStats {
        self.state.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Faults injected so far, by kind (`server_error`, `slow`, `reset`, `malformed_json`,
    /// `missing_field`, `repeated_record`, `unreadable_record`; 429s are in [`Simulator::stats`]).
    pub fn faults_injected(&self) -> BTreeMap<&'static str, u64> {
        self.state.faults_injected.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The most calls of `vendor_id` that arrived within any one second (sliding window).
    pub fn peak_per_second(&self, vendor_id: &str) -> usize {
        let traffic = self.state.traffic.lock().unwrap_or_else(|e| e.into_inner());
        traffic.get(vendor_id).map_or(0, |t| t.peak_per_second)
    }

    /// The boxes of a vendor that the `unreadable_record_rate` fault spoils in every answer.
    pub fn unreadable_boxes(&self, vendor_id: &str) -> Vec<i64> {
        let world = self.world();
        let boxes = world.vendors.get(vendor_id).map(|v| v.boxes.as_slice()).unwrap_or_default();
        boxes.iter().map(|b| b.shipment_box_id).filter(|&id| self.state.unreadable(vendor_id, id)).collect()
    }

    /// Re-links a vendor with a new key, as a reissue in WING does: the old key stops working at once.
    pub fn relink(&self, vendor_id: &str, access_key: &str, secret_key: &str) {
        let mut keys = self.state.keys.write().unwrap_or_else(|e| e.into_inner());
        let old = keys.iter().find(|(_, k)| k.vendor_id == vendor_id).map(|(a, k)| (a.clone(), k.clone()));
        if let Some((old_access, entry)) = old {
            keys.remove(&old_access);
            let entry = KeyEntry { secret: secret_key.to_string(), expires_on: None, inactive: false, ..entry };
            keys.insert(access_key.to_string(), entry);
        }
    }

    /// Re-links a vendor with a new key that Coupang has not activated yet: every call with it is
    /// refused (401) until [`Simulator::activate_keys`]. The old key stops working at once.
    pub fn relink_inactive(&self, vendor_id: &str, access_key: &str, secret_key: &str) {
        self.relink(vendor_id, access_key, secret_key);
        let mut keys = self.state.keys.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = keys.get_mut(access_key) {
            entry.inactive = true;
        }
    }

    /// Activates a vendor's keys (the end of a new key's waiting time).
    pub fn activate_keys(&self, vendor_id: &str) {
        let mut keys = self.state.keys.write().unwrap_or_else(|e| e.into_inner());
        for entry in keys.values_mut().filter(|k| k.vendor_id == vendor_id) {
            entry.inactive = false;
        }
    }

    /// Blocks a vendor for `duration`: every call is answered 429, as Coupang does for minutes to tens
    /// of minutes after sustained overuse.
    pub fn block_vendor(&self, vendor_id: &str, duration: Duration) {
        let mut blocked = self.state.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
        blocked.insert(vendor_id.to_string(), Instant::now() + duration);
    }

    /// Makes a vendor's key expire now, as its 180th day does: every call with it is refused (401).
    pub fn expire_key(&self, vendor_id: &str) {
        let today = Utc::now().with_timezone(&etl_core::time::kst()).date_naive();
        let mut keys = self.state.keys.write().unwrap_or_else(|e| e.into_inner());
        for entry in keys.values_mut().filter(|k| k.vendor_id == vendor_id) {
            entry.expires_on = Some(today);
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Serves the simulator on `listener` until `shutdown` (what `coupang-etl sim` runs).
pub async fn serve(config: &SimConfig, listener: TcpListener, shutdown: Shutdown) -> std::io::Result<()> {
    serve_state(Arc::new(SimState::new(config)), listener, shutdown).await
}

async fn serve_state(state: Arc<SimState>, listener: TcpListener, shutdown: Shutdown) -> std::io::Result<()> {
    let api = Router::new()
        .route(ORDERSHEETS_V5, get(ordersheets))
        .route(ORDERSHEET_V5, get(ordersheet))
        .route(ORDER_V5, get(order))
        .route(RETURN_REQUESTS_V6, get(return_requests))
        .route(ORDERSHEETS_V4, get(ordersheets))
        .route(ORDERSHEET_V4, get(ordersheet))
        .route(ORDER_V4, get(order))
        .route(RETURN_REQUESTS_V4, get(return_requests))
        .route(REVENUE_HISTORY_V1, get(revenue_history))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), gateway));
    let app =
        Router::new().route("/sim/stats", get(stats)).route("/sim/clock", get(clock)).merge(api).with_state(state);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Simulated time: frozen at the world's final moment, or running `scale` times faster than real time
/// from `start_at`.
struct SimClock {
    started: Instant,
    start_at: DateTime<FixedOffset>,
    scale: f64,
}

impl SimClock {
    fn new(config: &SimConfig) -> SimClock {
        let start_at = if config.time_scale > 0.0 {
            let start = config.clock_start.unwrap_or_else(|| config.start_date.and_time(chrono::NaiveTime::MIN));
            start.and_local_timezone(etl_core::time::kst()).single().unwrap_or_else(|| World::final_moment(config))
        } else {
            World::final_moment(config)
        };
        SimClock { started: Instant::now(), start_at, scale: config.time_scale.max(0.0) }
    }

    fn now(&self) -> DateTime<FixedOffset> {
        let elapsed = self.started.elapsed().as_secs_f64() * self.scale;
        self.start_at + chrono::Duration::milliseconds((elapsed * 1000.0) as i64)
    }
}

impl SimState {
    /// The world now. Regenerated (same seed, same orders, later states) when the simulated clock has
    /// moved on, at most every 100 ms of real time.
    fn world(&self) -> Arc<World> {
        let (current, generated) = self.world.read().unwrap_or_else(|e| e.into_inner()).clone();
        if self.clock.scale == 0.0 || generated.elapsed() < Duration::from_millis(100) {
            return current;
        }
        let fresh = Arc::new(World::generate_at(&self.config, self.clock.now()));
        *self.world.write().unwrap_or_else(|e| e.into_inner()) = (fresh.clone(), Instant::now());
        fresh
    }

    fn new(config: &SimConfig) -> SimState {
        let clock = SimClock::new(config);
        SimState {
            world: RwLock::new((Arc::new(World::generate_at(config, clock.now())), Instant::now())),
            config: config.clone(),
            clock,
            seed: config.seed,
            keys: RwLock::new(
                config
                    .vendors
                    .iter()
                    .map(|v| {
                        let entry = KeyEntry {
                            vendor_id: v.vendor_id.clone(),
                            secret: v.secret_key.expose().to_string(),
                            expires_on: v.key_issued_on.map(|d| d + chrono::Duration::days(180)),
                            allowed_ips: v.allowed_ips.clone(),
                            inactive: false,
                        };
                        (v.access_key.clone(), entry)
                    })
                    .collect(),
            ),
            clock_skew_secs: config.clock_skew_secs,
            rate_limit_per_second: config.rate_limit_per_second,
            faults: config.faults.clone(),
            used_signatures: Mutex::new(HashMap::new()),
            traffic: Mutex::new(HashMap::new()),
            blocked_until: Mutex::new(HashMap::new()),
            faults_injected: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records a vendor's call: its number, and whether it must be answered 429 (over the rate, or in
    /// a 429 burst).
    fn record_call(&self, vendor: &str) -> (u64, bool) {
        let now = Instant::now();
        let mut traffic = self.traffic.lock().unwrap_or_else(|e| e.into_inner());
        let t = traffic.entry(vendor.to_string()).or_default();
        while t.recent.front().is_some_and(|&at| now.duration_since(at) >= Duration::from_secs(1)) {
            t.recent.pop_front();
        }
        t.recent.push_back(now);
        t.peak_per_second = t.peak_per_second.max(t.recent.len());
        let call = t.calls;
        t.calls += 1;
        let in_burst = self.faults.burst_429.is_some_and(|b| b.every > 0 && call % b.every < b.length);
        let blocked =
            self.blocked_until.lock().unwrap_or_else(|e| e.into_inner()).get(vendor).is_some_and(|&until| now < until);
        let over_rate = self.rate_limit_per_second > 0 && t.recent.len() > self.rate_limit_per_second as usize;
        (call, in_burst || over_rate || blocked)
    }

    /// Whether a box is one the `unreadable_record_rate` fault spoils in every answer (decided by its id).
    fn unreadable(&self, vendor: &str, shipment_box_id: i64) -> bool {
        let rate = self.faults.unreadable_record_rate;
        rate > 0.0 && self.roll(vendor, u64::MAX, shipment_box_id as u64) < rate
    }

    /// A box as served: [`box_json`], spoiled when the `unreadable_record_rate` fault picks it (an
    /// amount that is not a number, in lists and look-ups alike).
    fn served_box(&self, vendor: &str, b: &ShipmentBox, format: ApiFormat) -> Value {
        let mut record = box_json(b, format);
        if self.unreadable(vendor, b.shipment_box_id) {
            record["orderItems"][0]["salesPrice"] = json!("12,900원");
            self.injected("unreadable_record");
        }
        record
    }

    fn injected(&self, kind: &'static str) {
        *self.faults_injected.lock().unwrap_or_else(|e| e.into_inner()).entry(kind).or_default() += 1;
    }

    /// A deterministic draw in `[0, 1)` for one decision about one call.
    fn roll(&self, vendor: &str, call: u64, decision: u64) -> f64 {
        let vendor_hash =
            vendor.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3));
        crate::prng::SplitMix64::fork(self.seed, &[vendor_hash, call, decision]).unit()
    }

    /// The fault (if any) this call gets.
    fn fault(&self, vendor: &str, call: u64) -> Option<Fault> {
        let f = &self.faults;
        [
            (Fault::ServerError, f.server_error_rate),
            (Fault::Slow, f.slow_rate),
            (Fault::Reset, f.reset_rate),
            (Fault::Malformed, f.malformed_json_rate),
        ]
        .into_iter()
        .enumerate()
        .find(|(i, (_, rate))| *rate > 0.0 && self.roll(vendor, call, *i as u64) < *rate)
        .map(|(_, (fault, _))| fault)
    }

    fn count(&self, vendor: &str, endpoint: &str, status: StatusCode) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        *stats.entry((vendor.to_string(), endpoint.to_string(), status.as_u16())).or_default() += 1;
    }
}

/// The vendor whose key signed the request, handed from the gateway to the handlers.
#[derive(Clone)]
struct AuthenticatedVendor(String);

/// The vendor's call number, for record-level faults in handlers.
#[derive(Clone, Copy)]
struct CallNumber(u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    ServerError,
    Slow,
    Reset,
    Malformed,
}

/// Coupang's gateway gives up on a call after this long unless `X-EXTENDED-TIMEOUT` asks for more.
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(3);

/// Gateway auth errors have a string `code` (coupang-api.md §3).
fn gateway_error(status: StatusCode, message: &str) -> Response {
    let transaction_id = format!("sim-{}", Utc::now().timestamp_nanos_opt().unwrap_or_default());
    (status, Json(json!({"code": "ERROR", "message": message, "transactionId": transaction_id}))).into_response()
}

/// Business errors have a numeric `code`.
fn business_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"code": status.as_u16(), "message": message}))).into_response()
}

async fn gateway(
    State(state): State<Arc<SimState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let endpoint = endpoint_name(request.uri().path());
    let (vendor, response) = match authenticate(&state, request.method(), request.uri(), request.headers()) {
        Err(message) => ("-".to_string(), gateway_error(StatusCode::UNAUTHORIZED, message)),
        Ok(key) => {
            let vendor = key.vendor_id.clone();
            let today = Utc::now().with_timezone(&etl_core::time::kst()).date_naive();
            let response = if !key.allowed_ips.is_empty() && !key.allowed_ips.contains(&peer.ip()) {
                gateway_error(StatusCode::FORBIDDEN, &format!("Not allowed IP: {}", peer.ip()))
            } else if key.inactive {
                gateway_error(StatusCode::UNAUTHORIZED, "Request is not authorized. (the access key is not active)")
            } else if key.expires_on.is_some_and(|expiry| today >= expiry) {
                gateway_error(StatusCode::UNAUTHORIZED, "Request is not authorized. (the access key has expired)")
            } else {
                let (call, limited) = state.record_call(&vendor);
                if limited {
                    too_many_requests(&state.faults)
                } else {
                    request.extensions_mut().insert(AuthenticatedVendor(vendor.clone()));
                    request.extensions_mut().insert(CallNumber(call));
                    with_fault(&state, state.fault(&vendor, call), request, next).await
                }
            };
            (vendor, response)
        }
    };
    state.count(&vendor, endpoint, response.status());
    response
}

/// Runs the handler, spoiling its answer as `fault` says.
async fn with_fault(state: &SimState, fault: Option<Fault>, request: Request, next: Next) -> Response {
    if let Some(fault) = fault {
        state.injected(match fault {
            Fault::ServerError => "server_error",
            Fault::Slow => "slow",
            Fault::Reset => "reset",
            Fault::Malformed => "malformed_json",
        });
    }
    match fault {
        None => next.run(request).await,
        Some(Fault::ServerError) => business_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        Some(Fault::Slow) => {
            let delay = Duration::from_millis(state.faults.slow_ms);
            if delay > GATEWAY_TIMEOUT && !request.headers().contains_key("x-extended-timeout") {
                tokio::time::sleep(GATEWAY_TIMEOUT).await;
                return gateway_error(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout");
            }
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Some(fault @ (Fault::Reset | Fault::Malformed)) => {
            let (mut parts, body) = next.run(request).await.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            let half = bytes.slice(..bytes.len() / 2);
            let body = if fault == Fault::Reset {
                // The connection dies mid-body: hyper aborts it when the body stream fails.
                let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> =
                    vec![Ok(half), Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"))];
                axum::body::Body::from_stream(futures::stream::iter(chunks))
            } else {
                axum::body::Body::from(half)
            };
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            Response::from_parts(parts, body)
        }
    }
}

fn too_many_requests(faults: &FaultConfig) -> Response {
    let mut response = business_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
    if let Some(seconds) = faults.retry_after_secs {
        if let Ok(value) = seconds.to_string().parse() {
            response.headers_mut().insert("retry-after", value);
        }
    }
    response
}

fn endpoint_name(path: &str) -> &'static str {
    if path.contains("/ordersheets") {
        "ordersheets"
    } else if path.ends_with("/returnRequests") {
        "returnRequests"
    } else if path.ends_with("/revenue-history") {
        "revenue-history"
    } else {
        "other"
    }
}

/// The vendor whose key signed the request, or the gateway's 401 message.
fn authenticate(
    state: &SimState,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<KeyEntry, &'static str> {
    let unauthorized = Err;
    let Some(header) = headers.get("authorization").and_then(|h| h.to_str().ok()) else {
        return unauthorized("Request is not authorized.");
    };
    let Some(auth) = cea::parse_authorization(header) else {
        return unauthorized("HMAC format is invalid.");
    };
    let Some(key) = state.keys.read().unwrap_or_else(|e| e.into_inner()).get(&auth.access_key).cloned() else {
        return unauthorized("Invalid signature.");
    };
    let now = Utc::now().timestamp();
    match cea::parse_signed_date(&auth.signed_date) {
        Some(at) if (now - at.timestamp()).abs() <= state.clock_skew_secs => {}
        _ => return unauthorized("Specified signature is expired."),
    }
    let expected =
        cea::signature(&key.secret, &auth.signed_date, method.as_str(), uri.path(), uri.query().unwrap_or(""));
    if !cea::signatures_equal(&expected, &auth.signature) {
        return unauthorized("Invalid signature.");
    }
    let mut used = state.used_signatures.lock().unwrap_or_else(|e| e.into_inner());
    used.retain(|_, forget_at| *forget_at > now);
    if used.insert(auth.signature, now + 2 * state.clock_skew_secs + 1).is_some() {
        return unauthorized("Specified signature is expired.");
    }
    Ok(key)
}

async fn not_found() -> Response {
    business_error(StatusCode::NOT_FOUND, "Not Found")
}

/// The simulated clock, for clients that follow simulated time.
async fn clock(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({"now": state.clock.now().to_rfc3339(), "time_scale": state.clock.scale}))
}

async fn stats(State(state): State<Arc<SimState>>) -> Json<Value> {
    let stats = state.stats.lock().unwrap_or_else(|e| e.into_inner());
    let rows: Vec<Value> = stats
        .iter()
        .map(|((vendor, endpoint, status), count)| {
            json!({"vendor_id": vendor, "endpoint": endpoint, "status": status, "count": count})
        })
        .collect();
    Json(json!(rows))
}

/// `createdAtFrom`/`createdAtTo` arrive as `yyyy-MM-dd` optionally followed by an offset (`+09:00`,
/// which a form decoder may have turned into ` 09:00`): the day is what selects.
fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

/// One vendor's part of a world snapshot.
struct VendorView {
    world: Arc<World>,
    vendor_id: String,
}

impl std::ops::Deref for VendorView {
    type Target = VendorWorld;
    fn deref(&self) -> &VendorWorld {
        &self.world.vendors[&self.vendor_id]
    }
}

/// The signer's vendor world now, or the 404 Coupang gives for a path of another vendor.
fn vendor_world(state: &SimState, path_vendor: &str, signer: &str) -> Result<VendorView, Refusal> {
    if path_vendor != signer {
        return Err(Refusal(StatusCode::NOT_FOUND, "vendorId does not belong to this access key.".into()));
    }
    let world = state.world();
    if !world.vendors.contains_key(path_vendor) {
        return Err(Refusal(StatusCode::NOT_FOUND, "Not Found".into()));
    }
    Ok(VendorView { world, vendor_id: path_vendor.to_string() })
}

/// A business error answer (`{"code":400,"message":…}`), returned with `?` from handlers.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        business_error(self.0, &self.1)
    }
}

fn bad_request(message: &str) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message.to_string())
}

type Answer = Result<Response, Refusal>;

/// `createdAtFrom`/`createdAtTo` of a day query, checked against the 31-day limit.
fn day_range(
    params: &HashMap<String, String>,
    from_key: &str,
    to_key: &str,
) -> Result<(NaiveDate, NaiveDate), Refusal> {
    let (Some(from), Some(to)) =
        (params.get(from_key).and_then(|s| parse_day(s)), params.get(to_key).and_then(|s| parse_day(s)))
    else {
        return Err(bad_request(&format!("{from_key} and {to_key} are required as yyyy-MM-dd.")));
    };
    if to < from || (to - from).num_days() >= MAX_RANGE_DAYS {
        return Err(bad_request("endTime-startTime range should less than31."));
    }
    Ok((from, to))
}

/// A minute of Korea time: `yyyy-MM-ddTHH:mm`, optionally followed by an offset.
fn parse_minute(text: &str) -> Option<DateTime<FixedOffset>> {
    let naive = chrono::NaiveDateTime::parse_from_str(text.get(..16)?, "%Y-%m-%dT%H:%M").ok()?;
    naive.and_local_timezone(etl_core::time::kst()).single()
}

fn page_size(params: &HashMap<String, String>) -> Result<usize, Refusal> {
    match params.get("maxPerPage").map(|s| s.parse::<usize>()) {
        None => Ok(MAX_PER_PAGE),
        Some(Ok(n)) if (1..=MAX_PER_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(bad_request("maxPerPage must be between 1 and 50.")),
    }
}

/// Pages `records` (already in a stable order) by a token that is the index of the next record.
fn page_of<T>(records: Vec<T>, token: Option<&String>, per_page: usize) -> Result<(Vec<T>, String), Refusal> {
    let start = match token.map(String::as_str) {
        None | Some("") => 0,
        Some(t) => t.parse::<usize>().map_err(|_| bad_request("nextToken is invalid."))?,
    };
    let total = records.len();
    let page: Vec<T> = records.into_iter().skip(start).take(per_page).collect();
    let next = if start + page.len() < total { (start + page.len()).to_string() } else { String::new() };
    Ok((page, next))
}

fn ok_list(data: Vec<Value>, next_token: &str) -> Response {
    Json(json!({"code": 200, "message": "OK", "data": data, "nextToken": next_token})).into_response()
}

async fn ordersheets(
    State(state): State<Arc<SimState>>,
    matched: MatchedPath,
    Path(vendor_id): Path<String>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
    axum::Extension(CallNumber(call)): axum::Extension<CallNumber>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let vendor = vendor_world(&state, &vendor_id, &signer)?;
    let Some(status) = params.get("status").and_then(|s| BoxStatus::parse(s)) else {
        return Err(bad_request(
            "status is required: ACCEPT, INSTRUCT, DEPARTURE, DELIVERING, FINAL_DELIVERY or NONE_TRACKING.",
        ));
    };
    let in_status = |b: &&ShipmentBox| b.status == status;
    match params.get("searchType").map(String::as_str) {
        // Minute window: at most 24 hours, no paging.
        Some("timeFrame") => {
            let (Some(from), Some(to)) = (
                params.get("createdAtFrom").and_then(|s| parse_minute(s)),
                params.get("createdAtTo").and_then(|s| parse_minute(s)),
            ) else {
                return Err(bad_request("createdAtFrom and createdAtTo are required as yyyy-MM-ddTHH:mm."));
            };
            if to < from || to - from > chrono::Duration::hours(MAX_TIME_FRAME_HOURS) {
                return Err(bad_request("searchType=timeFrame range should be less than 24 hours."));
            }
            let until = to + chrono::Duration::seconds(59);
            let data = vendor
                .boxes
                .iter()
                .filter(in_status)
                .filter(|b| b.listed && b.ordered_at >= from && b.ordered_at <= until)
                .map(|b| state.served_box(&vendor_id, b, format_of(&matched)))
                .collect();
            Ok(ok_list(data, ""))
        }
        Some(other) => Err(bad_request(&format!("searchType {other} is not supported."))),
        None => {
            let (from, to) = day_range(&params, "createdAtFrom", "createdAtTo")?;
            let per_page = page_size(&params)?;
            // nextToken is the shipment box id to continue from: stable while statuses change.
            let start_from = match params.get("nextToken").map(String::as_str) {
                None | Some("") => i64::MIN,
                Some(token) => token.parse::<i64>().map_err(|_| bad_request("nextToken is invalid."))?,
            };
            let matching: Vec<&ShipmentBox> = vendor
                .boxes
                .iter()
                .filter(in_status)
                .filter(|b| b.listed && (from..=to).contains(&b.ordered_at.date_naive()))
                .collect();
            let mut start = matching.partition_point(|b| b.shipment_box_id < start_from);
            // Fault: a later page starts with the previous page's last record again.
            let faults = &state.faults;
            if start > 0
                && faults.repeated_record_rate > 0.0
                && state.roll(&vendor_id, call, 100) < faults.repeated_record_rate
            {
                start -= 1;
                state.injected("repeated_record");
            }
            let page: Vec<Value> = matching[start..]
                .iter()
                .take(per_page)
                .map(|b| {
                    let mut record = state.served_box(&vendor_id, b, format_of(&matched));
                    // Fault: this response lacks a required field of the record.
                    let roll = state.roll(&vendor_id, call, b.shipment_box_id as u64);
                    if faults.missing_field_rate > 0.0 && roll < faults.missing_field_rate {
                        if let Some(object) = record.as_object_mut() {
                            object.remove("paidAt");
                            state.injected("missing_field");
                        }
                    }
                    record
                })
                .collect();
            let next_token = matching.get(start + per_page).map(|b| b.shipment_box_id.to_string()).unwrap_or_default();
            Ok(ok_list(page, &next_token))
        }
    }
}

async fn ordersheet(
    State(state): State<Arc<SimState>>,
    matched: MatchedPath,
    Path((vendor_id, shipment_box_id)): Path<(String, String)>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
) -> Answer {
    let vendor = vendor_world(&state, &vendor_id, &signer)?;
    let id = shipment_box_id.parse::<i64>().unwrap_or(-1);
    match vendor.boxes.iter().find(|b| b.shipment_box_id == id) {
        Some(b) => {
            let data = state.served_box(&vendor_id, b, format_of(&matched));
            Ok(Json(json!({"code": 200, "message": "OK", "data": data})).into_response())
        }
        None => Err(bad_request(&format!("shipmentBoxId {shipment_box_id} was not found."))),
    }
}

async fn order(
    State(state): State<Arc<SimState>>,
    matched: MatchedPath,
    Path((vendor_id, order_id)): Path<(String, String)>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
) -> Answer {
    let vendor = vendor_world(&state, &vendor_id, &signer)?;
    let id = order_id.parse::<i64>().unwrap_or(-1);
    let boxes: Vec<Value> = vendor
        .boxes
        .iter()
        .filter(|b| b.order_id == id)
        .map(|b| state.served_box(&vendor_id, b, format_of(&matched)))
        .collect();
    if boxes.is_empty() {
        return Err(bad_request(&format!("orderId {order_id} was not found.")));
    }
    Ok(Json(json!({"code": 200, "message": "OK", "data": boxes})).into_response())
}

/// Cancels and returns. This world has none yet, so the lists are empty, but parameters, limits and
/// envelopes are Coupang's.
async fn return_requests(
    State(state): State<Arc<SimState>>,
    matched: MatchedPath,
    Path(vendor_id): Path<String>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let vendor = vendor_world(&state, &vendor_id, &signer)?;
    let (from, to) = day_range(&params, "createdAtFrom", "createdAtTo")?;
    let status = params.get("status").map(String::as_str);
    let wanted = match (params.get("cancelType").map(String::as_str).unwrap_or("RETURN"), status) {
        ("RETURN", Some(code @ ("RU" | "UC" | "CC" | "PR"))) => (ReceiptKind::Return, Some(code)),
        ("RETURN", _) => return Err(bad_request("status must be RU, UC, CC or PR.")),
        // Cancels, including those of orders still ACCEPT, are listed only this way.
        ("CANCEL", None) => (ReceiptKind::Cancel, None),
        ("CANCEL", Some(_)) => return Err(bad_request("status is not allowed with cancelType=CANCEL.")),
        _ => return Err(bad_request("cancelType must be RETURN or CANCEL.")),
    };
    let per_page = page_size(&params)?;
    // Selected by receipt (request) day, not by modification.
    let receipts: Vec<(&ShipmentBox, &Receipt)> = vendor
        .boxes
        .iter()
        .flat_map(|b| b.receipts.iter().map(move |r| (b, r)))
        .filter(|(_, r)| r.kind == wanted.0 && wanted.1.is_none_or(|code| r.status_code() == code))
        .filter(|(_, r)| (from..=to).contains(&r.created_at.date_naive()))
        .collect();
    // One receipt per id: an order split over two boxes has one receipt whose items name their boxes.
    let format = format_of(&matched);
    let mut merged: Vec<Value> = Vec::new();
    let mut position: HashMap<i64, usize> = HashMap::new();
    for (b, r) in receipts {
        let json = receipt_json(b, r, format);
        match position.get(&r.receipt_id) {
            Some(&i) => {
                let extra_units = json["cancelCountSum"].as_i64().unwrap_or(0);
                let target = &mut merged[i];
                if let (Some(items), Some(more)) =
                    (target["returnItems"].as_array_mut(), json["returnItems"].as_array())
                {
                    items.extend(more.iter().cloned());
                }
                target["cancelCountSum"] = json!(target["cancelCountSum"].as_i64().unwrap_or(0) + extra_units);
            }
            None => {
                position.insert(r.receipt_id, merged.len());
                merged.push(json);
            }
        }
    }
    let (page, next) = page_of(merged, params.get("nextToken"), per_page)?;
    Ok(ok_list(page, &next))
}

/// A cancel or return receipt as returnRequests serves it.
fn receipt_json(b: &ShipmentBox, r: &Receipt, format: ApiFormat) -> Value {
    let items: Vec<Value> = r
        .units
        .iter()
        .filter_map(|(vendor_item_id, units)| {
            let line = b.lines.iter().find(|l| l.product.vendor_item_id == *vendor_item_id)?;
            Some(json!({
                "vendorItemId": vendor_item_id, "vendorItemName": line.product.name, "purchaseCount": line.quantity,
                "cancelCount": units, "shipmentBoxId": b.shipment_box_id, "sellerProductId": line.product.seller_product_id,
            }))
        })
        .collect();
    let kind = if r.kind == ReceiptKind::Cancel { "CANCEL" } else { "RETURN" };
    json!({
        "receiptId": r.receipt_id,
        "orderId": b.order_id,
        "paymentId": b.order_id + 7_000_000_000_000,
        "receiptType": kind,
        "receiptStatus": r.receipt_status(),
        "createdAt": format.time(r.created_at),
        "modifiedAt": format.time(r.completed_at.unwrap_or(r.created_at)),
        "cancelCountSum": r.units.iter().map(|(_, n)| n).sum::<i64>(),
        "returnItems": items,
        "faultByType": "CUSTOMER",
        "reasonCode": if r.kind == ReceiptKind::Cancel { "CHANGEMIND" } else { "DEFECT" },
        "returnShippingCharge": format.money(if r.kind == ReceiptKind::Return { -5_000 } else { 0 }),
        "completeConfirmDate": r.completed_at.map(|t| format.time(t)).unwrap_or_default(),
    })
}

/// Revenue rows of purchase-confirmed orders, by recognition (confirmation) day.
async fn revenue_history(
    State(state): State<Arc<SimState>>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let vendor_id = params.get("vendorId").cloned().unwrap_or_default();
    let vendor = vendor_world(&state, &vendor_id, &signer)?;
    let (from, to) = day_range(&params, "recognitionDateFrom", "recognitionDateTo")?;
    let today = Utc::now().with_timezone(&etl_core::time::kst()).date_naive();
    if to >= today {
        return Err(bad_request("recognitionDateTo must be before today."));
    }
    if !params.contains_key("token") {
        return Err(bad_request("token is required."));
    }
    let per_page = page_size(&params)?;
    // One row per order and sale type: the boxes of a split order are merged back into their order.
    let mut orders: Vec<ShipmentBox> = Vec::new();
    let mut position: HashMap<i64, usize> = HashMap::new();
    for b in &vendor.boxes {
        match position.get(&b.order_id) {
            Some(&i) => {
                let order = &mut orders[i];
                order.lines.extend(b.lines.iter().cloned());
                order.shipping_price += b.shipping_price;
                order.remote_price = order.remote_price.or(b.remote_price);
            }
            None => {
                position.insert(b.order_id, orders.len());
                orders.push(b.clone());
            }
        }
    }
    let mut rows: Vec<(NaiveDate, i64, Value)> =
        orders.iter().flat_map(revenue_rows).filter(|(day, _, _)| (from..=to).contains(day)).collect();
    rows.sort_by_key(|(day, order, _)| (*day, *order));
    let (page, next) = page_of(rows, params.get("token"), per_page)?;
    let data: Vec<Value> = page.into_iter().map(|(_, _, row)| row).collect();
    let has_next = !next.is_empty();
    Ok(Json(json!({"code": 200, "message": "OK", "data": data, "hasNext": has_next, "nextToken": next}))
        .into_response())
}

/// A SALE row of revenue-history: plain integer won, recognised on the confirmation day.
/// The revenue-history rows an order produces, with their recognition day: a SALE row at purchase
/// confirmation; a SALE row with `items: []` when it was cancelled or returned whole before confirmation;
/// a REFUND row (item amounts positive, deliveryFee negative) when it was returned after confirmation.
fn revenue_rows(b: &ShipmentBox) -> Vec<(NaiveDate, i64, Value)> {
    let delivery = b.shipping_price + b.remote_price.unwrap_or(0);
    let row = |sale_type: &str, day: NaiveDate, delivery: i64, items: Vec<Value>| {
        let fee = delivery * 33 / 1000;
        json!({
            "orderId": b.order_id,
            "saleType": sale_type,
            "saleDate": b.paid_date().to_string(),
            "recognitionDate": day.to_string(),
            "settlementDate": (day + chrono::Duration::days(30)).to_string(),
            "deliveryFee": {"amount": delivery, "fee": fee, "feeVat": fee / 10, "settlementAmount": delivery - fee - fee / 10},
            "items": items,
        })
    };
    // Units sold at confirmation: ordered minus those cancelled before (returns come later, as REFUND).
    let items = |units: &dyn Fn(&crate::world::OrderLine) -> i64| -> Vec<Value> {
        b.lines
            .iter()
            .filter(|line| units(line) > 0)
            .map(|line| {
                let n = units(line);
                let price = line.product.unit_price * n;
                let (seller, downloadable, coupang) =
                    (line.coupon.instant * n, line.coupon.downloadable * n, line.coupon.coupang * n);
                let sale = price - seller - downloadable;
                let fee = sale * 108 / 1000;
                json!({
                    "taxType": "TAX", "productId": line.product.seller_product_id + 5_000_000_000,
                    "productName": line.product.name, "vendorItemId": line.product.vendor_item_id,
                    "vendorItemName": line.product.name, "salePrice": price, "quantity": n,
                    "coupangDiscountCoupon": coupang, "sellerDiscountCoupon": seller, "downloadableCoupon": downloadable,
                    "saleAmount": sale, "serviceFee": fee, "serviceFeeVat": fee / 10,
                    "settlementAmount": sale - fee - fee / 10,
                })
            })
            .collect()
    };
    let mut rows = Vec::new();
    if let Some(confirmed) = b.confirmed_at {
        let day = confirmed.date_naive();
        rows.push((day, b.order_id, row("SALE", day, delivery, items(&|l| l.quantity - l.cancelled))));
    }
    if let Some(at) = b.zero_sale_at {
        rows.push((at.date_naive(), b.order_id, row("SALE", at.date_naive(), 0, Vec::new())));
    }
    if let Some(at) = b.refund_at {
        rows.push((at.date_naive(), b.order_id, row("REFUND", at.date_naive(), -delivery, items(&|l| l.returned))));
    }
    rows
}

/// The response formats of Coupang's API versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiFormat {
    /// v5/v6: money objects, ISO-8601 times with offset.
    Current,
    /// v4: plain integer won, Korea time without offset.
    V4,
}

fn format_of(matched: &MatchedPath) -> ApiFormat {
    if matched.as_str().contains("/api/v4/") {
        ApiFormat::V4
    } else {
        ApiFormat::Current
    }
}

impl ApiFormat {
    fn money(self, won: i64) -> Value {
        match self {
            ApiFormat::Current => json!({"currencyCode": "KRW", "units": won, "nanos": 0}),
            ApiFormat::V4 => json!(won),
        }
    }

    fn time(self, t: DateTime<FixedOffset>) -> String {
        match self {
            ApiFormat::Current => t.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            ApiFormat::V4 => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        }
    }

    /// `confirmDate` is `yyyy-MM-dd HH:mm:ss` in v4.
    fn confirm_time(self, t: DateTime<FixedOffset>) -> String {
        match self {
            ApiFormat::Current => self.time(t),
            ApiFormat::V4 => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }
}

/// An order sheet as Coupang serves it in `format`, personal data included.
fn box_json(b: &ShipmentBox, format: ApiFormat) -> Value {
    let money = |won| format.money(won);
    let time = |t| format.time(t);
    let coupon = |per_unit: i64| if b.confirmed_at.is_some() { per_unit } else { 0 };
    let items: Vec<Value> = b
        .lines
        .iter()
        .map(|line| {
            json!({
                "vendorItemPackageId": 0,
                "vendorItemPackageName": line.product.name,
                "productId": line.product.seller_product_id + 5_000_000_000,
                "vendorItemId": line.product.vendor_item_id,
                "vendorItemName": line.product.name,
                "shippingCount": line.quantity,
                "salesPrice": money(line.product.unit_price),
                "orderPrice": money(line.order_price()),
                // The simulator reveals coupons with the purchase confirmation, as the domain rules assume.
                // Coupang's v4 examples publish it as null in every item; clients read the parts below.
                "discountPrice": if format == ApiFormat::V4 { Value::Null } else { money(coupon(line.coupon.total()) * line.quantity) },
                "instantCouponDiscount": money(coupon(line.coupon.instant) * line.quantity),
                "downloadableCouponDiscount": money(coupon(line.coupon.downloadable) * line.quantity),
                "coupangDiscount": money(coupon(line.coupon.coupang) * line.quantity),
                "externalVendorSkuCode": "",
                "sellerProductId": line.product.seller_product_id,
                "sellerProductName": line.product.name,
                "sellerProductItemName": "단일상품",
                "cancelCount": line.cancelled,
                "holdCountForCancel": line.cancel_pending,
                "estimatedShippingDate": b.paid_at.date_naive().succ_opt().map(|d| d.to_string()),
                "confirmDate": b.confirmed_at.map(|t| format.confirm_time(t)),
                "deliveryChargeTypeName": if b.shipping_price == 0 { "무료" } else { "유료" },
                "canceled": line.cancelled == line.quantity,
            })
        })
        .collect();
    json!({
        "shipmentBoxId": b.shipment_box_id,
        "orderId": b.order_id,
        "orderedAt": time(b.ordered_at),
        "orderer": {"name": b.orderer_name, "email": "", "safeNumber": "0502-0000-0000"},
        "paidAt": time(b.paid_at),
        "status": b.status.as_str(),
        "shippingPrice": money(b.shipping_price),
        "remotePrice": b.remote_price.map(money),
        "remoteArea": b.remote_price.is_some(),
        "parcelPrintMessage": "문 앞",
        "splitShipping": b.split_shipping,
        "ableSplitShipping": false,
        "receiver": {"name": b.orderer_name, "safeNumber": "0502-0000-0000", "addr1": b.receiver_address, "addr2": "101호", "postCode": "06236"},
        "orderItems": items,
        "deliveryCompanyName": "CJ 대한통운",
        "invoiceNumber": if b.in_transit_at.is_some() { json!(format!("{}", b.shipment_box_id % 1_000_000_000_000)) } else { json!("") },
        "inTrasitDateTime": b.in_transit_at.map(time).unwrap_or_default(),
        "deliveredDate": b.delivered_at.map(time).unwrap_or_default(),
        "refer": "아이폰앱",
        "shipmentType": "THIRD_PARTY",
    })
}
