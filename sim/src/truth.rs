//! Ground truth: what the pipeline's numbers must be for the simulated world, computed from the
//! world's own state under domain-rules.md, never by calling pipeline code.
//!
//! The rules, as of the world's `as_of`:
//! - an item's amount is what the buyer paid a unit (`orderPrice` ÷ quantity: the list price less any
//!   option or instant price cut) × the units neither cancelled nor returned (completed ones);
//! - coupon discounts (seller- and Coupang-funded) are subtracted only once the order is purchase-
//!   confirmed; before that the amount is provisional (unless no unit remains: then it is final at 0);
//! - a box's shipping fee (with the remote-area fee) counts while any unit of the box remains, and is 0
//!   once every unit is cancelled or returned;
//! - everything is attributed to the Asia/Seoul payment day, whenever the change happened.
//!
//! Totals per vendor and payment day, and per order, do not depend on how the pipeline spreads a box's
//! shipping fee over its item rows, so tests compare those exactly; per item, amounts exclude shipping.

use chrono::NaiveDate;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::world::World;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayTotal {
    /// Distinct orders paid that day.
    pub orders: u64,
    /// Order-item rows (one per vendor item of an order).
    pub items: u64,
    /// Payment amount in won: order price + shipping fee (incl. remote-area fee) − coupon discount.
    pub payment_amount: i64,
}

/// One (vendor, order, item), shipping excluded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ItemTruth {
    pub units: i64,
    pub remaining_units: i64,
    /// Price paid a unit × remaining units.
    pub order_price: i64,
    /// Seller-funded coupons on the remaining units (0 until confirmation).
    pub seller_coupon: i64,
    /// Coupang-funded discount on the remaining units (0 until confirmation).
    pub coupang_coupon: i64,
    pub provisional: bool,
}

