//! The lifecycle paths a real shop produces, as the endpoints serve them: open receipts in every list,
//! seller cancels, withdrawals, exchanges, partial refunds, adjustment rows, and the body quirks.

mod common;

use common::*;
use coupang_sim::{SimConfig, Simulator};
use serde_json::Value;
use std::collections::HashMap;

const V4: &str = "/v2/providers/openapi/apis/api/v4/vendors/A00010001";
const V6: &str = "/v2/providers/openapi/apis/api/v6/vendors/A00010001";
const REVENUE: &str = "/v2/providers/openapi/apis/api/v1/revenue-history";

/// Two months of a busy shop, seen 40 days after its last payment day (so everything has settled but
/// the requests still open for weeks).
async fn simulator() -> Simulator {
    let config = SimConfig {
        days: 30,
        orders_per_day: 80,
        start_date: chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
        rate_limit_per_second: 0,
        ..SimConfig::default()
    };
    Simulator::start(&config, ([127, 0, 0, 1], 0).into()).await.unwrap()
}

/// Every record of a list, following `nextToken` (the query's own `nextToken=` is appended to).
async fn every_page(sim: &Simulator, path: String, query: &str, token_key: &str) -> Vec<Value> {
    let mut records = Vec::new();
    let mut token = String::new();
    loop {
        let query = format!("{query}&{token_key}={token}");
        let (status, body) = Call::to(path.clone(), &query).send(sim).await;
        assert_eq!(status, 200, "{query}: {body}");
        records.extend(body["data"].as_array().unwrap().iter().cloned());
        token = body["nextToken"].as_str().unwrap_or_default().to_string();
        if token.is_empty() {
            return records;
        }
    }
}

