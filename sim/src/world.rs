//! The simulated world: vendors, their catalogues and their orders over the simulated period.
//!
//! First cut (walking skeleton): every order is paid, never cancelled, and has progressed through the
//! lifecycle according to its age at the world's `as_of` instant. Orders are fixed by the seed.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use etl_core::time::kst;
use std::collections::BTreeMap;

use crate::config::{LifecycleConfig, SimConfig};
use crate::prng::SplitMix64;

/// Coupang's order-sheet statuses, in lifecycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BoxStatus {
    Accept,
    Instruct,
    Departure,
    Delivering,
    FinalDelivery,
    NoneTracking,
}

impl BoxStatus {
    pub const ALL: [BoxStatus; 6] = [
        BoxStatus::Accept,
        BoxStatus::Instruct,
        BoxStatus::Departure,
        BoxStatus::Delivering,
        BoxStatus::FinalDelivery,
        BoxStatus::NoneTracking,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BoxStatus::Accept => "ACCEPT",
            BoxStatus::Instruct => "INSTRUCT",
            BoxStatus::Departure => "DEPARTURE",
            BoxStatus::Delivering => "DELIVERING",
            BoxStatus::FinalDelivery => "FINAL_DELIVERY",
            BoxStatus::NoneTracking => "NONE_TRACKING",
        }
    }

    pub fn parse(text: &str) -> Option<BoxStatus> {
        BoxStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone)]
pub struct Product {
    pub vendor_item_id: i64,
    pub seller_product_id: i64,
    pub name: String,
    pub unit_price: i64,
}

#[derive(Debug, Clone)]
pub struct OrderLine {
    pub product: Product,
    pub quantity: i64,
    /// Units whose cancel completed by `as_of`.
    pub cancelled: i64,
    /// Units with a cancel requested but not completed at `as_of`.
    pub cancel_pending: i64,
    /// Units whose return completed by `as_of`.
    pub returned: i64,
    /// Discounts per unit, known to the seller at purchase confirmation.
    pub coupon: Coupon,
}

/// Coupon discounts of one unit, in won.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coupon {
    /// Seller-funded, applied at checkout.
    pub instant: i64,
    /// Seller-funded, downloaded by the buyer.
    pub downloadable: i64,
    /// Coupang-funded (does not reduce the seller's settlement).
    pub coupang: i64,
}

impl Coupon {
    pub fn total(&self) -> i64 {
        self.instant + self.downloadable + self.coupang
    }
}

impl OrderLine {
    /// Price of every unit ordered.
    pub fn order_price(&self) -> i64 {
        self.product.unit_price * self.quantity
    }

    /// Units neither cancelled nor returned (completed ones) at `as_of`.
    pub fn remaining(&self) -> i64 {
        self.quantity - self.cancelled - self.returned
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    Cancel,
    Return,
}

/// A cancel or return receipt (returnRequests).
#[derive(Debug, Clone)]
pub struct Receipt {
    pub receipt_id: i64,
    pub kind: ReceiptKind,
    pub created_at: DateTime<FixedOffset>,
    /// None while it is still being processed at `as_of`.
    pub completed_at: Option<DateTime<FixedOffset>>,
    /// (vendor item id, units)
    pub units: Vec<(i64, i64)>,
}

impl Receipt {
    /// The returnRequests status code this receipt is listed under: `UC` received, `CC` completed.
    pub fn status_code(&self) -> &'static str {
        if self.completed_at.is_some() {
            "CC"
        } else {
            "UC"
        }
    }

    pub fn receipt_status(&self) -> &'static str {
        if self.completed_at.is_some() {
            "RETURNS_COMPLETED"
        } else {
            "RETURNS_UNCHECKED"
        }
    }
}

