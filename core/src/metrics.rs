//! The pipeline's own metrics, in Prometheus' text format, and its health.
//!
//! One process-wide set of metric families ([`metrics()`]), recorded by the stages where the work
//! happens and served by [`serve`] at `/metrics`, with `/health/live` and `/health/ready` beside it.
//! Label values are account aliases, stage and topic names, API endpoints and HTTP statuses: a small,
//! bounded set (never order ids).

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, Mutex};

use crate::Shutdown;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageAccount {
    pub stage: &'static str,
    pub account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabel {
    pub account: String,
}

/// An account and a revenue-recognition month (`YYYY-MM`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountMonth {
    pub account: String,
    pub month: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageTopic {
    pub stage: &'static str,
    pub topic: String,
}

/// One API call's outcome: `status` is the HTTP status, or `transport` when no answer came (timeout,
/// reset, refused).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiCall {
    pub account: String,
    pub endpoint: &'static str,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountEndpoint {
    pub account: String,
    pub endpoint: &'static str,
}

type FloatCounter = Counter<f64, AtomicU64>;

/// Every metric family of a coupang-etl process.
pub struct Metrics {
    registry: Registry,
    /// Records a stage took in: API records (ingest), raw events (transform), facts (load).
    pub records_in: Family<StageAccount, Counter>,
    /// Records a stage delivered: raw events acknowledged (ingest), facts acknowledged (transform), rows
    /// acknowledged by ClickHouse (load).
    pub records_out: Family<StageAccount, Counter>,
    pub api_calls: Family<ApiCall, Counter>,
    /// Calls sent again after a temporary failure (429, 5xx, timeout, broken body).
    pub api_retries: Family<AccountEndpoint, Counter>,
    /// Calls that succeeded after at least one retry: failures that healed on their own.
    pub api_calls_recovered: Family<AccountEndpoint, Counter>,
    /// Seconds the account's vendor still waits in a cool-down after persistent 429s (0 when none).
    pub cool_down_seconds: Family<AccountLabel, Gauge>,
    /// Cool-down episodes begun (each logs one warning).
    pub cool_downs: Family<AccountLabel, Counter>,
    pub rate_limit_wait_seconds: Family<AccountLabel, FloatCounter>,
    pub consumer_lag: Family<StageTopic, Gauge>,
    pub batch_records: Family<StageLabel, Histogram>,
    /// Time from a batch in hand to its commit: the work, without the wait for records to arrive.
    pub batch_seconds: Family<StageLabel, Histogram>,
    /// Time spent waiting for records to arrive (idle or starved by the broker).
    pub fetch_wait_seconds: Family<StageLabel, FloatCounter>,
    pub insert_seconds: Histogram,
    /// Per loaded fact: load time minus the source time of its newest change.
    pub freshness_seconds: Histogram,
    /// Per account, the source time (unix seconds) of the newest change current in ClickHouse:
    /// `time() - …` is how stale the account's numbers can be.
    pub newest_change_loaded: Family<AccountLabel, Gauge>,
    pub key_days_left: Family<AccountLabel, Gauge>,
    /// Per account and recognition month, the won by which payouts and revenue-history differ with no
    /// reason (the `reconciliation` view's `unexplained`), and its status: 0 tied, 1 explained, 2
    /// unexplained.
    pub reconciliation_unexplained_won: Family<AccountMonth, Gauge>,
    pub reconciliation_status: Family<AccountMonth, Gauge>,
    pub dead_letters: Family<StageLabel, Counter>,
    pub restarts: Family<StageLabel, Counter>,
    /// 1 while the stage is connected and working, 0 while it starts or restarts after a failure.
    pub stage_ready: Family<StageLabel, Gauge>,
    /// Stages this process runs (readiness needs every one of them).
    stages: Mutex<Vec<&'static str>>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("coupang_etl");
        let metrics = Metrics {
            records_in: Family::default(),
            records_out: Family::default(),
            api_calls: Family::default(),
            api_retries: Family::default(),
            api_calls_recovered: Family::default(),
            cool_down_seconds: Family::default(),
            cool_downs: Family::default(),
            rate_limit_wait_seconds: Family::default(),
            consumer_lag: Family::default(),
            batch_records: Family::new_with_constructor(|| Histogram::new(exponential_buckets(1.0, 4.0, 9))),
            batch_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16))),
            fetch_wait_seconds: Family::default(),
            insert_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            freshness_seconds: Histogram::new(exponential_buckets(1.0, 2.0, 20)),
            newest_change_loaded: Family::default(),
            key_days_left: Family::default(),
            reconciliation_unexplained_won: Family::default(),
            reconciliation_status: Family::default(),
            dead_letters: Family::default(),
            restarts: Family::default(),
            stage_ready: Family::default(),
            stages: Mutex::new(Vec::new()),
            registry: Registry::default(),
        };
        registry.register("records_in", "Records a stage took in, by stage and account", metrics.records_in.clone());
        registry.register(
            "records_out",
            "Records a stage delivered downstream, by stage and account",
            metrics.records_out.clone(),
        );
        registry.register(
            "api_calls",
            "Coupang API calls by account, endpoint and HTTP status",
            metrics.api_calls.clone(),
        );
        registry.register(
            "api_retries",
            "Coupang API calls sent again after a temporary failure, by account and endpoint",
            metrics.api_retries.clone(),
        );
        registry.register(
            "api_calls_recovered",
            "Coupang API calls that succeeded after at least one retry, by account and endpoint",
            metrics.api_calls_recovered.clone(),
        );
        registry.register(
            "cool_down_seconds",
            "Seconds the account's vendor still waits out Coupang's 429 block (0 when not cooling down)",
            metrics.cool_down_seconds.clone(),
        );
        registry.register(
            "cool_downs",
            "Cool-downs begun after persistent 429s, by account",
            metrics.cool_downs.clone(),
        );
        registry.register(
            "rate_limit_wait_seconds",
            "Time spent waiting for the per-vendor API rate limit",
            metrics.rate_limit_wait_seconds.clone(),
        );
        registry.register(
            "consumer_lag",
            "Messages not yet committed, by stage and topic",
            metrics.consumer_lag.clone(),
        );
        registry.register("batch_records", "Records per processed batch", metrics.batch_records.clone());
        registry.register(
            "batch_seconds",
            "Time from a batch in hand to its commit (the stage's work, without waiting for records)",
            metrics.batch_seconds.clone(),
        );
        registry.register(
            "fetch_wait_seconds",
            "Time a stage waited for records to arrive (idle, or starved by the broker)",
            metrics.fetch_wait_seconds.clone(),
        );
        registry.register(
            "clickhouse_insert_seconds",
            "Latency of acknowledged INSERTs",
            metrics.insert_seconds.clone(),
        );
        registry.register(
            "freshness_seconds",
            "Per loaded fact, source time of its newest change to load (backfills show as old)",
            metrics.freshness_seconds.clone(),
        );
        registry.register(
            "newest_change_loaded_timestamp_seconds",
            "Source time of the newest change current in ClickHouse, by account",
            metrics.newest_change_loaded.clone(),
        );
        registry.register("key_days_left", "Days until the account's API key expires", metrics.key_days_left.clone());
        registry.register(
            "reconciliation_unexplained_won",
            "Won by which payouts and revenue-history differ with no reason, by account and recognition month",
            metrics.reconciliation_unexplained_won.clone(),
        );
        registry.register(
            "reconciliation_status",
            "Reconciliation by account and recognition month: 0 tied, 1 explained, 2 unexplained",
            metrics.reconciliation_status.clone(),
        );
        registry.register(
            "dead_letters",
            "Records sent to the dead-letter topic, by stage",
            metrics.dead_letters.clone(),
        );
        registry.register("stage_restarts", "Stage restarts after a Kafka failure", metrics.restarts.clone());
        registry.register("stage_ready", "1 while the stage is connected and working", metrics.stage_ready.clone());
        Metrics { registry, ..metrics }
    }

    /// Text exposition of every family.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Marks `stage` as run by this process (not ready until [`Metrics::set_ready`]).
    pub fn register_stage(&self, stage: &'static str) {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        if !stages.contains(&stage) {
            stages.push(stage);
        }
        self.stage_ready.get_or_create(&StageLabel { stage }).set(0);
    }

    pub fn set_ready(&self, stage: &'static str, ready: bool) {
        self.stage_ready.get_or_create(&StageLabel { stage }).set(i64::from(ready));
    }

    /// Each stage of this process (by name) and whether it is ready.
    pub fn readiness(&self) -> Vec<(&'static str, bool)> {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner()).clone();
        stages.sort_unstable();
        stages
            .into_iter()
            .map(|stage| (stage, self.stage_ready.get_or_create(&StageLabel { stage }).get() == 1))
            .collect()
    }

    pub fn record_in(&self, stage: &'static str, account: &str, count: u64) {
        self.records_in.get_or_create(&StageAccount { stage, account: account.to_string() }).inc_by(count);
    }

    pub fn record_out(&self, stage: &'static str, account: &str, count: u64) {
        self.records_out.get_or_create(&StageAccount { stage, account: account.to_string() }).inc_by(count);
    }

    /// A committed batch of `records`, `started` when it was in hand.
    /// Time spent in a wait for the next batch.
    pub fn fetch_wait(&self, stage: &'static str, started: std::time::Instant) {
        self.fetch_wait_seconds.get_or_create(&StageLabel { stage }).inc_by(started.elapsed().as_secs_f64());
    }

    pub fn batch(&self, stage: &'static str, records: usize, started: std::time::Instant) {
        self.batch_records.get_or_create(&StageLabel { stage }).observe(records as f64);
        self.batch_seconds.get_or_create(&StageLabel { stage }).observe(started.elapsed().as_secs_f64());
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Counts records per account alias, then adds them to a family in one go (one label lookup per
/// account and batch, not per record).
#[derive(Default)]
pub struct PerAccount(std::collections::BTreeMap<String, u64>);

impl PerAccount {
    pub fn add(&mut self, account: &str, count: u64) {
        match self.0.get_mut(account) {
            Some(total) => *total += count,
            None => {
                self.0.insert(account.to_string(), count);
            }
        }
    }

    pub fn record_in(&self, stage: &'static str) {
        self.0.iter().for_each(|(account, count)| metrics().record_in(stage, account, *count));
    }

    pub fn record_out(&self, stage: &'static str) {
        self.0.iter().for_each(|(account, count)| metrics().record_out(stage, account, *count));
    }
}

/// Serves `/metrics`, `/health/live` and `/health/ready` on `listener` until shutdown.
pub async fn serve(listener: tokio::net::TcpListener, shutdown: Shutdown) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", get(metrics_page))
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready_page))
        .route("/health", get(ready_page));
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

