//! The simulated gateway behaves like Coupang's: signature check, limits, paging, error bodies.

mod common;

use chrono::Utc;
use common::*;
use coupang_sim::{SimConfig, Simulator};
use serde_json::Value;

async fn simulator() -> Simulator {
    let config = SimConfig { days: 5, orders_per_day: 60, ..SimConfig::default() };
    Simulator::start(&config, ([127, 0, 0, 1], 0).into()).await.unwrap()
}

const DAY_QUERY: &str =
    "createdAtFrom=2026-09-30%2B09:00&createdAtTo=2026-10-05%2B09:00&maxPerPage=50&status=FINAL_DELIVERY";

#[tokio::test]
async fn a_correct_signature_is_accepted_with_either_separator() {
    let sim = simulator().await;
    let base = Utc::now();
    let (status, body) = Call { signed_at: base, ..Call::new(DAY_QUERY) }.send(&sim).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], 200);
    assert!(!body["data"].as_array().unwrap().is_empty());
    // A second, distinct signature (signed a second apart from the first), with "," separators.
    let tight = Call { separator: ",", signed_at: base - chrono::Duration::seconds(1), ..Call::new(DAY_QUERY) };
    assert_eq!(tight.send(&sim).await.0, 200);
}

#[tokio::test]
async fn bad_stale_reused_or_malformed_signatures_get_401_with_coupang_bodies() {
    let sim = simulator().await;
    let wrong_secret = Call { secret: "not-the-secret", ..Call::new(DAY_QUERY) };
    let (status, body) = wrong_secret.send(&sim).await;
    assert_eq!(
        (status, body["code"].as_str(), body["message"].as_str()),
        (401, Some("ERROR"), Some("Invalid signature."))
    );
    assert!(body["transactionId"].is_string());

    let stale = Call { signed_at: Utc::now() - chrono::Duration::minutes(10), ..Call::new(DAY_QUERY) };
    assert_eq!(stale.send(&sim).await.1["message"], "Specified signature is expired.");

    // The query signed must be the query sent: signing `+` but sending `%2B` fails.
    let call = Call::new(DAY_QUERY);
    let mis_signed = Call {
        query: "createdAtFrom=2026-09-30+09:00&createdAtTo=2026-10-05+09:00&maxPerPage=50&status=FINAL_DELIVERY",
        ..Call::new(DAY_QUERY)
    };
    assert_eq!(call.send_with(&sim, &mis_signed.header()).await.0, 401);

    let once = Call { signed_at: Utc::now() - chrono::Duration::seconds(3), ..Call::new(DAY_QUERY) };
    let header = once.header();
    assert_eq!(once.send_with(&sim, &header).await.0, 200);
    assert_eq!(once.send_with(&sim, &header).await.0, 401, "a signature works once");

    let (status, body) = call.send_with(&sim, "CEA algorithm=HmacSHA256, access-key=x").await;
    assert_eq!((status, body["message"].as_str()), (401, Some("HMAC format is invalid.")));
    let stats = sim.stats();
    assert!(stats.get(&("-".into(), "ordersheets".into(), 401)).copied().unwrap_or(0) >= 4, "{stats:?}");
}

