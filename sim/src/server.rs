//! The simulated gateway: CEA signature check, then the order-sheet endpoint with Coupang's
//! parameters, limits, paging and error bodies (coupang-api.md §1, §3, §4).

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use etl_core::{cea, Shutdown};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

use crate::config::SimConfig;
use crate::world::{BoxStatus, ShipmentBox, World};

const ORDERSHEETS_V5: &str = "/v2/providers/openapi/apis/api/v5/vendors/{vendor_id}/ordersheets";
const MAX_PER_PAGE: usize = 50;
/// "≤ 31 days": a window may span at most 31 calendar days, both ends included.
const MAX_RANGE_DAYS: i64 = 31;

/// Requests the gateway answered, by (vendor id or "-", endpoint, HTTP status), for tests to assert on.
pub type RequestStats = BTreeMap<(String, String, u16), u64>;

struct SimState {
    world: World,
    /// access key → (vendor id, secret key)
    keys: HashMap<String, (String, String)>,
    clock_skew_secs: i64,
    /// Signatures already used, with when they may be forgotten (once their signed-date is stale anyway).
    used_signatures: Mutex<HashMap<String, i64>>,
    stats: Mutex<RequestStats>,
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
        Ok(Simulator {
            addr,
            state,
            shutdown,
            task,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn world(&self) -> &World {
        &self.state.world
    }

    pub fn stats(&self) -> RequestStats {
        self.state
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Serves the simulator on `listener` until `shutdown` (what `coupang-etl sim` runs).
pub async fn serve(
    config: &SimConfig,
    listener: TcpListener,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    serve_state(Arc::new(SimState::new(config)), listener, shutdown).await
}

async fn serve_state(
    state: Arc<SimState>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let api = Router::new()
        .route(ORDERSHEETS_V5, get(ordersheets))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), gateway));
    let app = Router::new()
        .route("/sim/stats", get(stats))
        .merge(api)
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

impl SimState {
    fn new(config: &SimConfig) -> SimState {
        SimState {
            world: World::generate(config),
            keys: config
                .vendors
                .iter()
                .map(|v| {
                    (
                        v.access_key.clone(),
                        (v.vendor_id.clone(), v.secret_key.expose().to_string()),
                    )
                })
                .collect(),
            clock_skew_secs: config.clock_skew_secs,
            used_signatures: Mutex::new(HashMap::new()),
            stats: Mutex::new(BTreeMap::new()),
        }
    }

    fn count(&self, vendor: &str, endpoint: &str, status: StatusCode) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        *stats
            .entry((vendor.to_string(), endpoint.to_string(), status.as_u16()))
            .or_default() += 1;
    }
}

/// The vendor whose key signed the request, handed from the gateway to the handlers.
#[derive(Clone)]
struct AuthenticatedVendor(String);

/// Gateway auth errors have a string `code` (coupang-api.md §3).
fn gateway_error(status: StatusCode, message: &str) -> Response {
    let transaction_id = format!(
        "sim-{}",
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    (
        status,
        Json(json!({"code": "ERROR", "message": message, "transactionId": transaction_id})),
    )
        .into_response()
}

/// Business errors have a numeric `code`.
fn business_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "message": message})),
    )
        .into_response()
}

async fn gateway(State(state): State<Arc<SimState>>, mut request: Request, next: Next) -> Response {
    let endpoint = endpoint_name(request.uri().path());
    let (vendor, response) =
        match authenticate(&state, request.method(), request.uri(), request.headers()) {
            Ok(vendor) => {
                request
                    .extensions_mut()
                    .insert(AuthenticatedVendor(vendor.clone()));
                (vendor, next.run(request).await)
            }
            Err(message) => (
                "-".to_string(),
                gateway_error(StatusCode::UNAUTHORIZED, message),
            ),
        };
    state.count(&vendor, endpoint, response.status());
    response
}

