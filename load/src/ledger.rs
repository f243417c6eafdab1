//! The ClickHouse rows of the money ledger the reconciliation reads: one per revenue-history row
//! (`revenue_rows`) and one per payout cycle (`settlements`), straight from the raw topics. Field order
//! is the INSERT's column order (RowBinary).

use clickhouse::Row;
use coupang_schemas::{RevenueEvent, SettlementEvent};
use serde::{Deserialize, Serialize};

use crate::row::RowError;

/// One revenue-history row, its items summed; amounts seller-signed (a REFUND subtracts).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct RevenueRow {
    pub vendor_id: String,
    pub account_alias: String,
    pub order_id: i64,
    pub sale_type: String,
    /// `Date`: days since 1970-01-01.
    pub recognition_date: u16,
    pub same_day_row: i32,
    pub sale_date: u16,
    pub quantity: i64,
    pub sale_price: i64,
    pub seller_discount_coupon: i64,
    pub downloadable_coupon: i64,
    pub coupang_discount_coupon: i64,
    pub delivery_fee: i64,
    /// What the settlement's `totalSale` counts of this row: sales less seller coupons, plus shipping;
    /// an adjustment (order 0) counts its settled amount.
    pub total_sale: i64,
    /// Commission and its VAT on the items and the shipping.
    pub service_fee: i64,
    /// The items' and the shipping's settlement amounts: what the payouts' targets add up.
    pub settlement_amount: i64,
    /// 0 when the row was collected before the shipping's settlement amount was (RevenueEvent v1/v2).
    pub settlement_known: u8,
    /// `collected_at` in milliseconds: the newest collection wins.
    pub version: u64,
}

impl TryFrom<&RevenueEvent> for RevenueRow {
    type Error = RowError;

    fn try_from(event: &RevenueEvent) -> Result<Self, RowError> {
        let key =
            || format!("{}:{}:{}:{}", event.order_key(), event.sale_type, event.recognition_date, event.same_day_row);
        let out_of_range = |what| RowError { record: "revenue row", key: key(), what };
        let day = |days: i32, what| u16::try_from(days).map_err(|_| out_of_range(what));
        let sum = |field: fn(&coupang_schemas::RevenueItem) -> i64| event.items.iter().map(field).sum::<i64>();
        let sale_amount = sum(|item| item.sale_amount);
        let item_settlement = sum(|item| item.settlement_amount);
        let shipping_settled = event.delivery_fee_settlement.unwrap_or(event.delivery_fee);
        let adjustment = event.order_id == 0;
        // An adjustment settles an amount with no sale behind it: counted as sale, with no fee.
        let shipping_sale = if adjustment { shipping_settled } else { event.delivery_fee };
        Ok(RevenueRow {
            vendor_id: event.vendor_id.clone(),
            account_alias: event.account_alias.clone(),
            order_id: event.order_id,
            sale_type: event.sale_type.to_string(),
            recognition_date: day(event.recognition_date, "recognition_date")?,
            same_day_row: event.same_day_row,
            sale_date: day(event.sale_date, "sale_date")?,
            quantity: event.items.iter().map(|item| i64::from(item.quantity)).sum(),
            sale_price: sum(|item| item.sale_price),
            seller_discount_coupon: sum(|item| item.seller_discount_coupon),
            downloadable_coupon: sum(|item| item.downloadable_coupon),
            coupang_discount_coupon: sum(|item| item.coupang_discount_coupon),
            delivery_fee: event.delivery_fee,
            total_sale: sale_amount + shipping_sale,
            service_fee: (sale_amount - item_settlement) + (shipping_sale - shipping_settled),
            settlement_amount: item_settlement + shipping_settled,
            settlement_known: u8::from(event.delivery_fee_settlement.is_some()),
            version: u64::try_from(event.collected_at).map_err(|_| out_of_range("collected_at"))?,
        })
    }
}

/// One payout cycle as Coupang last showed it.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PayoutRow {
    pub vendor_id: String,
    pub account_alias: String,
    pub settlement_type: String,
    pub recognition_date_from: u16,
    pub recognition_date_to: u16,
    /// The first day of the recognition month.
    pub recognition_month: u16,
    pub settlement_date: u16,
    pub total_sale: i64,
    pub service_fee: i64,
    pub settlement_target_amount: i64,
    pub settlement_amount: i64,
    pub last_amount: i64,
    pub pending_released_amount: i64,
    pub seller_discount_coupon: i64,
    pub downloadable_coupon: i64,
    pub seller_service_fee: i64,
    pub deduction_amount: i64,
    pub debt_of_last_week: i64,
    pub final_amount: i64,
    pub status: String,
    pub version: u64,
}

