//! What happens to an order after payment, as seen at `as_of`: its statuses by age, coupons and price
//! cuts, and at most one fate (a cancel, a release stop, a stock-out, a return, partial refunds), or else
//! a request the buyer withdraws and an exchange; split orders may lose their first box alone.
//!
//! Every draw is made whatever `as_of` is (the fate and all its times first), so the same seed gives
//! the same order at every moment, only further along. `as_of` only decides what has happened yet.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate};

use crate::config::LifecycleConfig;
use crate::prng::SplitMix64;
pub use crate::world::Path;
use crate::world::{
    at_kst, maybe, BoxStatus, Coupon, Exchange, OpenStatus, OrderLine, Product, Receipt, ReceiptKind, ShipmentBox,
    Withdrawal,
};

/// Receipts, withdrawals and exchanges are requested at most this many days after payment (a partial
/// refund: up to 4 days to deliver, 7 to confirm automatically, 10 more to ask).
pub const LATEST_REQUEST_DAYS: i64 = 25;
/// Revenue rows are recognised at most this many days after payment (a return asked on day 10 and
/// still open for 60 days).
pub const LATEST_RECOGNITION_DAYS: i64 = 75;

/// When things would happen to an order, whether or not they have by `as_of`.
struct Timeline {
    paid_at: DateTime<FixedOffset>,
    departs: DateTime<FixedOffset>,
    /// None for boxes that are never tracked to delivery.
    delivered: Option<DateTime<FixedOffset>>,
    confirms: DateTime<FixedOffset>,
}

impl Timeline {
    /// Status, departure and delivery as the order-sheet shows them at `as_of`.
    fn status_at(
        &self,
        as_of: DateTime<FixedOffset>,
    ) -> (BoxStatus, Option<DateTime<FixedOffset>>, Option<DateTime<FixedOffset>>) {
        let departs = self.departs;
        if as_of < self.paid_at + Duration::hours(3) {
            (BoxStatus::Accept, None, None)
        } else if as_of < departs {
            (BoxStatus::Instruct, None, None)
        } else {
            match self.delivered {
                None => (BoxStatus::NoneTracking, Some(departs), None),
                Some(_) if as_of < departs + Duration::hours(4) => (BoxStatus::Departure, Some(departs), None),
                Some(delivered) if as_of < delivered => (BoxStatus::Delivering, Some(departs), None),
                Some(delivered) => (BoxStatus::FinalDelivery, Some(departs), Some(delivered)),
            }
        }
    }

    /// A moment while the order is INSTRUCT (3 h after payment until it departs).
    fn while_instruct(&self, rng: &mut SplitMix64) -> DateTime<FixedOffset> {
        let window = (self.departs - self.paid_at - Duration::hours(3)).num_minutes().max(1);
        self.paid_at + Duration::hours(3) + Duration::minutes(rng.range(0, window - 1))
    }
}

/// What happens to the order, drawn with all its times before looking at `as_of`.
enum Fate {
    None,
    CancelledWhole { requested: DateTime<FixedOffset>, completed: DateTime<FixedOffset> },
    PartlyCancelled { requested: DateTime<FixedOffset>, completed: DateTime<FixedOffset> },
    ReleaseStop { requested: DateTime<FixedOffset>, completed: DateTime<FixedOffset>, long: bool },
    StockOut { requested: DateTime<FixedOffset>, completed: DateTime<FixedOffset> },
    Returned { requested: DateTime<FixedOffset>, completed: DateTime<FixedOffset>, long: bool, open: OpenStatus },
    PartlyRefunded { requested: DateTime<FixedOffset>, completed: [DateTime<FixedOffset>; 2], two: bool },
}

/// A request the buyer withdraws: a cancel while ACCEPT, or a return after delivery.
struct WithdrawnRequest {
    kind: ReceiptKind,
    requested: DateTime<FixedOffset>,
    withdrawn: DateTime<FixedOffset>,
}

