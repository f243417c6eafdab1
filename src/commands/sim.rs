//! `sim`: serves the Coupang API simulator, or prints its ground truth.

use chrono::NaiveDateTime;
use etl_core::Shutdown;
use std::net::SocketAddr;

use super::{write_out, CommandError, CommandResult};
use crate::exit::Outcome;
use crate::Config;

#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to serve on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub listen: SocketAddr,
    #[command(subcommand)]
    pub command: Option<SimCommand>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SimCommand {
    /// Print the expected payment amounts (the ground truth of the configured world) as CSV
    ///
    /// The truth at one moment of the simulated clock: what had happened to the orders by then. A
    /// frozen clock (time_scale = 0) shows 09:00 the day after the period, the default; for a running
    /// clock give --at, or ask the serving simulator: GET /sim/truth answers at its clock.
    Truth {
        /// Per vendor and payment day, per order (shipping included), or per item (shipping excluded).
        #[arg(long, value_enum, default_value = "daily")]
        level: TruthLevel,
        /// The simulated moment, Asia/Seoul (e.g. 2026-10-15T18:00:00).
        #[arg(long)]
        at: Option<NaiveDateTime>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TruthLevel {
    Daily,
    Orders,
    Items,
}

/// `sim`: `sim truth` prints, plain `sim` serves until a signal.
pub async fn run(config: &Config, args: SimArgs, shutdown: Shutdown) -> CommandResult {
    match args.command {
        Some(SimCommand::Truth { level, at }) => truth(config, level, at),
        None => serve(config, args.listen, shutdown).await,
    }
}

/// `sim truth`: the ground truth at one moment of the simulated clock, as CSV.
pub fn truth(config: &Config, level: TruthLevel, at: Option<NaiveDateTime>) -> CommandResult {
    let at = match at {
        Some(at) => at.and_local_timezone(etl_core::time::kst()).single().ok_or(CommandError::NoSingleMoment)?,
        None if config.sim.time_scale > 0.0 => return Err(CommandError::ClockRuns),
        None => coupang_sim::World::final_moment(&config.sim),
    };
    let truth = coupang_sim::truth::Truth::of(&coupang_sim::World::generate_at(&config.sim, at));
    write_out(&match level {
        TruthLevel::Daily => truth.daily_csv(),
        TruthLevel::Orders => truth.orders_csv(),
        TruthLevel::Items => truth.items_csv(),
    })?;
    Ok(Outcome::Success)
}

/// `sim`: serves the simulator on `listen` until a signal.
pub async fn serve(config: &Config, listen: SocketAddr, shutdown: Shutdown) -> CommandResult {
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| CommandError::Bind { address: listen, source })?;
    println!("Coupang API simulator on http://{}  (vendors: {})", listener.local_addr()?, vendor_list(config));
    println!("Point ingest.base_url at it; Ctrl-C stops it.");
    coupang_sim::serve(&config.sim, listener, shutdown).await?;
    Ok(Outcome::Success)
}

/// The simulator's vendors with their access keys (the secret keys stay out of the output).
fn vendor_list(config: &Config) -> String {
    config.sim.vendors.iter().map(|v| format!("{} key {}", v.vendor_id, v.access_key)).collect::<Vec<_>>().join(", ")
}