/// One shipment box. In this cut every order ships in exactly one box.
#[derive(Debug, Clone)]
pub struct ShipmentBox {
    pub shipment_box_id: i64,
    pub order_id: i64,
    pub ordered_at: DateTime<FixedOffset>,
    pub paid_at: DateTime<FixedOffset>,
    pub status: BoxStatus,
    pub shipping_price: i64,
    pub remote_price: Option<i64>,
    pub in_transit_at: Option<DateTime<FixedOffset>>,
    pub delivered_at: Option<DateTime<FixedOffset>>,
    /// Purchase confirmation: by the buyer after delivery, or automatically 7 days after it.
    pub confirmed_at: Option<DateTime<FixedOffset>>,
    pub lines: Vec<OrderLine>,
    pub receipts: Vec<Receipt>,
    /// One of several boxes of its order.
    pub split_shipping: bool,
    /// Whether the order-sheet lists show the box: not once it was cancelled whole or its return completed.
    pub listed: bool,
    /// Cancelled or returned whole before confirmation: revenue-history recognises a SALE row with
    /// `items: []` on this day.
    pub zero_sale_at: Option<DateTime<FixedOffset>>,
    /// Returned after confirmation: revenue-history recognises a REFUND row on this day.
    pub refund_at: Option<DateTime<FixedOffset>>,
    /// Personal data the real API returns; the pipeline must never need or keep it.
    pub orderer_name: String,
    pub receiver_address: String,
}

impl ShipmentBox {
    pub fn paid_date(&self) -> NaiveDate {
        self.paid_at.date_naive()
    }

    /// Whether any unit of the box is neither cancelled nor returned.
    pub fn any_remaining(&self) -> bool {
        self.lines.iter().any(|l| l.remaining() > 0)
    }
}

#[derive(Debug, Clone)]
pub struct VendorWorld {
    pub vendor_id: String,
    /// Sorted by shipment box id, the order the list endpoint pages in.
    pub boxes: Vec<ShipmentBox>,
}

#[derive(Debug, Clone)]
pub struct World {
    pub as_of: DateTime<FixedOffset>,
    pub vendors: BTreeMap<String, VendorWorld>,
}

const ITEM_NAMES: [&str; 8] = [
    "무선 이어폰",
    "텀블러 500ml",
    "양말 3켤레",
    "캠핑 의자",
    "USB-C 케이블",
    "유기농 쌀 10kg",
    "수분 크림",
    "요가 매트",
];

impl World {
    /// The world as it stands the morning after the last payment day (recent orders still moving).
    pub fn generate(config: &SimConfig) -> World {
        World::generate_at(config, World::final_moment(config))
    }

    /// The moment [`World::generate`] observes: 09:00 (Seoul) the day after the period.
    pub fn final_moment(config: &SimConfig) -> DateTime<FixedOffset> {
        at_kst(config.end_date() + Duration::days(1), 9 * 3600)
    }

    /// The world as it stands at `as_of`. Every draw is independent of `as_of`, so the same seed gives
    /// the same orders at every moment, each further along its lifecycle; orders paid less than the
    /// visibility delay before `as_of` are not there yet (Coupang lists new orders ~10 minutes late).
    pub fn generate_at(config: &SimConfig, as_of: DateTime<FixedOffset>) -> World {
        let visible_until = as_of - Duration::minutes(config.visibility_delay_minutes);
        let mut next_order_id: i64 = 24_000_000_000_000;
        let mut next_box_id: i64 = 640_000_000_000_000_000;
        let mut vendors = BTreeMap::new();
        for (vendor_index, vendor) in config.vendors.iter().enumerate() {
            let vendor_index = vendor_index as u64;
            let mut rng = SplitMix64::fork(config.seed, &[vendor_index]);
            let catalogue = catalogue(&mut rng, vendor_index);
            let mut boxes = Vec::new();
            for day in 0..config.days {
                let date = config.start_date + Duration::days(i64::from(day));
                let mean = i64::from(config.orders_per_day);
                let count = rng.range(mean / 2, mean + mean / 2);
                for _ in 0..count {
                    next_order_id += rng.range(1, 40);
                    next_box_id += rng.range(1, 1_000);
                    let ids = (next_order_id, next_box_id);
                    let whole = order(&mut rng, &config.lifecycle, &catalogue, date, as_of, ids);
                    if whole.lines.len() >= 2 && maybe(&mut rng, config.lifecycle.split_shipping_rate) {
                        next_box_id += 1;
                        boxes.extend(split(whole, next_box_id));
                    } else {
                        boxes.push(whole);
                    }
                }
            }
            boxes.retain(|b| b.paid_at <= visible_until);
            boxes.sort_by_key(|b| b.shipment_box_id);
            vendors.insert(vendor.vendor_id.clone(), VendorWorld { vendor_id: vendor.vendor_id.clone(), boxes });
        }
        World { as_of, vendors }
    }
}

