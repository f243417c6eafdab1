//! Business rules as pure functions (domain-rules.md).
//!
//! Walking-skeleton scope: the payment amount of each (vendor, order, item) from one order sheet —
//! order price plus shipping fee, attributed to the Asia/Seoul payment day. Coupon-on-confirmation and
//! cancel-to-zero come with the transform issue and will fold several events per order.
//!
//! Conventions fixed here:
//! - A box's shipping fee (incl. the remote-area fee) is carried by the box's item with the lowest
//!   vendorItemId, so daily and per-order sums are exact and each fee is counted once.
//! - `version` comes from the source record only (its newest timestamp and its lifecycle status), never
//!   from processing time, so a replay yields identical rows and an older snapshot never wins.

use coupang_schemas::{OrderSheetEvent, OrderSheetItem, PaymentFact};
use etl_core::time::{days_since_epoch, kst_date_of_millis};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("order {order_id} of vendor {vendor_id}: paid_at {paid_at} is not a valid time")]
    BadPaymentTime { vendor_id: String, order_id: i64, paid_at: i64 },
    #[error("order {order_id} of vendor {vendor_id}: unknown status {status:?}")]
    UnknownStatus { vendor_id: String, order_id: i64, status: String },
}

/// Lifecycle rank of an order-sheet status: a later status is newer information.
pub fn status_rank(status: &str) -> Option<i64> {
    Some(match status {
        "ACCEPT" => 0,
        "INSTRUCT" => 1,
        "DEPARTURE" => 2,
        "DELIVERING" => 3,
        "NONE_TRACKING" => 4,
        "FINAL_DELIVERY" => 5,
        _ => return None,
    })
}

/// The newest source timestamp in the record: when Coupang last had something new to say about it.
pub fn source_time(event: &OrderSheetEvent) -> i64 {
    let item_times = event.items.iter().filter_map(|i| i.confirm_date);
    [Some(event.paid_at), event.ordered_at, event.in_transit_at, event.delivered_at]
        .into_iter()
        .flatten()
        .chain(item_times)
        .max()
        .unwrap_or(event.paid_at)
}