/// The metrics address could not be bound (in use, or not this host's).
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {address}: {source} (set observability.metrics_listen)")]
pub struct BindError {
    pub address: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds `address` for [`serve`], naming it in the error.
pub async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, BindError> {
    tokio::net::TcpListener::bind(address).await.map_err(|source| BindError { address, source })
}

async fn metrics_page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics().render())
}

async fn ready_page() -> impl IntoResponse {
    let stages = metrics().readiness();
    // Not ready before a stage has registered: the server starts before the stages do.
    let ready = !stages.is_empty() && stages.iter().all(|(_, ready)| *ready);
    let body: String = stages
        .iter()
        .map(|(stage, ready)| format!("{stage}: {}\n", if *ready { "ready" } else { "starting" }))
        .collect();
    let body = if stages.is_empty() { "starting\n".to_string() } else { body };
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_with_labels_and_the_prefix() {
        let m = Metrics::new();
        m.record_in("transform", "shop-a", 3);
        m.api_calls
            .get_or_create(&ApiCall { account: "shop-a".into(), endpoint: "ordersheets", status: "429".into() })
            .inc();
        m.insert_seconds.observe(0.02);
        let text = m.render();
        assert!(text.contains(r#"coupang_etl_records_in_total{stage="transform",account="shop-a"} 3"#), "{text}");
        assert!(text.contains(r#"coupang_etl_api_calls_total{account="shop-a",endpoint="ordersheets",status="429"} 1"#));
        assert!(text.contains("coupang_etl_clickhouse_insert_seconds_count 1"));
    }

    #[test]
    fn ready_only_when_every_registered_stage_is() {
        let m = Metrics::new();
        assert!(m.readiness().is_empty());
        m.register_stage("transform");
        m.register_stage("load");
        m.set_ready("transform", true);
        assert_eq!(m.readiness(), vec![("load", false), ("transform", true)]);
        m.set_ready("load", true);
        assert!(m.readiness().iter().all(|(_, r)| *r));
    }
}
