//! The simulated world's types: vendors, their catalogues and their orders over the simulated period,
//! and the paths an order can take.
//!
//! Every order is fixed by the seed and has progressed through its lifecycle according to its age at
//! the world's `as_of` instant. [`crate::generate`] draws the world day by day, and
//! [`crate::lifecycle`] what happens to each order; this module only describes what they draw.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use etl_core::time::kst;
use std::collections::BTreeMap;

use crate::config::{LifecycleConfig, SimConfig};
use crate::prng::SplitMix64;

/// The paths an order can take through its lifecycle; each box records those it took by `as_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Path {
    CancelledBeforeDispatch,
    PartlyCancelled,
    ReleaseStopped,
    StockOutCancelled,
    Returned,
    PartlyRefunded,
    TwoRefundsSameDay,
    LongPending,
    HeldForCancel,
    Withdrawn,
    Exchanged,
    Coupons,
    PriceCut,
    SplitShipping,
    SecondBoxFee,
    FirstBoxCancelled,
}

impl Path {
    pub const ALL: [Path; 16] = [
        Path::CancelledBeforeDispatch,
        Path::PartlyCancelled,
        Path::ReleaseStopped,
        Path::StockOutCancelled,
        Path::Returned,
        Path::PartlyRefunded,
        Path::TwoRefundsSameDay,
        Path::LongPending,
        Path::HeldForCancel,
        Path::Withdrawn,
        Path::Exchanged,
        Path::Coupons,
        Path::PriceCut,
        Path::SplitShipping,
        Path::SecondBoxFee,
        Path::FirstBoxCancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Path::CancelledBeforeDispatch => "cancelled whole before dispatch",
            Path::PartlyCancelled => "partly cancelled",
            Path::ReleaseStopped => "release stop (RU)",
            Path::StockOutCancelled => "seller stock-out cancel",
            Path::Returned => "returned whole",
            Path::PartlyRefunded => "partial refund after confirmation",
            Path::TwoRefundsSameDay => "two refunds on one day",
            Path::LongPending => "cancel or return still open weeks later",
            Path::HeldForCancel => "holdCountForCancel > 0",
            Path::Withdrawn => "request withdrawn",
            Path::Exchanged => "exchanged",
            Path::Coupons => "coupons",
            Path::PriceCut => "orderPrice below salesPrice × quantity",
            Path::SplitShipping => "split over two boxes",
            Path::SecondBoxFee => "fees on two boxes",
            Path::FirstBoxCancelled => "fee-carrying box cancelled, other box shipped",
        }
    }

    /// Whether `lifecycle` switches the path on (its rate, and the rates it depends on, above 0).
    pub fn enabled(self, lc: &LifecycleConfig) -> bool {
        let on = |rate: f64| rate > 0.0;
        match self {
            Path::CancelledBeforeDispatch => on(lc.cancel_before_dispatch_rate),
            Path::PartlyCancelled => on(lc.partial_cancel_rate),
            Path::ReleaseStopped => on(lc.release_stop_rate),
            Path::StockOutCancelled => on(lc.stock_out_rate),
            Path::Returned => on(lc.return_rate),
            Path::PartlyRefunded => on(lc.partial_refund_rate),
            Path::TwoRefundsSameDay => on(lc.partial_refund_rate) && on(lc.two_refunds_same_day_share),
            Path::LongPending => on(lc.long_pending_share) && (on(lc.return_rate) || on(lc.release_stop_rate)),
            Path::HeldForCancel => {
                on(lc.release_stop_rate) || on(lc.withdrawn_rate) || on(lc.cancel_before_dispatch_rate)
            }
            Path::Withdrawn => on(lc.withdrawn_rate),
            Path::Exchanged => on(lc.exchange_rate),
            Path::Coupons => on(lc.coupon_rate),
            Path::PriceCut => on(lc.price_cut_rate),
            Path::SplitShipping => on(lc.split_shipping_rate),
            Path::SecondBoxFee => on(lc.split_shipping_rate) && on(lc.second_box_fee_share),
            Path::FirstBoxCancelled => on(lc.split_shipping_rate) && on(lc.first_box_cancel_share),
        }
    }
}

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
    /// Shared by every line of the product (a world holds millions of lines).
    pub name: std::sync::Arc<str>,
    pub unit_price: i64,
}

