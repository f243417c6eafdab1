//! From Coupang's order sheet to the raw event: the record as collected, minus personal data.

use coupang_schemas::{OrderSheetEvent, OrderSheetItem};

use crate::client::model::OrderSheet;

pub fn order_sheet_event(
    vendor_id: &str,
    account_alias: &str,
    collected_at: i64,
    sheet: &OrderSheet,
) -> OrderSheetEvent {
    OrderSheetEvent {
        vendor_id: vendor_id.to_string(),
        account_alias: account_alias.to_string(),
        collected_at,
        api_version: "v5".into(),
        shipment_box_id: sheet.shipment_box_id,
        order_id: sheet.order_id,
        status: sheet.status.clone(),
        ordered_at: sheet.ordered_at.map(|t| t.0),
        paid_at: sheet.paid_at.0,
        shipping_price: sheet.shipping_price.0,
        remote_price: sheet.remote_price.map(|w| w.0).unwrap_or(0),
        remote_area: sheet.remote_area,
        in_transit_at: sheet.in_transit_at.map(|t| t.0),
        delivered_at: sheet.delivered_at.map(|t| t.0),
        items: sheet
            .order_items
            .iter()
            .map(|item| OrderSheetItem {
                vendor_item_id: item.vendor_item_id,
                vendor_item_name: item.vendor_item_name.clone(),
                seller_product_id: item.seller_product_id,
                shipping_count: item.shipping_count,
                cancel_count: item.cancel_count,
                hold_count_for_cancel: item.hold_count_for_cancel,
                sales_price: item.sales_price.0,
                order_price: item.order_price.0,
                discount_price: item.discount_price.0,
                instant_coupon_discount: item.instant_coupon_discount.0,
                downloadable_coupon_discount: item.downloadable_coupon_discount.0,
                coupang_discount: item.coupang_discount.0,
                confirm_date: item.confirm_date.map(|t| t.0),
                canceled: item.canceled,
            })
            .collect(),
    }
}
