//! The business rules (`domain-rules.md`) as a pure function of an order's state.
//!
//! For each (vendor, order, vendor item) the order sheets show:
//! - **payment amount** = order price of the units that remain + the shipping fee the row carries −
//!   coupon discounts, on the Asia/Seoul payment day of `paidAt`;
//! - **coupon on confirmation**: coupons count only once the order is purchase-confirmed (a revenue
//!   SALE row with items, or `confirmDate` on a line); until then the row is *provisional*. The
//!   revenue row's figures win over the order sheet's, and seller-funded (instant + downloadable) and
//!   Coupang-funded parts are kept apart;
//! - **cancel to zero**: completed cancels and returns take units away from the original payment day,
//!   never a negative row elsewhere. Units undone are the larger of what the order sheet's
//!   `cancelCount` and the completed CANCEL receipts say (they report the same cancels), plus the larger
//!   of completed RETURN receipts and REFUND rows (the same returns). A SALE row with `items: []` means
//!   the whole order was undone before confirmation;
//! - a box's shipping fee (with the remote-area fee) is carried by the box's lowest vendorItemId that
//!   still has a unit, and goes to 0 only when no unit of the box remains.
//!
//! Amounts for partial quantities are proportional: line price × remaining ÷ ordered, and coupons ×
//! remaining ÷ the units they were given for. A coupon never takes a row below zero (seller-funded
//! first, then Coupang-funded). Items known only from receipts or revenue rows get a fact once an
//! order sheet gives their price and payment time.
//!
//! Each emitted fact also says why it was restated and what its amount was before ([`crate::cause`]).

use coupang_schemas::{ChangeCause, FactStatus, OrderStatus, PaymentFact, ReceiptType, SaleType};
use etl_core::time::{days_since_epoch, kst_date_of_millis};
use litemap::LiteMap;

use crate::cause::{explain, same_content, undoing_cause};
use crate::order::{receipt_completed, OrderState, RawEvent};

/// What the order sheets say about one vendor item of the order (lines merged across boxes).
#[derive(Debug)]
struct ItemLines {
    shipment_box_id: i64,
    name: String,
    ordered: i64,
    order_price: i64,
    cancelled_on_sheet: i64,
    /// Fees of the boxes this item carries (lowest vendorItemId) that still have a unit left.
    shipping_fee: i64,
    /// Seller- and Coupang-funded coupons of confirmed lines (`confirmDate` set).
    sheet_coupons: Option<(i64, i64)>,
    status: OrderStatus,
}

/// Units undone by completed receipts, per vendor item.
#[derive(Debug, Default)]
struct ReceiptUnits {
    cancelled: LiteMap<i64, i64>,
    returned: LiteMap<i64, i64>,
}

/// What revenue-history says: the coupons of confirmed sales with the units they cover, the units
/// refunded, and whether a SALE row without items says the whole order was undone before confirmation.
#[derive(Debug, Default)]
struct RevenueUnits {
    /// Per vendor item: (units sold, seller-funded coupons, Coupang-funded coupons).
    sold: LiteMap<i64, (i64, i64, i64)>,
    refunded: LiteMap<i64, i64>,
    zero_sale: bool,
}

/// What is left of one vendor item: units remaining, cancelled and returned.
#[derive(Debug, Default, Clone, Copy)]
struct Remaining {
    left: i64,
    cancelled: i64,
    returned: i64,
}

/// What every fact of the order shares.
struct OrderWide<'a> {
    vendor_id: &'a str,
    account_alias: String,
    order_id: i64,
    payment_date: i32,
    paid_at: i64,
    event_time: i64,
    version: i64,
    /// Purchase confirmed (by revenue-history or a line's `confirmDate`): coupons count.
    confirmed: bool,
}

/// What one event did to its order: whether the state changed (it must be written to the changelog),
/// and the order's facts when they changed (they must be emitted), each with its change cause and
/// previous payment amount.
#[derive(Debug, Default)]
pub struct Applied {
    pub state_changed: bool,
    /// The event took its slot in the state (so the state's record holds the event's own bytes).
    pub took_slot: bool,
    pub facts: Option<Vec<PaymentFact>>,
}

/// When an order's facts go out again. Which one is safe depends on how a batch's outputs become
/// visible (see the stage's module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Emission {
    /// Whenever the order's facts change at all, if only in their version: an event that moves only
    /// the version (a receipt still open, a revenue row confirming what the sheet said) sends every
    /// item again, `UNCHANGED`. Without transactions this is what makes a replay after a crash safe:
    /// a batch's facts may be visible before its states and offsets are durable, the replay may fold
    /// the same events in another order, and only a version as high as the final state's supersedes
    /// whatever the crashed batch sent (BENCHMARKS.md gives a case).
    #[default]
    OnVersionChange,
    /// Only when what the facts say changed (an item new, gone, or different in a field other than
    /// `version`, `event_time`, `change_cause` and `previous_payment_amount`): the rows keep the version
    /// and source time of their last change. Safe only when a batch's facts become visible with its
    /// states and offsets or not at all, as in a Kafka transaction read by `read_committed` readers:
    /// then the highest version of each key says what the last committed state says. A fifth fewer
    /// facts when the bench's events are folded in the order they happened (BENCHMARKS.md).
    OnContentChange,
}

/// Folds a validated `event` into its order's `state` and says what changed; `emission` says when the
/// order's facts go out. The event moves into its slot rather than being copied there: the caller
/// keeps only its bytes (cloning order sheets into their slots was 2.3% of the stage's instructions).
pub fn apply(state: &mut OrderState, event: RawEvent, emission: Emission) -> Applied {
    // Repeated and replayed events change nothing: no facts derived for them.
    let assessment = state.assess(&event);
    if !assessment.folded.changed {
        return Applied::default();
    }
    let before = payment_facts(state);
    let undone_by = undoing_cause(&event);
    let folded = state.fold_assessed(event, assessment);
    let after = payment_facts(state);
    let facts = (after != before)
        .then(|| explain(&before, after, &undone_by))
        .filter(|facts| emission == Emission::OnVersionChange || restates_something(&before, facts));
    Applied { state_changed: folded.changed, took_slot: folded.took_slot, facts }
}

