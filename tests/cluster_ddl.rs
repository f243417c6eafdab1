//! The cluster variant of the DDL (`deploy/clickhouse-cluster.sql`) is kept honest by what this machine
//! can check: every statement, with the cluster parts taken out, runs on the local ClickHouse, and the
//! local table it makes has exactly the columns of the table `coupang-etl migrate` creates. And the
//! migrations themselves hold when several loaders run them on one database at the same moment.

mod common;

use common::*;
use coupang_sim::SimConfig;

async fn query(url: &str, sql: &str) -> String {
    let response = reqwest::Client::new().post(url).body(sql.to_string()).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{sql}\n→ {text}");
    text
}

#[tokio::test]
async fn the_cluster_ddl_parses_and_matches_the_single_server_table() {
    let config = config("cluster_ddl", SimConfig::default());
    let url = &config.clickhouse.url;
    // The cluster tables in a database of their own, beside the single-server schema.
    let db = &format!("{}_cluster", config.clickhouse.database);
    // One server, no ZooKeeper: drop ON CLUSTER, make the replicated engine a plain one, and point the
    // Distributed table at this server's own test cluster.
    for statement in cluster_ddl_statements() {
        let local = local_form(&statement, db);
        if local.contains("Distributed(test_shard_localhost") {
            // This server has no cluster configured: the statement must parse; the missing cluster may
            // be the only complaint.
            let response = reqwest::Client::new().post(url.as_str()).body(local.clone()).send().await.unwrap();
            let text = response.text().await.unwrap();
            assert!(!text.contains("Syntax error"), "{local}\n→ {text}");
        } else {
            query(url, &local).await;
        }
    }
    coupang_load::migrate(&config.clickhouse).await.unwrap();
    let columns_of = |database: &str, table: &str| {
        format!(
            "SELECT name, type FROM system.columns WHERE database = '{database}' AND table = '{table}' ORDER BY name FORMAT TSV"
        )
    };
    let local = query(url, &columns_of(db, "payment_facts_local")).await;
    let single = query(url, &columns_of(&config.clickhouse.database, "payment_facts")).await;
    assert!(single.contains("payment_amount\tInt64"), "{single}");
    assert_eq!(local, single, "the cluster's local table has the single-server table's columns");
    finish(&config).await;
    query(url, &format!("DROP DATABASE IF EXISTS {db}")).await;
}

/// Two loader replicas starting together (a deployment with `replicas: 2`) migrate the same fresh
/// database at the same moment: each must succeed, whichever of them adds a column first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loaders_migrating_one_database_at_once_all_succeed() {
    let config = config("migrate_race", SimConfig::default());
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let clickhouse = config.clickhouse.clone();
        runs.spawn(async move { coupang_load::migrate(&clickhouse).await.map(|report| report.applied.len()) });
    }
    let mut applied = Vec::new();
    while let Some(run) = runs.join_next().await {
        match run.unwrap() {
            Ok(count) => applied.push(count),
            Err(error) => panic!("a concurrent migration failed: {error}"),
        }
    }
    let again = coupang_load::migrate(&config.clickhouse).await.unwrap();
    assert!(again.applied.is_empty(), "every migration is recorded: {:?}", again.applied);
    println!("4 loaders migrated one database at once: migrations applied per loader {applied:?}");
    drop_database(&config.clickhouse).await;
}