impl TryFrom<&SettlementEvent> for PayoutRow {
    type Error = RowError;

    fn try_from(event: &SettlementEvent) -> Result<Self, RowError> {
        let out_of_range = |what| RowError { record: "payout", key: event.kafka_key(), what };
        let day = |days: i32, what| u16::try_from(days).map_err(|_| out_of_range(what));
        let month = chrono::NaiveDate::parse_from_str(&format!("{}-01", event.recognition_month), "%Y-%m-%d")
            .map_err(|_| out_of_range("recognition_month"))?;
        Ok(PayoutRow {
            vendor_id: event.vendor_id.clone(),
            account_alias: event.account_alias.clone(),
            settlement_type: event.settlement_type.to_string(),
            recognition_date_from: day(event.recognition_date_from, "recognition_date_from")?,
            recognition_date_to: day(event.recognition_date_to, "recognition_date_to")?,
            recognition_month: day(etl_core::time::days_since_epoch(month), "recognition_month")?,
            settlement_date: day(event.settlement_date, "settlement_date")?,
            total_sale: event.total_sale,
            service_fee: event.service_fee,
            settlement_target_amount: event.settlement_target_amount,
            settlement_amount: event.settlement_amount,
            last_amount: event.last_amount,
            pending_released_amount: event.pending_released_amount,
            seller_discount_coupon: event.seller_discount_coupon,
            downloadable_coupon: event.downloadable_coupon,
            seller_service_fee: event.seller_service_fee,
            deduction_amount: event.deduction_amount,
            debt_of_last_week: event.debt_of_last_week,
            final_amount: event.final_amount,
            status: event.status.to_string(),
            version: u64::try_from(event.collected_at).map_err(|_| out_of_range("collected_at"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coupang_schemas::{RevenueItem, SaleType};

    fn item(sale: i64, settled: i64) -> RevenueItem {
        RevenueItem {
            vendor_item_id: 7,
            quantity: 1,
            sale_price: sale + 500,
            seller_discount_coupon: 500,
            downloadable_coupon: 0,
            coupang_discount_coupon: 300,
            sale_amount: sale,
            settlement_amount: settled,
        }
    }

    fn revenue(order_id: i64, delivery: (i64, Option<i64>), items: Vec<RevenueItem>) -> RevenueEvent {
        RevenueEvent {
            vendor_id: "A00012345".into(),
            account_alias: "brand-a".into(),
            collected_at: 1_790_000_000_000,
            order_id,
            sale_type: SaleType::Sale,
            sale_date: 20_700,
            recognition_date: 20_710,
            delivery_fee: delivery.0,
            items,
            same_day_row: 0,
            delivery_fee_settlement: delivery.1,
        }
    }

    #[test]
    fn a_sale_counts_items_and_shipping_less_their_fees() {
        let row = RevenueRow::try_from(&revenue(1, (3_000, Some(2_670)), vec![item(19_300, 17_030)])).unwrap();
        assert_eq!((row.total_sale, row.service_fee, row.settlement_amount), (22_300, 2_600, 19_700));
        assert_eq!(row.total_sale - row.service_fee, row.settlement_amount);
        assert_eq!((row.seller_discount_coupon, row.coupang_discount_coupon, row.settlement_known), (500, 300, 1));
    }

    #[test]
    fn an_adjustment_settles_its_amount_as_sale_without_fee() {
        let row = RevenueRow::try_from(&revenue(0, (0, Some(-12_000)), vec![])).unwrap();
        assert_eq!((row.total_sale, row.service_fee, row.settlement_amount), (-12_000, 0, -12_000));
    }

    #[test]
    fn rows_written_before_v3_say_their_shipping_settlement_is_unknown() {
        let row = RevenueRow::try_from(&revenue(1, (3_000, None), vec![item(10_000, 8_800)])).unwrap();
        assert_eq!((row.settlement_known, row.settlement_amount), (0, 11_800));
    }

    #[test]
    fn a_day_before_1970_is_named() {
        let mut event = revenue(1, (0, Some(0)), vec![]);
        event.sale_date = -1;
        let error = RevenueRow::try_from(&event).unwrap_err();
        assert_eq!(error.what, "sale_date");
        assert!(error.to_string().contains("A00012345:1:SALE:20710:0"), "{error}");
    }
}
