//! Account lifecycle end to end, with the pipeline in follow mode: a key re-linked mid-run; a key that
//! expires and a secret that turns wrong mid-run.

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
    let mut pipeline = {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        tokio::spawn(async move { run_follow(&config, source, shutdown).await })
    };
    let exact =
        || async { daily_payments(&config.clickhouse).await.is_ok_and(|daily| compare(&daily, &truth).is_empty()) };
    eventually_or_explain(Duration::from_secs(120), "the first sweeps load everything", &mut pipeline, exact).await;

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
    finish(&config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_expiring_and_a_secret_turning_wrong_mid_run_stop_those_accounts_alone() {
    let mut config = config("expiry", recent_world(7, 0, 15));
    follow(&mut config, 9);
    config.ingest.requests_per_second = 3.0;
    let sim = with_simulator(&mut config).await;
    let truth = Truth::of(&sim.world());
    let (expiring, steady, wrong) =
        (config.accounts[0].clone(), config.accounts[1].clone(), config.accounts[2].clone());
    let shutdown = Shutdown::new();
    let mut pipeline = {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        let accounts = coupang_ingest::fixed_accounts(config.accounts.clone());
        tokio::spawn(async move { run_follow(&config, accounts, shutdown).await })
    };

    // Once the first rows are in ClickHouse, one key reaches its expiry and another account's secret
    // changes in WING (so the configured one is wrong).
    let some_loaded = || async { fact_counts(&config.clickhouse).await.is_ok_and(|c| c.current_rows > 0) };
    eventually_or_explain(Duration::from_secs(120), "the first rows arrive", &mut pipeline, some_loaded).await;
    sim.expire_key(&expiring.vendor_id);
    sim.relink(&wrong.vendor_id, &wrong.access_key, "a-secret-the-config-does-not-have");
    let stopped_at = chrono::Utc::now();
    let error_of = |alias: String| {
        let kafka = config.kafka.clone();
        async move {
            let statuses = account_statuses(&kafka, Duration::from_secs(5)).await.ok()?;
            statuses.get(&alias)?.error.clone()
        }
    };
    let both_stopped = || async {
        let expired = error_of(expiring.alias.clone()).await.is_some_and(|e| e.contains("expired"));
        let rejected = error_of(wrong.alias.clone()).await.is_some_and(|e| e.contains("401"));
        expired && rejected
    };
    eventually_or_explain(
        Duration::from_secs(90),
        "both accounts report why they stopped",
        &mut pipeline,
        both_stopped,
    )
    .await;
    let (expired_error, wrong_error) =
        (error_of(expiring.alias.clone()).await.unwrap(), error_of(wrong.alias.clone()).await.unwrap());
    assert!(expired_error.contains(&expiring.alias), "{expired_error}");
    assert!(wrong_error.contains(&wrong.alias) && wrong_error.contains("Invalid signature."), "{wrong_error}");

    // The third account goes on to the exact numbers, and keeps calling Coupang after the others stopped.
    let mut others = truth.clone();
    others.daily.retain(|(vendor, _), _| *vendor == steady.vendor_id);
    let steady_exact = || async {
        daily_payments(&config.clickhouse).await.is_ok_and(|daily| {
            let mine: Vec<_> = daily.into_iter().filter(|d| d.vendor_id == steady.vendor_id).collect();
            compare(&mine, &others).is_empty()
        })
    };
    eventually_or_explain(Duration::from_secs(120), &format!("{} exact", steady.alias), &mut pipeline, steady_exact)
        .await;
    let still_calling = || async {
        account_statuses(&config.kafka, Duration::from_secs(5)).await.is_ok_and(|s| {
            s.get(&steady.alias).is_some_and(|s| s.error.is_none() && s.last_success_at.is_some_and(|t| t > stopped_at))
        })
    };
    assert!(eventually(Duration::from_secs(30), still_calling).await, "{} keeps flowing", steady.alias);
    assert!(!pipeline.is_finished(), "two stopped accounts do not stop the pipeline");
    shutdown.cancel();
    pipeline.await.unwrap().unwrap();
    println!(
        "mid-run: {} stopped with: {expired_error}; {} stopped with: {wrong_error}; {} stayed exact over {} vendor-days",
        expiring.alias,
        wrong.alias,
        steady.alias,
        others.daily.len()
    );
    sim.stop().await;
    finish(&config).await;
}
