//! Why a fact was restated (issue #21): every version of an item's fact names what changed since the
//! item's version before it, and the payment amount it had then.
//!
//! [`crate::rules::apply`] re-emits all of an order's facts whenever any of them changed (by default
//! also when only their version did, see [`crate::rules::Emission`]); [`explain`]
//! compares each emitted fact with the same vendor item's fact before the event and names the cause
//! from the two facts and the event that made the difference. Like the rules, it is a pure function:
//! the same events give the same causes.

use coupang_schemas::{ChangeCause, PaymentFact, ReceiptType, SaleType};
use litemap::LiteMap;

use crate::order::RawEvent;

/// The order's facts `after` an event, each with its `change_cause` and `previous_payment_amount`
/// filled in from the fact of the same vendor item in `before` (the order's facts before the event).
/// `undone_by`: the event's [`undoing_cause`] (taken before the event moved into the state).
pub fn explain(before: &[PaymentFact], mut after: Vec<PaymentFact>, undone_by: &ChangeCause) -> Vec<PaymentFact> {
    let before: LiteMap<i64, &PaymentFact> = before.iter().map(|fact| (fact.vendor_item_id, fact)).collect();
    for fact in &mut after {
        let previous = before.get(&fact.vendor_item_id).copied();
        fact.change_cause = change_cause(previous, fact, undone_by);
        fact.previous_payment_amount = previous.map(|fact| fact.payment_amount);
    }
    after
}

/// Why `after`, an item's fact once `event` was folded, differs from `before`, the same item's fact
/// before it. The first rule that holds names the cause:
///
/// 1. no fact before for this item → `NEW_ORDER`;
/// 2. the item's content did not change (comparing every field but `version`, `event_time`,
///    `change_cause` and `previous_payment_amount`) → `UNCHANGED`: another item of the order changed,
///    or only the order's version moved (an open receipt, a later source time; sent only under
///    [`crate::rules::Emission::OnVersionChange`]);
/// 3. more units undone than before (`cancelled_quantity` grew, or `cancelled` became true) → by the
///    event: a receipt of type CANCEL → `CANCEL`, of type RETURN → `RETURN`, a revenue REFUND row →
///    `REFUND`; an order sheet's own cancel count, or a SALE row without items (an order undone
///    before its confirmation) → `CANCEL`; an unknown receipt type → `CORRECTION`;
/// 4. fewer units undone than before (`cancelled_quantity` shrank, or `cancelled` became false: a cancel
///    or return withdrawn) → `WITHDRAWAL`;
/// 5. provisional before and not after, or its coupons changed (coupons are known only from a
///    purchase confirmation; an order's boxes may be confirmed one after the other) → `CONFIRMATION`;
/// 6. the status changed → `STATUS`;
/// 7. anything else (the amount or another field changed otherwise, e.g. a shipping fee moving to this
///    item when the item carrying it is cancelled) → `CORRECTION`.
pub fn change_cause(before: Option<&PaymentFact>, after: &PaymentFact, undone_by: &ChangeCause) -> ChangeCause {
    let Some(before) = before else {
        return ChangeCause::NewOrder;
    };
    if same_content(before, after) {
        return ChangeCause::Unchanged;
    }
    if after.cancelled_quantity > before.cancelled_quantity || (after.cancelled && !before.cancelled) {
        return undone_by.clone();
    }
    if after.cancelled_quantity < before.cancelled_quantity || (before.cancelled && !after.cancelled) {
        return ChangeCause::Withdrawal;
    }
    let coupons = |fact: &PaymentFact| (fact.seller_coupon_discount, fact.coupang_coupon_discount);
    if (before.provisional && !after.provisional) || coupons(before) != coupons(after) {
        return ChangeCause::Confirmation;
    }
    if before.status != after.status {
        return ChangeCause::Status;
    }
    ChangeCause::Correction
}