/// The facts a restore sends again with a state it kept (`kept`) over the changelog's last record of
/// the order (`late`), a state sent late by a process frozen past its group session, whose facts went
/// out late too. `sent_before` is the other state whose facts went out (the state kept, or the one a
/// join was made with), when that is all that did; `None` when more late states came.
///
/// The loader keeps per item the fact of the highest version and, of equal versions, the one inserted
/// last, which is not known here: two processes' facts and states interleave. So a fact of `kept`
/// stays unsent only where the loader surely holds it: every known fact of the item at the highest
/// version says it exactly (the same version and content), or one has a higher version (not
/// expected: a kept state knows all the others know). Without `sent_before`, every fact goes but
/// those. A fact re-sent at a version already loaded overwrites its history (cause and previous
/// amount) at that version. Each is explained against a fact of the highest version the loader may
/// hold, one that differs from it where there is one (the late fact first).
pub fn facts_sent_again(late: &OrderState, sent_before: Option<&OrderState>, kept: &OrderState) -> Vec<PaymentFact> {
    // Per item, the facts that may be what the loader holds: the late fact first.
    let mut loaded: LiteMap<i64, Vec<PaymentFact>> = LiteMap::new();
    let before = sent_before.map(payment_facts).unwrap_or_default();
    for fact in payment_facts(late).into_iter().chain(before) {
        loaded.entry(fact.vendor_item_id).or_default().push(fact);
    }
    let top = |facts: &[PaymentFact]| facts.iter().map(|fact| fact.version).max().unwrap_or(i64::MIN);
    let said = |fact: &PaymentFact| {
        loaded.get(&fact.vendor_item_id).is_some_and(|facts| {
            let version = top(facts);
            version > fact.version
                || (sent_before.is_some()
                    && version == fact.version
                    && facts.iter().filter(|f| f.version == version).all(|f| same_content(f, fact)))
        })
    };
    let again: Vec<PaymentFact> = payment_facts(kept).into_iter().filter(|fact| !said(fact)).collect();
    let kept_by_item: LiteMap<i64, &PaymentFact> = again.iter().map(|fact| (fact.vendor_item_id, fact)).collect();
    // What each is explained against: of the facts at the highest version, one that differs from it
    // (the late one first), since that may be what the loader holds.
    let held: Vec<PaymentFact> = loaded
        .into_iter()
        .filter_map(|(item, facts)| {
            let version = top(&facts);
            let differs = |fact: &PaymentFact| kept_by_item.get(&item).is_some_and(|kept| !same_content(fact, kept));
            let at_top = || facts.iter().filter(|fact| fact.version == version);
            at_top().find(|fact| differs(fact)).or_else(|| at_top().next()).cloned()
        })
        .collect();
    explain(&held, again, &ChangeCause::Correction)
}

/// Whether the order's facts after an event (`explained`) say anything its facts `before` did not: an
/// item is new, gone, or changed.
fn restates_something(before: &[PaymentFact], explained: &[PaymentFact]) -> bool {
    // Both are sorted by vendor item, one fact per item, and `explain` marks an item without a fact
    // before as `NEW_ORDER`: equal lengths and all `UNCHANGED` means the same items, the same content.
    before.len() != explained.len() || explained.iter().any(|fact| fact.change_cause != ChangeCause::Unchanged)
}

/// The facts of one order as of its state, sorted by vendor item id. Their change cause and previous
/// amount are placeholders (`UNRECORDED`, `None`): only [`apply`] knows the version before.
pub fn payment_facts(state: &OrderState) -> Vec<PaymentFact> {
    let Some(first_box) = state.boxes.values().next() else {
        return Vec::new();
    };
    let Some(payment_day) = kst_date_of_millis(first_box.paid_at) else {
        return Vec::new();
    };
    let mut items = sheet_lines(state);
    let receipts = receipt_units(state);
    let revenue = revenue_units(state);
    let confirmed = !revenue.sold.is_empty() || items.values().any(|i| i.sheet_coupons.is_some());
    let remaining = remaining_units(&items, &receipts, &revenue);
    carry_shipping_fees(state, &remaining, &mut items);

    let order = OrderWide {
        vendor_id: &first_box.vendor_id,
        account_alias: newest_alias(state),
        order_id: first_box.order_id,
        payment_date: days_since_epoch(payment_day),
        paid_at: first_box.paid_at,
        event_time: state.source_time,
        version: state.version(),
        confirmed,
    };
    items
        .into_iter()
        .map(|(vendor_item_id, item)| {
            let units = remaining.get(&vendor_item_id).copied().unwrap_or_default();
            item_fact(&order, vendor_item_id, item, units, revenue.sold.get(&vendor_item_id).copied())
        })
        .collect()
}

/// The order sheets' lines, merged per vendor item across boxes (the first box names the item).
fn sheet_lines(state: &OrderState) -> LiteMap<i64, ItemLines> {
    let mut items: LiteMap<i64, ItemLines> = LiteMap::new();
    for sheet in state.boxes.values() {
        for line in &sheet.items {
            let item = items.entry(line.vendor_item_id).or_insert_with(|| ItemLines {
                shipment_box_id: sheet.shipment_box_id,
                name: line.vendor_item_name.clone(),
                ordered: 0,
                order_price: 0,
                cancelled_on_sheet: 0,
                shipping_fee: 0,
                sheet_coupons: None,
                status: sheet.status.clone(),
            });
            item.ordered += i64::from(line.shipping_count);
            item.order_price += line.order_price;
            item.cancelled_on_sheet += i64::from(line.cancel_count);
            if line.confirm_date.is_some() {
                let (seller, coupang) = item.sheet_coupons.unwrap_or_default();
                item.sheet_coupons = Some((
                    seller + line.instant_coupon_discount + line.downloadable_coupon_discount,
                    coupang + line.coupang_discount,
                ));
            }
        }
    }
    items
}

