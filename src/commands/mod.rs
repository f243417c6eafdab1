//! The commands of the `coupang-etl` binary, one function each; `main.rs` only parses the command
//! line and calls them. Commands that end by themselves return how they ended (see [`crate::exit`]);
//! follow mode returns `Success` once a signal stopped it.

pub mod admin;
pub mod backfill;
pub mod changes;
pub mod demo;
pub mod process;
pub mod reconcile;
pub mod sim;
pub mod stages;

use chrono::NaiveDate;
use coupang_ingest::IngestError;
use coupang_load::schema::SchemaError;
use coupang_load::LoadError;
use coupang_transform::TransformError;
use std::net::SocketAddr;

use crate::exit::{Findings, Outcome};
use crate::pipeline::{PipelineError, RunReport};
use crate::{Config, ConfigError};

/// Why a command ended with an error. Its message is what `coupang-etl` prints after `error: `: the
/// libraries' errors already carry their causes in their message.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    // The stages' errors are large: boxed, so that every command's `Result` stays small.
    #[error(transparent)]
    Pipeline(Box<PipelineError>),
    #[error(transparent)]
    Ingest(Box<IngestError>),
    #[error(transparent)]
    Transform(Box<TransformError>),
    #[error(transparent)]
    Load(Box<LoadError>),
    #[error(transparent)]
    Schema(Box<SchemaError>),
    /// The metrics address of a command that runs stages is taken.
    #[error(transparent)]
    Metrics(#[from] etl_core::metrics::BindError),
    /// Writing the output, or serving the simulator.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// `sim --listen`'s address could not be bound.
    #[error("binding {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no [[accounts]] configured: add your Coupang vendor accounts to the config file (see deploy/coupang-etl.example.toml)")]
    NoAccounts,
    #[error("no account with alias {0:?} in the config")]
    UnknownAccount(String),
    #[error("--to {to} is before --from {from}")]
    ReversedRange { from: NaiveDate, to: NaiveDate },
    /// `sim truth --at` names no single moment in Asia/Seoul.
    #[error("--at")]
    NoSingleMoment,
    #[error("the simulated clock runs (sim.time_scale > 0): give --at, or GET /sim/truth from the serving simulator")]
    ClockRuns,
    #[error("ClickHouse does not match the simulator's ground truth")]
    DemoMismatch,
}

/// `?` on a stage's error boxes it into its variant.
macro_rules! boxed_from {
    ($($variant:ident($error:ty)),* $(,)?) => {$(
        impl From<$error> for CommandError {
            fn from(error: $error) -> Self {
                CommandError::$variant(Box::new(error))
            }
        }
    )*};
}

boxed_from!(
    Pipeline(PipelineError),
    Ingest(IngestError),
    Transform(TransformError),
    Load(LoadError),
    Schema(SchemaError),
);

impl CommandError {
    /// The exit outcome of an error that ended a command: an interruption, or an account's own failure,
    /// keep their codes; anything else is a failure.
    pub fn outcome(&self) -> Outcome {
        match self {
            CommandError::Pipeline(error) => Outcome::of_pipeline_error(error),
            CommandError::Ingest(error) => Outcome::of_ingest_error(error),
            _ => Outcome::Failure,
        }
    }
}

/// How a command ended: an outcome, or the error that stopped it.
pub type CommandResult = Result<Outcome, CommandError>;

/// Prints the one-line summary of what went wrong (if anything) on stderr, and returns the outcome.
fn conclude(findings: &Findings) -> Outcome {
    if let Some(summary) = findings.summary() {
        eprintln!("{summary}");
    }
    findings.outcome()
}

/// What a range run found: per account from ingest's report, and the dead letters of the other stages.
fn run_findings(report: &RunReport) -> Findings {
    let mut findings = Findings::of_ingest(&report.ingest);
    for (stage, records) in &report.stage_dead_letters {
        findings.dead_lettered_by_stage(stage, *records);
    }
    findings
}

/// Writes to stdout; a reader that went away (`| head`) ends the output quietly instead of panicking.
fn write_out(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The commands that poll Coupang need accounts to poll.
fn require_accounts(config: &Config) -> Result<(), CommandError> {
    if config.accounts.is_empty() {
        return Err(CommandError::NoAccounts);
    }
    Ok(())
}
