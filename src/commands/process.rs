//! What every command's process sets up before it runs: logging, the shutdown signal, and the metrics
//! and health endpoint of the commands that run stages.

use etl_core::Shutdown;
use std::net::SocketAddr;

use super::CommandError;
use crate::config::LogFormat;
use crate::Config;

/// The stages a command runs: readiness waits for every one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// The demo runs the whole pipeline; a metrics port already taken only warns.
    Demo,
    /// Ingest, transform and load (`run`).
    Pipeline,
    /// Ingest alone (`ingest`, `backfill`).
    Ingest,
    Transform,
    Load,
    /// No stage (`status`, `migrate`, …): no metrics endpoint.
    NoStage,
}

impl Runs {
    pub fn stages(self) -> &'static [&'static str] {
        match self {
            Runs::Demo | Runs::Pipeline => &["ingest", "transform", "load"],
            Runs::Ingest => &["ingest"],
            Runs::Transform => &["transform"],
            Runs::Load => &["load"],
            Runs::NoStage => &[],
        }
    }
}

/// Logs to stderr, filtered by `COUPANG_ETL_LOG` (else `default`).
pub fn init_logging(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COUPANG_ETL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
}

/// Serves `/metrics` and `/health/*` for the commands that run stages, when configured (the default
/// is 127.0.0.1:9464). A port already taken stops the stage commands, and only warns for the demo.
pub async fn serve_metrics(
    config: &Config,
    runs: Runs,
    shutdown: &Shutdown,
) -> Result<Option<SocketAddr>, CommandError> {
    let stages = runs.stages();
    let Some(address) = config.observability.metrics_address()?.filter(|_| !stages.is_empty()) else {
        return Ok(None);
    };
    stages.iter().for_each(|stage| etl_core::metrics::metrics().register_stage(stage));
    let listener = match etl_core::metrics::bind(address).await {
        Ok(listener) => listener,
        Err(error) if runs == Runs::Demo => {
            tracing::warn!("{error}; the demo runs without it");
            return Ok(None);
        }
        Err(error) => return Err(error.into()),
    };
    let bound = listener.local_addr()?;
    tracing::info!("metrics on http://{bound}/metrics, health on http://{bound}/health/ready");
    tokio::spawn(etl_core::metrics::serve(listener, shutdown.clone()));
    Ok(Some(bound))
}

/// A shutdown token cancelled by Ctrl-C or SIGTERM.
pub fn shutdown_on_signal() -> Shutdown {
    let shutdown = Shutdown::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        let terminate = async {
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                term.recv().await;
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        tracing::info!("shutting down: finishing the current batch");
        token.cancel();
    });
    shutdown
}
