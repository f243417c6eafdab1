//! What the pipeline knows about one order: the newest snapshot of each of its shipment boxes, of each
//! cancel/return receipt and of each revenue-history row, folded from raw events in any order.
//!
//! The fold is a *join*: for every component it keeps the greater of the known and the incoming
//! record under a total order that ranks lifecycle progress first, source time second and the
//! record's own bytes last. Folding a set of events therefore gives the same state whatever their
//! order, duplicates and replays included, and a stale event can never replace newer knowledge.

use coupang_schemas::{
    decode, encode, EventType, OrderKey, OrderSheetEvent, OrderStatus, ReceiptStatus, ReturnRequestEvent, RevenueEvent,
    SaleType,
};
use etl_core::time::date_from_days;
use litemap::LiteMap;
use std::cmp::Ordering;

/// One raw event of any of the three input streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEvent {
    OrderSheet(OrderSheetEvent),
    ReturnRequest(ReturnRequestEvent),
    Revenue(RevenueEvent),
}

/// The raw topic a payload came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawStream {
    OrderSheets,
    ReturnRequests,
    Revenue,
}

/// The largest amount, in won, any one line, fee or coupon of a real order can have: 10 trillion won.
/// Beyond it a record is corrupt, and sums of such amounts could overflow.
const MAX_PLAUSIBLE_WON: i64 = 10_000_000_000_000;

fn plausible_won(amounts: &[i64]) -> bool {
    amounts.iter().all(|won| won.unsigned_abs() <= MAX_PLAUSIBLE_WON as u64)
}

impl RawEvent {
    /// Decodes and validates a payload of `stream`: `Ok(None)` for records that belong to no order
    /// (revenue adjustments with `orderId = 0`), `Err` for poison.
    pub fn read(stream: RawStream, payload: &[u8]) -> Result<Option<RawEvent>, PoisonEvent> {
        let event = match stream {
            RawStream::OrderSheets => RawEvent::OrderSheet(decode(payload)?),
            RawStream::ReturnRequests => RawEvent::ReturnRequest(decode(payload)?),
            RawStream::Revenue => {
                let row: RevenueEvent = decode(payload)?;
                if row.order_id == 0 {
                    return Ok(None);
                }
                RawEvent::Revenue(row)
            }
        };
        event.validate()?;
        Ok(Some(event))
    }
}

