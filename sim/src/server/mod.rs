//! The simulated gateway: CEA signature check, key and IP rules, rate limit and faults, then the
//! endpoints with Coupang's parameters, limits, paging, envelopes and error bodies (coupang-api.md).
//! The world behind them is generated lazily, a vendor-day at a time ([`days`]).

mod days;
mod format;
mod orders;
mod returns;
mod revenue;

use axum::extract::{ConnectInfo, Request, State};
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
use crate::world::{ShipmentBox, World};
use days::Days;
use format::{business_error, ApiFormat, Refusal};

const ORDERSHEETS_V5: &str = "/v2/providers/openapi/apis/api/v5/vendors/{vendor_id}/ordersheets";
const ORDERSHEET_V5: &str = "/v2/providers/openapi/apis/api/v5/vendors/{vendor_id}/ordersheets/{shipment_box_id}";
const ORDER_V5: &str = "/v2/providers/openapi/apis/api/v5/vendors/{vendor_id}/{order_id}/ordersheets";
const RETURN_REQUESTS_V6: &str = "/v2/providers/openapi/apis/api/v6/vendors/{vendor_id}/returnRequests";
// The v4 paths still work on Coupang and answer in the v4 formats (plain won, Korea time without offset).
const ORDERSHEETS_V4: &str = "/v2/providers/openapi/apis/api/v4/vendors/{vendor_id}/ordersheets";
const ORDERSHEET_V4: &str = "/v2/providers/openapi/apis/api/v4/vendors/{vendor_id}/ordersheets/{shipment_box_id}";
const ORDER_V4: &str = "/v2/providers/openapi/apis/api/v4/vendors/{vendor_id}/{order_id}/ordersheets";
const RETURN_REQUESTS_V4: &str = "/v2/providers/openapi/apis/api/v4/vendors/{vendor_id}/returnRequests";
const RETURN_WITHDRAWALS_V4: &str = "/v2/providers/openapi/apis/api/v4/vendors/{vendor_id}/returnWithdrawRequests";
const EXCHANGE_REQUESTS_V4: &str = "/v2/providers/openapi/apis/api/v4/vendors/{vendor_id}/exchangeRequests";
const REVENUE_HISTORY_V1: &str = "/v2/providers/openapi/apis/api/v1/revenue-history";
const SETTLEMENT_HISTORIES_V1: &str = "/v2/providers/marketplace_openapi/apis/api/v1/settlement-histories";

/// Requests the gateway answered, by (vendor id or "-", endpoint, HTTP status), for tests to assert on.
pub type RequestStats = BTreeMap<(String, String, u16), u64>;

struct SimState {
    /// What the endpoints serve: vendor-days generated on demand at the simulated clock.
    days: Days,
    /// The whole world, generated only when a caller of [`Simulator::world`] asks, with when.
    world: Mutex<Option<(Arc<World>, Instant)>>,
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
        .route(ORDERSHEETS_V5, get(orders::ordersheets))
        .route(ORDERSHEET_V5, get(orders::ordersheet))
        .route(ORDER_V5, get(orders::order))
        .route(RETURN_REQUESTS_V6, get(returns::return_requests))
        .route(ORDERSHEETS_V4, get(orders::ordersheets))
        .route(ORDERSHEET_V4, get(orders::ordersheet))
        .route(ORDER_V4, get(orders::order))
        .route(RETURN_REQUESTS_V4, get(returns::return_requests))
        .route(RETURN_WITHDRAWALS_V4, get(returns::return_withdrawals))
        .route(EXCHANGE_REQUESTS_V4, get(returns::exchange_requests))
        .route(REVENUE_HISTORY_V1, get(revenue::revenue_history))
        .route(SETTLEMENT_HISTORIES_V1, get(revenue::settlement_histories))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), gateway));
    let app = Router::new()
        .route("/sim/stats", get(stats))
        .route("/sim/clock", get(clock))
        .route("/sim/truth", get(truth))
        .merge(api)
        .with_state(state);
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
    /// The whole world now, as the endpoints serve it. Generated again (same seed, same orders, later
    /// states) when the simulated clock has moved on, as often as a vendor-day ([`days::fresh_for`]).
    fn world(&self) -> Arc<World> {
        let mut cached = self.world.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some((world, generated)) if generated.elapsed() < days::fresh_for(self.clock.scale) => world.clone(),
            _ => {
                let fresh = Arc::new(World::generate_at(&self.config, self.clock.now()));
                *cached = Some((fresh.clone(), Instant::now()));
                fresh
            }
        }
    }

    fn new(config: &SimConfig) -> SimState {
        let clock = SimClock::new(config);
        SimState {
            days: Days::new(config),
            world: Mutex::new(None),
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

    /// A box as served: [`orders::box_body`], its times with microseconds for a share of boxes (picked
    /// by id, so every answer writes a box the same way), spoiled when the `unreadable_record_rate` fault
    /// picks it (an amount that is not a number, in lists and look-ups alike).
    fn served_box<'a>(&self, vendor: &str, b: &'a ShipmentBox, format: ApiFormat) -> orders::Served<'a> {
        let micros = self.config.lifecycle.fractional_time_rate;
        let format = if format == ApiFormat::Current
            && micros > 0.0
            && self.roll(vendor, u64::MAX - 1, b.shipment_box_id as u64) < micros
        {
            ApiFormat::CurrentWithMicros
        } else {
            format
        };
        let record = orders::Served::Written(orders::box_body(b, format));
        if self.unreadable(vendor, b.shipment_box_id) {
            self.injected("unreadable_record");
            return record.spoil(|record| record["orderItems"][0]["salesPrice"] = json!("12,900원"));
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
                    let response = with_fault(&state, state.fault(&vendor, call), request, next).await;
                    with_string_code(&state, &vendor, call, response).await
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

/// Some answers say `"code": "200"`, a string (coupang-api.md §3): a share of successful ones, by call.
async fn with_string_code(state: &SimState, vendor: &str, call: u64, response: Response) -> Response {
    let rate = state.config.lifecycle.string_code_rate;
    if response.status() != StatusCode::OK || rate <= 0.0 || state.roll(vendor, call, 200) >= rate {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut envelope) if envelope.get("code").is_some_and(Value::is_number) => {
            envelope["code"] = json!("200");
            state.injected("string_code");
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            axum::body::Body::from(envelope.to_string())
        }
        _ => axum::body::Body::from(bytes),
    };
    Response::from_parts(parts, body)
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
    } else if path.ends_with("/returnWithdrawRequests") {
        "returnWithdrawRequests"
    } else if path.ends_with("/exchangeRequests") {
        "exchangeRequests"
    } else if path.ends_with("/revenue-history") {
        "revenue-history"
    } else if path.ends_with("/settlement-histories") {
        "settlement-histories"
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

/// The ground truth at the simulated clock's moment, as CSV (`vendor_id,payment_date,orders,items,payment_amount`).
async fn truth(State(state): State<Arc<SimState>>) -> String {
    crate::truth::Truth::of(&state.world()).daily_csv()
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

/// The vendor index of the path's vendor, or the 404 Coupang gives for a path of another vendor.
fn vendor_of(state: &SimState, path_vendor: &str, signer: &str) -> Result<usize, Refusal> {
    if path_vendor != signer {
        return Err(Refusal(StatusCode::NOT_FOUND, "vendorId does not belong to this access key.".into()));
    }
    state.days.vendor(path_vendor).ok_or_else(|| Refusal(StatusCode::NOT_FOUND, "Not Found".into()))
}