/// Units of completed receipts, per item; open receipts count nothing.
fn receipt_units(state: &OrderState) -> ReceiptUnits {
    let mut units = ReceiptUnits::default();
    for receipt in state.receipts.values().filter(|r| receipt_completed(r)) {
        let counter = match receipt.receipt_type {
            ReceiptType::Cancel => &mut units.cancelled,
            // Validation refused unknown types, so anything else is a return.
            ReceiptType::Return | ReceiptType::Unknown(_) => &mut units.returned,
        };
        for line in &receipt.items {
            *counter.entry(line.vendor_item_id).or_default() += i64::from(line.cancel_count);
        }
    }
    units
}

/// Revenue rows: coupons of confirmed sales (with the units they cover), refunded units.
fn revenue_units(state: &OrderState) -> RevenueUnits {
    let mut units = RevenueUnits::default();
    for row in state.revenue.values() {
        match row.sale_type {
            SaleType::Sale if row.items.is_empty() => units.zero_sale = true,
            SaleType::Sale => {
                for item in &row.items {
                    let entry = units.sold.entry(item.vendor_item_id).or_default();
                    entry.0 += i64::from(item.quantity).abs();
                    entry.1 += item.seller_discount_coupon.abs() + item.downloadable_coupon.abs();
                    entry.2 += item.coupang_discount_coupon.abs();
                }
            }
            SaleType::Refund => {
                for item in &row.items {
                    *units.refunded.entry(item.vendor_item_id).or_default() += i64::from(item.quantity).abs();
                }
            }
        }
    }
    units
}

/// Units left per item: cancels are the larger of the sheet's and the receipts' count (the same
/// cancels), returns the larger of receipts and refunds (the same returns); a zero SALE row with no
/// confirmed sale undoes the whole order.
fn remaining_units(
    items: &LiteMap<i64, ItemLines>,
    receipts: &ReceiptUnits,
    revenue: &RevenueUnits,
) -> LiteMap<i64, Remaining> {
    let whole_order_undone = revenue.zero_sale && revenue.sold.is_empty();
    let count = |units: &LiteMap<i64, i64>, id: &i64| units.get(id).copied().unwrap_or(0);
    items
        .iter()
        .map(|(id, item)| {
            let cancelled = item.cancelled_on_sheet.max(count(&receipts.cancelled, id));
            let returned = count(&receipts.returned, id).max(count(&revenue.refunded, id));
            let (cancelled, returned) = if whole_order_undone {
                (item.ordered - returned.min(item.ordered), returned.min(item.ordered))
            } else {
                let cancelled = cancelled.min(item.ordered);
                (cancelled, returned.min(item.ordered - cancelled))
            };
            (*id, Remaining { left: item.ordered - cancelled - returned, cancelled, returned })
        })
        .collect()
}

/// A box keeps its shipping fee while any of its units remains: the fee rides on its lowest
/// vendorItemId that still has a unit; with none left, it is 0.
fn carry_shipping_fees(state: &OrderState, remaining: &LiteMap<i64, Remaining>, items: &mut LiteMap<i64, ItemLines>) {
    for sheet in state.boxes.values() {
        let left_in_box = |id: &i64| remaining.get(id).is_some_and(|r| r.left > 0);
        let carrier = sheet.items.iter().map(|line| line.vendor_item_id).filter(left_in_box).min();
        if let Some(item) = carrier.and_then(|id| items.get_mut(&id)) {
            item.shipping_fee += sheet.shipping_price + sheet.remote_price;
        }
    }
}

/// One item's fact: its remaining share of price and coupons, its fee and its status. `sold` is
/// revenue-history's (units, seller coupons, Coupang coupons) of the item.
fn item_fact(
    order: &OrderWide,
    vendor_item_id: i64,
    item: ItemLines,
    units: Remaining,
    sold: Option<(i64, i64, i64)>,
) -> PaymentFact {
    let Remaining { left, cancelled, returned } = units;
    let confirmed = order.confirmed;
    let share = |won: i64, of_units: i64| if of_units > 0 { won * left.min(of_units) / of_units } else { 0 };
    let order_price = share(item.order_price, item.ordered);
    let (seller, coupang) = match (sold, item.sheet_coupons) {
        (Some((units, seller, coupang)), _) => (share(seller, units), share(coupang, units)),
        (None, Some((seller, coupang))) if confirmed => (share(seller, item.ordered), share(coupang, item.ordered)),
        _ => (0, 0),
    };
    let seller = if confirmed { seller.clamp(0, order_price) } else { 0 };
    let coupang = if confirmed { coupang.clamp(0, order_price - seller) } else { 0 };
    let fully_undone = item.ordered > 0 && left == 0 && cancelled + returned > 0;
    let status = match (fully_undone, confirmed) {
        (true, _) if returned > 0 => FactStatus::Returned,
        (true, _) => FactStatus::Cancelled,
        (false, true) => FactStatus::Confirmed,
        (false, false) => FactStatus::Ordered(item.status),
    };
    PaymentFact {
        vendor_id: order.vendor_id.to_string(),
        account_alias: order.account_alias.clone(),
        order_id: order.order_id,
        vendor_item_id,
        shipment_box_id: item.shipment_box_id,
        vendor_item_name: item.name,
        status,
        quantity: clamp_i32(item.ordered),
        cancelled_quantity: clamp_i32(cancelled + returned),
        order_price,
        shipping_fee: item.shipping_fee,
        seller_coupon_discount: seller,
        coupang_coupon_discount: coupang,
        payment_amount: order_price + item.shipping_fee - seller - coupang,
        provisional: !confirmed && left > 0,
        cancelled: fully_undone,
        payment_date: order.payment_date,
        paid_at: order.paid_at,
        event_time: order.event_time,
        version: order.version,
        // Filled in by `apply`, which knows the item's fact before the event.
        change_cause: ChangeCause::Unrecorded,
        previous_payment_amount: None,
    }
}

