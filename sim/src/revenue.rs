//! What revenue-history (coupang-api.md §6) shows for the world: one row per order and sale type, by
//! recognition day, in plain integer won.
//!
//! An order's rows: a SALE row when it is purchase-confirmed (its confirmed boxes' units less those
//! cancelled before); a SALE row with `items: []` once every box was cancelled or returned whole before
//! confirmation; a REFUND row for each return completed after confirmation (item amounts positive,
//! `deliveryFee` negative when the return empties its box). Rows with `orderId = 0` are non-order
//! adjustments.

use chrono::{Duration, NaiveDate};
use serde_json::{json, Value};
use std::collections::BTreeMap;

use crate::world::{OrderLine, Receipt, ReceiptKind, ShipmentBox, World};

/// One revenue-history row of the world, with where it sits: its key among the vendor's rows (order
/// id × 10 + row; for adjustments, a small number below every order's) and its recognition day.
#[derive(Debug, Clone)]
pub struct RevenueRow {
    pub key: i64,
    pub recognized_on: NaiveDate,
    pub row: Value,
}

/// Every row of `world`, by vendor, in the order revenue-history lists them.
pub fn rows_of(world: &World) -> BTreeMap<String, Vec<RevenueRow>> {
    world
        .vendors
        .iter()
        .map(|(vendor, v)| {
            let mut rows: Vec<RevenueRow> = v
                .adjustments
                .iter()
                .enumerate()
                .map(|(i, a)| RevenueRow {
                    key: i as i64,
                    recognized_on: a.recognized_on,
                    row: adjustment_row(a.recognized_on, a.amount),
                })
                .collect();
            let mut orders: BTreeMap<i64, Vec<&ShipmentBox>> = BTreeMap::new();
            for b in &v.boxes {
                orders.entry(b.order_id).or_default().push(b);
            }
            rows.extend(orders.iter().flat_map(|(order, boxes)| order_rows(*order, boxes, &|_| true)));
            (vendor.clone(), rows)
        })
        .collect()
}

pub(crate) fn adjustment_row(day: NaiveDate, amount: i64) -> Value {
    json!({
        "orderId": 0, "saleType": "SALE", "saleDate": day.to_string(), "recognitionDate": day.to_string(),
        "settlementDate": (day + Duration::days(30)).to_string(),
        "deliveryFee": {"amount": 0, "fee": 0, "feeVat": 0, "settlementAmount": amount},
        "items": [],
    })
}

