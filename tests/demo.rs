//! The README's main command: `coupang-etl demo` with its embedded Kafka, against the real ClickHouse.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_end_to_end_and_matches_the_ground_truth() {
    let (_, clickhouse_url) = services();
    let database = format!("t_{}", unique("demo"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_coupang-etl"))
        .args(["demo", "--database", &database])
        .env("COUPANG_ETL__CLICKHOUSE__URL", &clickhouse_url)
        .env("COUPANG_ETL__SIM__DAYS", "6")
        .env_remove("COUPANG_ETL__KAFKA__BROKERS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("✓ Every account and payment day matches the simulator's ground truth"), "{stdout}");
    assert!(stderr.contains("embedded in-process broker"), "{stderr}");
    assert!(!stdout.contains('✗'), "{stdout}");
    assert!(!stderr.contains("ERROR"), "a clean run logs no error:\n{stderr}");
    for secret in ["sim-secret-for-A00010001", "sim-secret-for-A00010002", "sim-secret-for-C00010003"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "a secret leaked");
    }
    println!("{}", stdout.lines().last().unwrap_or_default());
    let config = coupang_load::ClickHouseConfig { url: clickhouse_url, database, ..Default::default() };
    drop_database(&config).await;
}