fn at_kst(date: NaiveDate, second_of_day: u32) -> DateTime<FixedOffset> {
    let time = NaiveTime::from_num_seconds_from_midnight_opt(second_of_day, 0).expect("second within a day");
    kst().from_local_datetime(&date.and_time(time)).single().expect("fixed offset is unambiguous")
}

fn catalogue(rng: &mut SplitMix64, vendor_index: u64) -> Vec<Product> {
    (0..12)
        .map(|i| Product {
            vendor_item_id: 70_000_000_000 + (vendor_index as i64) * 1_000 + i,
            seller_product_id: 10_000_000 + (vendor_index as i64) * 100 + i / 2,
            name: format!("{} #{}", ITEM_NAMES[(i as usize) % ITEM_NAMES.len()], i + 1),
            // Korean shop prices: 100-won steps, 4,900 to 89,900 won.
            unit_price: rng.range(49, 899) * 100,
        })
        .collect()
}

fn order(
    rng: &mut SplitMix64,
    lifecycle: &LifecycleConfig,
    catalogue: &[Product],
    date: NaiveDate,
    as_of: DateTime<FixedOffset>,
    (order_id, shipment_box_id): (i64, i64),
) -> ShipmentBox {
    let paid_at = at_kst(date, rng.range(0, 86_399) as u32);
    let ordered_at = paid_at - Duration::seconds(rng.range(5, 300));
    let line_count = rng.range(1, 3) as usize;
    let first = rng.range(0, catalogue.len() as i64 - 1) as usize;
    let lines = (0..line_count)
        .map(|k| OrderLine {
            product: catalogue[(first + k * 5) % catalogue.len()].clone(),
            quantity: if rng.chance(0.25) { rng.range(2, 4) } else { 1 },
            cancelled: 0,
            cancel_pending: 0,
            returned: 0,
            coupon: Coupon::default(),
        })
        .collect();
    let shipping_price = match rng.range(0, 9) {
        0..=3 => 0,
        4..=7 => 3_000,
        _ => 2_500,
    };
    let remote_price = rng.chance(0.05).then_some(3_000);

    // Lifecycle by age: dispatch within a day, delivery one to three days later.
    let departs = paid_at + Duration::hours(rng.range(6, 30));
    let delivered = departs + Duration::hours(rng.range(20, 70));
    let untracked = rng.chance(0.03);
    let confirms = if rng.chance(lifecycle.buyer_confirm_rate) {
        delivered + Duration::hours(rng.range(12, 120))
    } else {
        delivered + Duration::days(7)
    };
    let (status, in_transit_at, delivered_at) = if as_of < paid_at + Duration::hours(3) {
        (BoxStatus::Accept, None, None)
    } else if as_of < departs {
        (BoxStatus::Instruct, None, None)
    } else if untracked {
        (BoxStatus::NoneTracking, Some(departs), None)
    } else if as_of < departs + Duration::hours(4) {
        (BoxStatus::Departure, Some(departs), None)
    } else if as_of < delivered {
        (BoxStatus::Delivering, Some(departs), None)
    } else {
        (BoxStatus::FinalDelivery, Some(departs), Some(delivered))
    };
    let mut b = ShipmentBox {
        shipment_box_id,
        order_id,
        ordered_at,
        paid_at,
        status,
        shipping_price,
        remote_price,
        in_transit_at,
        delivered_at,
        confirmed_at: (status == BoxStatus::FinalDelivery && confirms <= as_of).then_some(confirms),
        lines,
        receipts: Vec::new(),
        split_shipping: false,
        listed: true,
        zero_sale_at: None,
        refund_at: None,
        orderer_name: format!("구매자{}", order_id % 10_000),
        receiver_address: format!("서울특별시 강남구 테헤란로 {}", order_id % 500),
    };
    let timeline = Timeline { delivered: (!untracked).then_some(delivered), confirms };
    live(rng, lifecycle, &mut b, as_of, timeline);
    b
}