/// The rows of one order recognised on a day `wanted` accepts, each with its key (order id × 10 + row)
/// and recognition day. Only those rows are written out: a window reaches back over many days of orders
/// whose rows mostly fall outside it.
pub(crate) fn order_rows(order_id: i64, boxes: &[&ShipmentBox], wanted: &dyn Fn(NaiveDate) -> bool) -> Vec<RevenueRow> {
    let Some(first) = boxes.first() else { return Vec::new() };
    let paid = first.paid_date();
    let mut rows = Vec::new();
    let confirmed: Vec<&&ShipmentBox> = boxes.iter().filter(|b| b.confirmed_at.is_some()).collect();
    if let Some(at) = confirmed.iter().filter_map(|b| b.confirmed_at).min().filter(|at| wanted(at.date_naive())) {
        // Units sold at confirmation: ordered less cancelled (returns come later, as REFUND rows).
        let sold = |l: &OrderLine| l.quantity - l.cancelled;
        let lines: Vec<(&OrderLine, i64)> =
            confirmed.iter().flat_map(|b| b.lines.iter().map(|l| (l, sold(l)))).collect();
        let fee: i64 = confirmed.iter().filter(|b| b.lines.iter().any(|l| sold(l) > 0)).map(|b| b.fee()).sum();
        let day = at.date_naive();
        rows.push(RevenueRow {
            key: order_id * 10,
            recognized_on: day,
            row: row(order_id, "SALE", paid, day, fee, items(&lines)),
        });
    }
    let undone_whole =
        boxes.iter().map(|b| b.zero_sale_at).collect::<Option<Vec<_>>>().and_then(|z| z.into_iter().max());
    if let Some(at) = undone_whole.filter(|at| wanted(at.date_naive())) {
        let day = at.date_naive();
        rows.push(RevenueRow {
            key: order_id * 10 + 1,
            recognized_on: day,
            row: row(order_id, "SALE", paid, day, 0, Vec::new()),
        });
    }
    // Returns completed after confirmation, one REFUND row per receipt (a receipt may span the boxes).
    let mut refunds: BTreeMap<i64, Vec<(&ShipmentBox, &Receipt)>> = BTreeMap::new();
    for b in boxes {
        let Some(confirmed) = b.confirmed_at else { continue };
        for r in b.receipts.iter().filter(|r| r.kind == ReceiptKind::Return && r.created_at > confirmed) {
            if r.completed_at.is_some() {
                refunds.entry(r.receipt_id).or_default().push((b, r));
            }
        }
    }
    for (receipt_id, parts) in refunds {
        let Some(done) = parts.iter().filter_map(|(_, r)| r.completed_at).max().filter(|t| wanted(t.date_naive()))
        else {
            continue;
        };
        let mut lines = Vec::new();
        let mut fee = 0;
        for (b, r) in &parts {
            for (item, units) in &r.units {
                if let Some(line) = b.lines.iter().find(|l| l.product.vendor_item_id == *item) {
                    lines.push((line, *units));
                }
            }
            let last_return =
                b.receipts.iter().filter_map(|x| x.completed_at.filter(|_| x.kind == ReceiptKind::Return)).max();
            if !b.any_remaining() && last_return == r.completed_at {
                fee -= b.fee();
            }
        }
        let day = done.date_naive();
        let key = order_id * 10 + 2 + receipt_id % 10;
        rows.push(RevenueRow { key, recognized_on: day, row: row(order_id, "REFUND", paid, day, fee, items(&lines)) });
    }
    rows.sort_by_key(|r| r.key);
    rows
}

fn row(order_id: i64, sale_type: &str, paid: NaiveDate, day: NaiveDate, delivery: i64, items: Vec<Value>) -> Value {
    let fee = delivery * 33 / 1000;
    json!({
        "orderId": order_id,
        "saleType": sale_type,
        "saleDate": paid.to_string(),
        "recognitionDate": day.to_string(),
        "settlementDate": (day + Duration::days(30)).to_string(),
        // Coupang's published rows carry null here when there is no fee to settle.
        "deliveryFee": {"amount": delivery, "fee": fee, "feeVat": fee / 10,
            "settlementAmount": if delivery == 0 { Value::Null } else { json!(delivery - fee - fee / 10) }},
        "items": items,
    })
}

/// Item rows for `units` of each line: the price paid and the coupons of those units.
fn items(lines: &[(&OrderLine, i64)]) -> Vec<Value> {
    lines
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|&(line, n)| {
            let price = line.unit_paid() * n;
            let (seller, downloadable, coupang) =
                (line.coupon.instant * n, line.coupon.downloadable * n, line.coupon.coupang * n);
            let sale = price - seller - downloadable;
            let fee = sale * 108 / 1000;
            json!({
                "taxType": "TAX", "productId": line.product.seller_product_id + 5_000_000_000,
                "productName": &*line.product.name, "vendorItemId": line.product.vendor_item_id,
                "vendorItemName": &*line.product.name, "salePrice": price, "quantity": n,
                "coupangDiscountCoupon": coupang, "sellerDiscountCoupon": seller, "downloadableCoupon": downloadable,
                "saleAmount": sale, "serviceFee": fee, "serviceFeeVat": fee / 10,
                "settlementAmount": sale - fee - fee / 10,
            })
        })
        .collect()
}