#[derive(Debug, Clone)]
pub struct OrderLine {
    pub product: Product,
    pub quantity: i64,
    /// An option or instant price cut per unit, in won: the buyer pays `unit_price - price_cut` a unit
    /// (`orderPrice`), while `salesPrice` stays the list price.
    pub price_cut: i64,
    /// Units whose cancel completed by `as_of`.
    pub cancelled: i64,
    /// Units with a cancel requested but not completed (nor withdrawn) at `as_of`.
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
    /// What the buyer pays a unit: the list price less any option or instant price cut.
    pub fn unit_paid(&self) -> i64 {
        self.product.unit_price - self.price_cut
    }

    /// `orderPrice`: what every unit ordered cost the buyer.
    pub fn order_price(&self) -> i64 {
        self.unit_paid() * self.quantity
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

/// Where an open receipt stands (returnRequests' `receiptStatus` and the `status` list it is in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenStatus {
    /// A release stop the seller has not handled: listed under `RU`.
    ReleaseStopUnchecked,
    /// Received, not yet checked: listed under `UC`.
    ReturnsUnchecked,
    /// In the seller's warehouse, being checked: listed under `UC`.
    VendorWarehouseConfirm,
    /// The seller asked Coupang to check: listed under `PR`.
    RequestCoupangCheck,
}

impl OpenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OpenStatus::ReleaseStopUnchecked => "RELEASE_STOP_UNCHECKED",
            OpenStatus::ReturnsUnchecked => "RETURNS_UNCHECKED",
            OpenStatus::VendorWarehouseConfirm => "VENDOR_WAREHOUSE_CONFIRM",
            OpenStatus::RequestCoupangCheck => "REQUEST_COUPANG_CHECK",
        }
    }

    /// The returnRequests `status` list the receipt shows in while open.
    pub fn list_code(self) -> &'static str {
        match self {
            OpenStatus::ReleaseStopUnchecked => "RU",
            OpenStatus::ReturnsUnchecked | OpenStatus::VendorWarehouseConfirm => "UC",
            OpenStatus::RequestCoupangCheck => "PR",
        }
    }
}

/// A cancel or return receipt (returnRequests).
#[derive(Debug, Clone)]
pub struct Receipt {
    pub receipt_id: i64,
    pub kind: ReceiptKind,
    pub created_at: DateTime<FixedOffset>,
    /// None while it is still being processed at `as_of`.
    pub completed_at: Option<DateTime<FixedOffset>>,
    /// Its status while open.
    pub open_status: OpenStatus,
    /// The seller cancelled (stock ran out), not the buyer.
    pub by_seller: bool,
    /// (vendor item id, units)
    pub units: Vec<(i64, i64)>,
}

impl Receipt {
    /// The returnRequests status code this receipt is listed under.
    pub fn status_code(&self) -> &'static str {
        if self.completed_at.is_some() {
            "CC"
        } else {
            self.open_status.list_code()
        }
    }

    pub fn receipt_status(&self) -> &'static str {
        if self.completed_at.is_some() {
            "RETURNS_COMPLETED"
        } else {
            self.open_status.as_str()
        }
    }
}

/// A cancel or return request the buyer withdrew by `as_of` (returnWithdrawRequests); it left the
/// returnRequests lists then.
#[derive(Debug, Clone)]
pub struct Withdrawal {
    pub cancel_id: i64,
    pub requested_at: DateTime<FixedOffset>,
    pub withdrawn_at: DateTime<FixedOffset>,
    pub vendor_item_ids: Vec<i64>,
}

/// An exchange request (exchangeRequests): the buyer gets another unit, no money moves.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub exchange_id: i64,
    pub created_at: DateTime<FixedOffset>,
    pub completed_at: Option<DateTime<FixedOffset>>,
    /// (vendor item id, units)
    pub units: Vec<(i64, i64)>,
}

/// One shipment box: a whole order, or one of the boxes of a split order.
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
    pub withdrawals: Vec<Withdrawal>,
    pub exchanges: Vec<Exchange>,
    /// One of several boxes of its order.
    pub split_shipping: bool,
    /// Whether the order-sheet lists show the box: not once it was cancelled whole or its return completed.
    pub listed: bool,
    /// When the box was cancelled or returned whole before confirmation (revenue-history recognises a
    /// SALE row with `items: []` once every box of the order is).
    pub zero_sale_at: Option<DateTime<FixedOffset>>,
    /// The paths this box took, for coverage counts.
    pub paths: Vec<Path>,
}

