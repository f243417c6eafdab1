//! Read-backs for people and tests: the daily view, as BI sees it.

use chrono::NaiveDate;
use clickhouse::Row;
use serde::Deserialize;

use crate::config::ClickHouseConfig;
use crate::schema::{server_info, SchemaError};

#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
struct DailyRowWire {
    vendor_id: String,
    account_alias: String,
    payment_date: u16,
    orders: u64,
    items: u64,
    payment_amount: i64,
    provisional_amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyPayment {
    pub vendor_id: String,
    pub account_alias: String,
    pub payment_date: NaiveDate,
    pub orders: u64,
    pub items: u64,
    pub payment_amount: i64,
    pub provisional_amount: i64,
}

/// A client of the pipeline's database that checks row types where the server can (≥ 22.8).
async fn read_client(config: &ClickHouseConfig) -> Result<clickhouse::Client, SchemaError> {
    Ok(config.client_for(&server_info(config).await?))
}

/// `daily_payments`: payment amount per account and payment day, current versions only (FINAL).
pub async fn daily_payments(config: &ClickHouseConfig) -> Result<Vec<DailyPayment>, SchemaError> {
    let rows = read_client(config)
        .await?
        .query(
            "SELECT vendor_id, account_alias, payment_date, orders, items, payment_amount, provisional_amount \
             FROM daily_payments ORDER BY vendor_id, payment_date",
        )
        .fetch_all::<DailyRowWire>()
        .await
        .map_err(|source| SchemaError::ClickHouse { url: config.url.clone(), source })?;
    Ok(rows
        .into_iter()
        .map(|r| DailyPayment {
            payment_date: etl_core::time::date_from_days(i32::from(r.payment_date)).unwrap_or_default(),
            vendor_id: r.vendor_id,
            account_alias: r.account_alias,
            orders: r.orders,
            items: r.items,
            payment_amount: r.payment_amount,
            provisional_amount: r.provisional_amount,
        })
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableCounts {
    /// Physical rows, every version included (before merges).
    pub stored_rows: u64,
    /// Current rows: one per key.
    pub current_rows: u64,
}

pub async fn fact_counts(config: &ClickHouseConfig) -> Result<TableCounts, SchemaError> {
    // Two plain counts: a scalar subquery's type differs between servers (Nullable(UInt64) on current
    // ones), which RowBinary without names and types would misread.
    let client = read_client(config).await?;
    let count = |sql: &'static str| {
        let query = client.query(sql);
        async move {
            query.fetch_one::<u64>().await.map_err(|source| SchemaError::ClickHouse { url: config.url.clone(), source })
        }
    };
    Ok(TableCounts {
        stored_rows: count("SELECT count() FROM payment_facts").await?,
        current_rows: count("SELECT count() FROM payment_facts FINAL").await?,
    })
}

#[derive(Debug, Clone, Row, Deserialize)]
struct OrderTotalWire {
    vendor_id: String,
    order_id: i64,
    payment_amount: i64,
}

/// Payment amount per (vendor, order), current versions only: for reconciliation against a source.
pub async fn order_payments(
    config: &ClickHouseConfig,
) -> Result<std::collections::BTreeMap<(String, i64), i64>, SchemaError> {
    let rows = read_client(config)
        .await?
        .query(
            "SELECT vendor_id, order_id, sum(payment_amount) AS payment_amount \
             FROM payment_facts FINAL GROUP BY vendor_id, order_id",
        )
        .fetch_all::<OrderTotalWire>()
        .await
        .map_err(|source| SchemaError::ClickHouse { url: config.url.clone(), source })?;
    Ok(rows.into_iter().map(|r| ((r.vendor_id, r.order_id), r.payment_amount)).collect())
}

/// Merges every partition now (`OPTIMIZE … FINAL`), so old versions are physically gone. ClickHouse
/// does this by itself in the background; this is for maintenance and tests.
pub async fn optimize_facts(config: &ClickHouseConfig) -> Result<(), SchemaError> {
    read_client(config)
        .await?
        .query("OPTIMIZE TABLE payment_facts FINAL")
        .execute()
        .await
        .map_err(|source| SchemaError::ClickHouse { url: config.url.clone(), source })
}

/// How current one account's numbers in ClickHouse are.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct AccountFreshness {
    pub account_alias: String,
    /// Stored fact rows, every version included.
    pub stored_rows: u64,
    /// Source time (unix seconds) of the newest change loaded.
    pub newest_change: u32,
    /// When the loader last inserted a row of this account (unix seconds).
    pub last_load: u32,
}

/// Per account: the newest change and the last load in `payment_facts` (cheap: no FINAL).
pub async fn account_freshness(config: &ClickHouseConfig) -> Result<Vec<AccountFreshness>, SchemaError> {
    read_client(config)
        .await?
        .query(
            "SELECT account_alias, count() AS stored_rows, toUInt32(max(event_time)) AS newest_change, \
             toUInt32(max(loaded_at)) AS last_load FROM payment_facts GROUP BY account_alias ORDER BY account_alias",
        )
        .fetch_all::<AccountFreshness>()
        .await
        .map_err(|source| SchemaError::ClickHouse { url: config.url.clone(), source })
}
