//! The ClickHouse schema as versioned migrations, applied by `coupang-etl migrate` (and by the loader
//! at start). Idempotent: each applied migration is recorded in `schema_migrations`, and every statement
//! is `IF NOT EXISTS`, so two concurrent runs are harmless too.
//!
//! The DDL is written for both ClickHouse 18.16 and current servers (both tested: 18.16 as a server,
//! 26.9 in-process through chdb, see tests/clickhouse_current.rs): no table comments, no
//! LowCardinality, no DateTime64, no server-side query parameters. What only newer servers have comes
//! in migrations with `Needs`, chosen by `SELECT version()` and the table's engine.

use clickhouse::Row;
use serde::Deserialize;

use crate::config::ClickHouseConfig;
use crate::history_schema::{CHANGE_CAUSE, HISTORY, HISTORY_FEED, HISTORY_SEED, PREVIOUS_AMOUNT};
use crate::ledger_schema::{LEDGER_DEDUPLICATION_WINDOW, RECONCILIATION, REVENUE_ROWS, SETTLEMENTS};
use crate::server::{ServerInfo, MODERN};
use etl_core::invalid::InvalidSetting;

pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    /// Statements with `{db}` standing for the database.
    pub statements: &'static [&'static str],
    /// (table, column): the migration adds this column and is skipped when it is already there (old
    /// servers have no `ADD COLUMN IF NOT EXISTS`).
    pub adds_column: Option<(&'static str, &'static str)>,
    /// What the server and table must be for the statements to apply. Where that does not hold the
    /// migration is left out and not recorded, so it applies once it does (after a server upgrade).
    pub needs: Needs,
}

/// A migration's precondition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Every server, every table.
    Nothing,
    /// A server of at least this (major, minor) whose `table` is a single-node MergeTree: not
    /// Replicated*, not Distributed (the cluster DDL of deploy/clickhouse-cluster.sql).
    SingleNodeTable { table: &'static str, server: (u32, u32) },
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "payment_facts table",
        statements: &[PAYMENT_FACTS],
        adds_column: None,
        needs: Needs::Nothing,
    },
    Migration {
        version: 2,
        name: "daily_payments view",
        statements: &[DAILY_PAYMENTS],
        adds_column: None,
        needs: Needs::Nothing,
    },
    Migration {
        version: 3,
        name: "item and order views; daily_payments with coupons and cancellations broken out",
        statements: &[ITEM_PAYMENTS, ORDER_PAYMENTS, "DROP TABLE IF EXISTS {db}.daily_payments", DAILY_PAYMENTS_V3],
        adds_column: None,
        needs: Needs::Nothing,
    },
    Migration {
        version: 4,
        name: "payment_facts refuses impossible rows",
        statements: &[ROW_CHECK],
        adds_column: Some(("payment_facts", "row_check")),
        needs: Needs::Nothing,
    },
    Migration {
        version: 5,
        name: "payment_facts drops a retried INSERT that already landed (single-node servers ≥ 22.8)",
        statements: &[DEDUPLICATION_WINDOW],
        adds_column: None,
        needs: Needs::SingleNodeTable { table: "payment_facts", server: MODERN },
    },
    Migration {
        version: 6,
        name: "payment_facts compressed with codecs (single-node servers ≥ 22.8)",
        statements: &[CODECS],
        adds_column: None,
        needs: Needs::SingleNodeTable { table: "payment_facts", server: MODERN },
    },
    Migration {
        version: 7,
        name: "revenue_rows table: revenue-history as collected, for the reconciliation",
        statements: &[REVENUE_ROWS],
        adds_column: None,
        needs: Needs::Nothing,
    },
    Migration {
        version: 8,
        name: "settlements table: one current row per payout",
        statements: &[SETTLEMENTS],
        adds_column: None,
        needs: Needs::Nothing,
    },
    Migration {
        version: 9,
        name: "reconciliation view: payments, revenue and payouts per account and month",
        statements: &[RECONCILIATION],
        adds_column: None,
        needs: Needs::Nothing,
    },
    Migration {
        version: 10,
        name: "revenue_rows and settlements drop a retried INSERT that already landed (single-node servers ≥ 22.8)",
        statements: &[LEDGER_DEDUPLICATION_WINDOW[0], LEDGER_DEDUPLICATION_WINDOW[1]],
        adds_column: None,
        needs: Needs::SingleNodeTable { table: "revenue_rows", server: MODERN },
    },
    Migration {
        version: 11,
        name: "payment_facts says why each version changed (change_cause)",
        statements: &[CHANGE_CAUSE],
        adds_column: Some(("payment_facts", "change_cause")),
        needs: Needs::Nothing,
    },
    Migration {
        version: 12,
        name: "payment_facts keeps the amount before (previous_payment_amount)",
        statements: &[PREVIOUS_AMOUNT],
        adds_column: Some(("payment_facts", "previous_payment_amount")),
        needs: Needs::Nothing,
    },
    Migration {
        version: 13,
        name: "payment_fact_history: every version with its load time, fed with each INSERT",
        statements: &[HISTORY, HISTORY_FEED, HISTORY_SEED],
        adds_column: None,
        // A view on a Distributed or Merge table never sees the INSERTs: on a cluster the history is
        // made on the local tables (docs/operations.md).
        needs: Needs::SingleNodeTable { table: "payment_facts", server: (18, 16) },
    },
];