impl ShipmentBox {
    pub fn paid_date(&self) -> NaiveDate {
        self.paid_at.date_naive()
    }

    /// Whether any unit of the box is neither cancelled nor returned.
    pub fn any_remaining(&self) -> bool {
        self.lines.iter().any(|l| l.remaining() > 0)
    }

    /// Personal data the real API returns (the pipeline must never need or keep it): the orderer's
    /// name and the receiver's address, made up from the order id when served.
    pub fn personal_data(&self) -> (String, String) {
        (format!("구매자{}", self.order_id % 10_000), format!("서울특별시 강남구 테헤란로 {}", self.order_id % 500))
    }

    /// Shipping and remote-area fee of the box.
    pub fn fee(&self) -> i64 {
        self.shipping_price + self.remote_price.unwrap_or(0)
    }
}

/// A non-order adjustment revenue-history lists with `orderId = 0`.
#[derive(Debug, Clone)]
pub struct Adjustment {
    pub recognized_on: NaiveDate,
    pub amount: i64,
}

#[derive(Debug, Clone)]
pub struct VendorWorld {
    pub vendor_id: String,
    /// Sorted by shipment box id, the order the list endpoint pages in (and by payment day).
    pub boxes: Vec<ShipmentBox>,
    /// Recognised by `as_of`, by day.
    pub adjustments: Vec<Adjustment>,
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

/// Ids of one vendor-day are drawn inside a block of their own, so any day can be generated alone.
pub(crate) const ORDER_ID_BASE: i64 = 24_000_000_000_000;
pub(crate) const ORDER_IDS_PER_DAY: i64 = 1_000_000;
pub(crate) const BOX_ID_BASE: i64 = 640_000_000_000_000_000;
pub(crate) const BOX_IDS_PER_DAY: i64 = 100_000_000;
/// Days a vendor's blocks are numbered over (the period may be at most this long).
pub(crate) const MAX_DAYS: i64 = 10_000;

/// The (vendor index, day of the period) whose block an order id was drawn from.
pub fn day_of_order(order_id: i64) -> Option<(usize, u32)> {
    let block = (order_id - ORDER_ID_BASE).checked_div(ORDER_IDS_PER_DAY).filter(|_| order_id >= ORDER_ID_BASE)?;
    Some(((block / MAX_DAYS) as usize, (block % MAX_DAYS) as u32))
}

/// The (vendor index, day of the period) whose block a shipment box id was drawn from.
pub fn day_of_box(shipment_box_id: i64) -> Option<(usize, u32)> {
    let block =
        (shipment_box_id - BOX_ID_BASE).checked_div(BOX_IDS_PER_DAY).filter(|_| shipment_box_id >= BOX_ID_BASE)?;
    Some(((block / MAX_DAYS) as usize, (block % MAX_DAYS) as u32))
}

pub(crate) fn at_kst(date: NaiveDate, second_of_day: u32) -> DateTime<FixedOffset> {
    let time = NaiveTime::from_num_seconds_from_midnight_opt(second_of_day, 0).expect("second within a day");
    kst().from_local_datetime(&date.and_time(time)).single().expect("fixed offset is unambiguous")
}

/// The vendor's twelve products, from the vendor's own generator.
pub fn catalogue(config: &SimConfig, vendor_index: usize) -> Vec<Product> {
    let rng = &mut SplitMix64::fork(config.seed, &[vendor_index as u64]);
    let vendor_index = vendor_index as u64;
    (0..12)
        .map(|i| Product {
            vendor_item_id: 70_000_000_000 + (vendor_index as i64) * 1_000 + i,
            seller_product_id: 10_000_000 + (vendor_index as i64) * 100 + i / 2,
            name: format!("{} #{}", ITEM_NAMES[(i as usize) % ITEM_NAMES.len()], i + 1).into(),
            // Korean shop prices: 100-won steps, 4,900 to 89,900 won.
            unit_price: rng.range(49, 899) * 100,
        })
        .collect()
}

/// Draws only for the lifecycle features that are on, so a world without them is the same as before.
pub(crate) fn maybe(rng: &mut SplitMix64, rate: f64) -> bool {
    rate > 0.0 && rng.chance(rate)
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