impl ItemTruth {
    pub fn payment_amount(&self) -> i64 {
        self.order_price - self.seller_coupon - self.coupang_coupon
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Truth {
    /// (vendor id, Asia/Seoul payment day) → totals.
    pub daily: BTreeMap<(String, NaiveDate), DayTotal>,
    /// (vendor id, order id) → payment amount of the order.
    pub orders: BTreeMap<(String, i64), i64>,
    /// (vendor id, order id, vendor item id) → the item, shipping excluded.
    pub items: BTreeMap<(String, i64, i64), ItemTruth>,
}

impl Truth {
    pub fn of(world: &World) -> Truth {
        let mut truth = Truth::default();
        let mut counted = std::collections::HashSet::new();
        for vendor in world.vendors.values() {
            for b in &vendor.boxes {
                let confirmed = b.confirmed_at.is_some();
                let mut amount = if b.any_remaining() { b.fee() } else { 0 };
                for line in &b.lines {
                    let remaining = line.remaining();
                    let coupons = |per_unit: i64| if confirmed { per_unit * remaining } else { 0 };
                    let item = ItemTruth {
                        units: line.quantity,
                        remaining_units: remaining,
                        order_price: line.unit_paid() * remaining,
                        seller_coupon: coupons(line.coupon.instant + line.coupon.downloadable),
                        coupang_coupon: coupons(line.coupon.coupang),
                        // Nothing left to confirm means nothing left to change: a row undone whole is final.
                        provisional: !confirmed && remaining > 0,
                    };
                    amount += item.payment_amount();
                    let key = (vendor.vendor_id.clone(), b.order_id, line.product.vendor_item_id);
                    truth.items.insert(key, item);
                }
                let day = truth.daily.entry((vendor.vendor_id.clone(), b.paid_date())).or_default();
                // An order split over several boxes is still one order.
                if counted.insert((vendor.vendor_id.clone(), b.order_id)) {
                    day.orders += 1;
                }
                day.items += b.lines.len() as u64;
                day.payment_amount += amount;
                *truth.orders.entry((vendor.vendor_id.clone(), b.order_id)).or_default() += amount;
            }
        }
        truth
    }

    /// Totals of one vendor over the whole period.
    pub fn vendor_total(&self, vendor_id: &str) -> DayTotal {
        self.daily.iter().filter(|((v, _), _)| v == vendor_id).fold(DayTotal::default(), |mut acc, (_, d)| {
            acc.orders += d.orders;
            acc.items += d.items;
            acc.payment_amount += d.payment_amount;
            acc
        })
    }

    /// Per order: `vendor_id,order_id,payment_amount` (shipping included).
    pub fn orders_csv(&self) -> String {
        let mut out = String::from("vendor_id,order_id,payment_amount\n");
        for ((vendor, order), amount) in &self.orders {
            out.push_str(&format!("{vendor},{order},{amount}\n"));
        }
        out
    }

    /// Per item, shipping excluded:
    /// `vendor_id,order_id,vendor_item_id,units,remaining_units,order_price,seller_coupon,coupang_coupon,payment_amount,provisional`.
    pub fn items_csv(&self) -> String {
        let mut out = String::from(
            "vendor_id,order_id,vendor_item_id,units,remaining_units,order_price,seller_coupon,coupang_coupon,payment_amount,provisional\n",
        );
        for ((vendor, order, item), t) in &self.items {
            out.push_str(&format!(
                "{vendor},{order},{item},{},{},{},{},{},{},{}\n",
                t.units,
                t.remaining_units,
                t.order_price,
                t.seller_coupon,
                t.coupang_coupon,
                t.payment_amount(),
                t.provisional
            ));
        }
        out
    }

    /// The truth as CSV: `vendor_id,payment_date,orders,items,payment_amount`.
    pub fn daily_csv(&self) -> String {
        let mut out = String::from("vendor_id,payment_date,orders,items,payment_amount\n");
        for ((vendor, date), d) in &self.daily {
            out.push_str(&format!("{vendor},{date},{},{},{}\n", d.orders, d.items, d.payment_amount));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    #[test]
    fn daily_totals_add_up_to_order_totals() {
        let world = World::generate(&SimConfig { days: 7, ..SimConfig::default() });
        let truth = Truth::of(&world);
        let daily_sum: i64 = truth.daily.values().map(|d| d.payment_amount).sum();
        let order_sum: i64 = truth.orders.values().sum();
        assert_eq!(daily_sum, order_sum);
        assert!(daily_sum > 0);
        assert_eq!(truth.daily.len(), 3 * 7, "three vendors, seven days");
        assert!(truth.daily_csv().lines().count() == 1 + 21);
    }

    #[test]
    fn cancels_returns_and_coupons_follow_the_rules() {
        let config =
            SimConfig { days: 40, lifecycle: crate::config::LifecycleConfig::realistic(), ..SimConfig::default() };
        let world = World::generate(&config);
        let truth = Truth::of(&world);
        let mut seen = (0, 0, 0);
        for vendor in world.vendors.values() {
            for b in &vendor.boxes {
                let order = truth.orders[&(vendor.vendor_id.clone(), b.order_id)];
                let item = |line: &crate::world::OrderLine| {
                    truth.items[&(vendor.vendor_id.clone(), b.order_id, line.product.vendor_item_id)].clone()
                };
                let whole_order_undone =
                    vendor.boxes.iter().filter(|o| o.order_id == b.order_id).all(|o| !o.any_remaining());
                if whole_order_undone {
                    // Cancelled or returned whole: the payment day's amount is 0, shipping included.
                    assert_eq!(order, 0, "order {}", b.order_id);
                    seen.0 += 1;
                } else if b.lines.iter().any(|l| l.cancelled > 0) {
                    // Partly cancelled: the item counts its remaining units, shipping stays.
                    let line = b.lines.iter().find(|l| l.cancelled > 0).unwrap();
                    assert_eq!(item(line).order_price, line.unit_paid() * (line.quantity - line.cancelled));
                    seen.1 += 1;
                }
                if let (Some(_), Some(line)) =
                    (b.confirmed_at, b.lines.iter().find(|l| l.coupon.total() > 0 && l.remaining() > 0))
                {
                    // Confirmed with coupons: discounts are subtracted and the row is final.
                    let it = item(line);
                    assert_eq!(it.seller_coupon + it.coupang_coupon, line.coupon.total() * line.remaining());
                    assert!(!it.provisional);
                    seen.2 += 1;
                }
                if b.confirmed_at.is_none() {
                    assert!(b
                        .lines
                        .iter()
                        .all(|l| item(l).seller_coupon == 0 && item(l).provisional == (l.remaining() > 0)));
                }
            }
        }
        assert!(seen.0 > 0 && seen.1 > 0 && seen.2 > 0, "every rule was exercised: {seen:?}");
    }
}
