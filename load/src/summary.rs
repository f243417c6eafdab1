//! Read-backs for people and tests: the daily view, as BI sees it.

use chrono::NaiveDate;
use clickhouse::Row;
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::config::ClickHouseConfig;
use crate::schema::{server_info, SchemaError};
use crate::server::ServerInfo;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableCounts {
    /// Physical rows, every version included (before merges).
    pub stored_rows: u64,
    /// Current rows: one per key.
    pub current_rows: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
struct OrderTotalWire {
    vendor_id: String,
    order_id: i64,
    payment_amount: i64,
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

/// A reader of the pipeline's database, for one command: it asks the server's version once, at
/// [`Reader::connect`], and checks row types where the server can (≥ 22.8) on every read-back.
#[derive(Clone)]
pub struct Reader {
    client: clickhouse::Client,
    url: String,
    server: ServerInfo,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("url", &self.url).field("server", &self.server).finish_non_exhaustive()
    }
}

impl Reader {
    /// Asks the server its version (`SELECT version()`) and makes the client for it.
    pub async fn connect(config: &ClickHouseConfig) -> Result<Reader, SchemaError> {
        Ok(Reader::for_server(config, server_info(config).await?))
    }

    /// A reader of a server whose version is known already.
    pub(crate) fn for_server(config: &ClickHouseConfig, server: ServerInfo) -> Reader {
        Reader { client: config.client_for(&server), url: config.url.clone(), server }
    }

    /// The server's version, as asked at [`Reader::connect`].
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    pub(crate) fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    pub(crate) fn error(&self, source: clickhouse::error::Error) -> SchemaError {
        SchemaError::ClickHouse { url: self.url.clone(), source }
    }

    /// `daily_payments`: payment amount per account and payment day, current versions only (FINAL).
    pub async fn daily_payments(&self) -> Result<Vec<DailyPayment>, SchemaError> {
        let rows = self
            .client
            .query(
                "SELECT vendor_id, account_alias, payment_date, orders, items, payment_amount, provisional_amount \
                 FROM daily_payments ORDER BY vendor_id, payment_date",
            )
            .fetch_all::<DailyRowWire>()
            .await
            .map_err(|source| self.error(source))?;
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

    /// Stored and current rows of `payment_facts`.
    pub async fn fact_counts(&self) -> Result<TableCounts, SchemaError> {
        // Two plain counts: a scalar subquery's type differs between servers (Nullable(UInt64) on current
        // ones), which RowBinary without names and types would misread.
        let count = |sql: &'static str| async move {
            self.client.query(sql).fetch_one::<u64>().await.map_err(|source| self.error(source))
        };
        Ok(TableCounts {
            stored_rows: count("SELECT count() FROM payment_facts").await?,
            current_rows: count("SELECT count() FROM payment_facts FINAL").await?,
        })
    }

    /// Payment amount per (vendor, order), current versions only: for reconciliation against a source.
    pub async fn order_payments(&self) -> Result<BTreeMap<(String, i64), i64>, SchemaError> {
        let rows = self
            .client
            .query(
                "SELECT vendor_id, order_id, sum(payment_amount) AS payment_amount \
                 FROM payment_facts FINAL GROUP BY vendor_id, order_id",
            )
            .fetch_all::<OrderTotalWire>()
            .await
            .map_err(|source| self.error(source))?;
        Ok(rows.into_iter().map(|r| ((r.vendor_id, r.order_id), r.payment_amount)).collect())
    }

    /// Merges every partition now (`OPTIMIZE … FINAL`), so old versions are physically gone. ClickHouse
    /// does this by itself in the background; this is for maintenance and tests.
    pub async fn optimize_facts(&self) -> Result<(), SchemaError> {
        self.client.query("OPTIMIZE TABLE payment_facts FINAL").execute().await.map_err(|source| self.error(source))
    }

    /// Per account: the newest change and the last load in `payment_facts` (cheap: no FINAL).
    pub async fn account_freshness(&self) -> Result<Vec<AccountFreshness>, SchemaError> {
        self.client
            .query(
                "SELECT account_alias, count() AS stored_rows, toUInt32(max(event_time)) AS newest_change, \
                 toUInt32(max(loaded_at)) AS last_load FROM payment_facts GROUP BY account_alias ORDER BY account_alias",
            )
            .fetch_all::<AccountFreshness>()
            .await
            .map_err(|source| self.error(source))
    }
}

// One-shot read-backs, each asking the server's version first: for tests and single reads. A command that
// reads more than once connects one [`Reader`].

/// [`Reader::daily_payments`] on a new connection.
pub async fn daily_payments(config: &ClickHouseConfig) -> Result<Vec<DailyPayment>, SchemaError> {
    Reader::connect(config).await?.daily_payments().await
}

/// [`Reader::fact_counts`] on a new connection.
pub async fn fact_counts(config: &ClickHouseConfig) -> Result<TableCounts, SchemaError> {
    Reader::connect(config).await?.fact_counts().await
}

/// [`Reader::order_payments`] on a new connection.
pub async fn order_payments(config: &ClickHouseConfig) -> Result<BTreeMap<(String, i64), i64>, SchemaError> {
    Reader::connect(config).await?.order_payments().await
}

/// [`Reader::optimize_facts`] on a new connection.
pub async fn optimize_facts(config: &ClickHouseConfig) -> Result<(), SchemaError> {
    Reader::connect(config).await?.optimize_facts().await
}

/// [`Reader::account_freshness`] on a new connection.
pub async fn account_freshness(config: &ClickHouseConfig) -> Result<Vec<AccountFreshness>, SchemaError> {
    Reader::connect(config).await?.account_freshness().await
}