fn endpoint_name(path: &str) -> &'static str {
    if path.ends_with("/ordersheets") {
        "ordersheets"
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
) -> Result<String, &'static str> {
    let unauthorized = Err;
    let Some(header) = headers.get("authorization").and_then(|h| h.to_str().ok()) else {
        return unauthorized("Request is not authorized.");
    };
    let Some(auth) = cea::parse_authorization(header) else {
        return unauthorized("HMAC format is invalid.");
    };
    let Some((vendor_id, secret)) = state.keys.get(&auth.access_key) else {
        return unauthorized("Invalid signature.");
    };
    let now = Utc::now().timestamp();
    match cea::parse_signed_date(&auth.signed_date) {
        Some(at) if (now - at.timestamp()).abs() <= state.clock_skew_secs => {}
        _ => return unauthorized("Specified signature is expired."),
    }
    let expected = cea::signature(
        secret,
        &auth.signed_date,
        method.as_str(),
        uri.path(),
        uri.query().unwrap_or(""),
    );
    if !cea::signatures_equal(&expected, &auth.signature) {
        return unauthorized("Invalid signature.");
    }
    let mut used = state
        .used_signatures
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    used.retain(|_, forget_at| *forget_at > now);
    if used
        .insert(auth.signature, now + 2 * state.clock_skew_secs + 1)
        .is_some()
    {
        return unauthorized("Specified signature is expired.");
    }
    Ok(vendor_id.clone())
}

async fn not_found() -> Response {
    business_error(StatusCode::NOT_FOUND, "Not Found")
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

async fn ordersheets(
    State(state): State<Arc<SimState>>,
    Path(vendor_id): Path<String>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let bad = |message: &str| business_error(StatusCode::BAD_REQUEST, message);
    if vendor_id != signer {
        return business_error(
            StatusCode::NOT_FOUND,
            "vendorId does not belong to this access key.",
        );
    }
    let Some(vendor) = state.world.vendors.get(&vendor_id) else {
        return business_error(StatusCode::NOT_FOUND, "Not Found");
    };
    if params.contains_key("searchType") {
        return bad("searchType=timeFrame is not simulated yet.");
    }
    let Some(status) = params.get("status").and_then(|s| BoxStatus::parse(s)) else {
        return bad("status is required: ACCEPT, INSTRUCT, DEPARTURE, DELIVERING, FINAL_DELIVERY or NONE_TRACKING.");
    };
    let (Some(from), Some(to)) = (
        params.get("createdAtFrom").and_then(|s| parse_day(s)),
        params.get("createdAtTo").and_then(|s| parse_day(s)),
    ) else {
        return bad("createdAtFrom and createdAtTo are required as yyyy-MM-dd.");
    };
    if to < from || (to - from).num_days() >= MAX_RANGE_DAYS {
        return bad("endTime-startTime range should less than31.");
    }
    let per_page = match params.get("maxPerPage").map(|s| s.parse::<usize>()) {
        None => MAX_PER_PAGE,
        Some(Ok(n)) if (1..=MAX_PER_PAGE).contains(&n) => n,
        Some(_) => return bad("maxPerPage must be between 1 and 50."),
    };
    // nextToken is the shipment box id to continue from: stable while statuses change.
    let start_after = match params.get("nextToken").map(String::as_str) {
        None | Some("") => i64::MIN,
        Some(token) => match token.parse::<i64>() {
            Ok(id) => id - 1,
            Err(_) => return bad("nextToken is invalid."),
        },
    };
    let mut matching = vendor.boxes.iter().filter(|b| {
        let day = b.ordered_at.date_naive();
        b.status == status && b.shipment_box_id > start_after && day >= from && day <= to
    });
    let page: Vec<Value> = matching.by_ref().take(per_page).map(box_json).collect();
    let next_token = matching
        .next()
        .map(|b| b.shipment_box_id.to_string())
        .unwrap_or_default();
    Json(json!({"code": 200, "message": "OK", "data": page, "nextToken": next_token}))
        .into_response()
}

fn money(won: i64) -> Value {
    json!({"currencyCode": "KRW", "units": won, "nanos": 0})
}

fn time(t: DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// A v5 order sheet as Coupang serves it, personal data included.
fn box_json(b: &ShipmentBox) -> Value {
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
                "discountPrice": money(0),
                "instantCouponDiscount": money(0),
                "downloadableCouponDiscount": money(0),
                "coupangDiscount": money(0),
                "externalVendorSkuCode": "",
                "sellerProductId": line.product.seller_product_id,
                "sellerProductName": line.product.name,
                "sellerProductItemName": "단일상품",
                "cancelCount": 0,
                "holdCountForCancel": 0,
                "estimatedShippingDate": b.paid_at.date_naive().succ_opt().map(|d| d.to_string()),
                "confirmDate": null,
                "deliveryChargeTypeName": if b.shipping_price == 0 { "무료" } else { "유료" },
                "canceled": false,
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
        "splitShipping": false,
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