/// Column codecs: half the bytes on disk (measured on 2.3M simulated facts on ClickHouse 26.9: 80.6 MB
/// → 37.9 MB merged, reads through FINAL as fast within noise; deploy/bench/clickhouse_26.py,
/// BENCHMARKS.md). Delta suits the ids and versions that grow along the sorting key; ZSTD the rest,
/// level 3 for the names. `vendor_id` and `account_alias` keep LZ4: their long runs of one value
/// came out 3× larger with ZSTD. Only the codec changes (the types stay, so queries answer alike on every
/// server); existing parts take it when they are next merged, so the ALTER itself is instant.
const CODECS: &str = "
ALTER TABLE {db}.payment_facts
    MODIFY COLUMN order_id CODEC(Delta, ZSTD(1)),
    MODIFY COLUMN vendor_item_id CODEC(ZSTD(1)),
    MODIFY COLUMN shipment_box_id CODEC(Delta, ZSTD(1)),
    MODIFY COLUMN vendor_item_name CODEC(ZSTD(3)),
    MODIFY COLUMN paid_at CODEC(ZSTD(1)),
    MODIFY COLUMN status CODEC(ZSTD(1)),
    MODIFY COLUMN quantity CODEC(T64, ZSTD(1)),
    MODIFY COLUMN cancelled_quantity CODEC(T64, ZSTD(1)),
    MODIFY COLUMN order_price CODEC(ZSTD(1)),
    MODIFY COLUMN shipping_fee CODEC(ZSTD(1)),
    MODIFY COLUMN seller_coupon_discount CODEC(ZSTD(1)),
    MODIFY COLUMN coupang_coupon_discount CODEC(ZSTD(1)),
    MODIFY COLUMN payment_amount CODEC(ZSTD(1)),
    MODIFY COLUMN provisional CODEC(ZSTD(1)),
    MODIFY COLUMN cancelled CODEC(ZSTD(1)),
    MODIFY COLUMN event_time CODEC(ZSTD(1)),
    MODIFY COLUMN version CODEC(Delta, ZSTD(1)),
    MODIFY COLUMN loaded_at CODEC(Delta, ZSTD(1))";

/// The loader names the Kafka records of every INSERT in `insert_deduplication_token`. Replicated
/// tables keep the tokens of their last 1000 inserts by default (`replicated_deduplication_window`);
/// a single-node MergeTree keeps none (`non_replicated_deduplication_window` is 0), so without this a
/// retried INSERT whose first answer was lost lands twice (harmless to the views, which read FINAL, but
/// it doubles rows until a merge). 1000 tokens: the same as replicated tables, a few kB on disk.
const DEDUPLICATION_WINDOW: &str =
    "ALTER TABLE {db}.payment_facts MODIFY SETTING non_replicated_deduplication_window = 1000";