/// The cause of units undone, by the event that undid them (rule 3 of [`change_cause`]).
pub fn undoing_cause(event: &RawEvent) -> ChangeCause {
    match event {
        RawEvent::ReturnRequest(receipt) => match receipt.receipt_type {
            ReceiptType::Cancel => ChangeCause::Cancel,
            ReceiptType::Return => ChangeCause::Return,
            // Validation refuses unknown receipt types; should one get here, it is not a known undo.
            ReceiptType::Unknown(_) => ChangeCause::Correction,
        },
        RawEvent::Revenue(row) if row.sale_type == SaleType::Refund => ChangeCause::Refund,
        // The sheet's own cancel count, and a SALE row without items (an order undone before its
        // confirmation), are cancels reported before (or instead of) their receipt.
        RawEvent::OrderSheet(_) | RawEvent::Revenue(_) => ChangeCause::Cancel,
    }
}

/// Whether two facts of an item say the same, whatever their version, source time and explanation.
///
/// By the fields' references rather than by comparing cleaned copies (two facts' strings cloned per
/// item and event were a tenth of the transform's allocations).
pub(crate) fn same_content(a: &PaymentFact, b: &PaymentFact) -> bool {
    content(a) == content(b)
}

/// A fact's content, numbers first so that most differences are found before any string is compared.
/// The exhaustive pattern makes a new field a compile error here until it is sorted into content or not.
fn content(fact: &PaymentFact) -> impl PartialEq + '_ {
    let PaymentFact {
        vendor_id,
        account_alias,
        order_id,
        vendor_item_id,
        shipment_box_id,
        vendor_item_name,
        payment_date,
        paid_at,
        status,
        quantity,
        cancelled_quantity,
        order_price,
        shipping_fee,
        seller_coupon_discount,
        coupang_coupon_discount,
        payment_amount,
        provisional,
        cancelled,
        event_time: _,
        version: _,
        change_cause: _,
        previous_payment_amount: _,
    } = fact;
    (
        (order_id, vendor_item_id, shipment_box_id, payment_date, paid_at, status),
        (quantity, cancelled_quantity, provisional, cancelled),
        (order_price, shipping_fee, seller_coupon_discount, coupang_coupon_discount, payment_amount),
        (vendor_id, account_alias, vendor_item_name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::tests::{line, receipt, revenue, sheet, PAID_AT};
    use crate::order::OrderState;
    use crate::rules::tests::{r, s, v};
    use crate::rules::{Applied, Emission};
    use coupang_schemas::{ChangeCause as C, OrderSheetEvent};
    use std::collections::BTreeMap;

    /// Folds as the default mode does: every version move emits.
    fn apply(state: &mut OrderState, event: RawEvent) -> Applied {
        crate::rules::apply(state, event, Emission::OnVersionChange)
    }

    /// An order of two items in one box: item 3 (2 × 5,000, carrying the 3,000 fee) and item 7 (10,000).
    fn two_items(status: &str) -> OrderSheetEvent {
        sheet(1, status, vec![line(3, 2, 5_000), line(7, 1, 10_000)], 3_000)
    }

    /// Revenue-history's SALE row confirming both items: seller coupons 500/unit on 3, 1,000 + 500 on 7.
    fn sale() -> RawEvent {
        v(revenue(SaleType::Sale, 9, &[(3, 2, 5_000, 500, 0), (7, 1, 10_000, 1_000, 500)]))
    }

    /// What an emitted fact says of its change: (vendor item, cause, previous payment amount, payment amount).
    type Row = (i64, ChangeCause, Option<i64>, i64);

    /// The rows of the facts `event` emits once `history` is folded, all through [`apply`].
    fn emitted(history: &[RawEvent], event: &RawEvent) -> Vec<Row> {
        let mut state = OrderState::default();
        for earlier in history {
            earlier.validate().unwrap();
            apply(&mut state, earlier.clone());
        }
        event.validate().unwrap();
        let facts = apply(&mut state, event.clone()).facts.expect("the event changes the order's facts");
        facts
            .iter()
            .map(|f| (f.vendor_item_id, f.change_cause.clone(), f.previous_payment_amount, f.payment_amount))
            .collect()
    }

    #[test]
    fn every_cause_is_named_after_the_event_that_made_it() {
        let mut cancelled_on_sheet = two_items("ACCEPT");
        cancelled_on_sheet.items[0].cancel_count = 1;
        let mut sheet_cancels_7 = two_items("INSTRUCT");
        sheet_cancels_7.items[1].cancel_count = 1;
        let mut confirmed_on_sheet = two_items("FINAL_DELIVERY");
        for item in &mut confirmed_on_sheet.items {
            item.instant_coupon_discount = 1_000;
            item.confirm_date = Some(PAID_AT + 9 * 86_400_000);
        }
        let delivered = s(two_items("FINAL_DELIVERY"));
        let instructed = s(two_items("INSTRUCT"));
        #[rustfmt::skip]
        let table: Vec<(&str, Vec<RawEvent>, RawEvent, Vec<Row>)> = vec![
            ("the order's first sheet", vec![], s(two_items("ACCEPT")),
                vec![(3, C::NewOrder, None, 13_000), (7, C::NewOrder, None, 10_000)]),
            ("a later status", vec![s(two_items("ACCEPT"))], instructed.clone(),
                vec![(3, C::Status, Some(13_000), 13_000), (7, C::Status, Some(10_000), 10_000)]),
            ("a revenue SALE row", vec![delivered.clone()], sale(),
                vec![(3, C::Confirmation, Some(13_000), 12_000), (7, C::Confirmation, Some(10_000), 8_500)]),
            ("a confirmDate on the sheet", vec![delivered.clone()], s(confirmed_on_sheet),
                vec![(3, C::Confirmation, Some(13_000), 12_000), (7, C::Confirmation, Some(10_000), 9_000)]),
            ("a completed CANCEL receipt", vec![instructed.clone()], r(receipt(11, "CANCEL", true, &[(3, 1)])),
                vec![(3, C::Cancel, Some(13_000), 8_000), (7, C::Unchanged, Some(10_000), 10_000)]),
            ("a completed RETURN receipt", vec![delivered.clone()], r(receipt(12, "RETURN", true, &[(7, 1)])),
                vec![(3, C::Unchanged, Some(13_000), 13_000), (7, C::Return, Some(10_000), 0)]),
            ("a REFUND row", vec![delivered.clone(), sale()],
                v(revenue(SaleType::Refund, 14, &[(7, 1, 10_000, 1_000, 500)])),
                vec![(3, C::Unchanged, Some(12_000), 12_000), (7, C::Refund, Some(8_500), 0)]),
            ("a sheet no longer counting a cancel", vec![s(cancelled_on_sheet)], delivered.clone(),
                vec![(3, C::Withdrawal, Some(8_000), 13_000), (7, C::Status, Some(10_000), 10_000)]),
            ("a cancel the sheet alone counts", vec![instructed.clone()], s(sheet_cancels_7),
                vec![(3, C::Unchanged, Some(13_000), 13_000), (7, C::Cancel, Some(10_000), 0)]),
            ("a SALE row without items", vec![delivered.clone()], v(revenue(SaleType::Sale, 6, &[])),
                vec![(3, C::Cancel, Some(13_000), 0), (7, C::Cancel, Some(10_000), 0)]),
            ("the fee moving to the next item", vec![instructed.clone()], r(receipt(11, "CANCEL", true, &[(3, 2)])),
                vec![(3, C::Cancel, Some(13_000), 0), (7, C::Correction, Some(10_000), 13_000)]),
            ("an open receipt (only the version moves)", vec![instructed], r(receipt(11, "CANCEL", false, &[(3, 1)])),
                vec![(3, C::Unchanged, Some(13_000), 13_000), (7, C::Unchanged, Some(10_000), 10_000)]),
        ];
        for (what, history, event, expected) in table {
            assert_eq!(emitted(&history, &event), expected, "{what}");
        }
    }

    #[test]
    fn when_restated_an_event_that_moves_only_the_version_emits_nothing() {
        let apply = |state: &mut OrderState, event| crate::rules::apply(state, event, Emission::OnContentChange);
        let mut state = OrderState::default();
        apply(&mut state, s(two_items("INSTRUCT")));
        let version = state.version();
        // A receipt still open: the order's state moves on, its facts say what they said.
        let applied = apply(&mut state, r(receipt(11, "CANCEL", false, &[(3, 1)])));
        assert!(applied.state_changed && state.version() > version);
        assert!(applied.facts.is_none(), "{:?}", applied.facts);
        // Once it completes, both items go out with the order's newest version.
        let facts = apply(&mut state, r(receipt(11, "CANCEL", true, &[(3, 1)]))).facts.unwrap();
        assert_eq!(facts.iter().map(|f| f.change_cause.clone()).collect::<Vec<_>>(), [C::Cancel, C::Unchanged]);
        assert!(facts.iter().all(|f| f.version == state.version()));
    }

    #[test]
    fn version_and_source_time_alone_are_no_change() {
        let event = s(two_items("ACCEPT"));
        let mut state = OrderState::default();
        state.fold(&event);
        let fact = crate::rules::payment_facts(&state).remove(0);
        let mut later = fact.clone();
        (later.version, later.event_time) = (fact.version + 1, fact.event_time + 1);
        (later.change_cause, later.previous_payment_amount) = (ChangeCause::Status, Some(1));
        let undone_by = undoing_cause(&event);
        assert_eq!(change_cause(Some(&fact), &later, &undone_by), ChangeCause::Unchanged);
        later.vendor_item_name = "renamed".into();
        assert_eq!(change_cause(Some(&fact), &later, &undone_by), ChangeCause::Correction);
        assert_eq!(change_cause(None, &later, &undone_by), ChangeCause::NewOrder);
    }

    #[test]
    fn every_field_but_version_time_and_explanation_is_content() {
        let mut state = OrderState::default();
        state.fold(&s(two_items("ACCEPT")));
        let fact = crate::rules::payment_facts(&state).remove(0);
        type Change = fn(&mut PaymentFact);
        let changed: Vec<(&str, Change)> = vec![
            ("vendor_id", |f| f.vendor_id.push('x')),
            ("account_alias", |f| f.account_alias.push('x')),
            ("order_id", |f| f.order_id += 1),
            ("vendor_item_id", |f| f.vendor_item_id += 1),
            ("shipment_box_id", |f| f.shipment_box_id += 1),
            ("vendor_item_name", |f| f.vendor_item_name.push('x')),
            ("payment_date", |f| f.payment_date += 1),
            ("paid_at", |f| f.paid_at += 1),
            ("status", |f| f.status = coupang_schemas::FactStatus::Confirmed),
            ("quantity", |f| f.quantity += 1),
            ("cancelled_quantity", |f| f.cancelled_quantity += 1),
            ("order_price", |f| f.order_price += 1),
            ("shipping_fee", |f| f.shipping_fee += 1),
            ("seller_coupon_discount", |f| f.seller_coupon_discount += 1),
            ("coupang_coupon_discount", |f| f.coupang_coupon_discount += 1),
            ("payment_amount", |f| f.payment_amount += 1),
            ("provisional", |f| f.provisional = !f.provisional),
            ("cancelled", |f| f.cancelled = !f.cancelled),
        ];
        for (field, change) in changed {
            let mut other = fact.clone();
            change(&mut other);
            assert!(!same_content(&fact, &other) && !same_content(&other, &fact), "{field} is content");
        }
        let mut explained = fact.clone();
        (explained.event_time, explained.version) = (fact.event_time + 1, fact.version + 1);
        (explained.change_cause, explained.previous_payment_amount) = (ChangeCause::Cancel, Some(7));
        assert!(same_content(&fact, &explained));
    }

    mod properties {
        use super::*;
        use crate::rules::tests::properties::{mixed, orders, Order};
        use coupang_schemas::OrderKey;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            /// Whatever the events' order and duplicates, and either emission: each emitted fact's
            /// previous amount is the amount of the last fact emitted for its key, NEW_ORDER marks
            /// exactly each key's first fact, UNCHANGED exactly a fact that says what the last one
            /// said (and, on content changes only, never all of an emission), no fact goes out without
            /// a known cause, versions never go down, and the last fact of each key says what the
            /// final state's says (at its version, or on content changes only, at its last change's).
            #[test]
            fn every_fact_names_the_amount_and_the_cause_since_the_last_one(
                orders in orders(),
                shuffle_seed in any::<u64>(),
                duplicates in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
                emission in prop_oneof![Just(Emission::OnVersionChange), Just(Emission::OnContentChange)],
            ) {
                let events: Vec<RawEvent> = orders.iter().flat_map(Order::events).collect();
                let mut states: BTreeMap<OrderKey, OrderState> = BTreeMap::new();
                let mut last: BTreeMap<String, PaymentFact> = BTreeMap::new();
                for event in mixed(&events, &duplicates, shuffle_seed) {
                    event.validate().unwrap();
                    let state = states.entry(event.order_key()).or_default();
                    let emitted = crate::rules::apply(state, event.clone(), emission).facts.unwrap_or_default();
                    if emission == Emission::OnContentChange {
                        prop_assert!(emitted.is_empty() || emitted.iter().any(|f| f.change_cause != ChangeCause::Unchanged));
                    }
                    for fact in emitted {
                        let previous = last.get(&fact.kafka_key());
                        prop_assert!(previous.is_none_or(|p| p.version <= fact.version));
                        prop_assert_eq!(fact.previous_payment_amount, previous.map(|p| p.payment_amount));
                        prop_assert_eq!(fact.change_cause == ChangeCause::NewOrder, previous.is_none());
                        if let Some(previous) = previous {
                            prop_assert_eq!(fact.change_cause == ChangeCause::Unchanged, same_content(previous, &fact));
                        }
                        prop_assert!(fact.change_cause.is_known() && fact.change_cause != ChangeCause::Unrecorded);
                        last.insert(fact.kafka_key(), fact);
                    }
                }
                // Nothing was left unsent: the last fact of each key is the order's final state's fact.
                let finals: Vec<PaymentFact> = states.values().flat_map(crate::rules::payment_facts).collect();
                prop_assert_eq!(finals.len(), last.len());
                for fact in finals {
                    let sent = &last[&fact.kafka_key()];
                    prop_assert!(same_content(sent, &fact), "{:?} against {:?}", sent, fact);
                    match emission {
                        Emission::OnVersionChange => {
                            prop_assert_eq!((sent.version, sent.event_time), (fact.version, fact.event_time));
                        }
                        Emission::OnContentChange => {
                            prop_assert!(sent.version <= fact.version && sent.event_time <= fact.event_time);
                        }
                    }
                }
            }

            /// The same events, folded once per emission: on content changes only, the emissions are
            /// exactly those of every version change less the ones whose every item is UNCHANGED.
            #[test]
            fn on_content_change_leaves_out_exactly_the_emissions_that_restate_nothing(
                orders in orders(),
                shuffle_seed in any::<u64>(),
                duplicates in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            ) {
                let events: Vec<RawEvent> = orders.iter().flat_map(Order::events).collect();
                let mut every_version: BTreeMap<OrderKey, OrderState> = BTreeMap::new();
                let mut on_content: BTreeMap<OrderKey, OrderState> = BTreeMap::new();
                for event in mixed(&events, &duplicates, shuffle_seed) {
                    event.validate().unwrap();
                    let key = event.order_key();
                    let all = crate::rules::apply(
                        every_version.entry(key.clone()).or_default(), event.clone(), Emission::OnVersionChange,
                    );
                    let some = crate::rules::apply(on_content.entry(key).or_default(), event, Emission::OnContentChange);
                    prop_assert_eq!((some.state_changed, some.took_slot), (all.state_changed, all.took_slot));
                    let restating = all.facts.filter(|facts| facts.iter().any(|f| f.change_cause != ChangeCause::Unchanged));
                    prop_assert_eq!(some.facts, restating);
                }
            }
        }
    }
}
