//! Ingest: polls each linked Coupang vendor account and emits raw events to Kafka.
//!
//! Library API: [`collect_range`] collects a fixed day range once (backfill, demo, tests);
//! [`run`] keeps polling a look-back window until shutdown. Accounts run independently: one
//! account's rejected key stops that account alone.

pub mod client;
pub mod config;
mod event;
mod stage;

pub use client::{ClientError, CoupangClient};
pub use config::IngestConfig;
pub use event::{order_sheet_event, return_request_event, settlement_event, RevenueListing};
pub use stage::{
    account_statuses, backfill, collect_range, fixed_accounts, load_checkpoints, run, AccountFailure, AccountReport,
    AccountSource, AccountStatus, BackfillProgress, Checkpoint, IngestError, IngestReport, Stream,
};