/// A raw event borrowed from wherever it is kept (an incoming message or a state's slot).
#[derive(Debug, Clone, Copy)]
pub enum EventRef<'a> {
    OrderSheet(&'a OrderSheetEvent),
    ReturnRequest(&'a ReturnRequestEvent),
    Revenue(&'a RevenueEvent),
}

impl<'a> EventRef<'a> {
    /// When and under which alias ingest fetched the record: the last tie-breaker, so that even
    /// re-collections of the same record fold the same way in every order.
    pub fn collection(&self) -> (i64, &'a str) {
        match *self {
            EventRef::OrderSheet(e) => (e.collected_at, &e.account_alias),
            EventRef::ReturnRequest(e) => (e.collected_at, &e.account_alias),
            EventRef::Revenue(e) => (e.collected_at, &e.account_alias),
        }
    }

    /// When Coupang last had something new to say in this record (never the collection time).
    pub fn source_time(&self) -> i64 {
        match *self {
            EventRef::OrderSheet(e) => {
                let confirmed = e.items.iter().filter_map(|i| i.confirm_date);
                [Some(e.paid_at), e.ordered_at, e.in_transit_at, e.delivered_at]
                    .into_iter()
                    .flatten()
                    .chain(confirmed)
                    .max()
                    .unwrap_or(e.paid_at)
            }
            EventRef::ReturnRequest(e) => {
                [Some(e.created_at), e.modified_at, e.complete_confirm_date].into_iter().flatten().max().unwrap_or(0)
            }
            // A revenue row only has days: its change is midnight of the recognition day, Korea time.
            EventRef::Revenue(e) => midnight_kst(e.recognition_date).unwrap_or(0),
        }
    }

    /// Lifecycle progress the record reports, so that a later snapshot outranks an earlier one even
    /// when Coupang's timestamps did not move (a cancel counted, a line confirmed).
    pub fn progress(&self) -> i64 {
        match *self {
            EventRef::OrderSheet(e) => {
                let lines: i64 = e
                    .items
                    .iter()
                    .map(|i| {
                        i64::from(i.hold_count_for_cancel)
                            + 2 * i64::from(i.cancel_count)
                            + 2 * i64::from(i.confirm_date.is_some())
                    })
                    .sum();
                status_rank(&e.status).unwrap_or(0) + lines
            }
            EventRef::ReturnRequest(e) => {
                1 + receipt_rank(&e.receipt_status).unwrap_or(0) + i64::from(e.complete_confirm_date.is_some())
            }
            EventRef::Revenue(_) => 1,
        }
    }
}

/// Why a raw record goes to the dead-letter topic instead of into an order's state.
#[derive(Debug, thiserror::Error)]
pub enum PoisonEvent {
    /// Not a record of the topic's schema (the codec says why).
    #[error(transparent)]
    Undecodable(#[from] coupang_schemas::CodecError),
    #[error(transparent)]
    Invalid(#[from] InvalidEvent),
    /// Consumed from a topic that is not one of the raw topics.
    #[error("unexpected topic {0}")]
    UnexpectedTopic(String),
}

/// A raw event that cannot be folded: it names the record so the dead-letter entry can be traced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{record} of vendor {vendor_id}: {problem}")]
pub struct InvalidEvent {
    pub vendor_id: String,
    pub record: String,
    pub problem: String,
}

/// Where a revenue row sits in an order's state: its sale type, recognition day and rank among that
/// day's rows of the same type (two partial refunds on one day are two slots).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RevenueSlot {
    pub sale_type: SaleType,
    pub recognition_date: i32,
    pub same_day_row: i32,
}

/// Which slot of its order's state an event goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotKey {
    Box(i64),
    Receipt(i64),
    Revenue(RevenueSlot),
}

impl RawEvent {
    /// The slot this event goes to in its order's state.
    pub fn slot(&self) -> SlotKey {
        match self {
            RawEvent::OrderSheet(e) => SlotKey::Box(e.slot_key()),
            RawEvent::ReturnRequest(e) => SlotKey::Receipt(e.slot_key()),
            RawEvent::Revenue(e) => SlotKey::Revenue(e.slot_key()),
        }
    }
}

/// A kind of record an order's state keeps the newest snapshot of, one per slot: the one place that
/// says which slot a record takes and where the state keeps those slots.
pub trait Slotted: Clone + EventType {
    type Key: Ord;
    /// The record's slot: its shipment box, its receipt, or its revenue row's [`RevenueSlot`].
    fn slot_key(&self) -> Self::Key;
    fn slots(state: &OrderState) -> &LiteMap<Self::Key, Self>;
    fn slots_mut(state: &mut OrderState) -> &mut LiteMap<Self::Key, Self>;
    fn event_ref(&self) -> EventRef<'_>;
    /// The record without when and under which alias ingest fetched it.
    fn without_collection(&self) -> Self;
}

impl Slotted for OrderSheetEvent {
    type Key = i64;
    fn slot_key(&self) -> i64 {
        self.shipment_box_id
    }
    fn slots(state: &OrderState) -> &LiteMap<i64, Self> {
        &state.boxes
    }
    fn slots_mut(state: &mut OrderState) -> &mut LiteMap<i64, Self> {
        &mut state.boxes
    }
    fn event_ref(&self) -> EventRef<'_> {
        EventRef::OrderSheet(self)
    }
    fn without_collection(&self) -> Self {
        Self { collected_at: 0, account_alias: String::new(), ..self.clone() }
    }
}

impl Slotted for ReturnRequestEvent {
    type Key = i64;
    fn slot_key(&self) -> i64 {
        self.receipt_id
    }
    fn slots(state: &OrderState) -> &LiteMap<i64, Self> {
        &state.receipts
    }
    fn slots_mut(state: &mut OrderState) -> &mut LiteMap<i64, Self> {
        &mut state.receipts
    }
    fn event_ref(&self) -> EventRef<'_> {
        EventRef::ReturnRequest(self)
    }
    fn without_collection(&self) -> Self {
        Self { collected_at: 0, account_alias: String::new(), ..self.clone() }
    }
}

