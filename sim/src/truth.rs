//! Ground truth: what the pipeline's numbers must be for the simulated world, computed from the
//! world's own state under domain-rules.md, never by calling pipeline code.
//!
//! Totals per vendor and payment day, and per order, do not depend on how the pipeline spreads a box's
//! shipping fee over its item rows, so tests compare those exactly.

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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Truth {
    /// (vendor id, Asia/Seoul payment day) → totals.
    pub daily: BTreeMap<(String, NaiveDate), DayTotal>,
    /// (vendor id, order id) → payment amount of the order.
    pub orders: BTreeMap<(String, i64), i64>,
}

impl Truth {
    pub fn of(world: &World) -> Truth {
        let mut truth = Truth::default();
        for vendor in world.vendors.values() {
            for b in &vendor.boxes {
                let amount = b.lines.iter().map(|l| l.order_price()).sum::<i64>()
                    + b.shipping_price
                    + b.remote_price.unwrap_or(0);
                let day = truth.daily.entry((vendor.vendor_id.clone(), b.paid_date())).or_default();
                day.orders += 1;
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
}
