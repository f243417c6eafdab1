//! The three stages wired into one pipeline.
//!
//! [`run_range`] collects a fixed range of days and returns once every event it produced is durably in
//! ClickHouse: it waits until both consumer groups have committed up to the end of their topics. That
//! is how `coupang-etl run --from … --to …`, the demo and the end-to-end tests know they are done.

use chrono::NaiveDate;
use coupang_ingest::{AccountSource, IngestReport};
use coupang_load::MigrationReport;
use etl_core::kafka::{ensure_topics, KafkaSetupError};
use etl_core::metrics::StageLabel;
use etl_core::Shutdown;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("ingest: {0}")]
    Ingest(#[from] coupang_ingest::IngestError),
    #[error("transform: {0}")]
    Transform(#[from] coupang_transform::TransformError),
    #[error("load: {0}")]
    Load(#[from] coupang_load::LoadError),
    #[error("ClickHouse schema: {0}")]
    Schema(#[from] coupang_load::schema::SchemaError),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaSetupError),
    #[error("{0} stopped unexpectedly")]
    StageStopped(&'static str),
    #[error("simulator: {0}")]
    Simulator(#[source] std::io::Error),
    #[error("interrupted (Ctrl-C or SIGTERM) before the range was complete: run it again")]
    Interrupted,
    #[error("transform.transactions needs a real Kafka broker: set kafka.brokers, or turn it off for the demo")]
    TransactionsNeedABroker,
    #[error("starting the embedded Kafka: {0}")]
    EmbeddedKafka(#[source] rdkafka::error::KafkaError),
}

#[derive(Debug)]
pub struct RunReport {
    pub migration: MigrationReport,
    pub ingest: IngestReport,
    /// Records the transform and load stages sent to the dead-letter topic during the run, by stage
    /// (those ingest sent are in `ingest`, per account). Read from this process's metrics: exact for
    /// the CLI, which runs one pipeline per process.
    pub stage_dead_letters: BTreeMap<&'static str, u64>,
    pub elapsed: Duration,
}

/// The stages `run_range` runs after ingest, whose dead letters it reports.
const DOWNSTREAM_STAGES: [&str; 2] = ["transform", "load"];

/// Records `stage` has sent to the dead-letter topic since this process started.
pub fn dead_letters_sent(stage: &'static str) -> u64 {
    etl_core::metrics::metrics().dead_letters.get_or_create(&StageLabel { stage }).get()
}

type StageTask = JoinHandle<Result<(), PipelineError>>;

/// Starts transform and load in the background.
fn spawn_stages(config: &Config, stop: &Shutdown) -> (StageTask, StageTask) {
    let (transform_config, kafka, token) = (config.transform.clone(), config.kafka.clone(), stop.clone());
    let transform = tokio::spawn(async move {
        coupang_transform::run(&transform_config, &kafka, token).await.map_err(PipelineError::from)
    });
    let (load_config, clickhouse, kafka, token) =
        (config.load.clone(), config.clickhouse.clone(), config.kafka.clone(), stop.clone());
    let load = tokio::spawn(async move {
        coupang_load::run(&load_config, &clickhouse, &kafka, token).await.map_err(PipelineError::from)
    });
    (transform, load)
}

/// Why a stage that should still be running ended: its own error, or "stopped unexpectedly".
fn stage_ended(name: &'static str, ended: Result<Result<(), PipelineError>, tokio::task::JoinError>) -> PipelineError {
    match ended {
        Ok(Err(error)) => error,
        _ => PipelineError::StageStopped(name),
    }
}

async fn join_stage(task: StageTask, name: &'static str) -> Result<(), PipelineError> {
    task.await.map_err(|_| PipelineError::StageStopped(name))?
}

async fn prepare(config: &Config) -> Result<MigrationReport, PipelineError> {
    let migration = coupang_load::migrate(&config.clickhouse).await?;
    let topics = config.kafka.topics();
    ensure_topics(&config.kafka, &[&topics.raw()[..], &[&topics.payment_facts, &topics.dead_letter]].concat()).await?;
    etl_core::kafka::ensure_compacted_topics(&config.kafka, &[&topics.transform_state]).await?;
    Ok(migration)
}

/// Collects `from..=to` for every account, then waits until all of it is loaded.
pub async fn run_range(
    config: &Config,
    from: NaiveDate,
    to: NaiveDate,
    shutdown: &Shutdown,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let migration = prepare(config).await?;
    let dead_letters_before = DOWNSTREAM_STAGES.map(dead_letters_sent);
    let stages = shutdown.child_token();
    let (mut transform, mut load) = spawn_stages(config, &stages);

    let outcome = async {
        let ingest =
            coupang_ingest::collect_range(&config.ingest, &config.kafka, &config.accounts, from, to, shutdown).await?;
        tracing::info!("ingest done; waiting for transform and load to catch up");
        loop {
            // Shutdown first: it also ends the stages, which must not then count as stopping on their own.
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Err(PipelineError::Interrupted),
                ended = &mut transform => return Err(stage_ended("transform", ended)),
                ended = &mut load => return Err(stage_ended("load", ended)),
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            }
            if drained(config).await? {
                return Ok(ingest);
            }
        }
    }
    .await;

    stages.cancel();
    match outcome {
        Ok(ingest) => {
            join_stage(transform, "transform").await?;
            join_stage(load, "load").await?;
            let stage_dead_letters = DOWNSTREAM_STAGES
                .into_iter()
                .zip(dead_letters_before)
                .map(|(stage, before)| (stage, dead_letters_sent(stage).saturating_sub(before)))
                .collect();
            Ok(RunReport { migration, ingest, stage_dead_letters, elapsed: started.elapsed() })
        }
        Err(error) => {
            // The stages were told to stop: let them finish their batch and close their consumers
            // (which log the rebalance) before the error is reported, so the error is the last word.
            for stage in [&mut transform, &mut load] {
                if !stage.is_finished() && tokio::time::timeout(STAGE_STOP_TIMEOUT, &mut *stage).await.is_err() {
                    stage.abort();
                }
            }
            Err(error)
        }
    }
}

/// How long a failed or interrupted range run waits for its stages to stop before aborting them.
const STAGE_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether transform has committed every raw event and load every fact produced so far (checked in
/// that order, so facts made from the last raw events are counted).
pub async fn drained(config: &Config) -> Result<bool, PipelineError> {
    if coupang_transform::consumes(&config.transform, &config.kafka).lag(&config.kafka).await? > 0 {
        return Ok(false);
    }
    Ok(coupang_load::consumes(&config.load, &config.kafka).lag(&config.kafka).await? == 0)
}

/// Follow mode: all three stages run until shutdown; ingest takes the accounts from `accounts` at
/// every sweep.
pub async fn run_follow(config: &Config, accounts: AccountSource, shutdown: Shutdown) -> Result<(), PipelineError> {
    prepare(config).await?;
    let (transform, load) = spawn_stages(config, &shutdown);
    let ingest = {
        let (ingest, kafka, token) = (config.ingest.clone(), config.kafka.clone(), shutdown.clone());
        tokio::spawn(
            async move { coupang_ingest::run(&ingest, &kafka, accounts, token).await.map_err(PipelineError::from) },
        )
    };
    let mut stages = [("ingest", ingest), ("transform", transform), ("load", load)];
    // Every stage rides out what it can (API faults, broker and ClickHouse outages). One that ends
    // before shutdown could not, and the whole pipeline stops with its error rather than run half.
    let (ended, first, _) = futures::future::select_all(stages.iter_mut().map(|(_, task)| task)).await;
    let on_its_own = !shutdown.is_cancelled();
    shutdown.cancel();
    let name = stages[first].0;
    let mut outcome = match ended {
        Ok(Ok(())) if on_its_own => Err(PipelineError::StageStopped(name)),
        Ok(Ok(())) => Ok(()),
        other => Err(stage_ended(name, other)),
    };
    for (index, (name, task)) in stages.into_iter().enumerate() {
        if index != first {
            let ended = join_stage(task, name).await;
            outcome = outcome.and(ended);
        }
    }
    outcome
}