impl Slotted for RevenueEvent {
    type Key = RevenueSlot;
    fn slot_key(&self) -> RevenueSlot {
        RevenueSlot {
            sale_type: self.sale_type,
            recognition_date: self.recognition_date,
            same_day_row: self.same_day_row,
        }
    }
    fn slots(state: &OrderState) -> &LiteMap<RevenueSlot, Self> {
        &state.revenue
    }
    fn slots_mut(state: &mut OrderState) -> &mut LiteMap<RevenueSlot, Self> {
        &mut state.revenue
    }
    fn event_ref(&self) -> EventRef<'_> {
        EventRef::Revenue(self)
    }
    fn without_collection(&self) -> Self {
        Self { collected_at: 0, account_alias: String::new(), ..self.clone() }
    }
}

/// The state of one (vendor, order).
///
/// Its records are kept in sorted vectors (`LiteMap`), not `BTreeMap`s: an order has one or two of
/// each kind, and a `BTreeMap` node made room for eleven; allocating, walking and dropping those nodes
/// was ~5% of the stage's CPU (BENCHMARKS.md, "Sorted vectors for an order's records"). The rules'
/// per-item maps are the same for the same reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderState {
    /// Newest snapshot of each shipment box, by shipment box id.
    pub boxes: LiteMap<i64, OrderSheetEvent>,
    /// Newest snapshot of each cancel/return receipt, by receipt id.
    pub receipts: LiteMap<i64, ReturnRequestEvent>,
    /// Revenue-history rows, by their slot.
    pub revenue: LiteMap<RevenueSlot, RevenueEvent>,
    /// The newest source time of every event folded so far (kept even when the event lost its slot).
    pub source_time: i64,
}

/// Lifecycle rank of an order-sheet status: a later status is newer information.
pub fn status_rank(status: &OrderStatus) -> Option<i64> {
    Some(match status {
        OrderStatus::Accept => 0,
        OrderStatus::Instruct => 1,
        OrderStatus::Departure => 2,
        OrderStatus::Delivering => 3,
        OrderStatus::NoneTracking => 4,
        OrderStatus::FinalDelivery => 5,
        OrderStatus::Unknown(_) => return None,
    })
}

/// Rank of a receipt status; a completed receipt outranks every open one.
pub fn receipt_rank(status: &ReceiptStatus) -> Option<i64> {
    Some(match status {
        ReceiptStatus::ReleaseStopUnchecked => 0,
        ReceiptStatus::ReturnsUnchecked => 1,
        ReceiptStatus::VendorWarehouseConfirm => 2,
        ReceiptStatus::RequestCoupangCheck => 3,
        ReceiptStatus::ReturnsCompleted => 4,
        ReceiptStatus::Unknown(_) => return None,
    })
}

/// Whether the receipt's cancel or return is done (its units no longer count).
pub fn receipt_completed(receipt: &ReturnRequestEvent) -> bool {
    receipt.receipt_status == ReceiptStatus::ReturnsCompleted || receipt.complete_confirm_date.is_some()
}

impl RawEvent {
    pub fn vendor_id(&self) -> &str {
        match self {
            RawEvent::OrderSheet(e) => &e.vendor_id,
            RawEvent::ReturnRequest(e) => &e.vendor_id,
            RawEvent::Revenue(e) => &e.vendor_id,
        }
    }

    pub fn order_id(&self) -> i64 {
        match self {
            RawEvent::OrderSheet(e) => e.order_id,
            RawEvent::ReturnRequest(e) => e.order_id,
            RawEvent::Revenue(e) => e.order_id,
        }
    }

    /// The order's key, which every raw stream is partitioned by.
    pub fn order_key(&self) -> OrderKey {
        OrderKey { vendor_id: self.vendor_id().to_string(), order_id: self.order_id() }
    }

