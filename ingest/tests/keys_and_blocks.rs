//! Keys that are not active yet, keys that start working later, and Coupang's 429 blocks, against the
//! simulator. Each test uses its own vendor ids: rate limiters are shared per vendor within a process.

mod common;

use common::vendor;
use coupang_ingest::client::model::OrderStatus;
use coupang_ingest::{ClientError, CoupangClient, IngestConfig};
use coupang_sim::config::{LifecycleConfig, SimVendor};
use coupang_sim::{SimConfig, Simulator};
use etl_core::account::AccountConfig;
use etl_core::metrics::{metrics, AccountEndpoint, AccountLabel};
use etl_core::secret::Secret;
use std::time::{Duration, Instant};

fn account(alias: &str, vendor_id: &str, issued_days_ago: i64) -> AccountConfig {
    AccountConfig {
        alias: alias.into(),
        vendor_id: vendor_id.into(),
        access_key: format!("access-{vendor_id}"),
        secret_key: Secret::new(format!("secret-{vendor_id}")),
        key_issued_on: etl_core::time::now_kst().date_naive() - chrono::Duration::days(issued_days_ago),
    }
}

async fn start(vendors: Vec<SimVendor>) -> Simulator {
    let config =
        SimConfig { days: 3, orders_per_day: 5, vendors, lifecycle: LifecycleConfig::plain(), ..SimConfig::default() };
    Simulator::start(&config, ([127, 0, 0, 1], 0).into()).await.unwrap()
}

fn client(sim: &Simulator, account: AccountConfig, config: IngestConfig) -> CoupangClient {
    CoupangClient::new(&IngestConfig { base_url: sim.base_url(), ..config }, account).unwrap()
}

fn a_day() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()
}

fn calls(sim: &Simulator, vendor_id: &str, status: u16) -> u64 {
    sim.stats().iter().filter(|((v, _, s), _)| v == vendor_id && *s == status).map(|(_, n)| n).sum()
}

#[tokio::test]
async fn a_401_for_a_key_issued_yesterday_waits_for_activation_and_an_old_one_stops() {
    let sim = start(vec![vendor("A00060001")]).await;
    sim.relink_inactive("A00060001", "access-A00060001", "secret-A00060001");
    // A key's age is counted in Korean days: should midnight pass between issuing "yesterday" and the
    // call, the key would be two days old. Then the check runs again, within one day.
    let (new_key, error) = loop {
        let today = etl_core::time::now_kst().date_naive();
        let new_key = client(&sim, account("fresh", "A00060001", 1), IngestConfig::default());
        let error = new_key.order_sheets_page(a_day(), a_day(), &OrderStatus::Accept, "").await.err().unwrap();
        if etl_core::time::now_kst().date_naive() == today {
            break (new_key, error);
        }
    };
    assert!(matches!(error, ClientError::KeyNotActiveYet { .. }), "{error}");
    assert!(!error.stops_account(), "a key Coupang may still be activating does not stop the account");
    assert!(error.to_string().contains("up to 24 hours") && error.to_string().contains("fresh"), "{error}");

    // Two days later the same answer means the key is wrong: the account stops.
    let old_key = client(&sim, account("old", "A00060001", 2), IngestConfig::default());
    let error = old_key.order_sheets_page(a_day(), a_day(), &OrderStatus::Accept, "").await.err().unwrap();
    assert!(matches!(error, ClientError::KeyRejected { status: 401, .. }) && error.stops_account(), "{error}");

    // Once Coupang activates the key, the same client works.
    sim.activate_keys("A00060001");
    assert!(new_key.order_sheets_page(a_day(), a_day(), &OrderStatus::Accept, "").await.is_ok());
    sim.stop().await;
}

#[tokio::test]
async fn a_persistent_429_cools_the_vendor_down_without_hammering_and_the_call_then_succeeds() {
    let sim = start(vec![vendor("A00060002")]).await;
    let config = IngestConfig { cool_down_secs: 1, max_attempts: 3, ..IngestConfig::default() };
    let blocked = client(&sim, account("blocked", "A00060002", 30), config);
    let labels = AccountLabel { account: "blocked".into() };
    let cool_downs_before = metrics().cool_downs.get_or_create(&labels).get();
    let recovered = AccountEndpoint { account: "blocked".into(), endpoint: "ordersheets" };
    let recovered_before = metrics().api_calls_recovered.get_or_create(&recovered).get();

    let block = Duration::from_secs(9);
    sim.block_vendor("A00060002", block);
    let started = Instant::now();
    let page = blocked.order_sheets_page(a_day(), a_day(), &OrderStatus::Accept, "").await;
    assert!(page.is_ok(), "the call outlasted the block instead of giving up: {:?}", page.err());
    assert!(started.elapsed() >= block, "it waited the block out ({:?})", started.elapsed());

    // 3 throttled calls, then one probe per pause (1 s, 2 s, 4 s, 8 s …): a handful, not hundreds.
    let throttled = calls(&sim, "A00060002", 429);
    println!(
        "a {block:?} block waited out in {:.1} s with {throttled} calls answered 429",
        started.elapsed().as_secs_f64()
    );
    assert!((3..=8).contains(&throttled), "{throttled} calls answered 429 during a 9 s block");
    assert_eq!(metrics().cool_downs.get_or_create(&labels).get() - cool_downs_before, 1, "one cool-down, one warning");
    assert_eq!(metrics().api_calls_recovered.get_or_create(&recovered).get() - recovered_before, 1);
    assert_eq!(metrics().cool_down_seconds.get_or_create(&labels).get(), 0, "over once a call went through");
    assert_eq!(blocked.limiter().cooling_down_for(), None);
    sim.stop().await;
}

#[tokio::test]
async fn a_short_429_burst_is_only_paced_never_a_cool_down() {
    let sim = start(vec![vendor("A00060003")]).await;
    let paced = client(&sim, account("paced", "A00060003", 30), IngestConfig::default());
    let labels = AccountLabel { account: "paced".into() };
    sim.block_vendor("A00060003", Duration::from_millis(1_500));
    assert!(paced.order_sheets_page(a_day(), a_day(), &OrderStatus::Accept, "").await.is_ok());
    assert_eq!(metrics().cool_downs.get_or_create(&labels).get(), 0);
    assert!(calls(&sim, "A00060003", 429) >= 1);
    sim.stop().await;
}