/// When things would happen to an order, whether or not they have by `as_of`.
struct Timeline {
    /// None for boxes that are never tracked to delivery.
    delivered: Option<DateTime<FixedOffset>>,
    confirms: DateTime<FixedOffset>,
}

/// Split shipping: the order's last item ships in a second box (its own id, no shipping fee of its
/// own), sharing the order's timeline and fate; receipts follow their items.
fn split(whole: ShipmentBox, second_box_id: i64) -> [ShipmentBox; 2] {
    let mut first = whole;
    first.split_shipping = true;
    let mut second = first.clone();
    second.shipment_box_id = second_box_id;
    second.shipping_price = 0;
    second.remote_price = None;
    second.lines = first.lines.split_off(first.lines.len() - 1);
    for part in [&mut first, &mut second] {
        let items: Vec<i64> = part.lines.iter().map(|l| l.product.vendor_item_id).collect();
        for receipt in &mut part.receipts {
            receipt.units.retain(|(item, _)| items.contains(item));
        }
        part.receipts.retain(|r| !r.units.is_empty());
        part.listed = part.listed && part.any_remaining();
    }
    [first, second]
}

/// Records a receipt covering every unit of the box; true when it completed by `as_of`.
fn receipt_for_every_unit(
    b: &mut ShipmentBox,
    receipt_id: i64,
    kind: ReceiptKind,
    (requested, completed): (DateTime<FixedOffset>, DateTime<FixedOffset>),
    as_of: DateTime<FixedOffset>,
) -> bool {
    let done = completed <= as_of;
    let units = b.lines.iter().map(|l| (l.product.vendor_item_id, l.quantity)).collect();
    b.receipts.push(Receipt {
        receipt_id,
        kind,
        created_at: requested,
        completed_at: done.then_some(completed),
        units,
    });
    done
}

/// Draws only for the lifecycle features that are on, so a world without them is the same as before.
fn maybe(rng: &mut SplitMix64, rate: f64) -> bool {
    rate > 0.0 && rng.chance(rate)
}