    /// Names the record for errors and dead letters.
    pub fn describe(&self) -> String {
        match self {
            RawEvent::OrderSheet(e) => format!("order {} shipment box {}", e.order_id, e.shipment_box_id),
            RawEvent::ReturnRequest(e) => format!("order {} receipt {}", e.order_id, e.receipt_id),
            RawEvent::Revenue(e) => {
                format!("order {} revenue {} recognised on day {}", e.order_id, e.sale_type, e.recognition_date)
            }
        }
    }

    /// A view of the record that borrows it (the state's comparisons need no copies).
    pub fn as_ref(&self) -> EventRef<'_> {
        match self {
            RawEvent::OrderSheet(e) => EventRef::OrderSheet(e),
            RawEvent::ReturnRequest(e) => EventRef::ReturnRequest(e),
            RawEvent::Revenue(e) => EventRef::Revenue(e),
        }
    }

    pub fn collection(&self) -> (i64, &str) {
        self.as_ref().collection()
    }

    pub fn source_time(&self) -> i64 {
        self.as_ref().source_time()
    }

    pub fn progress(&self) -> i64 {
        self.as_ref().progress()
    }

    /// Rejects records no rule can make sense of: unknown statuses, invalid times, impossible
    /// quantities, amounts no real order has (so the rules' arithmetic cannot overflow). Checked before
    /// folding, so a poison record never reaches the state.
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        let problem = if self.vendor_id().is_empty() {
            Err("no vendor id".to_string())
        } else {
            match self {
                RawEvent::OrderSheet(e) => sheet_problem(e),
                RawEvent::ReturnRequest(e) => receipt_problem(e),
                RawEvent::Revenue(e) => revenue_problem(e),
            }
        };
        problem.map_err(|problem| InvalidEvent {
            vendor_id: self.vendor_id().to_string(),
            record: self.describe(),
            problem,
        })
    }
}

fn sheet_problem(e: &OrderSheetEvent) -> Result<(), String> {
    if etl_core::time::kst_date_of_millis(e.paid_at).is_none() {
        return Err(format!("paid_at {} is not a valid time", e.paid_at));
    }
    if status_rank(&e.status).is_none() {
        return Err(format!("unknown status {:?}", e.status.as_str()));
    }
    if e.shipping_price < 0 || e.remote_price < 0 {
        return Err(format!("negative shipping fee {} + {}", e.shipping_price, e.remote_price));
    }
    if !plausible_won(&[e.shipping_price, e.remote_price]) {
        return Err(format!("shipping fee {} + {} beyond any real order", e.shipping_price, e.remote_price));
    }
    for item in &e.items {
        let counts = [item.shipping_count, item.cancel_count, item.hold_count_for_cancel];
        if counts.iter().any(|&n| n < 0) || item.cancel_count > item.shipping_count {
            return Err(format!(
                "vendor item {}: impossible quantities (ordered {}, cancelled {}, held {})",
                item.vendor_item_id, item.shipping_count, item.cancel_count, item.hold_count_for_cancel
            ));
        }
        let money = [
            item.order_price,
            item.sales_price,
            item.instant_coupon_discount,
            item.downloadable_coupon_discount,
            item.coupang_discount,
        ];
        if money.iter().any(|&won| won < 0) {
            return Err(format!("vendor item {}: negative amount", item.vendor_item_id));
        }
        if !plausible_won(&money) {
            return Err(format!("vendor item {}: amount beyond any real order", item.vendor_item_id));
        }
    }
    Ok(())
}

fn receipt_problem(e: &ReturnRequestEvent) -> Result<(), String> {
    if receipt_rank(&e.receipt_status).is_none() {
        return Err(format!("unknown receipt status {:?}", e.receipt_status.as_str()));
    }
    if !e.receipt_type.is_known() {
        return Err(format!("unknown receipt type {:?}", e.receipt_type.as_str()));
    }
    if let Some(item) = e.items.iter().find(|i| i.cancel_count < 0 || i.purchase_count < 0) {
        return Err(format!("vendor item {}: negative quantity", item.vendor_item_id));
    }
    Ok(())
}

