//! Order sheets (coupang-api.md §4): lists by day and by minute window, one box, one order; v5 and v4.

use axum::extract::{MatchedPath, Path, Query, State};
use chrono::Duration;
use serde::Serialize;
use serde_json::Value;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;

use super::days::IndexedDay;
use super::format::{
    bad_request, created_days, ok_list, ok_one, page_by_key, page_size, parse_minute, token, Answer, ApiFormat,
    MAX_PER_PAGE,
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
            // An order is paid a few minutes after it is placed: its payment day is its day or the next.
            let days: Vec<_> = state
                .days
                .days_paid(from.date_naive(), until.date_naive() + Duration::days(1))
                .map(|d| state.days.get(vendor, d, now))
                .collect();
            let data: Vec<Served> = days
                .iter()
                .flat_map(|day| day.listed_from(status, i64::MIN))
                .filter(|b| b.ordered_at >= from && b.ordered_at <= until)
                .map(|b| state.served_box(&vendor_id, b, format))
                .collect();
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
            // Each day generated (or taken from the cache) only when the page reaches it.
            let reached: Vec<OnceCell<Arc<IndexedDay>>> = (first_day..days.end).map(|_| OnceCell::new()).collect();
            let matching = reached
                .iter()
                .zip(first_day..)
                .flat_map(|(cell, d)| {
                    let day = cell.get_or_init(|| state.days.get(vendor, d, now));
                    day.listed_from(status, start.unwrap_or(i64::MIN))
                        .filter(|b| (from..=to).contains(&b.ordered_at.date_naive()))
                        .take(per_page + 1)
                })
                .map(|b| (b.shipment_box_id, listed_record(&state, &vendor_id, call, b, format)));
            let (page, next_token) = page_by_key(matching, start, per_page);
            Ok(ok_list(page, &next_token))
        }
    }
}

/// A box as a list serves it, with the `missing_field_rate` fault: this response lacks its `paidAt`.
fn listed_record<'a>(
    state: &SimState,
    vendor_id: &str,
    call: u64,
    b: &'a ShipmentBox,
    format: ApiFormat,
) -> Served<'a> {
    let record = state.served_box(vendor_id, b, format);
    let faults = &state.faults;
    let roll = state.roll(vendor_id, call, b.shipment_box_id as u64);
    if faults.missing_field_rate > 0.0 && roll < faults.missing_field_rate {
        state.injected("missing_field");
        return record.spoil(|record| {
            if let Some(object) = record.as_object_mut() {
                object.remove("paidAt");
            }
        });
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
    let found = state.days.holding(vendor, day_of_box(id), state.clock.now());
    match found.as_ref().and_then(|day| day.find_box(id)) {
        Some(b) => Ok(ok_one(state.served_box(&vendor_id, b, ApiFormat::of_path(matched.as_str())))),
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
    let day = state.days.holding(vendor, day_of_order(id), state.clock.now());
    let format = ApiFormat::of_path(matched.as_str());
    let boxes: Vec<Served> = day
        .as_ref()
        .map(|day| day.boxes_of(id).into_iter().map(|b| state.served_box(&vendor_id, b, format)).collect())
        .unwrap_or_default();
    if boxes.is_empty() {
        return Err(bad_request(&format!("orderId {order_id} was not found.")));
    }
    Ok(ok_one(boxes))
}

/// An order sheet as Coupang serves it, personal data included: written straight to the answer's
/// bytes (a world of a million items is served without building a JSON tree per record).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BoxBody<'a> {
    shipment_box_id: i64,
    order_id: i64,
    ordered_at: String,
    orderer: Person,
    paid_at: String,
    status: &'static str,
    shipping_price: Money,
    remote_price: Option<Money>,
    remote_area: bool,
    parcel_print_message: &'static str,
    split_shipping: bool,
    able_split_shipping: bool,
    receiver: Person,
    order_items: Vec<ItemBody<'a>>,
    delivery_company_name: &'static str,
    invoice_number: String,
    /// Coupang's own spelling.
    in_trasit_date_time: String,
    delivered_date: String,
    refer: &'static str,
    shipment_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Person {
    name: String,
    safe_number: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    addr1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    addr2: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_code: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemBody<'a> {
    vendor_item_package_id: i64,
    vendor_item_package_name: &'a str,
    product_id: i64,
    vendor_item_id: i64,
    vendor_item_name: &'a str,
    shipping_count: i64,
    /// The list price; an option or instant price cut shows only in `orderPrice`.
    sales_price: Money,
    order_price: Money,
    /// Coupang's v4 examples publish it as null in every item; clients read the parts below.
    discount_price: Option<Money>,
    instant_coupon_discount: Money,
    downloadable_coupon_discount: Money,
    coupang_discount: Money,
    external_vendor_sku_code: &'static str,
    seller_product_id: i64,
    seller_product_name: &'a str,
    seller_product_item_name: &'static str,
    cancel_count: i64,
    hold_count_for_cancel: i64,
    estimated_shipping_date: Option<String>,
    confirm_date: Option<String>,
    delivery_charge_type_name: &'static str,
    canceled: bool,
}

/// `format`'s form of an amount: a v5 money object or v4's plain won.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Money {
    Object {
        #[serde(rename = "currencyCode")]
        currency_code: &'static str,
        units: i64,
        nanos: i64,
    },
    Plain(i64),
}

