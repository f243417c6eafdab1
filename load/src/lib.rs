//! Load: payment facts from Kafka into ClickHouse, one current row per key.
//!
//! The facts table is a `ReplacingMergeTree(version)`: inserting the same fact twice, or an older version
//! late, never changes what `FINAL` (or `argMax(…, version)`) reads. Offsets are committed only after
//! ClickHouse acknowledged the insert, so a crash replays at most one batch, harmlessly.

pub mod config;
pub mod history;
mod history_schema;
mod ledger;
mod ledger_schema;
pub mod reconciliation;
mod row;
pub mod schema;
mod server;
mod stage;
pub mod summary;

pub use config::{ClickHouseConfig, LoadConfig};
pub use ledger::{PayoutRow, RevenueRow};
pub use reconciliation::{Reconciliation, ReconciliationStatus};
pub use row::FactRow;
pub use schema::{migrate, MigrationReport};
pub use server::ServerInfo;
pub use stage::{consumes, run, LoadError};
pub use summary::Reader;