fn revenue_problem(e: &RevenueEvent) -> Result<(), String> {
    if midnight_kst(e.recognition_date).is_none() || date_from_days(e.sale_date).is_none() {
        return Err("sale or recognition day out of range".into());
    }
    let amounts = e.items.iter().flat_map(|i| {
        [i.sale_price, i.seller_discount_coupon, i.downloadable_coupon, i.coupang_discount_coupon, i.sale_amount]
    });
    if !plausible_won(&[e.delivery_fee]) || !plausible_won(&amounts.collect::<Vec<_>>()) {
        return Err("an amount beyond any real order".into());
    }
    Ok(())
}

fn midnight_kst(days: i32) -> Option<i64> {
    etl_core::time::kst_midnight_millis_of_days(days)
}

/// The total order of two snapshots of the same slot: progress, then source time, then the record's
/// bytes without the collection-side fields, then those fields (alias and collection time), so ties
/// break the same way in every process.
fn newer<E: Slotted>(incoming: &E, known: &E) -> Ordering {
    let (incoming_ref, known_ref) = (incoming.event_ref(), known.event_ref());
    (incoming_ref.progress(), incoming_ref.source_time())
        .cmp(&(known_ref.progress(), known_ref.source_time()))
        .then_with(|| content(incoming).cmp(&content(known)))
        .then_with(|| incoming_ref.collection().cmp(&known_ref.collection()))
}

/// Canonical bytes of a record: what Coupang said, not when or under which alias ingest fetched it.
fn content<E: Slotted>(record: &E) -> Vec<u8> {
    // The schemas are compiled in and tested; a failure here is a defect, and comparing by the empty
    // slice still gives a total order.
    encode(&record.without_collection()).unwrap_or_default()
}

/// Whether `incoming` would take its slot in `state`: the slot is empty, or holds an older snapshot.
fn takes_slot<E: Slotted>(state: &OrderState, incoming: &E) -> bool {
    E::slots(state).get(&incoming.slot_key()).is_none_or(|known| newer(incoming, known) == Ordering::Greater)
}

fn put<E: Slotted>(state: &mut OrderState, record: E) {
    E::slots_mut(state).insert(record.slot_key(), record);
}

/// What folding one event does (or did) to a state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// The state changed: its changelog record must be written again.
    pub changed: bool,
    /// The event took its slot: the record now holds this event's bytes.
    pub took_slot: bool,
}

/// What folding one event into one state will do, decided once before folding
/// ([`OrderState::assess`]) and then carried out ([`OrderState::fold_assessed`]): the slot comparison
/// and the event's source time are not computed twice.
#[derive(Debug, Clone, Copy)]
pub struct Assessment {
    pub folded: Folded,
    source_time: i64,
}

impl OrderState {
    /// Folds one validated event in; true when the state changed.
    pub fn fold(&mut self, event: &RawEvent) -> bool {
        self.fold_event(event).changed
    }

    /// Folds a copy of one validated event in (for tests and the fuzz targets; the stage moves its
    /// events in with [`OrderState::fold_owned`]).
    pub fn fold_event(&mut self, event: &RawEvent) -> Folded {
        self.fold_owned(event.clone())
    }

    /// Folds one validated event in, moving it into its slot when it takes it: says whether the state
    /// changed and whether the event took its slot.
    pub fn fold_owned(&mut self, event: RawEvent) -> Folded {
        let assessment = self.assess(&event);
        self.fold_assessed(event, assessment)
    }

    /// What folding `event` into this state would do, without folding (so a replayed or repeated event
    /// costs no fact derivation).
    pub fn assess(&self, event: &RawEvent) -> Assessment {
        let source_time = event.source_time();
        let took_slot = match event {
            RawEvent::OrderSheet(e) => takes_slot(self, e),
            RawEvent::ReturnRequest(e) => takes_slot(self, e),
            RawEvent::Revenue(e) => takes_slot(self, e),
        };
        Assessment { folded: Folded { changed: took_slot || source_time > self.source_time, took_slot }, source_time }
    }

