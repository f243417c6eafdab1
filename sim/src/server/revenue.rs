//! The revenue-history endpoint: [`crate::revenue`]'s rows of the vendor-days a window can reach,
//! paged by their keys; and settlement-histories: [`crate::settlement`]'s payouts of a month, computed
//! from the same rows.

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{Duration, NaiveDate, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

use super::format::{bad_request, created_days, page_by_key, page_size, token, Answer, MAX_PER_PAGE};
use super::{vendor_of, AuthenticatedVendor, SimState};
use crate::lifecycle::LATEST_RECOGNITION_DAYS;
use crate::revenue::{adjustment_row, order_rows, RevenueRow};
use crate::world::{day_of_order, ShipmentBox};

pub(super) async fn revenue_history(
    State(state): State<Arc<SimState>>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let vendor_id = params.get("vendorId").cloned().unwrap_or_default();
    let vendor = vendor_of(&state, &vendor_id, &signer)?;
    let (from, to) = created_days(&params, ("recognitionDateFrom", "recognitionDateTo"))?;
    let now = state.clock.now();
    // The simulated clock's today; a clock set in the past only adds days without rows, so a client
    // whose own clock is right is never refused for asking up to its yesterday.
    let wall_today = Utc::now().with_timezone(&etl_core::time::kst()).date_naive();
    let today = now.date_naive().max(wall_today);
    if to >= today {
        return Err(bad_request("recognitionDateTo must be before today."));
    }
    if !params.contains_key("token") {
        return Err(bad_request("token is required."));
    }
    let per_page = page_size(&params, "maxPerPage", MAX_PER_PAGE)?;
    let start = token(&params, "token")?;
    let days = state.days.days_paid(from - Duration::days(LATEST_RECOGNITION_DAYS), to);
    let in_window = |day: NaiveDate| (from..=to).contains(&day);
    // Adjustments first (keyed by their day of the period), then orders (keyed by order id and row).
    let past_adjustments = start.is_some_and(|s| s >= i64::from(state.config.days));
    let adjustments = days.clone().filter(|_| !past_adjustments).filter_map(|d| {
        let day = state.days.get(vendor, d, now);
        let a = day.orders.adjustment.as_ref().filter(|a| in_window(a.recognized_on))?;
        Some((i64::from(d), adjustment_row(a.recognized_on, a.amount)))
    });
    let first_day = start.and_then(|t| day_of_order(t / 10)).map_or(days.start, |(_, d)| d.max(days.start));
    let orders = (first_day..days.end).flat_map(|d| {
        let day = state.days.get(vendor, d, now);
        let begin = day.orders_boxes.partition_point(|(order, _)| start.is_some_and(|s| order * 10 + 9 < s));
        let rows: Vec<(i64, Value)> = day.orders_boxes[begin..]
            .iter()
            .flat_map(|(order, positions)| {
                let boxes: Vec<&ShipmentBox> = positions.iter().map(|&i| &day.orders.boxes[i]).collect();
                order_rows(*order, &boxes, &in_window)
            })
            .map(|r| (r.key, r.row))
            .take(per_page + 1)
            .collect();
        rows
    });
    let (page, next) = page_by_key(adjustments.chain(orders), start, per_page);
    let has_next = !next.is_empty();
    Ok(Json(json!({"code": 200, "message": "OK", "data": page, "hasNext": has_next, "nextToken": next}))
        .into_response())
}

/// `settlement-histories`: the vendor whose key signed the request, one recognition month, a bare
/// JSON array (no envelope, as Coupang answers it; `[]` for a month without payouts).
pub(super) async fn settlement_histories(
    State(state): State<Arc<SimState>>,
    axum::Extension(AuthenticatedVendor(signer)): axum::Extension<AuthenticatedVendor>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    let vendor = vendor_of(&state, &signer, &signer)?;
    let text = params.get("revenueRecognitionYearMonth").map(String::as_str).unwrap_or_default();
    let month = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
        .map_err(|_| bad_request("Invalid revenueRecognitionYearMonth format (yyyy-MM)"))?;
    let now = state.clock.now();
    let wall_today = Utc::now().with_timezone(&etl_core::time::kst()).date_naive();
    if month > now.date_naive().max(wall_today) {
        return Err(bad_request("해당월까지만 조회할 수 있습니다."));
    }
    let last = crate::settlement::weeks_of(month).last().map_or(month, |(_, to)| *to);
    let days = state.days.days_paid(month - Duration::days(LATEST_RECOGNITION_DAYS), last);
    let in_month = |day: NaiveDate| (month..=last).contains(&day);
    let mut rows: Vec<RevenueRow> = Vec::new();
    for d in days {
        let day = state.days.get(vendor, d, now);
        if let Some(a) = day.orders.adjustment.as_ref().filter(|a| in_month(a.recognized_on)) {
            rows.push(RevenueRow {
                key: 0,
                recognized_on: a.recognized_on,
                row: adjustment_row(a.recognized_on, a.amount),
            });
        }
        for (order, positions) in &day.orders_boxes {
            let boxes: Vec<&ShipmentBox> = positions.iter().map(|&i| &day.orders.boxes[i]).collect();
            rows.extend(order_rows(*order, &boxes, &in_month));
        }
    }
    let skew = state
        .faults
        .disagreeing_payout
        .as_ref()
        .filter(|fault| fault.vendor_id == signer && fault.month == text)
        .map_or(0, |fault| fault.won);
    if skew != 0 {
        state.injected("disagreeing_payout");
    }
    let payouts = crate::settlement::payout_rows(&rows, month, now.date_naive(), skew);
    Ok(Json(Value::Array(payouts)).into_response())
}