#[tokio::test]
async fn open_receipts_show_in_their_status_lists_and_seller_cancels_say_so() {
    let sim = simulator().await;
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for code in ["RU", "UC", "PR", "CC"] {
        let query = format!("createdAtFrom=2026-06-01&createdAtTo=2026-07-01&status={code}&maxPerPage=50");
        for receipt in every_page(&sim, format!("{V6}/returnRequests"), &query, "nextToken").await {
            let status = receipt["receiptStatus"].as_str().unwrap().to_string();
            let expected: &[&str] = match code {
                "RU" => &["RELEASE_STOP_UNCHECKED"],
                "UC" => &["RETURNS_UNCHECKED", "VENDOR_WAREHOUSE_CONFIRM"],
                "PR" => &["REQUEST_COUPANG_CHECK"],
                _ => &["RETURNS_COMPLETED"],
            };
            assert!(expected.contains(&status.as_str()), "{code}: {receipt}");
            *statuses.entry(status).or_default() += 1;
        }
    }
    for status in ["RELEASE_STOP_UNCHECKED", "RETURNS_UNCHECKED", "REQUEST_COUPANG_CHECK", "RETURNS_COMPLETED"] {
        assert!(statuses.get(status).is_some_and(|n| *n > 0), "{status}: {statuses:?}");
    }
    let cancels = every_page(
        &sim,
        format!("{V6}/returnRequests"),
        "createdAtFrom=2026-06-01&createdAtTo=2026-07-01&cancelType=CANCEL&maxPerPage=50",
        "nextToken",
    )
    .await;
    assert!(cancels.iter().any(|r| r["faultByType"] == "VENDOR" && r["reasonCode"] == "SOLDOUT"), "stock-outs");
    assert!(cancels.iter().any(|r| r["faultByType"] == "CUSTOMER"));
    let ids: Vec<i64> = cancels.iter().map(|r| r["receiptId"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "one receipt once, in order");
    sim.stop().await;
}

#[tokio::test]
async fn withdrawals_and_exchanges_have_their_own_lists_and_limits() {
    let sim = simulator().await;
    let mut withdrawn = 0;
    for week in 0..5 {
        let from = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap() + chrono::Duration::days(7 * week);
        let query = format!("dateFrom={from}&dateTo={}&pageIndex=1&sizePerPage=100", from + chrono::Duration::days(6));
        let (status, body) = Call::to(format!("{V4}/returnWithdrawRequests"), &query).send(&sim).await;
        assert_eq!(status, 200, "{body}");
        withdrawn += body["data"].as_array().unwrap().len();
    }
    assert!(withdrawn > 0);
    let (status, body) = Call::to(
        format!("{V4}/returnWithdrawRequests"),
        "dateFrom=2026-06-01&dateTo=2026-06-08&pageIndex=1&sizePerPage=100",
    )
    .send(&sim)
    .await;
    assert_eq!((status, body["message"].as_str()), (400, Some("The maximum view duration is 7 days")));

    let exchanges = every_page(
        &sim,
        format!("{V4}/exchangeRequests"),
        "createdAtFrom=2026-06-08T00:00:00&createdAtTo=2026-06-15T00:00:00&maxPerPage=50",
        "nextToken",
    )
    .await;
    assert!(!exchanges.is_empty() && exchanges.iter().all(|e| e["exchangeAmount"] == 0));
    let (status, _) = Call::to(
        format!("{V4}/exchangeRequests"),
        "createdAtFrom=2026-06-08T00:00:00&createdAtTo=2026-06-15T00:00:00&status=RECEIPT",
    )
    .send(&sim)
    .await;
    assert_eq!(status, 400, "status is refused");
    sim.stop().await;
}

#[tokio::test]
async fn revenue_has_partial_refunds_two_on_a_day_and_adjustment_rows() {
    let sim = simulator().await;
    let mut rows = Vec::new();
    for (from, to) in [("2026-06-01", "2026-07-01"), ("2026-07-02", "2026-08-01"), ("2026-08-02", "2026-09-01")] {
        let query = format!("vendorId=A00010001&recognitionDateFrom={from}&recognitionDateTo={to}&maxPerPage=50");
        rows.extend(every_page(&sim, REVENUE.to_string(), &query, "token").await);
    }
    assert!(rows.iter().any(|r| r["orderId"] == 0), "adjustment rows");
    let refunds: Vec<&Value> = rows.iter().filter(|r| r["saleType"] == "REFUND").collect();
    let mut per_order_day: HashMap<(i64, String), usize> = HashMap::new();
    for r in &refunds {
        let key = (r["orderId"].as_i64().unwrap(), r["recognitionDate"].as_str().unwrap().to_string());
        *per_order_day.entry(key).or_default() += 1;
    }
    assert!(per_order_day.values().any(|n| *n == 2), "two refunds of one order on one day");
    assert!(refunds.iter().any(|r| r["deliveryFee"]["amount"] == 0), "partial refunds keep the fee");
    assert!(rows.iter().any(|r| r["deliveryFee"]["settlementAmount"].is_null()), "null amounts as published");
    sim.stop().await;
}

#[tokio::test]
async fn bodies_carry_the_real_quirks_string_codes_and_microsecond_times() {
    let sim = simulator().await;
    let mut micro_times = 0;
    let mut string_codes = 0;
    let mut token = String::new();
    for _ in 0..40 {
        let query = format!(
            "createdAtFrom=2026-06-01%2B09:00&createdAtTo=2026-06-30%2B09:00&maxPerPage=50&status=FINAL_DELIVERY&nextToken={token}"
        );
        let (status, body) = Call::new(&query).send(&sim).await;
        assert_eq!(status, 200);
        string_codes += usize::from(body["code"] == "200");
        for record in body["data"].as_array().unwrap() {
            micro_times +=
                usize::from(record["paidAt"].as_str().unwrap().len() == "2026-06-01T10:11:12.000000+09:00".len());
            let price = |item: &Value, field: &str| item[field]["units"].as_i64().unwrap();
            for item in record["orderItems"].as_array().unwrap() {
                let quantity = item["shippingCount"].as_i64().unwrap();
                assert!(price(item, "orderPrice") <= price(item, "salesPrice") * quantity);
            }
        }
        token = body["nextToken"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert!(micro_times > 0 && string_codes > 0, "{micro_times} micro-second times, {string_codes} string codes");
    sim.stop().await;
}

#[tokio::test]
async fn revenue_before_today_follows_the_simulated_clock() {
    // A frozen clock in the future of the wall clock: its today is later than ours.
    let today = etl_core::time::now_kst().date_naive();
    let config = SimConfig { start_date: today, days: 3, orders_per_day: 5, ..SimConfig::default() };
    let sim = Simulator::start(&config, ([127, 0, 0, 1], 0).into()).await.unwrap();
    let simulated_today = sim.now().date_naive();
    assert!(simulated_today > today);
    let ask =
        |to: chrono::NaiveDate| format!("vendorId=A00010001&recognitionDateFrom={today}&recognitionDateTo={to}&token=");
    let (status, _) = Call::to(REVENUE.into(), &ask(simulated_today - chrono::Duration::days(1))).send(&sim).await;
    assert_eq!(status, 200, "the simulated yesterday is before its today");
    let (status, body) = Call::to(REVENUE.into(), &ask(simulated_today)).send(&sim).await;
    assert_eq!((status, body["message"].as_str()), (400, Some("recognitionDateTo must be before today.")));
    sim.stop().await;
}
