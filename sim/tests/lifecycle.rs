//! The lifecycle statistics of a large seeded world match its configuration.

use coupang_sim::config::LifecycleConfig;
use coupang_sim::world::{ReceiptKind, World};
use coupang_sim::SimConfig;

fn share(part: usize, whole: usize) -> f64 {
    part as f64 / whole.max(1) as f64
}

#[test]
fn lifecycle_statistics_match_the_configuration() {
    let lifecycle = LifecycleConfig::realistic();
    let config = SimConfig { days: 60, orders_per_day: 60, lifecycle: lifecycle.clone(), ..SimConfig::default() };
    let world = World::generate(&config);
    let boxes: Vec<_> = world.vendors.values().flat_map(|v| v.boxes.iter()).collect();
    let orders = boxes.len();
    assert!(orders > 9_000, "a large world: {orders}");

    // Whole orders cancelled by the buyer while ACCEPT (a split order's first box alone is another path).
    let cancelled_whole = boxes
        .iter()
        .filter(|b| !b.split_shipping || b.lines.len() > 1)
        .filter(|b| {
            b.receipts.iter().any(|r| {
                r.kind == ReceiptKind::Cancel
                    && !r.by_seller
                    && r.receipt_id % 10 == 1
                    && r.units.len() == b.lines.len()
                    && r.units.iter().zip(&b.lines).all(|((_, n), l)| *n == l.quantity)
            })
        })
        .count();
    let partly = boxes
        .iter()
        .filter(|b| {
            b.lines.iter().any(|l| l.cancelled > 0 && l.cancelled < l.quantity)
                || (b.lines.iter().any(|l| l.cancelled == l.quantity) && b.lines.iter().any(|l| l.cancelled == 0))
        })
        .count();
    let delivered: Vec<_> = boxes.iter().filter(|b| b.delivered_at.is_some()).collect();
    // Returned whole: one receipt for every unit of the box.
    let returned = delivered
        .iter()
        .filter(|b| {
            b.receipts.iter().any(|r| {
                r.kind == ReceiptKind::Return
                    && r.units.iter().zip(&b.lines).all(|((_, n), l)| *n == l.quantity)
                    && r.units.len() == b.lines.len()
                    && r.receipt_id % 10 == 1
            })
        })
        .count();
    let lines: Vec<_> = boxes.iter().flat_map(|b| b.lines.iter()).collect();
    let with_coupon = lines.iter().filter(|l| l.coupon.total() > 0).count();

    // Confirmation: by the buyer within 5 days of delivery, or automatically at 7 days. Only orders
    // delivered 8+ days before the world's moment have had the chance of both.
    let settled: Vec<_> = boxes
        .iter()
        .filter(|b| b.delivered_at.is_some_and(|d| world.as_of - d >= chrono::Duration::days(8)))
        .filter(|b| b.confirmed_at.is_some())
        .collect();
    let by_buyer = settled
        .iter()
        .filter(|b| b.confirmed_at.zip(b.delivered_at).is_some_and(|(c, d)| c - d < chrono::Duration::days(7)))
        .count();
    let mut delays: Vec<i64> =
        settled.iter().filter_map(|b| b.confirmed_at.map(|c| (c - b.paid_at).num_hours())).collect();
    delays.sort();
    let median_days = delays[delays.len() / 2] as f64 / 24.0;

    let stats = [
        ("cancelled whole while ACCEPT", share(cancelled_whole, orders), lifecycle.cancel_before_dispatch_rate, 0.25),
        ("returned, of delivered orders", share(returned, delivered.len()), lifecycle.return_rate, 0.3),
        ("items with coupons", share(with_coupon, lines.len()), lifecycle.coupon_rate, 0.1),
        ("confirmed by the buyer", share(by_buyer, settled.len()), lifecycle.buyer_confirm_rate, 0.1),
    ];
    for (what, measured, configured, tolerance) in stats {
        println!("{what}: {measured:.3} (configured {configured})");
        assert!((measured - configured).abs() <= configured * tolerance, "{what}: {measured:.3} vs {configured}");
    }
    // Partial cancels need an item with several units or several items (about 3 orders in 4).
    let partial = share(partly, orders);
    println!("partly cancelled: {partial:.3} (configured {} of eligible orders)", lifecycle.partial_cancel_rate);
    assert!(partial > lifecycle.partial_cancel_rate * 0.5 && partial < lifecycle.partial_cancel_rate * 1.1);
    println!("payment to confirmation: median {median_days:.1} days");
    assert!((7.0..=11.0).contains(&median_days), "about 10 days: {median_days}");

    // What leaves the lists and what revenue-history recognises follow from the receipts.
    assert!(boxes.iter().filter(|b| !b.listed).all(|b| !b.any_remaining()));
    let refunded = |b: &&&coupang_sim::world::ShipmentBox| {
        b.receipts.iter().any(|r| {
            r.kind == ReceiptKind::Return
                && r.completed_at.is_some()
                && b.confirmed_at.is_some_and(|c| r.created_at > c)
        })
    };
    assert!(boxes.iter().any(|b| refunded(&b)) && boxes.iter().any(|b| b.zero_sale_at.is_some()));
}
