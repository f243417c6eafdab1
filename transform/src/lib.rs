//! Transform: raw order-sheet, receipt and revenue events in, versioned payment facts out.
//!
//! - [`order`]: what is known about one order, folded from events in any order (pure);
//! - [`rules`]: the business rules, a pure function from an order's state to its facts;
//! - [`cause`]: why each emitted fact was restated, and its payment amount before (pure);
//! - [`store`]: that state per partition, backed by a compacted changelog topic;
//! - [`run`]: the Kafka edge (consume a batch, produce its facts and states, wait for the broker, then
//!   commit the batch's offsets).

mod batch;
pub mod cause;
pub mod config;
mod error;
pub mod order;
mod output;
pub mod record;
pub mod rules;
mod stage;
pub mod state_file;
pub mod store;
mod value_log;

pub use batch::{encode_facts, fold_into, BatchReport, EventFolded};
pub use config::TransformConfig;
pub use error::TransformError;
pub use stage::{consumes, run};
