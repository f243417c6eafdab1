//! The real client against the simulator: only the base URL differs from production.

use chrono::NaiveDate;
use coupang_ingest::{ClientError, CoupangClient, IngestConfig};
use coupang_sim::{SimConfig, Simulator};
use etl_core::account::AccountConfig;
use etl_core::secret::Secret;
use futures::StreamExt;

fn account(secret: &str) -> AccountConfig {
    AccountConfig {
        alias: "brand-a".into(),
        vendor_id: "A00010001".into(),
        access_key: "sim-access-a".into(),
        secret_key: Secret::new(secret),
        key_issued_on: etl_core::time::now_kst().date_naive() - chrono::Duration::days(10),
    }
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

#[tokio::test]
async fn every_box_of_every_page_arrives_once() {
    let sim = Simulator::start(
        &SimConfig {
            days: 6,
            orders_per_day: 50,
            ..SimConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let config = IngestConfig {
        base_url: sim.base_url(),
        requests_per_second: 10.0,
        ..IngestConfig::default()
    };
    let client = CoupangClient::new(&config, account("sim-secret-for-A00010001")).unwrap();
    let mut expected: Vec<i64> = sim.world().vendors["A00010001"]
        .boxes
        .iter()
        .map(|b| b.shipment_box_id)
        .collect();
    expected.sort();
    let mut seen = Vec::new();
    for status in [
        "ACCEPT",
        "INSTRUCT",
        "DEPARTURE",
        "DELIVERING",
        "FINAL_DELIVERY",
        "NONE_TRACKING",
    ] {
        let mut stream =
            std::pin::pin!(client.order_sheets(day("2026-09-30"), day("2026-10-06"), status));
        while let Some(sheet) = stream.next().await {
            let sheet = sheet.unwrap();
            assert_eq!(sheet.status, status);
            seen.push(sheet.shipment_box_id);
        }
    }
    seen.sort();
    assert_eq!(seen, expected, "every box once, across statuses and pages");
    let pages: u64 = sim
        .stats()
        .iter()
        .filter(|((v, _, s), _)| v == "A00010001" && *s == 200)
        .map(|(_, n)| n)
        .sum();
    assert!(pages > 6, "several pages were needed: {pages}");
}

#[tokio::test]
async fn a_wrong_secret_is_a_clear_401_naming_the_alias_never_the_secret() {
    let sim = Simulator::start(
        &SimConfig {
            days: 2,
            ..SimConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let config = IngestConfig {
        base_url: sim.base_url(),
        ..IngestConfig::default()
    };
    let client = CoupangClient::new(&config, account("wrong-secret-value")).unwrap();
    let error = client
        .order_sheets_page(day("2026-10-01"), day("2026-10-02"), "ACCEPT", "")
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, ClientError::KeyRejected { status: 401, .. }),
        "{error}"
    );
    assert!(error.stops_account());
    let text = format!("{error} {error:?}");
    assert!(
        text.contains("brand-a") && text.contains("Invalid signature."),
        "{text}"
    );
    assert!(!text.contains("wrong-secret-value"), "{text}");
    // Configuration errors are not retried: exactly one request reached the gateway.
    let attempts: u64 = sim.stats().values().sum();
    assert_eq!(attempts, 1);
}
