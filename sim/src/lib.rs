//! A simulator of the Coupang WING Open API, as coupang-api.md describes it, for a seeded world.
//!
//! Coupang has no sandbox, so this is how tests, demos and users see "Coupang": the same paths,
//! parameters, limits, envelopes, error bodies and signature check as api-gateway.coupang.com.
//! The [`truth`] module computes, from the world itself and never from pipeline code, what the
//! pipeline's numbers must be.

pub mod config;
pub mod generate;
pub mod lifecycle;
mod prng;
pub mod revenue;
mod server;
pub mod settlement;
pub mod truth;
pub mod world;

pub use config::{SimConfig, SimVendor};
pub use server::{serve, RequestStats, Simulator};
pub use world::World;