#[tokio::test]
async fn documented_limits_answer_400() {
    let sim = simulator().await;
    let cases = [
        (
            "createdAtFrom=2026-09-01%2B09:00&createdAtTo=2026-10-02%2B09:00&maxPerPage=50&status=ACCEPT",
            "range should less than31",
        ),
        ("createdAtFrom=2026-10-01%2B09:00&createdAtTo=2026-10-02%2B09:00&maxPerPage=51&status=ACCEPT", "maxPerPage"),
        ("createdAtFrom=2026-10-01%2B09:00&createdAtTo=2026-10-02%2B09:00&maxPerPage=50", "status is required"),
        ("createdAtTo=2026-10-02%2B09:00&status=ACCEPT", "createdAtFrom"),
        (
            "createdAtFrom=2026-10-01T00:00%2B09:00&createdAtTo=2026-10-02T00:01%2B09:00&searchType=timeFrame&status=ACCEPT",
            "less than 24 hours",
        ),
    ];
    for (i, (query, message)) in cases.iter().enumerate() {
        let call = Call { signed_at: Utc::now() - chrono::Duration::seconds(i as i64), ..Call::new(query) };
        let (status, body) = call.send(&sim).await;
        assert_eq!((status, body["code"].as_u64()), (400, Some(400)), "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(message), "{query}: {body}");
    }
    // A 31-day window (both ends included) is legal.
    let legal = "createdAtFrom=2026-09-01%2B09:00&createdAtTo=2026-10-01%2B09:00&maxPerPage=50&status=ACCEPT";
    assert_eq!(Call::new(legal).send(&sim).await.0, 200);
}

#[tokio::test]
async fn another_vendors_path_is_404() {
    let sim = simulator().await;
    let call = Call { path: path("A00010002"), ..Call::new(DAY_QUERY) };
    assert_eq!(call.send(&sim).await.0, 404);
}

#[tokio::test]
async fn paging_returns_every_box_once_in_order() {
    let sim = simulator().await;
    let expected: Vec<i64> = sim.world().vendors[VENDOR]
        .boxes
        .iter()
        .filter(|b| b.status.as_str() == "FINAL_DELIVERY")
        .map(|b| b.shipment_box_id)
        .collect();
    assert!(expected.len() > 100, "the scenario needs several pages: {}", expected.len());
    let mut seen = Vec::new();
    let mut token = String::new();
    for page in 0.. {
        let query = if token.is_empty() { DAY_QUERY.to_string() } else { format!("{DAY_QUERY}&nextToken={token}") };
        let call = Call { signed_at: Utc::now() - chrono::Duration::seconds(page), ..Call::new(&query) };
        let (status, body) = call.send(&sim).await;
        assert_eq!(status, 200, "{body}");
        let data = body["data"].as_array().unwrap();
        assert!(data.len() <= 50);
        seen.extend(data.iter().map(|b| b["shipmentBoxId"].as_i64().unwrap()));
        token = body["nextToken"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, expected);
    // v5 formats: money objects and +09:00 times; personal data present as on the real API.
    let (_, body) =
        Call { signed_at: Utc::now() - chrono::Duration::seconds(30), ..Call::new(DAY_QUERY) }.send(&sim).await;
    let first = &body["data"][0];
    assert_eq!(first["shippingPrice"]["currencyCode"], "KRW");
    assert!(first["paidAt"].as_str().unwrap().ends_with("+09:00"));
    assert!(first["receiver"]["addr1"].is_string());
}

#[tokio::test]
async fn slow_calls_get_the_gateways_504_at_3_s_unless_they_ask_for_more_time() {
    let faults = coupang_sim::config::FaultConfig { slow_rate: 1.0, slow_ms: 3_200, ..Default::default() };
    let sim = Simulator::start(&SimConfig { days: 2, faults, ..SimConfig::default() }, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let call = Call::new(DAY_QUERY);
    let started = std::time::Instant::now();
    let (status, body) = call.send(&sim).await;
    assert_eq!((status, body["message"].as_str()), (504, Some("Gateway Timeout")));
    assert!(started.elapsed() >= std::time::Duration::from_secs(3));

    // Signed from the first call's own time, so the two signatures can never share a second.
    let patient = Call { signed_at: call.signed_at - chrono::Duration::seconds(4), ..Call::new(DAY_QUERY) };
    let url = format!("{}{}?{}", sim.base_url(), patient.path, patient.query);
    let response = reqwest::Client::new()
        .get(url)
        .header("Authorization", patient.header())
        .header("X-EXTENDED-TIMEOUT", "90000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn server_errors_and_cut_short_bodies_on_demand() {
    let faults = coupang_sim::config::FaultConfig { server_error_rate: 1.0, ..Default::default() };
    let sim = Simulator::start(&SimConfig { days: 2, faults, ..SimConfig::default() }, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (status, body) = Call::new(DAY_QUERY).send(&sim).await;
    assert_eq!((status, body["code"].as_u64()), (500, Some(500)));

    let faults = coupang_sim::config::FaultConfig { malformed_json_rate: 1.0, ..Default::default() };
    let sim = Simulator::start(&SimConfig { days: 2, faults, ..SimConfig::default() }, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (status, body) = Call::new(DAY_QUERY).send(&sim).await;
    assert_eq!((status, body), (200, Value::Null), "a 200 whose body is not JSON");
}

#[tokio::test]
async fn return_requests_and_revenue_history_limits_answer_400() {
    let sim = simulator().await;
    let returns = "/v2/providers/openapi/apis/api/v6/vendors/A00010001/returnRequests";
    let revenue = "/v2/providers/openapi/apis/api/v1/revenue-history";
    // Tomorrow is refused as today is, so a run across midnight (Korea time) asks for a day not past.
    let tomorrow = etl_core::time::now_kst().date_naive() + chrono::Duration::days(1);
    let cases: Vec<(&str, String, &str)> = vec![
        (returns, "createdAtFrom=2026-09-01&createdAtTo=2026-10-05&status=UC".into(), "range should less than31"),
        (returns, "createdAtFrom=2026-10-01&createdAtTo=2026-10-05&cancelType=RETURN".into(), "status must be"),
        (returns, "createdAtFrom=2026-10-01&createdAtTo=2026-10-05&cancelType=CANCEL&status=UC".into(), "not allowed"),
        (returns, "createdAtFrom=2026-10-01&createdAtTo=2026-10-05&status=UC&maxPerPage=51".into(), "maxPerPage"),
        (
            revenue,
            "vendorId=A00010001&recognitionDateFrom=2026-10-01&recognitionDateTo=2026-10-05".into(),
            "token is required",
        ),
        (
            revenue,
            format!(
                "vendorId=A00010001&recognitionDateFrom={}&recognitionDateTo={tomorrow}&token=",
                tomorrow - chrono::Duration::days(4)
            ),
            "before today",
        ),
        (
            revenue,
            "vendorId=A00010001&recognitionDateFrom=2026-08-01&recognitionDateTo=2026-10-05&token=".into(),
            "range should less than31",
        ),
    ];
    for (i, (path, query, message)) in cases.iter().enumerate() {
        let call = Call {
            path: path.to_string(),
            query,
            signed_at: Utc::now() - chrono::Duration::seconds(i as i64),
            ..Call::new("")
        };
        let (status, body) = call.send(&sim).await;
        assert_eq!((status, body["code"].as_u64()), (400, Some(400)), "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(message), "{query}: {body}");
    }
    // Another vendor's revenue is not this key's to read.
    let foreign = Call {
        path: revenue.into(),
        query: "vendorId=A00010002&recognitionDateFrom=2026-10-01&recognitionDateTo=2026-10-05&token=",
        ..Call::new("")
    };
    assert_eq!(foreign.send(&sim).await.0, 404);
}