/// One fact per vendor item of the box.
pub fn payment_facts(event: &OrderSheetEvent) -> Result<Vec<PaymentFact>, RuleError> {
    let payment_day = kst_date_of_millis(event.paid_at).ok_or_else(|| RuleError::BadPaymentTime {
        vendor_id: event.vendor_id.clone(),
        order_id: event.order_id,
        paid_at: event.paid_at,
    })?;
    let rank = status_rank(&event.status).ok_or_else(|| RuleError::UnknownStatus {
        vendor_id: event.vendor_id.clone(),
        order_id: event.order_id,
        status: event.status.clone(),
    })?;
    let event_time = source_time(event);
    // Time first, status second: 8 status slots below each millisecond.
    let version = event_time.saturating_mul(8).saturating_add(rank);

    // The same vendor item listed twice in a box is one fact key: merge the lines.
    let mut lines: BTreeMap<i64, OrderSheetItem> = BTreeMap::new();
    for item in &event.items {
        lines
            .entry(item.vendor_item_id)
            .and_modify(|line| {
                line.shipping_count += item.shipping_count;
                line.cancel_count += item.cancel_count;
                line.order_price += item.order_price;
            })
            .or_insert_with(|| item.clone());
    }
    let box_shipping = event.shipping_price + event.remote_price;
    Ok(lines
        .into_values()
        .enumerate()
        .map(|(index, line)| {
            let shipping_fee = if index == 0 { box_shipping } else { 0 };
            PaymentFact {
                vendor_id: event.vendor_id.clone(),
                account_alias: event.account_alias.clone(),
                order_id: event.order_id,
                vendor_item_id: line.vendor_item_id,
                shipment_box_id: event.shipment_box_id,
                vendor_item_name: line.vendor_item_name,
                payment_date: days_since_epoch(payment_day),
                paid_at: event.paid_at,
                status: event.status.clone(),
                quantity: line.shipping_count,
                cancelled_quantity: line.cancel_count,
                order_price: line.order_price,
                shipping_fee,
                seller_coupon_discount: 0,
                coupang_coupon_discount: 0,
                payment_amount: line.order_price + shipping_fee,
                provisional: true,
                cancelled: false,
                event_time,
                version,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(id: i64, count: i32, unit: i64) -> OrderSheetItem {
        OrderSheetItem {
            vendor_item_id: id,
            vendor_item_name: format!("item {id}"),
            seller_product_id: 1,
            shipping_count: count,
            cancel_count: 0,
            hold_count_for_cancel: 0,
            sales_price: unit,
            order_price: unit * i64::from(count),
            discount_price: 0,
            instant_coupon_discount: 0,
            downloadable_coupon_discount: 0,
            coupang_discount: 0,
            confirm_date: None,
            canceled: false,
        }
    }

    fn event(items: Vec<OrderSheetItem>, shipping: i64, remote: i64) -> OrderSheetEvent {
        OrderSheetEvent {
            vendor_id: "A00012345".into(),
            account_alias: "brand-a".into(),
            collected_at: 1,
            api_version: "v5".into(),
            shipment_box_id: 640_000_000_000_000_001,
            order_id: 24_000_000_000_001,
            status: "INSTRUCT".into(),
            ordered_at: None,
            // 2026-10-04 23:30 UTC = 2026-10-05 08:30 in Seoul.
            paid_at: 1_791_156_600_000,
            shipping_price: shipping,
            remote_price: remote,
            remote_area: remote > 0,
            in_transit_at: None,
            delivered_at: None,
            items,
        }
    }

    #[test]
    fn amount_is_order_price_plus_shipping_on_the_korean_payment_day() {
        let facts = payment_facts(&event(vec![item(7, 2, 9_900), item(3, 1, 15_000)], 3_000, 3_000)).unwrap();
        assert_eq!(facts.len(), 2);
        // Lowest vendorItemId carries the box's shipping and remote-area fee.
        assert_eq!((facts[0].vendor_item_id, facts[0].shipping_fee, facts[0].payment_amount), (3, 6_000, 21_000));
        assert_eq!((facts[1].vendor_item_id, facts[1].shipping_fee, facts[1].payment_amount), (7, 0, 19_800));
        let day = etl_core::time::date_from_days(facts[0].payment_date).unwrap();
        assert_eq!(day.to_string(), "2026-10-05");
        assert!(facts.iter().all(|f| f.provisional && !f.cancelled));
    }

    #[test]
    fn later_lifecycle_gives_a_higher_version_and_collection_time_does_not_matter() {
        let mut e = event(vec![item(1, 1, 1_000)], 0, 0);
        let v_instruct = payment_facts(&e).unwrap()[0].version;
        e.collected_at = 999_999_999;
        assert_eq!(payment_facts(&e).unwrap()[0].version, v_instruct);
        e.status = "DEPARTURE".into();
        e.in_transit_at = Some(e.paid_at + 3_600_000);
        let v_departed = payment_facts(&e).unwrap()[0].version;
        assert!(v_departed > v_instruct);
        e.status = "FINAL_DELIVERY".into();
        e.delivered_at = Some(e.paid_at + 7_200_000);
        assert!(payment_facts(&e).unwrap()[0].version > v_departed);
    }

    #[test]
    fn duplicate_lines_merge_into_one_key() {
        let facts = payment_facts(&event(vec![item(5, 1, 1_000), item(5, 2, 1_000)], 0, 0)).unwrap();
        assert_eq!(facts.len(), 1);
        assert_eq!((facts[0].quantity, facts[0].order_price), (3, 3_000));
    }

    #[test]
    fn bad_input_is_an_error_naming_the_order() {
        let mut e = event(vec![item(1, 1, 1)], 0, 0);
        e.status = "TELEPORTED".into();
        assert!(payment_facts(&e).unwrap_err().to_string().contains("24000000000001"));
        e.status = "ACCEPT".into();
        e.paid_at = i64::MAX;
        assert!(matches!(payment_facts(&e), Err(RuleError::BadPaymentTime { .. })));
    }

    fn any_event() -> impl Strategy<Value = OrderSheetEvent> {
        (
            proptest::collection::vec((1i64..20, 1i32..5, 0i64..100_000), 0..6),
            prop_oneof![Just(0i64), Just(2_500), Just(3_000)],
            prop_oneof![Just(0i64), Just(3_000)],
            0i64..4_000_000_000_000,
        )
            .prop_map(|(lines, shipping, remote, paid_at)| {
                let mut e = event(lines.into_iter().map(|(id, n, p)| item(id, n, p)).collect(), shipping, remote);
                e.paid_at = paid_at;
                e
            })
    }

    proptest! {
        #[test]
        fn totals_are_preserved_and_shipping_counted_once(e in any_event()) {
            let facts = payment_facts(&e).unwrap();
            let items: i64 = e.items.iter().map(|i| i.order_price).sum();
            let total: i64 = facts.iter().map(|f| f.payment_amount).sum();
            let expected = if e.items.is_empty() { 0 } else { items + e.shipping_price + e.remote_price };
            prop_assert_eq!(total, expected);
            prop_assert!(facts.iter().filter(|f| f.shipping_fee != 0).count() <= 1);
            let keys: std::collections::HashSet<_> = facts.iter().map(|f| f.kafka_key()).collect();
            prop_assert_eq!(keys.len(), facts.len());
        }

        #[test]
        fn deterministic(e in any_event()) {
            prop_assert_eq!(payment_facts(&e).unwrap(), payment_facts(&e.clone()).unwrap());
        }
    }
}
