//! Transform: raw order-sheet events in, payment facts out.
//!
//! The business rules are pure functions in [`rules`]; [`run`] is the Kafka edge around them
//! (consume a batch, produce its facts, wait for the broker, then commit the batch's offsets).

pub mod config;
pub mod rules;
mod stage;

pub use config::TransformConfig;
pub use stage::{run, TransformError};