/// The table's own guard: an INSERT with an impossible row fails with ClickHouse's error (code 395),
/// whoever writes it; the loader then isolates the row and dead-letters it with that message. A
/// MATERIALIZED column works on 18.16 and on current servers alike (CHECK constraints need 19.14+).
const ROW_CHECK: &str = "
ALTER TABLE {db}.payment_facts ADD COLUMN row_check UInt8 MATERIALIZED throwIf(
    quantity < 0 OR cancelled_quantity < 0 OR cancelled_quantity > quantity
    OR order_price < 0 OR shipping_fee < 0 OR seller_coupon_discount < 0 OR coupang_coupon_discount < 0
    OR payment_amount < 0
    OR payment_amount != order_price + shipping_fee - seller_coupon_discount - coupang_coupon_discount)
COMMENT 'Always 0: computed on INSERT, where an impossible row (negative amounts or quantities, more units undone than ordered, an amount that is not price + fee - coupons) makes the INSERT fail'";

/// Current state of every (vendor, order, item): one row per key, as BI should read the facts.
const ITEM_PAYMENTS: &str = "
CREATE VIEW IF NOT EXISTS {db}.item_payments AS
SELECT vendor_id, account_alias, order_id, vendor_item_id, shipment_box_id, vendor_item_name, payment_date,
       paid_at, status, quantity, cancelled_quantity, order_price, shipping_fee, seller_coupon_discount,
       coupang_coupon_discount, payment_amount, provisional, cancelled, event_time, version
FROM {db}.payment_facts FINAL";

/// Current state of every order: its items summed. `provisional` while any item awaits confirmation;
/// `cancelled` when every item was cancelled or returned.
const ORDER_PAYMENTS: &str = "
CREATE VIEW IF NOT EXISTS {db}.order_payments AS
SELECT
    vendor_id,
    argMax(alias, ver) AS account_alias,
    order_id,
    min(day) AS payment_date,
    min(paid) AS paid_at,
    count() AS items,
    sum(units) AS quantity,
    sum(undone) AS cancelled_quantity,
    sum(price) AS order_price,
    sum(fee) AS shipping_fee,
    sum(seller) AS seller_coupon_discount,
    sum(coupang) AS coupang_coupon_discount,
    sum(amount) AS payment_amount,
    max(is_provisional) AS provisional,
    min(is_cancelled) AS cancelled,
    max(changed) AS event_time
FROM (
    SELECT vendor_id, account_alias AS alias, version AS ver, order_id, payment_date AS day, paid_at AS paid,
           quantity AS units, cancelled_quantity AS undone, order_price AS price, shipping_fee AS fee,
           seller_coupon_discount AS seller, coupang_coupon_discount AS coupang, payment_amount AS amount,
           provisional AS is_provisional, cancelled AS is_cancelled, event_time AS changed
    FROM {db}.payment_facts FINAL
)
GROUP BY vendor_id, order_id";

/// Payment amount per account and payment day, current versions only, with what is still provisional,
/// the coupons and the cancellations broken out.
const DAILY_PAYMENTS_V3: &str = "
CREATE VIEW IF NOT EXISTS {db}.daily_payments AS
SELECT
    vendor_id,
    argMax(alias, paid) AS account_alias,
    payment_date,
    uniqExact(order) AS orders,
    count() AS items,
    sum(amount) AS payment_amount,
    sumIf(amount, is_provisional = 1) AS provisional_amount,
    sumIf(amount, is_provisional = 0) AS confirmed_amount,
    sum(seller) AS seller_coupon_discount,
    sum(coupang) AS coupang_coupon_discount,
    sum(undone) AS cancelled_quantity,
    countIf(is_cancelled = 1) AS cancelled_items
FROM (
    SELECT vendor_id, account_alias AS alias, paid_at AS paid, payment_date, order_id AS order,
           payment_amount AS amount, provisional AS is_provisional, cancelled AS is_cancelled,
           seller_coupon_discount AS seller, coupang_coupon_discount AS coupang, cancelled_quantity AS undone
    FROM {db}.payment_facts FINAL
)
GROUP BY vendor_id, payment_date";