/// One order drawn from `rng`, as its box or boxes stand at `as_of`.
pub(crate) fn order(
    rng: &mut SplitMix64,
    lc: &LifecycleConfig,
    catalogue: &[Product],
    date: NaiveDate,
    as_of: DateTime<FixedOffset>,
    (order_id, shipment_box_id): (i64, i64),
) -> Vec<ShipmentBox> {
    let paid_at = at_kst(date, rng.range(0, 86_399) as u32);
    let ordered_at = paid_at - Duration::seconds(rng.range(5, 300));
    let line_count = rng.range(1, 3) as usize;
    let first = rng.range(0, catalogue.len() as i64 - 1) as usize;
    let mut lines: Vec<OrderLine> = (0..line_count)
        .map(|k| OrderLine {
            product: catalogue[(first + k * 5) % catalogue.len()].clone(),
            quantity: if rng.chance(0.25) { rng.range(2, 4) } else { 1 },
            price_cut: 0,
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
    let confirms = if rng.chance(lc.buyer_confirm_rate) {
        delivered + Duration::hours(rng.range(12, 120))
    } else {
        delivered + Duration::days(7)
    };
    let mut timeline = Timeline { paid_at, departs, delivered: (!untracked).then_some(delivered), confirms };
    let mut paths = Vec::new();
    for line in &mut lines {
        if maybe(rng, lc.coupon_rate) {
            let unit = line.product.unit_price;
            line.coupon = Coupon {
                instant: unit * rng.range(5, 15) / 100 / 100 * 100,
                downloadable: if rng.chance(0.5) { 1_000.min(unit / 2) } else { 0 },
                coupang: if rng.chance(0.3) { unit * 5 / 100 / 100 * 100 } else { 0 },
            };
            paths.push(Path::Coupons);
        }
        if maybe(rng, lc.price_cut_rate) {
            line.price_cut = (line.product.unit_price * rng.range(5, 20) / 100 / 100 * 100).max(100);
            paths.push(Path::PriceCut);
        }
    }
    let fate = draw_fate(rng, lc, &timeline, &lines);
    let quiet = matches!(fate, Fate::None);
    let withdrawn = if quiet && maybe(rng, lc.withdrawn_rate) { draw_withdrawal(rng, &timeline) } else { None };
    let exchange = if quiet && maybe(rng, lc.exchange_rate) {
        timeline.delivered.map(|delivered| {
            let created = delivered + Duration::hours(rng.range(24, 120));
            (created, created + Duration::hours(rng.range(48, 144)))
        })
    } else {
        None
    };
    let split = lines.len() >= 2 && maybe(rng, lc.split_shipping_rate);
    let second_box_fee = split && maybe(rng, lc.second_box_fee_share);
    let first_box_cancel = if split && quiet && maybe(rng, lc.first_box_cancel_share) {
        let requested = paid_at + Duration::minutes(rng.range(10, 150));
        Some((requested, requested + Duration::minutes(rng.range(5, 25))))
    } else {
        None
    };
    // A return requested before confirmation holds the confirmation until it is withdrawn.
    if let Some(w) = withdrawn.as_ref().filter(|w| w.kind == ReceiptKind::Return && w.requested < confirms) {
        timeline.confirms = confirms.max(w.withdrawn + Duration::hours(1));
    }

    let (status, in_transit_at, delivered_at) = timeline.status_at(as_of);
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
        confirmed_at: (status == BoxStatus::FinalDelivery && timeline.confirms <= as_of).then_some(timeline.confirms),
        lines,
        receipts: Vec::new(),
        withdrawals: Vec::new(),
        exchanges: Vec::new(),
        split_shipping: false,
        listed: true,
        zero_sale_at: None,
        paths,
    };
    apply_fate(&mut b, fate, as_of);
    if let Some(request) = withdrawn {
        apply_withdrawal(&mut b, request, as_of);
    }
    if let Some((created, completed)) = exchange.filter(|(created, _)| *created <= as_of) {
        let first = &b.lines[0];
        b.exchanges.push(Exchange {
            exchange_id: order_id * 10 + 4,
            created_at: created,
            completed_at: (completed <= as_of).then_some(completed),
            units: vec![(first.product.vendor_item_id, 1)],
        });
        b.paths.push(Path::Exchanged);
    }
    if b.lines.iter().any(|l| l.cancel_pending > 0) {
        b.paths.push(Path::HeldForCancel);
    }
    if !split {
        return vec![b];
    }
    let [mut first, mut second] = split_in_two(b, shipment_box_id + 1);
    if second_box_fee {
        second.shipping_price = 2_500;
        second.paths.push(Path::SecondBoxFee);
    }
    if let Some((requested, completed)) = first_box_cancel.filter(|(requested, _)| *requested <= as_of) {
        cancel_whole_box(&mut first, order_id * 10 + 5, (requested, completed), as_of);
        first.paths.push(Path::FirstBoxCancelled);
    }
    vec![first, second]
}

/// At most one fate per order, drawn in a fixed order so that switching one path off leaves the others'
/// draws alone.
fn draw_fate(rng: &mut SplitMix64, lc: &LifecycleConfig, t: &Timeline, lines: &[OrderLine]) -> Fate {
    let minutes = |rng: &mut SplitMix64, lo, hi| Duration::minutes(rng.range(lo, hi));
    let hours = |rng: &mut SplitMix64, lo, hi| Duration::hours(rng.range(lo, hi));
    let long = |rng: &mut SplitMix64| maybe(rng, lc.long_pending_share);
    if maybe(rng, lc.cancel_before_dispatch_rate) {
        let requested = t.paid_at + minutes(rng, 10, 150);
        return Fate::CancelledWhole { requested, completed: requested + minutes(rng, 5, 25) };
    }
    if maybe(rng, lc.partial_cancel_rate) {
        let requested = t.paid_at + minutes(rng, 60, 300);
        return Fate::PartlyCancelled { requested, completed: requested + minutes(rng, 10, 90) };
    }
    if maybe(rng, lc.release_stop_rate) {
        let requested = t.while_instruct(rng);
        let long = long(rng);
        let completed = requested + if long { Duration::days(rng.range(20, 60)) } else { hours(rng, 1, 24) };
        return Fate::ReleaseStop { requested, completed, long };
    }
    if maybe(rng, lc.stock_out_rate) {
        let requested = t.while_instruct(rng);
        return Fate::StockOut { requested, completed: requested + minutes(rng, 1, 30) };
    }
    if let (true, Some(delivered)) = (maybe(rng, lc.return_rate), t.delivered) {
        let requested = delivered + hours(rng, 12, 140);
        let long = long(rng);
        let completed = requested + if long { Duration::days(rng.range(20, 60)) } else { hours(rng, 24, 96) };
        let open = [OpenStatus::ReturnsUnchecked, OpenStatus::VendorWarehouseConfirm, OpenStatus::RequestCoupangCheck]
            [rng.range(0, 2) as usize];
        return Fate::Returned { requested, completed, long, open };
    }
    let can_return_part = lines.len() >= 2 || lines.iter().any(|l| l.quantity >= 2);
    if let (true, Some(_), true) = (maybe(rng, lc.partial_refund_rate), t.delivered, can_return_part) {
        let requested = t.confirms + hours(rng, 24, 240);
        let day = (requested + Duration::days(rng.range(1, 4))).date_naive();
        let completed =
            [at_kst(day, 36_000 + rng.range(0, 3_600) as u32), at_kst(day, 54_000 + rng.range(0, 3_600) as u32)];
        return Fate::PartlyRefunded { requested, completed, two: maybe(rng, lc.two_refunds_same_day_share) };
    }
    Fate::None
}

fn draw_withdrawal(rng: &mut SplitMix64, t: &Timeline) -> Option<WithdrawnRequest> {
    if rng.chance(0.5) {
        let requested = t.paid_at + Duration::minutes(rng.range(10, 150));
        let withdrawn = requested + Duration::minutes(rng.range(5, 120));
        return Some(WithdrawnRequest { kind: ReceiptKind::Cancel, requested, withdrawn });
    }
    let requested = t.delivered? + Duration::hours(rng.range(12, 72));
    let withdrawn = requested + Duration::hours(rng.range(6, 48));
    Some(WithdrawnRequest { kind: ReceiptKind::Return, requested, withdrawn })
}

/// A receipt of `units`, completed if `completed` is by `as_of`.
fn receipt(
    id: i64,
    kind: ReceiptKind,
    (requested, completed): (DateTime<FixedOffset>, DateTime<FixedOffset>),
    open_status: OpenStatus,
    units: Vec<(i64, i64)>,
    as_of: DateTime<FixedOffset>,
) -> Receipt {
    Receipt {
        receipt_id: id,
        kind,
        created_at: requested,
        completed_at: (completed <= as_of).then_some(completed),
        open_status,
        by_seller: false,
        units,
    }
}

fn every_unit(b: &ShipmentBox) -> Vec<(i64, i64)> {
    b.lines.iter().map(|l| (l.product.vendor_item_id, l.quantity)).collect()
}

/// The order stops before it ever leaves: no transit, delivery or confirmation, and `status` stays.
fn stopped_at(b: &mut ShipmentBox, status: BoxStatus) {
    b.status = status;
    (b.in_transit_at, b.delivered_at, b.confirmed_at) = (None, None, None);
}

/// A cancel of every unit of the box while ACCEPT; once done the box leaves the lists and is undone
/// before confirmation.
fn cancel_whole_box(
    b: &mut ShipmentBox,
    id: i64,
    times: (DateTime<FixedOffset>, DateTime<FixedOffset>),
    as_of: DateTime<FixedOffset>,
) {
    let r = receipt(id, ReceiptKind::Cancel, times, OpenStatus::ReturnsUnchecked, every_unit(b), as_of);
    let done = r.completed_at.is_some();
    for line in &mut b.lines {
        if done {
            (line.cancelled, line.cancel_pending) = (line.quantity, 0)
        } else {
            line.cancel_pending = line.quantity
        }
    }
    stopped_at(b, BoxStatus::Accept);
    if done {
        b.listed = false;
        b.zero_sale_at = r.completed_at;
    }
    b.receipts.push(r);
}

fn apply_fate(b: &mut ShipmentBox, fate: Fate, as_of: DateTime<FixedOffset>) {
    let id = b.order_id * 10 + 1;
    match fate {
        Fate::None => {}
        Fate::CancelledWhole { requested, completed } if requested <= as_of => {
            cancel_whole_box(b, id, (requested, completed), as_of);
            b.paths.push(Path::CancelledBeforeDispatch);
        }
        Fate::PartlyCancelled { requested, completed } if requested <= as_of => {
            // One unit of a multi-unit item, or the last item of a multi-item order.
            let target =
                b.lines.iter().position(|l| l.quantity >= 2).or((b.lines.len() >= 2).then(|| b.lines.len() - 1));
            if let Some(index) = target {
                let line = &mut b.lines[index];
                let units = if line.quantity >= 2 { 1 } else { line.quantity };
                let r = receipt(
                    id,
                    ReceiptKind::Cancel,
                    (requested, completed),
                    OpenStatus::ReturnsUnchecked,
                    vec![(line.product.vendor_item_id, units)],
                    as_of,
                );
                if r.completed_at.is_some() {
                    line.cancelled = units
                } else {
                    line.cancel_pending = units
                }
                b.receipts.push(r);
                b.paths.push(Path::PartlyCancelled);
            }
        }
        Fate::ReleaseStop { requested, completed, long } if requested <= as_of => {
            // The buyer asks to stop the shipment while it is prepared: the box never leaves.
            let r = receipt(
                id,
                ReceiptKind::Return,
                (requested, completed),
                OpenStatus::ReleaseStopUnchecked,
                every_unit(b),
                as_of,
            );
            stopped_at(b, BoxStatus::Instruct);
            for line in &mut b.lines {
                if r.completed_at.is_some() {
                    line.returned = line.quantity
                } else {
                    line.cancel_pending = line.quantity
                }
            }
            if r.completed_at.is_some() {
                b.listed = false;
                b.zero_sale_at = r.completed_at;
            } else if long {
                b.paths.push(Path::LongPending);
            }
            b.receipts.push(r);
            b.paths.push(Path::ReleaseStopped);
        }
        Fate::StockOut { requested, completed } if requested <= as_of => {
            // The seller cancels what it cannot ship: the last item, or the whole box if it has one.
            let whole = b.lines.len() == 1;
            let units = if whole { every_unit(b) } else { every_unit(b).split_off(b.lines.len() - 1) };
            let mut r =
                receipt(id, ReceiptKind::Cancel, (requested, completed), OpenStatus::ReturnsUnchecked, units, as_of);
            r.by_seller = true;
            let done = r.completed_at.is_some();
            if let Some(line) = b.lines.last_mut() {
                if done {
                    line.cancelled = line.quantity
                } else {
                    line.cancel_pending = line.quantity
                }
            }
            if whole {
                stopped_at(b, BoxStatus::Instruct);
                if done {
                    b.listed = false;
                    b.zero_sale_at = r.completed_at;
                }
            }
            b.receipts.push(r);
            b.paths.push(Path::StockOutCancelled);
        }
        Fate::Returned { requested, completed, long, open } if requested <= as_of && b.delivered_at.is_some() => {
            // Returned whole after delivery; a return requested before confirmation holds it for good.
            let r = receipt(id, ReceiptKind::Return, (requested, completed), open, every_unit(b), as_of);
            let before_confirmation = b.confirmed_at.is_none_or(|confirmed| requested < confirmed);
            if before_confirmation {
                b.confirmed_at = None;
            }
            if let Some(done) = r.completed_at {
                for line in &mut b.lines {
                    line.returned = line.quantity;
                }
                b.listed = false;
                if before_confirmation {
                    b.zero_sale_at = Some(done)
                }
            } else if long {
                b.paths.push(Path::LongPending);
            }
            b.receipts.push(r);
            b.paths.push(Path::Returned);
        }
        Fate::PartlyRefunded { requested, completed, two } if requested <= as_of && b.confirmed_at.is_some() => {
            // Some units come back after confirmation: each completed receipt is a REFUND row.
            let mut picks: Vec<usize> = Vec::new();
            let first = b.lines.iter().position(|l| l.quantity >= 2).unwrap_or(b.lines.len() - 1);
            picks.push(first);
            if two {
                let other = (0..b.lines.len()).find(|&i| i != first);
                if let Some(i) = other.or((b.lines[first].quantity >= 3).then_some(first)) {
                    picks.push(i);
                }
            }
            for (k, &index) in picks.iter().enumerate() {
                let line = &mut b.lines[index];
                let r = receipt(
                    id + k as i64,
                    ReceiptKind::Return,
                    (requested + Duration::minutes(k as i64), completed[k]),
                    OpenStatus::ReturnsUnchecked,
                    vec![(line.product.vendor_item_id, 1)],
                    as_of,
                );
                if r.completed_at.is_some() {
                    line.returned += 1;
                }
                b.receipts.push(r);
            }
            b.listed = b.any_remaining();
            b.paths.push(Path::PartlyRefunded);
            if picks.len() == 2 {
                b.paths.push(Path::TwoRefundsSameDay);
            }
        }
        _ => {}
    }
}

/// A request open from `requested` until the buyer withdraws it; once withdrawn it leaves the lists and
/// the order goes on as if it never was.
fn apply_withdrawal(b: &mut ShipmentBox, request: WithdrawnRequest, as_of: DateTime<FixedOffset>) {
    if request.requested > as_of {
        return;
    }
    let id = b.order_id * 10 + 3;
    if request.withdrawn <= as_of {
        b.withdrawals.push(Withdrawal {
            cancel_id: id,
            requested_at: request.requested,
            withdrawn_at: request.withdrawn,
            vendor_item_ids: b.lines.iter().map(|l| l.product.vendor_item_id).collect(),
        });
        b.paths.push(Path::Withdrawn);
        return;
    }
    let far = request.withdrawn + Duration::days(365);
    b.receipts.push(receipt(
        id,
        request.kind,
        (request.requested, far),
        OpenStatus::ReturnsUnchecked,
        every_unit(b),
        as_of,
    ));
    if request.kind == ReceiptKind::Cancel {
        for line in &mut b.lines {
            line.cancel_pending = line.quantity;
        }
    }
}

/// Split shipping: the order's last item ships in a second box (its own id, no shipping fee of its
/// own unless drawn), sharing the order's timeline and fate; receipts, withdrawals and exchanges follow
/// their items.
fn split_in_two(whole: ShipmentBox, second_box_id: i64) -> [ShipmentBox; 2] {
    let mut first = whole;
    first.split_shipping = true;
    first.paths.push(Path::SplitShipping);
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
        for exchange in &mut part.exchanges {
            exchange.units.retain(|(item, _)| items.contains(item));
        }
        part.exchanges.retain(|e| !e.units.is_empty());
        for withdrawal in &mut part.withdrawals {
            withdrawal.vendor_item_ids.retain(|item| items.contains(item));
        }
        part.withdrawals.retain(|w| !w.vendor_item_ids.is_empty());
        part.listed = part.listed && part.any_remaining();
        if !part.any_remaining() && part.zero_sale_at.is_none() && part.confirmed_at.is_none() {
            // Every unit of this part was undone before confirmation by the order's fate.
            part.zero_sale_at = part.receipts.iter().filter_map(|r| r.completed_at).max();
        }
        if part.any_remaining() && part.zero_sale_at.is_some() {
            part.zero_sale_at = None;
        }
    }
    [first, second]
}

