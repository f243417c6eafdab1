//! The facts' history at run time: its retention (a TTL set at the loader's start), and what a day's
//! orders were restated from and to, and why.

use chrono::NaiveDate;
use clickhouse::Row;
use serde::Deserialize;

use crate::config::ClickHouseConfig;
use crate::schema::SchemaError;
use crate::server::ServerInfo;
use crate::summary::Reader;

/// One order's change on a payment day: its amount before and after one version, and why.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct Restatement {
    pub order_id: i64,
    pub version: u64,
    /// When the loader inserted this version (unix seconds): when it became known.
    pub known_at: u32,
    /// Source time of the change (unix seconds).
    pub changed_at: u32,
    /// The order's amount before this version (its new items count 0) and after it, KRW.
    pub old_amount: i64,
    pub new_amount: i64,
    /// The causes of its items that changed, sorted, comma-separated (`CONFIRMATION`, `CANCEL,RETURN`).
    pub causes: String,
}

/// The query of [`Reader::restatements`].
const RESTATEMENTS: &str = "
SELECT order_id, version, max(loaded) AS known_at, max(changed) AS changed_at,
       sum(ifNull(before, 0)) AS old_amount, sum(amount) AS new_amount,
       arrayStringConcat(arraySort(arrayFilter(c -> c != 'UNCHANGED', groupUniqArray(cause))), ',') AS causes
FROM (
    SELECT order_id, version, toUInt32(loaded_at) AS loaded, toUInt32(event_time) AS changed,
           previous_payment_amount AS before, payment_amount AS amount, change_cause AS cause
    FROM payment_fact_history FINAL
    WHERE vendor_id = ? AND payment_date = ? AND toUInt32(loaded_at) >= ?
)
GROUP BY order_id, version
HAVING old_amount != new_amount
ORDER BY known_at, order_id, version";

impl Reader {
    /// The restatements of one payment day of one vendor: every version of an order that changed its
    /// amount (a new order from 0; causes of unchanged items left out), loaded at or after `since` (unix
    /// seconds), in load order.
    pub async fn restatements(
        &self,
        vendor_id: &str,
        day: NaiveDate,
        since: u32,
    ) -> Result<Vec<Restatement>, SchemaError> {
        self.client()
            .query(RESTATEMENTS)
            .bind(vendor_id)
            .bind(day.to_string())
            .bind(since)
            .fetch_all::<Restatement>()
            .await
            .map_err(|source| self.error(source))
    }
}

#[derive(Row, Deserialize)]
struct CreateRow {
    create_table_query: String,
}

/// Makes the history keep `days` days of versions by load time (0: keep every version): a TTL on
/// servers ≥ 22.8, changed only when it differs (a changed TTL rewrites parts). 18.16 has no TTL: it
/// keeps everything, and says so. Returns what it did, for the log; `None` without a history table.
pub async fn apply_history_retention(
    config: &ClickHouseConfig,
    server: &ServerInfo,
    days: u32,
) -> Result<Option<String>, SchemaError> {
    let error = |source| SchemaError::ClickHouse { url: config.url.clone(), source };
    let client = config.client_for(server);
    let table = client
        .query("SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = 'payment_fact_history'")
        .fetch_optional::<CreateRow>()
        .await
        .map_err(error)?;
    let Some(table) = table else { return Ok(None) };
    if !server.is_modern() {
        let keeps = "payment_fact_history keeps every version: this server has no TTL (22.8+ does)";
        return Ok(Some(if days == 0 { keeps.into() } else { format!("{keeps}; drop old partitions by hand") }));
    }
    let wanted = (days > 0).then(|| format!("TTL loaded_at + toIntervalDay({days})"));
    let current = table.create_table_query.contains(" TTL ");
    let statement = match &wanted {
        Some(ttl) if table.create_table_query.contains(ttl.as_str()) => {
            return Ok(Some(format!("history kept {days} days")))
        }
        Some(_) => format!("ALTER TABLE payment_fact_history MODIFY TTL loaded_at + INTERVAL {days} DAY"),
        None if current => "ALTER TABLE payment_fact_history REMOVE TTL".to_string(),
        None => return Ok(Some("history keeps every version".into())),
    };
    client.query(&statement).execute().await.map_err(error)?;
    Ok(Some(if days == 0 {
        "history keeps every version (TTL removed)".into()
    } else {
        format!("history kept {days} days (TTL set)")
    }))
}