/// One row per (vendor, order, item), newest version wins. The partition is the payment month, and a
/// key's payment date never changes, so all versions of a row meet in one partition and merge.
const PAYMENT_FACTS: &str = "
CREATE TABLE IF NOT EXISTS {db}.payment_facts (
    vendor_id String COMMENT 'Coupang vendor code (A or C and 8 digits); with order_id and vendor_item_id the row key',
    account_alias String COMMENT 'The account alias in the coupang-etl config when the data was collected',
    order_id Int64 COMMENT 'Coupang orderId',
    vendor_item_id Int64 COMMENT 'Coupang vendorItemId: the option sold',
    shipment_box_id Int64 COMMENT 'Shipment box the item ships in',
    vendor_item_name String COMMENT 'Item name as ordered',
    payment_date Date COMMENT 'Payment day in Korea time (Asia/Seoul): the day this amount belongs to, also after cancels and coupons',
    paid_at DateTime('Asia/Seoul') COMMENT 'Payment time',
    status String COMMENT 'CONFIRMED, CANCELLED or RETURNED once known, else the order-sheet status (ACCEPT, INSTRUCT, DEPARTURE, DELIVERING, FINAL_DELIVERY, NONE_TRACKING)',
    quantity Int32 COMMENT 'Units ordered',
    cancelled_quantity Int32 COMMENT 'Units cancelled or returned',
    order_price Int64 COMMENT 'KRW: price of the units that remain',
    shipping_fee Int64 COMMENT 'KRW: shipping and remote-area fee of the box, carried by its item with the lowest vendor_item_id',
    seller_coupon_discount Int64 COMMENT 'KRW: seller-funded coupons, known after purchase confirmation',
    coupang_coupon_discount Int64 COMMENT 'KRW: Coupang-funded discount, known after purchase confirmation',
    payment_amount Int64 COMMENT 'KRW: order_price + shipping_fee - coupons (the payment amount)',
    provisional UInt8 COMMENT '1 until purchase confirmation brings the coupon amounts',
    cancelled UInt8 COMMENT '1 when every unit was cancelled or returned: the amount is then 0',
    event_time DateTime('Asia/Seoul') COMMENT 'Source time of the newest change in this row',
    version UInt64 COMMENT 'Row version derived from the source events; the highest wins',
    loaded_at DateTime DEFAULT now() COMMENT 'When the loader inserted this version'
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(payment_date)
ORDER BY (vendor_id, order_id, vendor_item_id)";

/// Payment amount per account and payment day, current versions only. The inner select renames the
/// columns so the outer aliases can keep the readable names (old servers resolve aliases query-wide).
const DAILY_PAYMENTS: &str = "
CREATE VIEW IF NOT EXISTS {db}.daily_payments AS
SELECT
    vendor_id,
    argMax(alias, paid) AS account_alias,
    payment_date,
    uniqExact(order) AS orders,
    count() AS items,
    sum(amount) AS payment_amount,
    sumIf(amount, is_provisional = 1) AS provisional_amount,
    countIf(is_cancelled = 1) AS cancelled_items
FROM (
    SELECT vendor_id, account_alias AS alias, paid_at AS paid, payment_date, order_id AS order,
           payment_amount AS amount, provisional AS is_provisional, cancelled AS is_cancelled
    FROM {db}.payment_facts FINAL
)
GROUP BY vendor_id, payment_date";

const MIGRATIONS_TABLE: &str = "
CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
    version UInt32 COMMENT 'Migration number',
    name String COMMENT 'What it does',
    applied_at DateTime DEFAULT now() COMMENT 'When it was applied'
) ENGINE = MergeTree ORDER BY version";

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid ClickHouse configuration: {0}")]
    Config(#[from] InvalidSetting),
    #[error("ClickHouse at {url}: {source}")]
    ClickHouse {
        url: String,
        #[source]
        source: clickhouse::error::Error,
    },
    /// A database the caller would empty exists and was not created by it.
    #[error("ClickHouse at {url}: database `{database}` exists and was not created by {owner}: it is left alone (choose another database, or drop it yourself)")]
    NotOwned { url: String, database: String, owner: String },
    #[error("ClickHouse at {url}: migration {version} ({name}) failed: {source}")]
    Migration {
        url: String,
        version: u32,
        name: &'static str,
        #[source]
        source: clickhouse::error::Error,
    },
}

