//! The README's main command: `coupang-etl demo` with its embedded Kafka, against the real ClickHouse.

mod common;

use common::*;

/// `coupang-etl demo ARGS` with the config's database set to `database` (through the environment, as
/// a config file would), against the suite's ClickHouse and an embedded Kafka.
fn demo(clickhouse_url: &str, database: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(COUPANG_ETL)
        .arg("demo")
        .args(args)
        .env("COUPANG_ETL__CLICKHOUSE__URL", clickhouse_url)
        .env("COUPANG_ETL__CLICKHOUSE__DATABASE", database)
        .env("COUPANG_ETL__SIM__DAYS", "6")
        .env_remove("COUPANG_ETL__KAFKA__BROKERS")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_end_to_end_and_matches_the_ground_truth() {
    let (_, clickhouse_url) = services();
    // No --database: the demo writes to the config's database.
    let database = format!("t_{}", unique("demo"));
    let output = demo(&clickhouse_url, &database, &[]);
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
    assert!(stdout.contains(&format!("at `{database}`")), "the config's database: {stdout}");
    // The counts are distinct shipment boxes: every box of the simulated world, once.
    let world = coupang_sim::world::World::generate(&coupang_sim::SimConfig { days: 6, ..Default::default() });
    for (vendor_id, vendor) in &world.vendors {
        let line = stdout.lines().find(|l| l.contains(vendor_id.as_str()) && l.contains("shipment boxes"));
        let shown: Option<usize> =
            line.and_then(|l| l.split("shipment boxes").next()).and_then(|l| l.split_whitespace().last()?.parse().ok());
        assert_eq!(shown, Some(vendor.boxes.len()), "{vendor_id}: {line:?}");
    }
    println!("{}", stdout.lines().last().unwrap_or_default());
    let config = coupang_load::ClickHouseConfig { url: clickhouse_url, database, ..Default::default() };
    drop_database(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_never_empties_a_database_it_did_not_create() {
    let (_, clickhouse_url) = services();
    let foreign = format!("t_{}", unique("not_the_demos"));
    let sql = |query: String| {
        let url = clickhouse_url.clone();
        async move { reqwest::Client::new().post(url).body(query).send().await.unwrap().error_for_status().unwrap() }
    };
    sql(format!("CREATE DATABASE {foreign}")).await;
    sql(format!("CREATE TABLE {foreign}.precious (n UInt8) ENGINE = TinyLog")).await;
    let output = demo(&clickhouse_url, "coupang", &["--database", &foreign]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("database `{foreign}` exists and was not created by coupang_etl_demo")),
        "{stderr}"
    );
    let tables = sql(format!("EXISTS TABLE {foreign}.precious")).await.text().await.unwrap();
    assert_eq!(tables.trim(), "1", "the database and its table are left alone");
    let config =
        coupang_load::ClickHouseConfig { url: clickhouse_url.clone(), database: foreign, ..Default::default() };
    drop_database(&config).await;
}
