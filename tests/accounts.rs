//! Account lifecycle end to end: a key re-linked mid-run, with the pipeline in follow mode.

mod common;

use common::*;
use coupang_etl::demo::compare;
use coupang_etl::pipeline::run_follow;
use coupang_ingest::{account_statuses, AccountSource};
use coupang_load::summary::{daily_payments, fact_counts};
use coupang_sim::truth::Truth;
use etl_core::account::AccountConfig;
use etl_core::secret::Secret;
use etl_core::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_relinked_mid_run_stops_then_resumes_its_account_without_duplicates() {
    // A recent world, so follow mode's look-back window (today − 9 days … today) covers it.
    let mut config = config("relink", recent_world(7, 0, 15));
    follow(&mut config, 9);
    let sim = with_simulator(&mut config).await;
    let truth = Truth::of(&sim.world());
    let expected_rows: u64 = truth.daily.values().map(|d| d.items).sum();
    let linked: Arc<Mutex<Vec<AccountConfig>>> = Arc::new(Mutex::new(config.accounts.clone()));
    let source: AccountSource = {
        let linked = linked.clone();
        Arc::new(move || linked.lock().unwrap().clone())
    };
    let shutdown = Shutdown::new();
    let pipeline = {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        tokio::spawn(async move { run_follow(&config, source, shutdown).await })
    };
    let exact =
        || async { daily_payments(&config.clickhouse).await.is_ok_and(|daily| compare(&daily, &truth).is_empty()) };
    let loaded = eventually(Duration::from_secs(90), exact).await;
    if !loaded && pipeline.is_finished() {
        panic!("the pipeline stopped: {:?}", pipeline.await);
    }
    assert!(loaded, "the first sweeps load everything");

    // Reissue in WING: the old key stops working at once. That account stops, loudly; the others go on.
    let relinked = config.accounts[1].clone();
    sim.relink(&relinked.vendor_id, "relinked-access", "relinked-secret");
    let stopped = || async {
        account_statuses(&config.kafka, Duration::from_secs(5)).await.is_ok_and(|s| {
            s.get(&relinked.alias).is_some_and(|s| s.error.as_deref().is_some_and(|e| e.contains("401")))
        })
    };
    assert!(eventually(Duration::from_secs(30), stopped).await, "the account reports its rejected key");
    let statuses = account_statuses(&config.kafka, Duration::from_secs(5)).await.unwrap();
    for other in [&config.accounts[0], &config.accounts[2]] {
        assert_eq!(statuses[&other.alias].error, None, "{} keeps flowing", other.alias);
    }
    let file = write_config_file(&config, "relink-accounts");
    let table = coupang_etl(&["--config", file.to_str().unwrap(), "accounts"]);
    assert!(table.contains(&relinked.alias) && table.contains("STOPPED") && table.contains("401"), "{table}");
    assert!(!table.contains("relinked-secret") && !table.contains(relinked.secret_key.expose()), "{table}");
    println!("{table}");

    // The user re-links the account with the new key: it resumes without a restart.
    let resumed_after = chrono::Utc::now();
    linked.lock().unwrap()[1] = AccountConfig {
        access_key: "relinked-access".into(),
        secret_key: Secret::new("relinked-secret"),
        ..relinked.clone()
    };
    let resumed = || async {
        account_statuses(&config.kafka, Duration::from_secs(5)).await.is_ok_and(|s| {
            s.get(&relinked.alias)
                .is_some_and(|s| s.error.is_none() && s.last_success_at.is_some_and(|t| t > resumed_after))
        })
    };
    assert!(eventually(Duration::from_secs(30), resumed).await, "the re-linked account calls Coupang again");

    // Every sweep re-emitted the same orders: still exact, still one row per key.
    assert!(eventually(Duration::from_secs(30), exact).await);
    assert_eq!(fact_counts(&config.clickhouse).await.unwrap().current_rows, expected_rows);
    shutdown.cancel();
    pipeline.await.unwrap().unwrap();
    sim.stop().await;
    std::fs::remove_file(file).unwrap();
    drop_database(&config.clickhouse).await;
}
