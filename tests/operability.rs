//! Operating a running pipeline: `coupang-etl run` (follow mode, the real binary) serves `/metrics` and
//! `/health/*`, and `coupang-etl status` describes it: every account, its calls and checkpoints, what
//! ClickHouse holds, consumer lag and dead letters.

mod common;

use common::*;
use coupang_etl::demo::compare;
use coupang_load::summary::daily_payments;
use coupang_sim::truth::Truth;
use std::process::{Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    Some((response.status().as_u16(), response.text().await.ok()?))
}

/// The sum of a metric's samples whose label set contains every one of `labels`.
fn sample_sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn status(file: &std::path::Path) -> String {
    coupang_etl(&["--config", file.to_str().unwrap(), "status"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_pipeline_serves_metrics_and_health_and_status_describes_it() {
    let mut config = config("operability", recent_world(5, 0, 12));
    follow(&mut config, 7);
    let sim = with_simulator(&mut config).await;
    let truth = Truth::of(&sim.world());
    let file = write_config_file(&config, "operability");
    let port = free_port();
    let logs = ProcessLogs::new("operability");
    let mut pipeline = coupang_etl_command(&file)
        .arg("run")
        .env("COUPANG_ETL__OBSERVABILITY__METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .env("COUPANG_ETL__OBSERVABILITY__LOG_FORMAT", "json")
        .env("COUPANG_ETL__INGEST__POLL_INTERVAL_SECS", "1")
        .env("COUPANG_ETL__INGEST__LOOKBACK_DAYS", "7")
        .stdout(Stdio::null())
        .stderr(logs.stdio())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");

    // Live at once, ready once all three stages are connected.
    let ready = || async { get(&format!("{base}/health/ready")).await.is_some_and(|(code, _)| code == 200) };
    assert!(eventually(Duration::from_secs(60), ready).await, "ready; logs:\n{}", logs.tail(30));
    let (code, body) = get(&format!("{base}/health/ready")).await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(body, "ingest: ready\nload: ready\ntransform: ready\n");
    assert_eq!(get(&format!("{base}/health/live")).await.unwrap().0, 200);

    // Every vendor-day exact, then the figures agree with it.
    let exact = || async { daily_payments(&config.clickhouse).await.is_ok_and(|d| compare(&d, &truth).is_empty()) };
    assert!(eventually(Duration::from_secs(120), exact).await, "exact; logs:\n{}", logs.tail(30));
    let expected_items: u64 = truth.daily.values().map(|d| d.items).sum();
    let metrics = get(&format!("{base}/metrics")).await.unwrap().1;
    for account in &config.accounts {
        let alias = format!("account=\"{}\"", account.alias);
        let calls = sample_sum(&metrics, "coupang_etl_api_calls_total", &[&alias, "status=\"200\""]);
        assert!(calls >= 1.0, "API calls of {}: {metrics}", account.alias);
        assert!(sample_sum(&metrics, "coupang_etl_key_days_left", &[&alias]) > 0.0);
        for stage in ["ingest", "transform", "load"] {
            let out = sample_sum(&metrics, "coupang_etl_records_out_total", &[&alias, &format!("stage=\"{stage}\"")]);
            assert!(out >= 1.0, "{stage} delivered records of {}", account.alias);
        }
    }
    // The loader has put at least one version of every fact key in ClickHouse.
    let loaded = sample_sum(&metrics, "coupang_etl_records_out_total", &["stage=\"load\""]);
    assert!(loaded >= expected_items as f64, "{loaded} rows loaded for {expected_items} keys");
    assert!(sample_sum(&metrics, "coupang_etl_clickhouse_insert_seconds_count", &[]) >= 1.0);
    assert!(sample_sum(&metrics, "coupang_etl_freshness_seconds_count", &[]) >= expected_items as f64);
    assert_eq!(sample_sum(&metrics, "coupang_etl_stage_ready", &[]), 3.0);

    // The analysts' example queries run as written, against what the pipeline loaded.
    let examples = analyst_examples();
    assert!(examples.len() >= 6, "examples in docs/analysts.md");
    for sql in &examples {
        let rows = sql_tsv(&config.clickhouse, sql).await.unwrap_or_else(|e| panic!("{sql}\n→ {e}"));
        assert!(!rows.trim().is_empty(), "no rows from:\n{sql}");
    }
    println!("docs/analysts.md: {} example queries ran and returned rows", examples.len());

    // The status screen of the running pipeline, once both stages have committed everything.
    let drained = || async { status(&file).contains("consumer lag    transform 0 · load 0") };
    assert!(eventually(Duration::from_secs(60), drained).await, "lag 0:\n{}", status(&file));
    let screen = status(&file);
    for account in &config.accounts {
        assert!(screen.contains(&format!("{} (vendor {}): ok", account.alias, account.vendor_id)), "{screen}");
    }
    for expected in [
        "days left",
        "last success    ordersheets",
        "returnRequests",
        "checkpoints     ordersheets through",
        "stored rows",
        "dead letters    none",
    ] {
        assert!(screen.contains(expected), "{expected:?} in:\n{screen}");
    }
    assert!(!screen.contains("could not be read"), "{screen}");
    println!("status of the running pipeline:\n{screen}");

    // SIGTERM: the pipeline finishes its batch and exits cleanly.
    let _ = Command::new("kill").arg(pipeline.id().to_string()).status();
    let exited = tokio::task::spawn_blocking(move || pipeline.wait().unwrap()).await.unwrap();
    assert!(exited.success(), "clean exit after SIGTERM; logs:\n{}", logs.tail(20));
    // JSON logs, one object per line.
    let first = std::fs::read_to_string(&logs.path).unwrap().lines().next().unwrap_or_default().to_string();
    assert!(serde_json::from_str::<serde_json::Value>(&first).is_ok(), "a JSON log line: {first}");
    logs.assert_no_secret(&config);

    // Status with the pipeline stopped still reads everything; with ClickHouse unreachable it says so.
    let stopped = status(&file);
    assert!(stopped.contains("consumer lag    transform 0 · load 0"), "{stopped}");
    let output = coupang_etl_command(&file)
        .arg("status")
        .env("COUPANG_ETL__CLICKHOUSE__URL", format!("http://127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    let partial = String::from_utf8_lossy(&output.stdout);
    assert!(partial.contains("ClickHouse could not be read"), "{partial}");
    assert!(partial.contains("last success    ordersheets"), "Kafka's part still shows:\n{partial}");
    sim.stop().await;
    finish(&config).await;
}
