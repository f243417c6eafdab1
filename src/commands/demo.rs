//! `demo`: the whole pipeline on the built-in simulator, checked against its ground truth (the
//! pipeline part is [`crate::demo`]; this is the command around it).

use etl_core::Shutdown;
use std::net::SocketAddr;

use super::{conclude, run_findings, write_out, CommandError, CommandResult};
use crate::{demo, Config};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// ClickHouse database the demo writes to: this; else the config's `[clickhouse] database` when
    /// the config sets one other than the default `coupang`; else `coupang_demo`. The demo empties
    /// only a database it created itself (it marks it); any other existing database is refused.
    #[arg(long)]
    pub database: Option<String>,
}

/// `demo`: runs it in its own database and topics, prints the daily amounts, the status screen and
/// where metrics were served. `metrics` is the address the metrics endpoint is bound to, if any.
pub async fn run(
    mut config: Config,
    args: DemoArgs,
    metrics: Option<SocketAddr>,
    shutdown: &Shutdown,
) -> CommandResult {
    // The demo keeps to its own database and topics, so it never mixes with real data.
    config.clickhouse.database = demo::database(args.database, &config.clickhouse.database);
    config.kafka.topic_prefix = "coupang-demo.".into();
    let _embedded = demo::embedded_kafka(&mut config)?;
    eprintln!(
        "Simulating {} vendors, {} to {}; ClickHouse at {}",
        config.sim.vendors.len(),
        config.sim.start_date,
        config.sim.end_date(),
        config.clickhouse.url
    );
    let database = config.clickhouse.database.clone();
    let outcome = demo::run(config, shutdown).await?;
    write_out(&demo::render(&outcome, &database))?;
    let mut after = format!("\n`coupang-etl status` (run it beside a running pipeline):\n{}", outcome.status.render());
    if let Some(address) = metrics {
        after.push_str(&format!(
            "\nMetrics were served at http://{address}/metrics and health at http://{address}/health/ready \
             while the pipeline ran (observability.metrics_listen).\n"
        ));
    }
    write_out(&after)?;
    if !outcome.mismatches.is_empty() {
        return Err(CommandError::DemoMismatch);
    }
    Ok(conclude(&run_findings(&outcome.report)))
}
