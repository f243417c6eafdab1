//! Starting a stage again with new clients when Kafka fails under it.

use rdkafka::error::KafkaError;
use std::fmt;
use std::time::Duration;

use crate::metrics::{metrics, StageLabel};
use crate::Shutdown;

/// Whether a Kafka error may pass when the stage starts again with new clients (a broker away, a
/// producer fenced or failed for good). A client the config cannot make will not get better.
pub fn worth_a_restart(error: &KafkaError) -> bool {
    !matches!(error, KafkaError::ClientCreation(_) | KafkaError::ClientConfig(..))
}

/// Runs a stage's consume–process–commit loop and, when Kafka fails under it (a broker restart can
/// leave an idempotent producer or a commit failed for good), starts it again with new clients after
/// a growing pause (1 s up to 30 s). The stage resumes from its committed offsets exactly as after a
/// crash, which the stages are built for. Other errors, and shutdown, end it.
///
/// `is_kafka_failure(error, restarted)` decides; `restarted` says the failed run was itself a restart.
/// Its setup may then meet a service still coming back (a broker, or ClickHouse restarted meanwhile),
/// which is worth another restart, while at the first start the same error is more likely a wrong
/// address, and is reported.
pub async fn restart_on_kafka_failure<E, F, Fut>(
    stage: &'static str,
    shutdown: &Shutdown,
    is_kafka_failure: impl Fn(&E, bool) -> bool,
    mut run_once: F,
) -> Result<(), E>
where
    E: fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let mut pause = Duration::from_secs(1);
    let mut restarted = false;
    loop {
        let started = std::time::Instant::now();
        match run_once().await {
            Err(error) if is_kafka_failure(&error, restarted) && !shutdown.is_cancelled() => {
                restarted = true;
                metrics().set_ready(stage, false);
                metrics().restarts.get_or_create(&StageLabel { stage }).inc();
                if started.elapsed() > Duration::from_secs(60) {
                    pause = Duration::from_secs(1);
                }
                tracing::error!(stage, %error, restart_in = ?pause,
                    "the stage failed on Kafka, or its restart found a service still away; starting it again from the committed offsets");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            other => return other,
        }
    }
}
