//! Cancels, returns, their withdrawals, and exchanges (coupang-api.md §5, §9).

use axum::extract::{MatchedPath, Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

use super::format::{
    bad_request, created_days, day_range, ok_list, page_by_key, page_size, token, Answer, ApiFormat, MAX_PER_PAGE,
};
use super::{vendor_of, AuthenticatedVendor, SimState};
use crate::lifecycle::LATEST_REQUEST_DAYS;
use crate::world::{day_of_order, Receipt, ReceiptKind, ShipmentBox};

/// Withdrawal and exchange lists take at most 7 days.
const MAX_SHORT_RANGE_DAYS: i64 = 7;
const MAX_WITHDRAWALS_PER_PAGE: usize = 100;

/// Receipts created on `from..=to` (by request day, not modification), one per receipt id: a split
/// order's receipt lists the items of both boxes, each naming its box.
pub(super) async fn return_requests(
    State(state): State<Arc<SimState>>,
    matched: MatchedPath,
    Path(vendor_id): Path<String>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let vendor = vendor_of(&state, &vendor_id, &signer)?;
    let (from, to) = created_days(&params, ("createdAtFrom", "createdAtTo"))?;
    let status = params.get("status").map(String::as_str);
    let (kind, code) = match (params.get("cancelType").map(String::as_str).unwrap_or("RETURN"), status) {
        ("RETURN", Some(code @ ("RU" | "UC" | "CC" | "PR"))) => (ReceiptKind::Return, Some(code)),
        ("RETURN", _) => return Err(bad_request("status must be RU, UC, CC or PR.")),
        // Cancels, including those of orders still ACCEPT, are listed only this way.
        ("CANCEL", None) => (ReceiptKind::Cancel, None),
        ("CANCEL", Some(_)) => return Err(bad_request("status is not allowed with cancelType=CANCEL.")),
        _ => return Err(bad_request("cancelType must be RETURN or CANCEL.")),
    };
    let per_page = page_size(&params, "maxPerPage", MAX_PER_PAGE)?;
    let start = token(&params, "nextToken")?;
    let format = ApiFormat::of_path(matched.as_str());
    let now = state.clock.now();
    let days = state.days.days_paid(from - Duration::days(LATEST_REQUEST_DAYS), to);
    let first_day = start.and_then(|t| day_of_order(t / 10)).map_or(days.start, |(_, d)| d.max(days.start));
    let wanted = |r: &Receipt| {
        r.kind == kind && code.is_none_or(|c| r.status_code() == c) && (from..=to).contains(&r.created_at.date_naive())
    };
    let receipts = (first_day..days.end).flat_map(|d| {
        let day = state.days.get(vendor, d, now);
        let begin = day.receipts.partition_point(|(id, _)| start.is_some_and(|s| *id < s));
        let page: Vec<(i64, Value)> = day.receipts[begin..]
            .iter()
            .filter_map(|(id, parts)| {
                let parts: Vec<(&ShipmentBox, &Receipt)> = parts
                    .iter()
                    .map(|&(b, r)| (&day.orders.boxes[b], &day.orders.boxes[b].receipts[r]))
                    .filter(|(_, r)| wanted(r))
                    .collect();
                (!parts.is_empty()).then(|| (*id, receipt_json(&parts, format)))
            })
            .take(per_page + 1)
            .collect();
        page
    });
    let (page, next) = page_by_key(receipts, start, per_page);
    Ok(ok_list(page, &next))
}

/// A cancel or return receipt as returnRequests serves it, from its part in each box.
fn receipt_json(parts: &[(&ShipmentBox, &Receipt)], format: ApiFormat) -> Value {
    let (b, r) = parts[0];
    let items: Vec<Value> = parts
        .iter()
        .flat_map(|(b, r)| {
            r.units.iter().filter_map(|(vendor_item_id, units)| {
                let line = b.lines.iter().find(|l| l.product.vendor_item_id == *vendor_item_id)?;
                Some(json!({
                    "vendorItemId": vendor_item_id, "vendorItemName": &*line.product.name, "purchaseCount": line.quantity,
                    "cancelCount": units, "shipmentBoxId": b.shipment_box_id, "sellerProductId": line.product.seller_product_id,
                }))
            })
        })
        .collect();
    let units: i64 = parts.iter().flat_map(|(_, r)| r.units.iter().map(|(_, n)| n)).sum();
    let kind = if r.kind == ReceiptKind::Cancel { "CANCEL" } else { "RETURN" };
    let reason = match (r.kind, r.by_seller) {
        (_, true) => "SOLDOUT",
        (ReceiptKind::Cancel, false) => "CHANGEMIND",
        (ReceiptKind::Return, false) => "DEFECT",
    };
    json!({
        "receiptId": r.receipt_id,
        "orderId": b.order_id,
        "paymentId": b.order_id + 7_000_000_000_000,
        "receiptType": kind,
        "receiptStatus": r.receipt_status(),
        "createdAt": format.time(r.created_at),
        "modifiedAt": format.time(r.completed_at.unwrap_or(r.created_at)),
        "cancelCountSum": units,
        "returnItems": items,
        "faultByType": if r.by_seller { "VENDOR" } else { "CUSTOMER" },
        "reasonCode": reason,
        "returnShippingCharge": format.money(if r.kind == ReceiptKind::Return && !r.by_seller { -5_000 } else { 0 }),
        "completeConfirmDate": r.completed_at.map(|t| format.time(t)).unwrap_or_default(),
    })
}

/// Requests the buyer withdrew on `dateFrom..=dateTo` (at most 7 days), paged by `pageIndex`.
pub(super) async fn return_withdrawals(
    State(state): State<Arc<SimState>>,
    Path(vendor_id): Path<String>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let vendor = vendor_of(&state, &vendor_id, &signer)?;
    let (from, to) =
        day_range(&params, ("dateFrom", "dateTo"), MAX_SHORT_RANGE_DAYS, "The maximum view duration is 7 days")?;
    let size = page_size(&params, "sizePerPage", MAX_WITHDRAWALS_PER_PAGE)?;
    let page_index = match params.get("pageIndex").map(|s| s.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return Err(bad_request("pageIndex must be 1 or more.")),
    };
    let now = state.clock.now();
    let mut records = Vec::new();
    for d in state.days.days_paid(from - Duration::days(LATEST_REQUEST_DAYS), to) {
        let day = state.days.get(vendor, d, now);
        for b in &day.orders.boxes {
            for w in b.withdrawals.iter().filter(|w| (from..=to).contains(&w.withdrawn_at.date_naive())) {
                records.push(json!({
                    "cancelId": w.cancel_id, "orderId": b.order_id, "vendorId": vendor_id,
                    "refundDeliveryDuty": "COMPANY", "createdAt": ApiFormat::V4.time(w.requested_at),
                    "withdrawnAt": ApiFormat::V4.time(w.withdrawn_at), "vendorItemIds": w.vendor_item_ids,
                }));
            }
        }
    }
    let pages = records.len().div_ceil(size);
    let page: Vec<Value> = records.into_iter().skip((page_index - 1) * size).take(size).collect();
    let next = (page_index < pages).then_some(page_index + 1);
    Ok(Json(json!({"code": 200, "message": "OK", "data": page, "nextPageIndex": next})).into_response())
}

/// Exchange requests created in `createdAtFrom..=createdAtTo` (`yyyy-MM-ddTHH:mm:ss`, at most 7 days;
/// `status` is refused). Exchanges move no money.
pub(super) async fn exchange_requests(
    State(state): State<Arc<SimState>>,
    Path(vendor_id): Path<String>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let vendor = vendor_of(&state, &vendor_id, &signer)?;
    if params.contains_key("status") {
        return Err(bad_request("status is not a parameter of exchangeRequests."));
    }
    let moment = |key: &str| -> Option<DateTime<FixedOffset>> {
        let text = params.get(key)?;
        let naive = chrono::NaiveDateTime::parse_from_str(text.get(..19)?, "%Y-%m-%dT%H:%M:%S").ok()?;
        naive.and_local_timezone(etl_core::time::kst()).single()
    };
    let (Some(from), Some(to)) = (moment("createdAtFrom"), moment("createdAtTo")) else {
        return Err(bad_request("createdAtFrom and createdAtTo are required as yyyy-MM-ddTHH:mm:ss."));
    };
    if to < from || to - from > Duration::days(MAX_SHORT_RANGE_DAYS) {
        return Err(bad_request("The maximum view duration is 7 days"));
    }
    let per_page = page_size(&params, "maxPerPage", MAX_PER_PAGE)?;
    let start = token(&params, "nextToken")?;
    let now = state.clock.now();
    let first: NaiveDate = from.date_naive() - Duration::days(LATEST_REQUEST_DAYS);
    let mut records: Vec<(i64, Value)> = Vec::new();
    for d in state.days.days_paid(first, to.date_naive()) {
        let day = state.days.get(vendor, d, now);
        for b in &day.orders.boxes {
            for e in b.exchanges.iter().filter(|e| e.created_at >= from && e.created_at <= to) {
                let items: Vec<Value> = e
                    .units
                    .iter()
                    .map(|(item, units)| json!({"vendorItemId": item, "quantity": units, "shipmentBoxId": b.shipment_box_id}))
                    .collect();
                let record = json!({
                    "exchangeId": e.exchange_id, "orderId": b.order_id, "vendorId": vendor_id,
                    "exchangeStatus": if e.completed_at.is_some() { "SUCCESS" } else { "RECEIPT" },
                    "referType": "VENDOR", "faultType": "CUSTOMER", "exchangeAmount": 0, "reasonCode": "SIZECOLOR",
                    "createdAt": ApiFormat::V4.time(e.created_at),
                    "modifiedAt": ApiFormat::V4.time(e.completed_at.unwrap_or(e.created_at)),
                    "exchangeItemDtoV1s": items,
                });
                records.push((e.exchange_id, record));
            }
        }
    }
    records.sort_by_key(|(id, _)| *id);
    let (page, next) = page_by_key(records.into_iter(), start, per_page);
    Ok(ok_list(page, &next))
}
