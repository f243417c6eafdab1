//! Plumbing shared by every coupang-etl stage. Nothing here knows business rules.

pub mod account;
pub mod cea;
pub mod invalid;
pub mod kafka;
pub mod metrics;
pub mod secret;
pub mod task;
pub mod time;

/// Cooperative shutdown signal handed to every stage's `run(config, shutdown)`.
pub type Shutdown = tokio_util::sync::CancellationToken;
