//! Read-backs of the facts' history: what a day's orders were restated from and to, and why.

use chrono::NaiveDate;
use clickhouse::Row;
use serde::Deserialize;

use crate::schema::SchemaError;
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

/// The restatements of one payment day of one vendor: every version of an order that changed its
/// amount (a new order from 0; causes of unchanged items left out), loaded at or after `since` (unix
/// seconds), in load order.
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
    /// See [`RESTATEMENTS`].
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