impl ApiFormat {
    fn amount(self, won: i64) -> Money {
        match self {
            ApiFormat::V4 => Money::Plain(won),
            _ => Money::Object { currency_code: "KRW", units: won, nanos: 0 },
        }
    }
}

/// An order sheet as Coupang serves it in `format`.
pub(super) fn box_body(b: &ShipmentBox, format: ApiFormat) -> BoxBody<'_> {
    let money = |won| format.amount(won);
    let time = |t| format.time(t);
    // The simulator reveals coupons with the purchase confirmation, as the domain rules assume.
    let coupon = |per_unit: i64| if b.confirmed_at.is_some() { per_unit } else { 0 };
    let (orderer_name, receiver_address) = b.personal_data();
    let person = |name: &str| Person {
        name: name.to_string(),
        safe_number: "0502-0000-0000",
        email: None,
        addr1: None,
        addr2: None,
        post_code: None,
    };
    let order_items = b
        .lines
        .iter()
        .map(|line| ItemBody {
            vendor_item_package_id: 0,
            vendor_item_package_name: &line.product.name,
            product_id: line.product.seller_product_id + 5_000_000_000,
            vendor_item_id: line.product.vendor_item_id,
            vendor_item_name: &line.product.name,
            shipping_count: line.quantity,
            sales_price: money(line.product.unit_price),
            order_price: money(line.order_price()),
            discount_price: (format != ApiFormat::V4).then(|| money(coupon(line.coupon.total()) * line.quantity)),
            instant_coupon_discount: money(coupon(line.coupon.instant) * line.quantity),
            downloadable_coupon_discount: money(coupon(line.coupon.downloadable) * line.quantity),
            coupang_discount: money(coupon(line.coupon.coupang) * line.quantity),
            external_vendor_sku_code: "",
            seller_product_id: line.product.seller_product_id,
            seller_product_name: &line.product.name,
            seller_product_item_name: "단일상품",
            cancel_count: line.cancelled,
            hold_count_for_cancel: line.cancel_pending,
            estimated_shipping_date: b.paid_at.date_naive().succ_opt().map(|d| d.to_string()),
            confirm_date: b.confirmed_at.map(|t| format.confirm_time(t)),
            delivery_charge_type_name: if b.shipping_price == 0 { "무료" } else { "유료" },
            canceled: line.cancelled == line.quantity,
        })
        .collect();
    BoxBody {
        shipment_box_id: b.shipment_box_id,
        order_id: b.order_id,
        ordered_at: time(b.ordered_at),
        orderer: Person { email: Some(""), ..person(&orderer_name) },
        paid_at: time(b.paid_at),
        status: b.status.as_str(),
        shipping_price: money(b.shipping_price),
        remote_price: b.remote_price.map(money),
        remote_area: b.remote_price.is_some(),
        parcel_print_message: "문 앞",
        split_shipping: b.split_shipping,
        able_split_shipping: false,
        receiver: Person {
            addr1: Some(receiver_address),
            addr2: Some("101호"),
            post_code: Some("06236"),
            ..person(&orderer_name)
        },
        order_items,
        delivery_company_name: "CJ 대한통운",
        invoice_number: if b.in_transit_at.is_some() {
            (b.shipment_box_id % 1_000_000_000_000).to_string()
        } else {
            String::new()
        },
        in_trasit_date_time: b.in_transit_at.map(time).unwrap_or_default(),
        delivered_date: b.delivered_at.map(time).unwrap_or_default(),
        refer: "아이폰앱",
        shipment_type: "THIRD_PARTY",
    }
}

/// A box as an answer carries it: as written, or spoiled by a fault (then as a JSON tree).
// Spoiled records are rare (faults on demand): boxing the common kind would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Served<'a> {
    Written(BoxBody<'a>),
    Spoiled(Value),
}

impl Served<'_> {
    /// The record as a JSON tree, for a fault to spoil.
    pub(super) fn spoil(self, spoiled: impl FnOnce(&mut Value)) -> Served<'static> {
        let mut record = match self {
            Served::Written(body) => serde_json::to_value(body).unwrap_or_default(),
            Served::Spoiled(record) => record,
        };
        spoiled(&mut record);
        Served::Spoiled(record)
    }
}
