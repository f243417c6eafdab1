//! The coupang-etl command: configuration, the commands, and the wiring of the stages into one pipeline.
//! Each stage lives in its own crate with a `run(config, shutdown)` API; this crate only connects them.

pub mod commands;
pub mod config;
pub mod demo;
pub mod exit;
pub mod pipeline;
pub mod reports;
pub mod status;

pub use config::{Config, ConfigError};
