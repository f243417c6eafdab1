//! The events the v1 fixtures (`schemas/fixtures/*.v1.avro`) hold, as the current schemas read them:
//! what `tests/evolution.rs` expects to decode, and what `examples/write_v1_fixtures.rs` wrote when
//! v1 was current. When a field is added (with a default), add it here with that default.

use coupang_schemas::*;

pub fn order_sheet() -> OrderSheetEvent {
    OrderSheetEvent {
        vendor_id: "A00012345".into(),
        account_alias: "brand-a".into(),
        collected_at: 1_790_000_000_000,
        api_version: "v5".into(),
        shipment_box_id: 640_000_000_000_000_001,
        order_id: 24_000_000_000_001,
        status: "FINAL_DELIVERY".into(),
        ordered_at: Some(1_789_999_000_000),
        paid_at: 1_789_999_100_000,
        shipping_price: 3_000,
        remote_price: 3_000,
        remote_area: true,
        in_transit_at: Some(1_790_050_000_000),
        delivered_at: Some(1_790_150_000_000),
        items: vec![OrderSheetItem {
            vendor_item_id: 70_000_000_001,
            vendor_item_name: "텀블러 500ml".into(),
            seller_product_id: 10_000_001,
            shipping_count: 2,
            cancel_count: 1,
            hold_count_for_cancel: 0,
            sales_price: 9_900,
            order_price: 19_800,
            discount_price: 1_000,
            instant_coupon_discount: 500,
            downloadable_coupon_discount: 500,
            coupang_discount: 0,
            confirm_date: Some(1_790_500_000_000),
            canceled: false,
        }],
    }
}

pub fn return_request() -> ReturnRequestEvent {
    ReturnRequestEvent {
        vendor_id: "A00012345".into(),
        account_alias: "brand-a".into(),
        collected_at: 1_790_000_000_000,
        api_version: "v6".into(),
        receipt_id: 240_000_000_000_011,
        order_id: 24_000_000_000_001,
        payment_id: Some(7),
        receipt_type: "RETURN".into(),
        receipt_status: "RETURNS_COMPLETED".into(),
        created_at: 1_790_200_000_000,
        modified_at: Some(1_790_300_000_000),
        complete_confirm_date: Some(1_790_300_000_000),
        cancel_count_sum: 1,
        return_shipping_charge: -5_000,
        fault_by_type: Some("CUSTOMER".into()),
        reason_code: None,
        items: vec![ReturnRequestItem {
            vendor_item_id: 70_000_000_001,
            vendor_item_name: "텀블러 500ml".into(),
            purchase_count: 2,
            cancel_count: 1,
            shipment_box_id: Some(640_000_000_000_000_001),
            seller_product_id: None,
        }],
    }
}

pub fn revenue() -> RevenueEvent {
    RevenueEvent {
        vendor_id: "A00012345".into(),
        account_alias: "brand-a".into(),
        collected_at: 1_790_000_000_000,
        order_id: 24_000_000_000_001,
        sale_type: SaleType::Refund,
        sale_date: 20_728,
        recognition_date: 20_740,
        delivery_fee: -3_000,
        items: vec![RevenueItem {
            vendor_item_id: 70_000_000_001,
            quantity: -1,
            sale_price: -9_900,
            seller_discount_coupon: -500,
            downloadable_coupon: 0,
            coupang_discount_coupon: 0,
            sale_amount: -9_400,
            settlement_amount: -8_300,
        }],
        same_day_row: 0,
        delivery_fee_settlement: None,
    }
}

pub fn fact() -> PaymentFact {
    PaymentFact {
        vendor_id: "A00012345".into(),
        account_alias: "brand-a".into(),
        order_id: 24_000_000_000_001,
        vendor_item_id: 70_000_000_001,
        shipment_box_id: 640_000_000_000_000_001,
        vendor_item_name: "텀블러 500ml".into(),
        payment_date: 20_728,
        paid_at: 1_789_999_100_000,
        status: "FINAL_DELIVERY".into(),
        quantity: 2,
        cancelled_quantity: 1,
        order_price: 9_900,
        shipping_fee: 6_000,
        seller_coupon_discount: 500,
        coupang_coupon_discount: 0,
        payment_amount: 15_400,
        provisional: false,
        cancelled: false,
        event_time: 1_790_500_000_000,
        version: 14_324_000_000_000_005,
        change_cause: ChangeCause::Unrecorded,
        previous_payment_amount: None,
    }
}