    /// Folds `event` in as `assessment` says, which [`OrderState::assess`] gave for this event in this
    /// state as it is now.
    pub fn fold_assessed(&mut self, event: RawEvent, assessment: Assessment) -> Folded {
        self.source_time = self.source_time.max(assessment.source_time);
        if assessment.folded.took_slot {
            match event {
                RawEvent::OrderSheet(e) => put(self, e),
                RawEvent::ReturnRequest(e) => put(self, e),
                RawEvent::Revenue(e) => put(self, e),
            }
        }
        assessment.folded
    }

    /// Makes this the state that knows what both know: each slot's newer snapshot, the newer source
    /// time. Folding is a join (each slot keeps the greater snapshot of a total order, the state the
    /// greatest time), so this is the state that folding both states' events gives, in any order.
    pub fn merge(&mut self, other: &OrderState) {
        let records = (other.boxes.values().cloned().map(RawEvent::OrderSheet))
            .chain(other.receipts.values().cloned().map(RawEvent::ReturnRequest))
            .chain(other.revenue.values().cloned().map(RawEvent::Revenue));
        for record in records {
            self.fold_owned(record);
        }
        self.source_time = self.source_time.max(other.source_time);
    }

    /// Whether this state knows everything `other` knows: each of its slots holds `other`'s snapshot
    /// or one that `other`'s would not take (the fold's own rule, `takes_slot`), and its source time
    /// is as new. So merging `other` in would change nothing, as long as a state's source time is at
    /// least each of its slots', which folding keeps.
    pub fn knows_all_of(&self, other: &OrderState) -> bool {
        fn slots_cover<E: Slotted + PartialEq>(mine: &OrderState, other: &OrderState) -> bool {
            E::slots(other).iter().all(|(key, theirs)| {
                E::slots(mine).get(key).is_some_and(|ours| ours == theirs || !takes_slot(mine, theirs))
            })
        }
        self.source_time >= other.source_time
            && slots_cover::<OrderSheetEvent>(self, other)
            && slots_cover::<ReturnRequestEvent>(self, other)
            && slots_cover::<RevenueEvent>(self, other)
    }

    /// Lifecycle progress of everything known, summed over the slots, plus one per box: a box of an
    /// order accepted with the others (progress 0, no later time) still makes the state newer.
    pub fn progress(&self) -> i64 {
        let boxes = self.boxes.values().map(|e| EventRef::OrderSheet(e).progress());
        let receipts = self.receipts.values().map(|e| EventRef::ReturnRequest(e).progress());
        boxes.chain(receipts).sum::<i64>() + self.boxes.len() as i64 + self.revenue.len() as i64
    }

    /// The version of every fact derived from this state: newest source time first, lifecycle
    /// progress below it. Folding never lowers either, so a fact built from more knowledge always
    /// carries a version at least as high, and the same events always give the same version. The
    /// loader keeps each item's highest version, so a change to how progress is scored must never lower
    /// the version of a state already written. (A restore compares states by what they hold,
    /// [`OrderState::knows_all_of`]: a change to how snapshots rank may make the first restore join,
    /// and send again, states written before it whose records it compares.)
    pub fn version(&self) -> i64 {
        const PROGRESS_SLOTS: i64 = 1 << 16;
        self.source_time.saturating_mul(PROGRESS_SLOTS).saturating_add(self.progress().clamp(0, PROGRESS_SLOTS - 1))
    }