fn clamp_i32(n: i64) -> i32 {
    n.clamp(0, i64::from(i32::MAX)) as i32
}

/// The alias of the most recently collected record: a renamed account shows its new name on the
/// order's next change.
fn newest_alias(state: &OrderState) -> String {
    let sheets = state.boxes.values().map(|e| (e.collected_at, &e.account_alias));
    let receipts = state.receipts.values().map(|e| (e.collected_at, &e.account_alias));
    let revenue = state.revenue.values().map(|e| (e.collected_at, &e.account_alias));
    sheets.chain(receipts).chain(revenue).max().map(|(_, alias)| alias.clone()).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::order::tests::{line, receipt, revenue, sheet, PAID_AT};
    use crate::order::RawEvent;
    use coupang_schemas::{OrderSheetEvent, ReturnRequestEvent, RevenueEvent};

    fn facts_of(events: &[RawEvent]) -> Vec<PaymentFact> {
        let mut state = OrderState::default();
        for event in events {
            event.validate().unwrap();
            state.fold(event);
        }
        payment_facts(&state)
    }

    pub(crate) fn s(e: OrderSheetEvent) -> RawEvent {
        RawEvent::OrderSheet(e)
    }
    pub(crate) fn r(e: ReturnRequestEvent) -> RawEvent {
        RawEvent::ReturnRequest(e)
    }
    pub(crate) fn v(e: RevenueEvent) -> RawEvent {
        RawEvent::Revenue(e)
    }

    /// (vendor item, payment amount, shipping fee, provisional, cancelled, status)
    fn rows(facts: &[PaymentFact]) -> Vec<(i64, i64, i64, bool, bool, &str)> {
        facts
            .iter()
            .map(|f| {
                (f.vendor_item_id, f.payment_amount, f.shipping_fee, f.provisional, f.cancelled, f.status.as_str())
            })
            .collect()
    }

    fn with_confirmation(mut e: OrderSheetEvent, seller_per_unit: i64, coupang_per_unit: i64) -> OrderSheetEvent {
        for item in &mut e.items {
            let units = i64::from(item.shipping_count);
            item.instant_coupon_discount = seller_per_unit * units;
            item.coupang_discount = coupang_per_unit * units;
            item.confirm_date = Some(PAID_AT + 9 * 86_400_000);
        }
        e
    }

    #[test]
    fn before_confirmation_the_amount_is_price_plus_shipping_and_provisional() {
        let facts = facts_of(&[s(sheet(1, "INSTRUCT", vec![line(7, 2, 9_900), line(3, 1, 15_000)], 3_000))]);
        assert_eq!(
            rows(&facts),
            vec![(3, 18_000, 3_000, true, false, "INSTRUCT"), (7, 19_800, 0, true, false, "INSTRUCT")]
        );
        let day = etl_core::time::date_from_days(facts[0].payment_date).unwrap();
        assert_eq!(day.to_string(), "2026-10-05", "paid 08:30 in Seoul on Oct 5 (23:30 UTC the day before)");
    }

    #[test]
    fn a_revenue_sale_row_brings_the_coupons_apart_and_clears_provisional() {
        let order = s(sheet(1, "FINAL_DELIVERY", vec![line(7, 2, 10_000)], 3_000));
        let sale = v(revenue(SaleType::Sale, 10, &[(7, 2, 10_000, 1_000, 500)]));
        let facts = facts_of(&[order, sale]);
        let f = &facts[0];
        assert_eq!((f.seller_coupon_discount, f.coupang_coupon_discount), (2_000, 1_000));
        assert_eq!(f.payment_amount, 20_000 + 3_000 - 3_000);
        assert!(!f.provisional);
        assert_eq!(f.status, FactStatus::Confirmed);
        assert_eq!(etl_core::time::date_from_days(f.payment_date).unwrap().to_string(), "2026-10-05");
    }

    #[test]
    fn a_confirm_date_on_the_order_sheet_confirms_too() {
        let confirmed = with_confirmation(sheet(1, "FINAL_DELIVERY", vec![line(7, 2, 10_000)], 0), 1_000, 500);
        let f = &facts_of(&[s(confirmed)])[0];
        assert_eq!(
            (f.payment_amount, f.seller_coupon_discount, f.coupang_coupon_discount, f.provisional),
            (17_000, 2_000, 1_000, false)
        );
    }

    #[test]
    fn a_cancel_while_accept_zeroes_the_original_payment_day() {
        let paid = sheet(1, "ACCEPT", vec![line(7, 2, 10_000), line(8, 1, 5_000)], 3_000);
        let cancel = receipt(11, "CANCEL", true, &[(7, 2), (8, 1)]);
        let facts = facts_of(&[s(paid), r(cancel)]);
        assert_eq!(rows(&facts), vec![(7, 0, 0, false, true, "CANCELLED"), (8, 0, 0, false, true, "CANCELLED")]);
        assert!(facts.iter().all(|f| f.payment_date == facts[0].payment_date && f.cancelled_quantity == f.quantity));
    }

    #[test]
    fn a_pending_cancel_changes_nothing_yet() {
        let mut paid = sheet(1, "ACCEPT", vec![line(7, 2, 10_000)], 3_000);
        paid.items[0].hold_count_for_cancel = 2;
        let facts = facts_of(&[s(paid), r(receipt(11, "CANCEL", false, &[(7, 2)]))]);
        assert_eq!(rows(&facts), vec![(7, 23_000, 3_000, true, false, "ACCEPT")]);
    }

    #[test]
    fn a_partial_cancel_is_proportional_and_keeps_the_shipping_fee() {
        let paid = sheet(1, "INSTRUCT", vec![line(7, 3, 10_000)], 3_000);
        let facts = facts_of(&[s(paid), r(receipt(11, "CANCEL", true, &[(7, 1)]))]);
        assert_eq!(rows(&facts), vec![(7, 23_000, 3_000, true, false, "INSTRUCT")]);
        assert_eq!((facts[0].quantity, facts[0].cancelled_quantity), (3, 1));
    }

    #[test]
    fn cancelling_the_fee_carrying_item_moves_the_fee_to_the_next_item() {
        let mut paid = sheet(1, "INSTRUCT", vec![line(3, 1, 5_000), line(7, 1, 10_000)], 3_000);
        paid.items[0].cancel_count = 1;
        let facts = facts_of(&[s(paid)]);
        assert_eq!(
            rows(&facts),
            vec![(3, 0, 0, false, true, "CANCELLED"), (7, 13_000, 3_000, true, false, "INSTRUCT")]
        );
    }

    #[test]
    fn a_return_after_confirmation_zeroes_the_row_and_stays_confirmed() {
        let events = [
            s(sheet(1, "FINAL_DELIVERY", vec![line(7, 1, 10_000)], 3_000)),
            v(revenue(SaleType::Sale, 9, &[(7, 1, 10_000, 1_000, 0)])),
            v(revenue(SaleType::Refund, 14, &[(7, 1, 10_000, 1_000, 0)])),
            r(receipt(12, "RETURN", true, &[(7, 1)])),
        ];
        let facts = facts_of(&events);
        assert_eq!(rows(&facts), vec![(7, 0, 0, false, true, "RETURNED")]);
        // The REFUND row alone is enough, before the receipt shows up.
        assert_eq!(rows(&facts_of(&events[..3])), vec![(7, 0, 0, false, true, "RETURNED")]);
    }

    #[test]
    fn two_partial_refunds_recognised_on_one_day_both_count() {
        let refund_one_unit = |same_day_row| {
            let mut row = revenue(SaleType::Refund, 14, &[(7, 1, 10_000, 1_000, 0)]);
            row.same_day_row = same_day_row;
            v(row)
        };
        let order = s(sheet(1, "FINAL_DELIVERY", vec![line(7, 3, 10_000)], 0));
        let sale = v(revenue(SaleType::Sale, 9, &[(7, 3, 10_000, 1_000, 0)]));
        let facts = facts_of(&[order.clone(), sale.clone(), refund_one_unit(0), refund_one_unit(1)]);
        assert_eq!(facts[0].payment_amount, 10_000 - 1_000, "one of three units is left, with its coupon");
        // The same row delivered twice (a re-sweep) is still one refund.
        let replayed = facts_of(&[order, sale, refund_one_unit(0), refund_one_unit(0)]);
        assert_eq!(replayed[0].payment_amount, 2 * (10_000 - 1_000));
    }

    #[test]
    fn a_sale_row_without_items_means_the_whole_order_was_undone() {
        let events =
            [s(sheet(1, "FINAL_DELIVERY", vec![line(7, 2, 10_000)], 3_000)), v(revenue(SaleType::Sale, 6, &[]))];
        let facts = facts_of(&events);
        assert_eq!((facts[0].payment_amount, facts[0].cancelled, facts[0].provisional), (0, true, false));
    }

    #[test]
    fn a_confirmation_before_the_order_sheet_waits_for_it_and_ends_the_same() {
        let sale = v(revenue(SaleType::Sale, 10, &[(7, 2, 10_000, 1_000, 500)]));
        let order = s(sheet(1, "FINAL_DELIVERY", vec![line(7, 2, 10_000)], 3_000));
        assert!(facts_of(std::slice::from_ref(&sale)).is_empty(), "no price or payment time without an order sheet");
        assert_eq!(facts_of(&[sale.clone(), order.clone()]), facts_of(&[order, sale]));
    }

    #[test]
    fn a_coupon_larger_than_the_price_never_makes_a_row_negative() {
        let order = s(sheet(1, "FINAL_DELIVERY", vec![line(7, 1, 1_000)], 2_500));
        let facts = facts_of(&[order, v(revenue(SaleType::Sale, 10, &[(7, 1, 1_000, 800, 700)]))]);
        let f = &facts[0];
        assert_eq!((f.seller_coupon_discount, f.coupang_coupon_discount, f.payment_amount), (800, 200, 2_500));
    }

    #[test]
    fn zero_price_items_are_rows_of_zero() {
        let facts = facts_of(&[s(sheet(1, "INSTRUCT", vec![line(4, 1, 0), line(9, 2, 0)], 0))]);
        assert_eq!(rows(&facts), vec![(4, 0, 0, true, false, "INSTRUCT"), (9, 0, 0, true, false, "INSTRUCT")]);
    }

    #[test]
    fn a_split_order_keeps_each_boxs_fee_with_its_own_items() {
        let first = sheet(1, "INSTRUCT", vec![line(3, 1, 5_000)], 3_000);
        let mut second = sheet(2, "INSTRUCT", vec![line(7, 1, 10_000)], 0);
        second.remote_price = 3_000;
        let facts = facts_of(&[s(second), s(first), r(receipt(11, "CANCEL", true, &[(3, 1)]))]);
        assert_eq!(
            rows(&facts),
            vec![(3, 0, 0, false, true, "CANCELLED"), (7, 13_000, 3_000, true, false, "INSTRUCT")]
        );
    }

    #[test]
    fn every_change_raises_the_version_and_replays_keep_it() {
        let steps = [
            s(sheet(1, "ACCEPT", vec![line(7, 2, 10_000)], 3_000)),
            s(sheet(1, "INSTRUCT", vec![line(7, 2, 10_000)], 3_000)),
            r(receipt(11, "CANCEL", false, &[(7, 1)])),
            r(receipt(11, "CANCEL", true, &[(7, 1)])),
            s(sheet(1, "FINAL_DELIVERY", vec![line(7, 2, 10_000)], 3_000)),
            v(revenue(SaleType::Sale, 10, &[(7, 1, 10_000, 1_000, 0)])),
        ];
        let mut last = i64::MIN;
        for n in 1..=steps.len() {
            let version = facts_of(&steps[..n])[0].version;
            assert!(version > last, "step {n}: {version} after {last}");
            last = version;
        }
        let mut replayed = steps.to_vec();
        replayed.extend(steps[..3].iter().cloned());
        assert_eq!(facts_of(&replayed), facts_of(&steps));
    }

    #[test]
    fn a_restore_sends_again_only_the_facts_a_late_state_may_hide() {
        let state_of = |events: &[&RawEvent]| {
            let mut state = OrderState::default();
            events.iter().for_each(|event| _ = state.fold(event));
            state
        };
        // Two snapshots of one box that differ only in its fee (carried by item 7, the lowest id): one
        // version, and the fold keeps one of the two by content.
        let first = sheet(1, "INSTRUCT", vec![line(7, 2, 1_000), line(8, 1, 500)], 3_000);
        let (first, changed) = (s(first.clone()), s(OrderSheetEvent { shipping_price: 2_500, ..first }));
        let keeps_first = state_of(&[&first, &changed]) == state_of(&[&first]);
        let (kept, lost) = if keeps_first { (first, changed) } else { (changed, first) };
        let (newer, older) = (state_of(&[&kept]), state_of(&[&lost]));
        assert_eq!(newer.version(), older.version());
        let (newer_facts, older_facts) = (payment_facts(&newer), payment_facts(&older));

        // The late facts tie with the kept state's, and either may be what the loader holds: item 7's
        // goes out again, explained against the late one; item 8's says the same in both.
        let again = facts_sent_again(&older, Some(&newer), &newer);
        assert_eq!(rows(&again), rows(&newer_facts[..1]));
        assert_eq!(again[0].version, newer.version());
        assert_eq!(again[0].change_cause, ChangeCause::Correction);
        assert_eq!(again[0].previous_payment_amount, Some(older_facts[0].payment_amount));
        assert_ne!(again[0].payment_amount, older_facts[0].payment_amount);
        // Which of two tying facts was inserted last is not known: the kept one goes where the other
        // differs, even when the late one says it.
        let other_way = facts_sent_again(&newer, Some(&older), &newer);
        assert_eq!(rows(&other_way), rows(&newer_facts[..1]));
        let against_the_other = (other_way[0].change_cause.clone(), other_way[0].previous_payment_amount);
        assert_eq!(against_the_other, (ChangeCause::Correction, Some(older_facts[0].payment_amount)));
        assert_eq!(facts_sent_again(&newer, Some(&newer), &newer), vec![], "the same facts");
        // When only the late facts are known, all go.
        assert_eq!(rows(&facts_sent_again(&older, None, &newer)), rows(&newer_facts));

        // A kept state of a higher version, whose facts went out before: the loader keeps them already.
        let sale = v(revenue(SaleType::Sale, 10, &[(7, 2, 1_000, 100, 0), (8, 1, 500, 0, 0)]));
        let confirmed = state_of(&[&kept, &sale]);
        assert!(confirmed.version() > newer.version());
        assert_eq!(facts_sent_again(&older, Some(&confirmed), &confirmed), vec![]);
        // A join whose facts the loader has not seen: all go, explained against the facts it held.
        let joined = facts_sent_again(&older, Some(&newer), &confirmed);
        assert_eq!(rows(&joined), rows(&payment_facts(&confirmed)));
        assert!(joined.iter().all(|fact| fact.change_cause == ChangeCause::Confirmation), "{joined:?}");
        assert_eq!(facts_sent_again(&older, None, &confirmed), joined, "and so they do when not known");
        // Never a fact below the loader's version.
        assert_eq!(facts_sent_again(&confirmed, None, &newer), vec![]);
    }

    pub(crate) mod properties {
        use super::*;
        use coupang_schemas::OrderKey;
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        /// One generated order: its lines (vendor item, units, unit price, seller and Coupang coupon per
        /// unit), fees, fate and payment time, plus every event Coupang would show for it.
        #[derive(Debug, Clone)]
        pub(crate) struct Order {
            order_id: i64,
            paid_at: i64,
            lines: Vec<(i64, i32, i64, i64, i64)>,
            shipping: i64,
            fate: Fate,
        }

        #[derive(Debug, Clone, Copy, PartialEq)]
        enum Fate {
            Open,
            Confirmed,
            CancelledWhole,
            PartlyCancelled,
            ReturnedBeforeConfirmation,
            ReturnedAfterConfirmation,
        }

        const DAY: i64 = 86_400_000;

        fn order_strategy(order_id: i64) -> impl Strategy<Value = Order> {
            let line = (1i64..6, 1i32..4, 0i64..60_000, 0i64..100, 0i64..100);
            (
                proptest::collection::vec(line, 1..4),
                prop_oneof![Just(0i64), Just(2_500), Just(3_000), Just(6_000)],
                0usize..6,
                0i64..(3 * DAY),
            )
                .prop_map(move |(raw_lines, shipping, fate, offset)| {
                    let mut seen = std::collections::BTreeSet::new();
                    let lines = raw_lines
                        .into_iter()
                        .filter(|(id, ..)| seen.insert(*id))
                        .map(|(id, n, unit, seller_pct, coupang_pct)| {
                            let seller = unit * seller_pct / 100 / 2;
                            (id, n, unit, seller, unit * coupang_pct / 100 / 2)
                        })
                        .collect();
                    let fate = [
                        Fate::Open,
                        Fate::Confirmed,
                        Fate::CancelledWhole,
                        Fate::PartlyCancelled,
                        Fate::ReturnedBeforeConfirmation,
                        Fate::ReturnedAfterConfirmation,
                    ][fate];
                    Order { order_id, paid_at: PAID_AT + offset, lines, shipping, fate }
                })
        }

        impl Order {
            fn owned<T>(&self, mut e: T, set: impl Fn(&mut T, i64, i64)) -> T {
                set(&mut e, self.order_id, self.paid_at);
                e
            }

            fn sheet(&self, status: &str, cancelled_first: i32, confirmed: bool) -> RawEvent {
                let items = self
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(i, &(id, n, unit, seller, coupang))| {
                        let mut l = line(id, n, unit);
                        if i == 0 {
                            l.cancel_count = cancelled_first;
                        }
                        if confirmed {
                            l.instant_coupon_discount = seller * i64::from(n);
                            l.coupang_discount = coupang * i64::from(n);
                            l.confirm_date = Some(self.paid_at + 9 * DAY);
                        }
                        l
                    })
                    .collect();
                let e = sheet(self.order_id % 1_000 + 1, status, items, self.shipping);
                s(self.owned(e, |e, order, paid| {
                    let shift = paid - e.paid_at;
                    e.order_id = order;
                    e.paid_at = paid;
                    e.ordered_at = e.ordered_at.map(|t| t + shift);
                    e.in_transit_at = e.in_transit_at.map(|t| t + shift);
                    e.delivered_at = e.delivered_at.map(|t| t + shift);
                }))
            }

            fn receipt(&self, kind: &str, completed: bool, units: &[(i64, i32)]) -> RawEvent {
                let e = receipt(self.order_id * 10 + 1, kind, completed, units);
                r(self.owned(e, |e, order, paid| {
                    let shift = paid - PAID_AT;
                    e.order_id = order;
                    e.created_at += shift;
                    e.modified_at = e.modified_at.map(|t| t + shift);
                    e.complete_confirm_date = e.complete_confirm_date.map(|t| t + shift);
                }))
            }

            fn revenue(&self, sale_type: SaleType, day: i32, units_of: impl Fn(usize, i32) -> i32) -> RawEvent {
                let items: Vec<_> = self
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(i, &(id, n, unit, seller, coupang))| (id, units_of(i, n), unit, seller, coupang))
                    .filter(|item| item.1 > 0)
                    .collect();
                let e = revenue(sale_type, day, &items);
                v(self.owned(e, |e, order, paid| {
                    e.order_id = order;
                    let day = etl_core::time::days_since_epoch(etl_core::time::kst_date_of_millis(paid).unwrap());
                    e.recognition_date += day - e.sale_date;
                    e.sale_date = day;
                }))
            }

            fn all_units(&self) -> Vec<(i64, i32)> {
                self.lines.iter().map(|l| (l.0, l.1)).collect()
            }

            /// Every event of the order's life, in the order Coupang would show them.
            pub(crate) fn events(&self) -> Vec<RawEvent> {
                let mut events = vec![self.sheet("ACCEPT", 0, false), self.sheet("INSTRUCT", 0, false)];
                let delivered = |events: &mut Vec<RawEvent>| {
                    events.push(self.sheet("DEPARTURE", 0, false));
                    events.push(self.sheet("FINAL_DELIVERY", 0, false));
                };
                let first = self.lines[0];
                match self.fate {
                    Fate::Open => delivered(&mut events),
                    Fate::Confirmed => {
                        delivered(&mut events);
                        events.push(self.sheet("FINAL_DELIVERY", 0, true));
                        events.push(self.revenue(SaleType::Sale, 9, |_, n| n));
                    }
                    Fate::CancelledWhole => {
                        events.push(self.receipt("CANCEL", false, &self.all_units()));
                        events.push(self.receipt("CANCEL", true, &self.all_units()));
                        events.push(self.revenue(SaleType::Sale, 1, |_, _| 0));
                    }
                    Fate::PartlyCancelled => {
                        events.push(self.receipt("CANCEL", true, &[(first.0, 1)]));
                        events.push(self.sheet("INSTRUCT", 1, false));
                        events.push(self.sheet("FINAL_DELIVERY", 1, true));
                        events.push(self.revenue(SaleType::Sale, 9, |i, n| if i == 0 { n - 1 } else { n }));
                    }
                    Fate::ReturnedBeforeConfirmation => {
                        delivered(&mut events);
                        events.push(self.receipt("RETURN", false, &self.all_units()));
                        events.push(self.receipt("RETURN", true, &self.all_units()));
                        events.push(self.revenue(SaleType::Sale, 5, |_, _| 0));
                    }
                    Fate::ReturnedAfterConfirmation => {
                        delivered(&mut events);
                        events.push(self.sheet("FINAL_DELIVERY", 0, true));
                        events.push(self.revenue(SaleType::Sale, 9, |_, n| n));
                        events.push(self.receipt("RETURN", true, &self.all_units()));
                        events.push(self.revenue(SaleType::Refund, 13, |_, n| n));
                    }
                }
                events
            }

            /// The payment amount under the rules, computed from the order's parameters alone.
            fn expected_amount(&self) -> i64 {
                let confirmed = matches!(self.fate, Fate::Confirmed | Fate::PartlyCancelled);
                let mut total = 0;
                let mut any_left = false;
                for (i, &(_, n, unit, seller, coupang)) in self.lines.iter().enumerate() {
                    let left = match self.fate {
                        Fate::CancelledWhole | Fate::ReturnedBeforeConfirmation | Fate::ReturnedAfterConfirmation => 0,
                        Fate::PartlyCancelled if i == 0 => i64::from(n) - 1,
                        _ => i64::from(n),
                    };
                    any_left |= left > 0;
                    let coupons = if confirmed { (seller + coupang).min(unit) * left } else { 0 };
                    total += unit * left - coupons;
                }
                total + if any_left { self.shipping } else { 0 }
            }
        }

        pub(crate) fn orders() -> impl Strategy<Value = Vec<Order>> {
            (1usize..5).prop_flat_map(|n| {
                (0..n).map(|i| order_strategy(24_000_000_000_000 + 17 * i as i64)).collect::<Vec<_>>()
            })
        }

        /// `events` with the `duplicates` added, shuffled by a deterministic Fisher-Yates from `seed`.
        pub(crate) fn mixed(events: &[RawEvent], duplicates: &[prop::sample::Index], seed: u64) -> Vec<RawEvent> {
            let mut mixed = events.to_vec();
            for index in duplicates {
                mixed.push(events[index.index(events.len())].clone());
            }
            let mut x = seed | 1;
            for i in (1..mixed.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                mixed.swap(i, (x % (i as u64 + 1)) as usize);
            }
            mixed
        }

        /// Folds the events per order key, as the stage does, and returns the final facts by key.
        fn run(events: &[RawEvent]) -> BTreeMap<String, PaymentFact> {
            let mut states: BTreeMap<OrderKey, OrderState> = BTreeMap::new();
            let mut out = BTreeMap::new();
            for event in events {
                event.validate().unwrap();
                let state = states.entry(event.order_key()).or_default();
                let before = payment_facts(state);
                if state.fold(event) {
                    let after = payment_facts(state);
                    if after != before {
                        for fact in after {
                            // The loader's rule: the highest version wins.
                            let slot = out.entry(fact.kafka_key()).or_insert_with(|| fact.clone());
                            if fact.version >= slot.version {
                                *slot = fact;
                            }
                        }
                    }
                }
            }
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            #[test]
            fn any_order_and_any_duplication_give_the_same_facts(
                orders in orders(),
                shuffle_seed in any::<u64>(),
                duplicates in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            ) {
                let events: Vec<RawEvent> = orders.iter().flat_map(Order::events).collect();
                let reference = run(&events);
                prop_assert_eq!(run(&mixed(&events, &duplicates, shuffle_seed)), reference);
            }

            #[test]
            fn an_assessment_says_what_folding_then_does(
                orders in orders(),
                shuffle_seed in any::<u64>(),
                duplicates in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            ) {
                let events: Vec<RawEvent> = orders.iter().flat_map(Order::events).collect();
                let mut states: BTreeMap<OrderKey, OrderState> = BTreeMap::new();
                for event in mixed(&events, &duplicates, shuffle_seed) {
                    let state = states.entry(event.order_key()).or_default();
                    let predicted = state.assess(&event).folded;
                    let before = state.clone();
                    let folded = state.fold_event(&event);
                    prop_assert_eq!(predicted, folded);
                    prop_assert_eq!(folded.changed, *state != before);
                    if folded.took_slot {
                        prop_assert!(folded.changed);
                    }
                }
            }

            #[test]
            fn merging_two_states_gives_the_state_of_all_their_events(
                orders in orders(),
                shuffle_seed in any::<u64>(),
                split in proptest::collection::vec(any::<bool>(), 64),
            ) {
                // Each event goes to one state or the other (some to both), as two processes folding
                // different stretches of one order's events would.
                // With snapshots that differ from another only in content (a sheet's shipping fee) or in
                // when they were collected: same progress and times, so the fold's last tie-breakers decide.
                let mut events: Vec<RawEvent> = orders.iter().flat_map(Order::events).collect();
                let variants: Vec<RawEvent> = events
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| split[(i + 2) % 64])
                    .map(|(_, event)| match event.clone() {
                        RawEvent::OrderSheet(e) => {
                            RawEvent::OrderSheet(OrderSheetEvent { shipping_price: e.shipping_price + 500, ..e })
                        }
                        RawEvent::ReturnRequest(e) => {
                            RawEvent::ReturnRequest(ReturnRequestEvent { collected_at: e.collected_at + 1, ..e })
                        }
                        RawEvent::Revenue(e) => RawEvent::Revenue(RevenueEvent { collected_at: e.collected_at + 1, ..e }),
                    })
                    .collect();
                events.extend(variants);
                let events = mixed(&events, &[], shuffle_seed);
                let (mut all, mut first, mut second) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
                for (i, event) in events.iter().enumerate() {
                    let key = event.order_key();
                    all.entry(key.clone()).or_insert_with(OrderState::default).fold(event);
                    let (to_first, to_second) = (split[i % 64], split[(i + 1) % 64] || i % 5 == 0);
                    if to_first {
                        first.entry(key.clone()).or_insert_with(OrderState::default).fold(event);
                    }
                    if to_second || !to_first {
                        second.entry(key).or_insert_with(OrderState::default).fold(event);
                    }
                }
                for (key, expected) in &all {
                    let a = first.get(key).cloned().unwrap_or_default();
                    let b = second.get(key).cloned().unwrap_or_default();
                    let (mut ab, mut ba) = (a.clone(), b.clone());
                    ab.merge(&b);
                    ba.merge(&a);
                    prop_assert_eq!(&ab, expected);
                    prop_assert_eq!(&ba, expected);
                    prop_assert!(ab.knows_all_of(&a) && ab.knows_all_of(&b));
                    prop_assert_eq!(a.knows_all_of(&b), ab == a);
                    prop_assert_eq!(b.knows_all_of(&a), ab == b);
                }
            }

            #[test]
            fn sums_per_payment_day_match_a_reference_computed_from_the_orders(orders in orders()) {
                let events: Vec<RawEvent> = orders.iter().flat_map(Order::events).collect();
                let mut actual: BTreeMap<i32, i64> = BTreeMap::new();
                for fact in run(&events).values() {
                    *actual.entry(fact.payment_date).or_default() += fact.payment_amount;
                }
                let mut expected: BTreeMap<i32, i64> = BTreeMap::new();
                for order in &orders {
                    let day = etl_core::time::days_since_epoch(etl_core::time::kst_date_of_millis(order.paid_at).unwrap());
                    *expected.entry(day).or_default() += order.expected_amount();
                }
                prop_assert_eq!(actual, expected);
            }

            #[test]
            fn no_row_is_ever_negative_and_cancelled_rows_are_zero(orders in orders()) {
                let events: Vec<RawEvent> = orders.iter().flat_map(Order::events).collect();
                for fact in run(&events).values() {
                    prop_assert!(fact.payment_amount >= 0);
                    if fact.cancelled {
                        prop_assert_eq!(fact.payment_amount, 0);
                    }
                    prop_assert_eq!(fact.payment_amount, fact.order_price + fact.shipping_fee - fact.seller_coupon_discount - fact.coupang_coupon_discount);
                }
            }
        }
    }
}
