//! Events built by hand, for the tests that write to the topics themselves instead of collecting from
//! the simulator. A test that needs a field different sets it over a fixture, e.g.
//! `PaymentFact { status: "CANCELLED".into(), ..fixtures::payment_fact(1, 1, 1) }`.

use coupang_schemas::{ChangeCause, OrderSheetEvent, OrderSheetItem, PaymentFact};

/// The vendor of every hand-built event: no simulated world has it, so they never mix with the
/// simulator's orders or its ground truth.
pub const VENDOR_ID: &str = "A00099999";
pub const ACCOUNT_ALIAS: &str = "nobody";

/// The order sheet of box 1 of order 1: accepted, paid, no items.
pub fn order_sheet() -> OrderSheetEvent {
    OrderSheetEvent {
        vendor_id: VENDOR_ID.into(),
        account_alias: ACCOUNT_ALIAS.into(),
        collected_at: 0,
        api_version: "v5".into(),
        shipment_box_id: 1,
        order_id: 1,
        status: "ACCEPT".into(),
        ordered_at: None,
        paid_at: 1_790_000_000_000,
        shipping_price: 0,
        remote_price: 0,
        remote_area: false,
        in_transit_at: None,
        delivered_at: None,
        items: Vec::new(),
    }
}

/// A line of an order sheet: `count` units of vendor item `id` at `unit` won each, not confirmed.
pub fn order_line(id: i64, count: i32, unit: i64) -> OrderSheetItem {
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

/// A fact of one unit of item `item` of order `order` at `version`, provisional below version 3. The
/// amount tells versions apart (1,000 × item + version); the order sets the box, day and payment time.
pub fn payment_fact(order: i64, item: i64, version: i64) -> PaymentFact {
    let amount = 1_000 * item + version;
    PaymentFact {
        vendor_id: VENDOR_ID.into(),
        account_alias: ACCOUNT_ALIAS.into(),
        order_id: order,
        vendor_item_id: item,
        shipment_box_id: order * 10,
        vendor_item_name: format!("item {item}"),
        payment_date: 20_400 + (order % 20) as i32,
        paid_at: 1_762_560_000_000 + order * 60_000,
        status: "INSTRUCT".into(),
        quantity: 1,
        cancelled_quantity: 0,
        order_price: amount,
        shipping_fee: 0,
        seller_coupon_discount: 0,
        coupang_coupon_discount: 0,
        payment_amount: amount,
        provisional: version < 3,
        cancelled: false,
        event_time: 1_762_560_000_000 + version * 1_000,
        version,
        change_cause: if version == 1 { ChangeCause::NewOrder } else { ChangeCause::Correction },
        previous_payment_amount: (version > 1).then(|| amount - 1),
    }
}
