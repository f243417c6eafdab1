//! Order sheets (coupang-api.md §4): lists by day and by minute window, one box, one order; v5 and v4.

use axum::extract::{MatchedPath, Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use chrono::Duration;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

use super::format::{
    bad_request, created_days, ok_list, page_by_key, page_size, parse_minute, token, Answer, ApiFormat, MAX_PER_PAGE,
};
use super::{vendor_of, AuthenticatedVendor, CallNumber, SimState};
use crate::world::{day_of_box, day_of_order, BoxStatus, ShipmentBox};

/// Minute windows (`searchType=timeFrame`) may span at most 24 hours.
const MAX_TIME_FRAME_HOURS: i64 = 24;

pub(super) async fn ordersheets(
    State(state): State<Arc<SimState>>,
    matched: MatchedPath,
    Path(vendor_id): Path<String>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
    axum::Extension(CallNumber(call)): axum::Extension<CallNumber>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let vendor = vendor_of(&state, &vendor_id, &signer)?;
    let format = ApiFormat::of_path(matched.as_str());
    let Some(status) = params.get("status").and_then(|s| BoxStatus::parse(s)) else {
        return Err(bad_request(
            "status is required: ACCEPT, INSTRUCT, DEPARTURE, DELIVERING, FINAL_DELIVERY or NONE_TRACKING.",
        ));
    };
    let now = state.clock.now();
    match params.get("searchType").map(String::as_str) {
        // Minute window: at most 24 hours, no paging.
        Some("timeFrame") => {
            let (Some(from), Some(to)) = (
                params.get("createdAtFrom").and_then(|s| parse_minute(s)),
                params.get("createdAtTo").and_then(|s| parse_minute(s)),
            ) else {
                return Err(bad_request("createdAtFrom and createdAtTo are required as yyyy-MM-ddTHH:mm."));
            };
            if to < from || to - from > Duration::hours(MAX_TIME_FRAME_HOURS) {
                return Err(bad_request("searchType=timeFrame range should be less than 24 hours."));
            }
            let until = to + Duration::seconds(59);
            let mut data = Vec::new();
            // An order is paid a few minutes after it is placed: its payment day is its day or the next.
            for day in state.days.days_paid(from.date_naive(), until.date_naive() + Duration::days(1)) {
                let day = state.days.get(vendor, day, now);
                let in_window =
                    day.listed_from(status, i64::MIN).filter(|b| b.ordered_at >= from && b.ordered_at <= until);
                data.extend(in_window.map(|b| state.served_box(&vendor_id, b, format)));
            }
            Ok(ok_list(data, ""))
        }
        Some(other) => Err(bad_request(&format!("searchType {other} is not supported."))),
        None => {
            let (from, to) = created_days(&params, ("createdAtFrom", "createdAtTo"))?;
            let per_page = page_size(&params, "maxPerPage", MAX_PER_PAGE)?;
            // nextToken is the shipment box id to continue from: stable while statuses change.
            let mut start = token(&params, "nextToken")?;
            // Fault: a later page starts with the previous page's last record again.
            let faults = &state.faults;
            let repeat = start.is_some()
                && faults.repeated_record_rate > 0.0
                && state.roll(&vendor_id, call, 100) < faults.repeated_record_rate;
            let days = state.days.days_paid(from, to + Duration::days(1));
            let first_day = start.and_then(day_of_box).map_or(days.start, |(_, day)| day.max(days.start));
            if repeat {
                // The last record of the previous page: the listed box just before the token.
                let before = start.and_then(|token| {
                    (days.start..=first_day.min(days.end.saturating_sub(1))).rev().find_map(|d| {
                        let day = state.days.get(vendor, d, now);
                        let listed: Vec<i64> = day
                            .listed_from(status, i64::MIN)
                            .filter(|b| b.shipment_box_id < token && (from..=to).contains(&b.ordered_at.date_naive()))
                            .map(|b| b.shipment_box_id)
                            .collect();
                        listed.last().copied()
                    })
                });
                if before.is_some() {
                    start = before;
                    state.injected("repeated_record");
                }
            }
            let first_day = start.and_then(day_of_box).map_or(days.start, |(_, day)| day.max(days.start));
            let matching = (first_day..days.end).flat_map(|d| {
                let day = state.days.get(vendor, d, now);
                let boxes: Vec<(i64, Value)> = day
                    .listed_from(status, start.unwrap_or(i64::MIN))
                    .filter(|b| (from..=to).contains(&b.ordered_at.date_naive()))
                    .take(per_page + 1)
                    .map(|b| (b.shipment_box_id, listed_record(&state, &vendor_id, call, b, format)))
                    .collect();
                boxes
            });
            let (page, next_token) = page_by_key(matching, start, per_page);
            Ok(ok_list(page, &next_token))
        }
    }
}

/// A box as a list serves it, with the `missing_field_rate` fault: this response lacks its `paidAt`.
fn listed_record(state: &SimState, vendor_id: &str, call: u64, b: &ShipmentBox, format: ApiFormat) -> Value {
    let mut record = state.served_box(vendor_id, b, format);
    let faults = &state.faults;
    if faults.missing_field_rate > 0.0
        && state.roll(vendor_id, call, b.shipment_box_id as u64) < faults.missing_field_rate
    {
        if let Some(object) = record.as_object_mut() {
            object.remove("paidAt");
            state.injected("missing_field");
        }
    }
    record
}

pub(super) async fn ordersheet(
    State(state): State<Arc<SimState>>,
    matched: MatchedPath,
    Path((vendor_id, shipment_box_id)): Path<(String, String)>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
) -> Answer {
    let vendor = vendor_of(&state, &vendor_id, &signer)?;
    let id = shipment_box_id.parse::<i64>().unwrap_or(-1);
    let found = day_of_box(id)
        .filter(|(owner, day)| *owner == vendor && *day < state.config.days)
        .map(|(_, day)| state.days.get(vendor, day, state.clock.now()));
    match found.as_ref().and_then(|day| day.find_box(id)) {
        Some(b) => {
            let data = state.served_box(&vendor_id, b, ApiFormat::of_path(matched.as_str()));
            Ok(Json(json!({"code": 200, "message": "OK", "data": data})).into_response())
        }
        None => Err(bad_request(&format!("shipmentBoxId {shipment_box_id} was not found."))),
    }
}

pub(super) async fn order(
    State(state): State<Arc<SimState>>,
    matched: MatchedPath,
    Path((vendor_id, order_id)): Path<(String, String)>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
) -> Answer {
    let vendor = vendor_of(&state, &vendor_id, &signer)?;
    let id = order_id.parse::<i64>().unwrap_or(-1);
    let day = day_of_order(id)
        .filter(|(owner, day)| *owner == vendor && *day < state.config.days)
        .map(|(_, day)| state.days.get(vendor, day, state.clock.now()));
    let format = ApiFormat::of_path(matched.as_str());
    let boxes: Vec<Value> = day
        .as_ref()
        .map(|day| day.boxes_of(id).into_iter().map(|b| state.served_box(&vendor_id, b, format)).collect())
        .unwrap_or_default();
    if boxes.is_empty() {
        return Err(bad_request(&format!("orderId {order_id} was not found.")));
    }
    Ok(Json(json!({"code": 200, "message": "OK", "data": boxes})).into_response())
}

/// An order sheet as Coupang serves it in `format`, personal data included.
pub(super) fn box_json(b: &ShipmentBox, format: ApiFormat) -> Value {
    let money = |won| format.money(won);
    let time = |t| format.time(t);
    let coupon = |per_unit: i64| if b.confirmed_at.is_some() { per_unit } else { 0 };
    let (orderer_name, receiver_address) = b.personal_data();
    let items: Vec<Value> = b
        .lines
        .iter()
        .map(|line| {
            json!({
                "vendorItemPackageId": 0,
                "vendorItemPackageName": &*line.product.name,
                "productId": line.product.seller_product_id + 5_000_000_000,
                "vendorItemId": line.product.vendor_item_id,
                "vendorItemName": &*line.product.name,
                "shippingCount": line.quantity,
                // The list price; an option or instant price cut shows only in orderPrice.
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
                "sellerProductName": &*line.product.name,
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
        "orderer": {"name": orderer_name, "email": "", "safeNumber": "0502-0000-0000"},
        "paidAt": time(b.paid_at),
        "status": b.status.as_str(),
        "shippingPrice": money(b.shipping_price),
        "remotePrice": b.remote_price.map(money),
        "remoteArea": b.remote_price.is_some(),
        "parcelPrintMessage": "문 앞",
        "splitShipping": b.split_shipping,
        "ableSplitShipping": false,
        "receiver": {"name": orderer_name, "safeNumber": "0502-0000-0000", "addr1": receiver_address, "addr2": "101호", "postCode": "06236"},
        "orderItems": items,
        "deliveryCompanyName": "CJ 대한통운",
        "invoiceNumber": if b.in_transit_at.is_some() { json!(format!("{}", b.shipment_box_id % 1_000_000_000_000)) } else { json!("") },
        "inTrasitDateTime": b.in_transit_at.map(time).unwrap_or_default(),
        "deliveredDate": b.delivered_at.map(time).unwrap_or_default(),
        "refer": "아이폰앱",
        "shipmentType": "THIRD_PARTY",
    })
}
