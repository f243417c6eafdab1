//! From Coupang's order sheet to the raw event: the record as collected, minus personal data.

use chrono::NaiveDate;
use coupang_schemas::{
    OrderSheetEvent, OrderSheetItem, ReturnRequestEvent, ReturnRequestItem, RevenueEvent, RevenueItem, SettlementEvent,
};
use etl_core::time::days_since_epoch;
use std::collections::HashMap;

use crate::client::model::{OrderSheet, ReturnRequest, RevenueRecord, SaleType};
use crate::client::{RecognitionMonth, SettlementRow};

/// Turns one listing's revenue rows into events, telling apart rows of the same order, sale type and
/// recognition day (two partial refunds on one day) by their rank in the listing. Coupang pages a
/// listing by token over a stable order, and a day's rows are always in one listing (windows are
/// whole days), so every sweep ranks them the same way. One per listing.
#[derive(Debug, Default)]
pub struct RevenueListing {
    rows_of_day: HashMap<(i64, SaleType, NaiveDate), i32>,
}

impl RevenueListing {
    pub fn event(
        &mut self,
        vendor_id: &str,
        account_alias: &str,
        collected_at: i64,
        row: &RevenueRecord,
    ) -> RevenueEvent {
        let rank = self.rows_of_day.entry((row.order_id, row.sale_type, row.recognition_date.0)).or_insert(0);
        let event = revenue_event(vendor_id, account_alias, collected_at, row, *rank);
        *rank += 1;
        event
    }
}

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
        remote_price: sheet.remote_price.0,
        remote_area: sheet.remote_area,
        in_transit_at: sheet.in_transit_at.map(|t| t.0),
        delivered_at: sheet.delivered_at.map(|t| t.0),
        items: sheet
            .order_items
            .iter()
            .map(|item| OrderSheetItem {
                vendor_item_id: item.vendor_item_id,
                vendor_item_name: item.vendor_item_name.clone(),
                seller_product_id: item.seller_product_id.unwrap_or(0),
                shipping_count: item.shipping_count,
                cancel_count: item.cancel_count,
                hold_count_for_cancel: item.hold_count_for_cancel,
                sales_price: item.sales_price.0,
                order_price: item.order_price().0,
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

pub fn return_request_event(
    vendor_id: &str,
    account_alias: &str,
    collected_at: i64,
    receipt: &ReturnRequest,
) -> ReturnRequestEvent {
    ReturnRequestEvent {
        vendor_id: vendor_id.to_string(),
        account_alias: account_alias.to_string(),
        collected_at,
        api_version: "v6".into(),
        receipt_id: receipt.receipt_id,
        order_id: receipt.order_id,
        payment_id: receipt.payment_id,
        receipt_type: receipt.receipt_type.clone(),
        receipt_status: receipt.receipt_status.clone(),
        created_at: receipt.created_at.0,
        modified_at: receipt.modified_at.map(|t| t.0),
        complete_confirm_date: receipt.complete_confirm_date.map(|t| t.0),
        cancel_count_sum: receipt.cancel_count_sum,
        return_shipping_charge: receipt.return_shipping_charge.map_or(0, |w| w.0),
        fault_by_type: receipt.fault_by_type.clone(),
        reason_code: receipt.reason_code.clone(),
        items: receipt
            .return_items
            .iter()
            .map(|item| ReturnRequestItem {
                vendor_item_id: item.vendor_item_id,
                vendor_item_name: item.vendor_item_name.clone(),
                purchase_count: item.purchase_count,
                cancel_count: item.cancel_count,
                shipment_box_id: item.shipment_box_id,
                seller_product_id: item.seller_product_id,
            })
            .collect(),
    }
}

/// A revenue row with the seller's signs (normalised once, by `RevenueRecord::signed`). `same_day_row`
/// counts the rows of the same order, sale type and recognition day listed before it.
fn revenue_event(
    vendor_id: &str,
    account_alias: &str,
    collected_at: i64,
    row: &RevenueRecord,
    same_day_row: i32,
) -> RevenueEvent {
    let signed = row.signed();
    RevenueEvent {
        vendor_id: vendor_id.to_string(),
        account_alias: account_alias.to_string(),
        collected_at,
        order_id: signed.order_id,
        sale_type: signed.sale_type,
        sale_date: days_since_epoch(signed.sale_date),
        recognition_date: days_since_epoch(signed.recognition_date),
        delivery_fee: signed.delivery_fee,
        items: signed
            .items
            .iter()
            .map(|item| RevenueItem {
                vendor_item_id: item.vendor_item_id,
                quantity: item.quantity,
                sale_price: item.sale_price,
                seller_discount_coupon: item.seller_discount_coupon,
                downloadable_coupon: item.downloadable_coupon,
                coupang_discount_coupon: item.coupang_discount_coupon,
                sale_amount: item.sale_amount,
                settlement_amount: item.settlement_amount,
            })
            .collect(),
        same_day_row,
        delivery_fee_settlement: Some(signed.delivery_fee_settlement),
    }
}

/// One payout row of `month` as its raw event (the bank-account fields were never read).
pub fn settlement_event(
    vendor_id: &str,
    account_alias: &str,
    collected_at: i64,
    month: RecognitionMonth,
    row: &SettlementRow,
) -> SettlementEvent {
    SettlementEvent {
        vendor_id: vendor_id.to_string(),
        account_alias: account_alias.to_string(),
        collected_at,
        recognition_month: month.to_string(),
        settlement_type: row.settlement_type.clone(),
        settlement_date: days_since_epoch(row.settlement_date.0),
        recognition_date_from: days_since_epoch(row.revenue_recognition_date_from.0),
        recognition_date_to: days_since_epoch(row.revenue_recognition_date_to.0),
        total_sale: row.total_sale.0,
        service_fee: row.service_fee.0,
        settlement_target_amount: row.settlement_target_amount.0,
        settlement_amount: row.settlement_amount.0,
        last_amount: row.last_amount.0,
        pending_released_amount: row.pending_released_amount.0,
        seller_discount_coupon: row.seller_discount_coupon.0,
        downloadable_coupon: row.downloadable_coupon.0,
        seller_service_fee: row.seller_service_fee.0,
        deduction_amount: row.deduction_amount.0,
        debt_of_last_week: row.debt_of_last_week.0,
        final_amount: row.final_amount.0,
        status: row.status.clone(),
    }
}