impl SchemaError {
    /// ClickHouse did not answer, or not in time (down, restarting, or not at this address).
    pub fn is_unreachable(&self) -> bool {
        use clickhouse::error::Error::{Network, TimedOut};
        matches!(
            self,
            SchemaError::ClickHouse { source: Network(_) | TimedOut, .. }
                | SchemaError::Migration { source: Network(_) | TimedOut, .. }
        )
    }
}

#[derive(Debug, Clone)]
pub struct MigrationReport {
    pub server: ServerInfo,
    pub database: String,
    /// Migrations applied by this run.
    pub applied: Vec<(u32, &'static str)>,
    /// Migrations that were already there.
    pub already_applied: usize,
    /// Migrations left out because their precondition does not hold here, and why (not recorded:
    /// they are looked at again at the next start).
    pub left_out: Vec<(u32, &'static str, String)>,
}

#[derive(Row, Deserialize)]
struct VersionRow {
    version: String,
}

#[derive(Row, Deserialize)]
struct CountRow {
    n: u64,
}

#[derive(Row, Deserialize)]
struct AppliedRow {
    version: u32,
}

pub async fn server_info(config: &ClickHouseConfig) -> Result<ServerInfo, SchemaError> {
    let error = |source| SchemaError::ClickHouse { url: config.url.clone(), source };
    let row =
        config.server_client().query("SELECT version() AS version").fetch_one::<VersionRow>().await.map_err(error)?;
    Ok(ServerInfo::parse(&row.version))
}

/// Drops the whole database (for the demo's own database, which starts empty on every run).
pub async fn drop_database(config: &ClickHouseConfig) -> Result<(), SchemaError> {
    config.validate()?;
    config
        .server_client()
        .query(&format!("DROP DATABASE IF EXISTS {}", config.database))
        .execute()
        .await
        .map_err(|source| SchemaError::ClickHouse { url: config.url.clone(), source })
}

/// Whether `(table, column)` exists in `db`.
async fn column_exists(
    admin: &clickhouse::Client,
    db: &str,
    (table, column): (&str, &str),
) -> Result<bool, clickhouse::error::Error> {
    let count = admin
        .query("SELECT count() AS n FROM system.columns WHERE database = ? AND table = ? AND name = ?")
        .bind(db)
        .bind(table)
        .bind(column)
        .fetch_one::<CountRow>()
        .await?;
    Ok(count.n > 0)
}

#[derive(Row, Deserialize)]
struct EngineRow {
    engine: String,
}

/// Why `needs` does not hold on this server and database, or `None` when it does.
async fn unmet(
    admin: &clickhouse::Client,
    db: &str,
    server: &ServerInfo,
    needs: Needs,
) -> Result<Option<String>, clickhouse::error::Error> {
    let Needs::SingleNodeTable { table, server: (major, minor) } = needs else {
        return Ok(None);
    };
    if !server.is_at_least((major, minor)) {
        return Ok(Some(format!("needs ClickHouse {major}.{minor} or newer; this server is {}", server.version)));
    }
    let engine = admin
        .query("SELECT engine FROM system.tables WHERE database = ? AND name = ?")
        .bind(db)
        .bind(table)
        .fetch_optional::<EngineRow>()
        .await?
        .map(|row| row.engine)
        .unwrap_or_default();
    let single_node = engine.ends_with("MergeTree") && !engine.starts_with("Replicated");
    Ok((!single_node).then(|| format!("{table} is a {engine} table, not a single-node MergeTree")))
}

/// Empties the configured database for `owner` (the demo) and marks it as `owner`'s: creates it when
/// missing, drops and recreates it when it carries `owner`'s mark, and refuses (`NotOwned`) when it
/// exists without it, so a name pointing at real data never loses it.
pub async fn recreate_own_database(config: &ClickHouseConfig, owner: &str) -> Result<(), SchemaError> {
    config.validate()?;
    let error = |source| SchemaError::ClickHouse { url: config.url.clone(), source };
    let admin = config.server_client();
    let db = &config.database;
    let mark = format!("created_by_{owner}");
    let database_exists = admin
        .query("SELECT count() AS n FROM system.databases WHERE name = ?")
        .bind(db)
        .fetch_one::<CountRow>()
        .await
        .map_err(error)?
        .n
        > 0;
    if database_exists {
        let marked = admin
            .query("SELECT count() AS n FROM system.tables WHERE database = ? AND name = ?")
            .bind(db)
            .bind(&mark)
            .fetch_one::<CountRow>()
            .await
            .map_err(error)?
            .n
            > 0;
        if !marked {
            return Err(SchemaError::NotOwned { url: config.url.clone(), database: db.clone(), owner: owner.into() });
        }
        admin.query(&format!("DROP DATABASE {db}")).execute().await.map_err(error)?;
    }
    admin.query(&format!("CREATE DATABASE {db}")).execute().await.map_err(error)?;
    let create_mark = format!("CREATE TABLE {db}.{mark} (created_at DateTime DEFAULT now()) ENGINE = TinyLog");
    admin.query(&create_mark).execute().await.map_err(error)
}

pub async fn migrate(config: &ClickHouseConfig) -> Result<MigrationReport, SchemaError> {
    config.validate()?;
    let error = |source| SchemaError::ClickHouse { url: config.url.clone(), source };
    let server = server_info(config).await?;
    let db = &config.database;
    let admin = config.server_client_for(&server);
    admin.query(&format!("CREATE DATABASE IF NOT EXISTS {db}")).execute().await.map_err(error)?;
    admin.query(&MIGRATIONS_TABLE.replace("{db}", db)).execute().await.map_err(error)?;
    let applied: std::collections::HashSet<u32> = admin
        .query(&format!("SELECT DISTINCT version FROM {db}.schema_migrations"))
        .fetch_all::<AppliedRow>()
        .await
        .map_err(error)?
        .into_iter()
        .map(|r| r.version)
        .collect();
    let mut report =
        MigrationReport { server, database: db.clone(), applied: Vec::new(), already_applied: 0, left_out: Vec::new() };
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            report.already_applied += 1;
            continue;
        }
        let failed = |source| SchemaError::Migration {
            url: config.url.clone(),
            version: migration.version,
            name: migration.name,
            source,
        };
        if let Some(reason) = unmet(&admin, db, &report.server, migration.needs).await.map_err(failed)? {
            tracing::info!(database = %db, version = migration.version, "migration left out: {reason}");
            report.left_out.push((migration.version, migration.name, reason));
            continue;
        }
        let present = match migration.adds_column {
            Some(column) => column_exists(&admin, db, column).await.map_err(failed)?,
            None => false,
        };
        if !present {
            for statement in migration.statements {
                if let Err(source) = admin.query(&statement.replace("{db}", db)).execute().await {
                    // Two loaders starting together both see the column missing; the second ALTER
                    // then fails on the column the first one added, which is this migration done.
                    let raced = match migration.adds_column {
                        Some(column) => column_exists(&admin, db, column).await.map_err(failed)?,
                        None => false,
                    };
                    if !raced {
                        return Err(failed(source));
                    }
                    tracing::info!(database = %db, version = migration.version, "migration applied by another process");
                }
            }
        }
        admin
            .query(&format!("INSERT INTO {db}.schema_migrations (version, name) VALUES (?, ?)"))
            .bind(migration.version)
            .bind(migration.name)
            .execute()
            .await
            .map_err(failed)?;
        tracing::info!(database = %db, version = migration.version, name = migration.name, "migration applied");
        report.applied.push((migration.version, migration.name));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
    }
}