    /// Whether nothing more is expected: every unit is confirmed, cancelled or returned. Such orders
    /// may leave memory (their state stays in the changelog and is read back on demand).
    pub fn finished(&self) -> bool {
        let confirmed = self.revenue.values().any(|row| row.sale_type == SaleType::Sale && !row.items.is_empty());
        let undone = self.revenue.values().any(|row| row.sale_type == SaleType::Refund)
            || self.revenue.values().any(|row| row.sale_type == SaleType::Sale && row.items.is_empty());
        confirmed || undone
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use coupang_schemas::{OrderSheetItem, ReturnRequestItem, RevenueItem};

    pub const PAID_AT: i64 = 1_791_156_600_000; // 2026-10-05 08:30 in Seoul
    pub const HOUR: i64 = 3_600_000;

    pub fn line(id: i64, count: i32, unit: i64) -> OrderSheetItem {
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

    pub fn sheet(box_id: i64, status: &str, items: Vec<OrderSheetItem>, shipping: i64) -> OrderSheetEvent {
        OrderSheetEvent {
            vendor_id: "A00012345".into(),
            account_alias: "brand-a".into(),
            collected_at: 1,
            api_version: "v5".into(),
            shipment_box_id: box_id,
            order_id: 24_000_000_000_001,
            status: status.into(),
            ordered_at: Some(PAID_AT - 60_000),
            paid_at: PAID_AT,
            shipping_price: shipping,
            remote_price: 0,
            remote_area: false,
            in_transit_at: (status_rank(&status.into()).unwrap_or(0) >= 2).then_some(PAID_AT + 20 * HOUR),
            delivered_at: (status == "FINAL_DELIVERY").then_some(PAID_AT + 40 * HOUR),
            items,
        }
    }

    pub fn receipt(id: i64, kind: &str, completed: bool, units: &[(i64, i32)]) -> ReturnRequestEvent {
        ReturnRequestEvent {
            vendor_id: "A00012345".into(),
            account_alias: "brand-a".into(),
            collected_at: 2,
            api_version: "v6".into(),
            receipt_id: id,
            order_id: 24_000_000_000_001,
            payment_id: None,
            receipt_type: kind.into(),
            receipt_status: if completed { "RETURNS_COMPLETED" } else { "RETURNS_UNCHECKED" }.into(),
            created_at: PAID_AT + 2 * HOUR,
            modified_at: Some(PAID_AT + if completed { 3 } else { 2 } * HOUR),
            complete_confirm_date: completed.then_some(PAID_AT + 3 * HOUR),
            cancel_count_sum: units.iter().map(|(_, n)| n).sum(),
            return_shipping_charge: 0,
            fault_by_type: None,
            reason_code: None,
            items: units
                .iter()
                .map(|&(id, n)| ReturnRequestItem {
                    vendor_item_id: id,
                    vendor_item_name: format!("item {id}"),
                    purchase_count: n,
                    cancel_count: n,
                    shipment_box_id: None,
                    seller_product_id: None,
                })
                .collect(),
        }
    }

    /// A revenue row; `items` are (vendor item, quantity, unit price, seller coupon/unit, Coupang coupon/unit).
    pub fn revenue(sale_type: SaleType, day_offset: i32, items: &[(i64, i32, i64, i64, i64)]) -> RevenueEvent {
        let sign = if sale_type == SaleType::Refund { -1 } else { 1 };
        let sale_date = etl_core::time::days_since_epoch(chrono::NaiveDate::from_ymd_opt(2026, 10, 5).unwrap());
        RevenueEvent {
            vendor_id: "A00012345".into(),
            account_alias: "brand-a".into(),
            collected_at: 3,
            order_id: 24_000_000_000_001,
            sale_type,
            sale_date,
            recognition_date: sale_date + day_offset,
            delivery_fee: 0,
            same_day_row: 0,
            delivery_fee_settlement: Some(0),
            items: items
                .iter()
                .map(|&(id, n, unit, seller, coupang)| RevenueItem {
                    vendor_item_id: id,
                    quantity: sign * n,
                    sale_price: sign as i64 * unit * i64::from(n),
                    seller_discount_coupon: sign as i64 * seller * i64::from(n),
                    downloadable_coupon: 0,
                    coupang_discount_coupon: sign as i64 * coupang * i64::from(n),
                    sale_amount: sign as i64 * (unit - seller) * i64::from(n),
                    settlement_amount: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn a_second_box_makes_a_newer_state_even_when_accepted_with_the_first() {
        // A frozen process's late state with one box must not tie with its successor's with two.
        let mut state = OrderState::default();
        state.fold(&RawEvent::OrderSheet(sheet(1, "ACCEPT", vec![line(7, 1, 1_000)], 0)));
        let one_box = state.version();
        state.fold(&RawEvent::OrderSheet(sheet(2, "ACCEPT", vec![line(8, 1, 1_000)], 0)));
        assert!(state.version() > one_box);
    }

    #[test]
    fn amounts_no_real_order_has_are_refused() {
        // Found by the avro_events fuzz target: sums of such amounts overflowed in the rules.
        let mut huge = sheet(1, "ACCEPT", vec![line(7, 1, 1_000)], 0);
        huge.items[0].order_price = i64::MAX / 2;
        assert!(RawEvent::OrderSheet(huge).validate().unwrap_err().problem.contains("beyond any real order"));
        let mut fee = sheet(1, "ACCEPT", vec![line(7, 1, 1_000)], 0);
        fee.shipping_price = MAX_PLAUSIBLE_WON + 1;
        assert!(RawEvent::OrderSheet(fee).validate().is_err());
        let refund = revenue(SaleType::Refund, 1, &[(7, 1, -(MAX_PLAUSIBLE_WON + 1), 0, 0)]);
        assert!(RawEvent::Revenue(refund).validate().is_err());
        assert!(RawEvent::OrderSheet(sheet(1, "ACCEPT", vec![line(7, 1, MAX_PLAUSIBLE_WON)], 0)).validate().is_ok());
    }

    #[test]
    fn a_later_snapshot_wins_and_an_earlier_one_never_replaces_it() {
        let early = RawEvent::OrderSheet(sheet(1, "INSTRUCT", vec![line(7, 1, 1_000)], 0));
        let late = RawEvent::OrderSheet(sheet(1, "FINAL_DELIVERY", vec![line(7, 1, 1_000)], 0));
        let mut state = OrderState::default();
        assert!(state.fold(&late));
        assert!(!state.fold(&early));
        assert_eq!(state.boxes[&1].status, OrderStatus::FinalDelivery);
        let mut other = OrderState::default();
        other.fold(&early);
        other.fold(&late);
        assert_eq!(state, other);
    }

    #[test]
    fn a_cancel_count_is_progress_even_when_no_time_moved() {
        let open = sheet(1, "ACCEPT", vec![line(7, 2, 1_000)], 0);
        let mut cancelled = open.clone();
        cancelled.items[0].cancel_count = 1;
        let mut state = OrderState::default();
        state.fold(&RawEvent::OrderSheet(open.clone()));
        let before = state.version();
        assert!(state.fold(&RawEvent::OrderSheet(cancelled)));
        assert!(state.version() > before);
        assert!(!state.fold(&RawEvent::OrderSheet(open)));
    }

    #[test]
    fn collection_time_and_alias_never_change_the_state_or_the_version() {
        let a = sheet(1, "ACCEPT", vec![line(7, 2, 1_000)], 0);
        let mut b = a.clone();
        (b.collected_at, b.account_alias) = (99_999, "renamed".into());
        let (mut one, mut two) = (OrderState::default(), OrderState::default());
        one.fold(&RawEvent::OrderSheet(a));
        two.fold(&RawEvent::OrderSheet(b));
        assert_eq!(one.version(), two.version());
    }

    #[test]
    fn poison_records_are_rejected_with_their_name() {
        let mut bad = sheet(5, "ACCEPT", vec![line(7, 1, 1_000)], 0);
        bad.items[0].cancel_count = 3;
        let error = RawEvent::OrderSheet(bad).validate().unwrap_err();
        assert!(error.to_string().contains("shipment box 5"), "{error}");
        assert!(error.to_string().contains("impossible quantities"), "{error}");
        let mut unknown = receipt(9, "CANCEL", true, &[(7, 1)]);
        unknown.receipt_status = "TELEPORTED".into();
        assert!(RawEvent::ReturnRequest(unknown).validate().is_err());
        // A sale type no rule knows cannot even be decoded (the vocabulary is closed).
        let mut gift = encode(&revenue(SaleType::Refund, 10, &[])).unwrap();
        let at = gift.windows(6).position(|w| w == b"REFUND").unwrap();
        gift[at..at + 6].copy_from_slice(b"GIFTED");
        let error = decode::<RevenueEvent>(&gift).unwrap_err();
        assert!(error.to_string().contains("unknown sale type \"GIFTED\""), "{error}");
        let mut timeless = sheet(5, "ACCEPT", vec![], 0);
        timeless.paid_at = i64::MAX;
        assert!(RawEvent::OrderSheet(timeless).validate().is_err());
    }
}