/// What happens to an order after payment, as seen at `as_of`: coupons, cancels, returns, and how
/// they change its listing, confirmation and revenue rows.
fn live(
    rng: &mut SplitMix64,
    lc: &LifecycleConfig,
    b: &mut ShipmentBox,
    as_of: DateTime<FixedOffset>,
    timeline: Timeline,
) {
    let confirms = timeline.confirms;
    for line in &mut b.lines {
        if maybe(rng, lc.coupon_rate) {
            let unit = line.product.unit_price;
            line.coupon = Coupon {
                instant: unit * rng.range(5, 15) / 100 / 100 * 100,
                downloadable: if rng.chance(0.5) { 1_000.min(unit / 2) } else { 0 },
                coupang: if rng.chance(0.3) { unit * 5 / 100 / 100 * 100 } else { 0 },
            };
        }
    }
    let receipt_id = b.order_id * 10 + 1;
    // Which fate the order has is drawn first, the same whatever `as_of` is.
    let cancelled_whole = maybe(rng, lc.cancel_before_dispatch_rate);
    let partly_cancelled = !cancelled_whole && maybe(rng, lc.partial_cancel_rate);
    let returned = !cancelled_whole && !partly_cancelled && maybe(rng, lc.return_rate);
    if cancelled_whole {
        // Cancelled whole within its first hours, while ACCEPT.
        let requested = b.paid_at + Duration::minutes(rng.range(10, 150));
        let completed = requested + Duration::minutes(rng.range(5, 25));
        if requested <= as_of {
            let done = receipt_for_every_unit(b, receipt_id, ReceiptKind::Cancel, (requested, completed), as_of);
            for line in &mut b.lines {
                if done {
                    line.cancelled = line.quantity
                } else {
                    line.cancel_pending = line.quantity
                }
            }
            b.status = BoxStatus::Accept;
            (b.in_transit_at, b.delivered_at, b.confirmed_at) = (None, None, None);
            if done {
                b.listed = false;
                b.zero_sale_at = Some(completed);
            }
        }
    } else if partly_cancelled {
        // Some units of one item cancelled before dispatch: one unit of a multi-unit item, or a whole item
        // of a multi-item order.
        let target = b.lines.iter().position(|l| l.quantity >= 2).or((b.lines.len() >= 2).then(|| b.lines.len() - 1));
        let requested = b.paid_at + Duration::minutes(rng.range(60, 300));
        let completed = requested + Duration::minutes(rng.range(10, 90));
        if let (Some(index), true) = (target, requested <= as_of) {
            let line = &mut b.lines[index];
            let units = if line.quantity >= 2 { 1 } else { line.quantity };
            let done = completed <= as_of;
            if done {
                line.cancelled = units
            } else {
                line.cancel_pending = units
            }
            let units = vec![(line.product.vendor_item_id, units)];
            b.receipts.push(Receipt {
                receipt_id,
                kind: ReceiptKind::Cancel,
                created_at: requested,
                completed_at: done.then_some(completed),
                units,
            });
        }
    } else if let (true, Some(delivered)) = (returned, timeline.delivered) {
        // Returned whole after delivery; before confirmation the buyer never confirms.
        let requested = delivered + Duration::hours(rng.range(12, 140));
        let completed = requested + Duration::hours(rng.range(24, 96));
        if requested <= as_of {
            let done = receipt_for_every_unit(b, receipt_id, ReceiptKind::Return, (requested, completed), as_of);
            let before_confirmation = requested < confirms;
            if before_confirmation {
                b.confirmed_at = None;
            }
            if done {
                for line in &mut b.lines {
                    line.returned = line.quantity;
                }
                b.listed = false;
                if before_confirmation {
                    b.zero_sale_at = Some(completed)
                } else {
                    b.refund_at = Some(completed)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_fixes_the_world() {
        let config = SimConfig { days: 5, ..SimConfig::default() };
        let a = World::generate(&config);
        let b = World::generate(&config);
        let ids = |w: &World| -> Vec<(i64, i64, &'static str)> {
            w.vendors
                .values()
                .flat_map(|v| v.boxes.iter().map(|b| (b.shipment_box_id, b.lines[0].order_price(), b.status.as_str())))
                .collect()
        };
        assert_eq!(ids(&a), ids(&b));
        let other = World::generate(&SimConfig { seed: 1, ..config });
        assert_ne!(ids(&a), ids(&other));
    }

    #[test]
    fn ids_have_coupang_shapes_and_are_unique() {
        let world = World::generate(&SimConfig::default());
        let (mut boxes, mut orders) = (std::collections::HashSet::new(), std::collections::HashMap::new());
        for vendor in world.vendors.values() {
            for b in &vendor.boxes {
                assert_eq!(b.shipment_box_id.to_string().len(), 18);
                assert_eq!(b.order_id.to_string().len(), 14);
                assert!(boxes.insert(b.shipment_box_id), "box ids are unique");
                let owner = orders.entry(b.order_id).or_insert(vendor.vendor_id.clone());
                assert_eq!(owner, &vendor.vendor_id, "an order belongs to one vendor");
                assert!(b.ordered_at <= b.paid_at);
            }
        }
        assert!(boxes.len() > orders.len(), "some orders ship in several boxes");
    }

    #[test]
    fn recent_orders_are_still_moving_and_old_ones_delivered() {
        let world = World::generate(&SimConfig::default());
        let statuses: std::collections::HashSet<BoxStatus> =
            world.vendors.values().flat_map(|v| v.boxes.iter().map(|b| b.status)).collect();
        for status in [BoxStatus::Instruct, BoxStatus::Delivering, BoxStatus::FinalDelivery, BoxStatus::NoneTracking] {
            assert!(statuses.contains(&status), "{status:?} missing");
        }
    }
}