/// How many orders of `world` took each path by its moment, for every path (0 for those none took),
/// and how many non-order adjustment rows it has.
pub fn coverage(world: &crate::World) -> (Vec<(Path, usize)>, usize) {
    let mut orders: std::collections::HashMap<Path, std::collections::HashSet<i64>> = Default::default();
    for b in world.vendors.values().flat_map(|v| v.boxes.iter()) {
        for path in &b.paths {
            orders.entry(*path).or_default().insert(b.order_id);
        }
    }
    let counts = Path::ALL.iter().map(|p| (*p, orders.get(p).map_or(0, |o| o.len()))).collect();
    (counts, world.vendors.values().map(|v| v.adjustments.len()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SimConfig, World};

    #[test]
    fn a_month_of_a_small_shop_takes_every_path_at_the_default_rates() {
        let world = World::generate(&SimConfig { days: 30, orders_per_day: 30, ..SimConfig::default() });
        let (paths, adjustments) = coverage(&world);
        for (path, orders) in &paths {
            assert!(path.enabled(&LifecycleConfig::default()));
            assert!(*orders > 0, "{}: {paths:?}", path.name());
        }
        assert!(adjustments > 0);
    }

    #[test]
    fn requests_and_recognitions_fall_within_the_declared_windows() {
        let config = SimConfig { days: 60, orders_per_day: 40, ..SimConfig::default() };
        let world = World::generate_at(&config, World::final_moment(&config) + Duration::days(90));
        for b in world.vendors.values().flat_map(|v| v.boxes.iter()) {
            let after_payment = |t: DateTime<FixedOffset>| (t - b.paid_at).num_days();
            for r in &b.receipts {
                assert!(after_payment(r.created_at) <= LATEST_REQUEST_DAYS, "{r:?}");
                assert!(r.completed_at.is_none_or(|t| after_payment(t) <= LATEST_RECOGNITION_DAYS), "{r:?}");
            }
            for w in &b.withdrawals {
                assert!(after_payment(w.withdrawn_at) <= LATEST_REQUEST_DAYS);
            }
            for e in &b.exchanges {
                assert!(after_payment(e.created_at) <= LATEST_REQUEST_DAYS);
            }
            assert!(b.confirmed_at.is_none_or(|t| after_payment(t) <= LATEST_RECOGNITION_DAYS));
        }
    }

    #[test]
    fn switching_a_path_off_removes_it() {
        let lifecycle = LifecycleConfig { release_stop_rate: 0.0, exchange_rate: 0.0, ..LifecycleConfig::default() };
        let world = World::generate(&SimConfig { days: 20, orders_per_day: 30, lifecycle, ..SimConfig::default() });
        let (paths, _) = coverage(&world);
        for (path, orders) in paths {
            if matches!(path, Path::ReleaseStopped | Path::Exchanged) {
                assert_eq!(orders, 0, "{}", path.name());
            }
        }
        let plain =
            World::generate(&SimConfig { days: 20, lifecycle: LifecycleConfig::plain(), ..SimConfig::default() });
        let (paths, adjustments) = coverage(&plain);
        let taken: Vec<_> = paths.iter().filter(|(_, n)| *n > 0).map(|(p, _)| p.name()).collect();
        assert_eq!(taken, vec![Path::SplitShipping.name(), Path::SecondBoxFee.name()], "plain keeps split shipping");
        assert_eq!(adjustments, 0);
    }
}
