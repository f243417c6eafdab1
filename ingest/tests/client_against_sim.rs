//! The real client against the simulator: only the base URL differs from production.
//! Each test uses its own vendor ids, because rate limiters are shared per vendor within a process.

mod common;

use chrono::NaiveDate;
use common::vendor;
use coupang_ingest::client::model::{OrderStatus, ReceiptStatus};
use coupang_ingest::client::{RecognitionMonth, ReturnQuery};
use coupang_ingest::{ClientError, CoupangClient, IngestConfig};
use coupang_sim::config::LifecycleConfig;
use coupang_sim::config::{Burst, FaultConfig, SimVendor};
use coupang_sim::world::ReceiptKind;
use coupang_sim::{SimConfig, Simulator};
use etl_core::account::AccountConfig;
use etl_core::secret::Secret;
use futures::StreamExt;

fn account(alias: &str, vendor_id: &str) -> AccountConfig {
    AccountConfig {
        alias: alias.into(),
        vendor_id: vendor_id.into(),
        access_key: format!("access-{vendor_id}"),
        secret_key: Secret::new(format!("secret-{vendor_id}")),
        key_issued_on: etl_core::time::now_kst().date_naive() - chrono::Duration::days(10),
    }
}

async fn start(config: SimConfig) -> Simulator {
    Simulator::start(&config, ([127, 0, 0, 1], 0).into()).await.unwrap()
}

fn client(sim: &Simulator, account: AccountConfig, per_second: f64) -> CoupangClient {
    let config = IngestConfig { base_url: sim.base_url(), requests_per_second: per_second, ..IngestConfig::default() };
    CoupangClient::new(&config, account).unwrap()
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// Every box of the vendor, read through all statuses and pages.
async fn all_boxes(client: &CoupangClient) -> Result<Vec<i64>, ClientError> {
    let mut seen = Vec::new();
    for status in OrderStatus::KNOWN {
        let mut stream = std::pin::pin!(client.order_sheets(day("2026-09-30"), day("2026-10-10"), status));
        while let Some(sheet) = stream.next().await {
            seen.push(sheet?.shipment_box_id);
        }
    }
    seen.sort();
    Ok(seen)
}

fn world_boxes(sim: &Simulator, vendor_id: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = sim.world().vendors[vendor_id].boxes.iter().map(|b| b.shipment_box_id).collect();
    ids.sort();
    ids
}

fn calls(sim: &Simulator, vendor_id: &str, status: u16) -> u64 {
    sim.stats().iter().filter(|((v, _, s), _)| v == vendor_id && *s == status).map(|(_, n)| n).sum()
}

#[tokio::test]
async fn every_box_of_every_page_arrives_once() {
    let sim = start(SimConfig {
        days: 6,
        orders_per_day: 50,
        vendors: vec![vendor("A00020001")],
        lifecycle: LifecycleConfig::plain(),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim, account("paging", "A00020001"), 10.0);
    assert_eq!(all_boxes(&client).await.unwrap(), world_boxes(&sim, "A00020001"));
    assert!(calls(&sim, "A00020001", 200) > 6, "several pages were needed");
}

#[tokio::test]
async fn a_wrong_secret_is_a_clear_401_naming_the_alias_never_the_secret() {
    let sim = start(SimConfig {
        days: 2,
        vendors: vec![vendor("A00020002")],
        lifecycle: LifecycleConfig::plain(),
        ..SimConfig::default()
    })
    .await;
    let mut wrong = account("brand-a", "A00020002");
    wrong.secret_key = Secret::new("wrong-secret-value");
    let error = client(&sim, wrong, 8.0)
        .order_sheets_page(day("2026-10-01"), day("2026-10-02"), &OrderStatus::Accept, "")
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ClientError::KeyRejected { status: 401, .. }), "{error}");
    assert!(error.stops_account());
    let text = format!("{error} {error:?}");
    assert!(text.contains("brand-a") && text.contains("Invalid signature."), "{text}");
    assert!(!text.contains("wrong-secret-value"), "{text}");
    // Configuration errors are not retried: exactly one request reached the gateway.
    assert_eq!(sim.stats().values().sum::<u64>(), 1);
}

#[tokio::test]
async fn a_429_burst_slows_the_client_down_and_nothing_is_lost() {
    let faults = FaultConfig {
        burst_429: Some(Burst { every: 10, length: 3 }),
        retry_after_secs: Some(1),
        ..Default::default()
    };
    let sim = start(SimConfig {
        days: 6,
        orders_per_day: 40,
        faults,
        vendors: vec![vendor("A00020003")],
        lifecycle: LifecycleConfig::plain(),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim, account("bursty", "A00020003"), 8.0);
    assert_eq!(all_boxes(&client).await.unwrap(), world_boxes(&sim, "A00020003"), "every box, none twice");
    let throttled = calls(&sim, "A00020003", 429);
    assert!(throttled >= 3, "the burst happened: {throttled} × 429");
    assert!(client.limiter().slowdowns() >= throttled, "each 429 lowered the rate");
    println!("{throttled} × 429 absorbed, {} calls answered 200", calls(&sim, "A00020003", 200));
}

#[tokio::test]
async fn the_client_never_exceeds_the_configured_rate_even_from_several_tasks() {
    let sim = start(SimConfig {
        days: 6,
        orders_per_day: 60,
        vendors: vec![vendor("A00020004")],
        lifecycle: LifecycleConfig::plain(),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim, account("busy", "A00020004"), 8.0);
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { all_boxes(&client).await.map(|b| b.len()) })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let peak = sim.peak_per_second("A00020004");
    let total = calls(&sim, "A00020004", 200);
    assert_eq!(calls(&sim, "A00020004", 429), 0);
    assert!(total >= 30, "enough calls to measure: {total}");
    assert!(peak <= 8, "peak {peak} calls in one second, configured 8");
    println!("{total} calls from 3 tasks, peak {peak} per second (configured 8, Coupang's limit 10)");
}

#[tokio::test]
async fn an_expired_key_and_a_foreign_ip_stop_their_accounts_while_another_flows() {
    let today = etl_core::time::now_kst().date_naive();
    let expired = SimVendor { key_issued_on: Some(today - chrono::Duration::days(181)), ..vendor("A00020006") };
    let fenced = SimVendor { allowed_ips: vec!["10.255.0.1".parse().unwrap()], ..vendor("A00020007") };
    let config = SimConfig {
        days: 4,
        vendors: vec![vendor("A00020005"), expired, fenced],
        lifecycle: LifecycleConfig::plain(),
        ..SimConfig::default()
    };
    let sim = start(config).await;
    let (ok, old, far) = (
        client(&sim, account("flowing", "A00020005"), 8.0),
        client(&sim, account("expired-key", "A00020006"), 8.0),
        client(&sim, account("wrong-ip", "A00020007"), 8.0),
    );
    let (flowing, expired, fenced) = tokio::join!(all_boxes(&ok), all_boxes(&old), all_boxes(&far));
    assert_eq!(flowing.unwrap(), world_boxes(&sim, "A00020005"));
    let expired = expired.unwrap_err();
    assert!(
        matches!(expired, ClientError::KeyRejected { status: 401, .. }) && expired.to_string().contains("expired-key"),
        "{expired}"
    );
    assert!(expired.to_string().contains("expired"), "{expired}");
    let fenced = fenced.unwrap_err();
    assert!(matches!(fenced, ClientError::KeyRejected { status: 403, .. }), "{fenced}");
    assert!(fenced.to_string().contains("wrong-ip") && fenced.to_string().contains("Not allowed IP"), "{fenced}");
    for error in [&expired, &fenced] {
        assert!(!format!("{error} {error:?}").contains("secret-A000200"), "{error}");
    }
    println!("expired: {expired}\nfenced: {fenced}");
}

#[tokio::test]
async fn look_ups_minute_windows_returns_and_revenue_history() {
    let sim = start(SimConfig {
        days: 20,
        orders_per_day: 30,
        vendors: vec![vendor("A00020008")],
        lifecycle: LifecycleConfig::plain(),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim, account("lookups", "A00020008"), 10.0);
    let snapshot = sim.world();
    let world = &snapshot.vendors["A00020008"];
    let some_box = &world.boxes[7];

    let single = client.order_sheet(some_box.shipment_box_id).await.unwrap();
    assert_eq!((single.order_id, single.order_items.len()), (some_box.order_id, some_box.lines.len()));
    let of_order = client.order_sheets_of_order(some_box.order_id).await.unwrap();
    assert_eq!(of_order.len(), world.boxes.iter().filter(|b| b.order_id == some_box.order_id).count());

    // A minute window around the box's creation finds it, unpaged.
    let at = some_box.ordered_at.naive_local();
    let window = client
        .order_sheets_time_frame(
            at - chrono::Duration::hours(1),
            at + chrono::Duration::hours(1),
            &OrderStatus::from(some_box.status.as_str()),
        )
        .await
        .unwrap();
    assert!(window.iter().any(|s| s.as_ref().is_ok_and(|s| s.shipment_box_id == some_box.shipment_box_id)));

    for which in ReturnQuery::ALL {
        let receipts: Vec<_> = client.return_requests(day("2026-10-01"), day("2026-10-20"), which).collect().await;
        assert!(receipts.iter().all(Result::is_ok), "{which:?}: {receipts:?}");
    }

    // Revenue history pages (hasNext/nextToken) over every purchase-confirmed order, once each.
    let mut expected: Vec<i64> = world.boxes.iter().filter(|b| b.confirmed_at.is_some()).map(|b| b.order_id).collect();
    expected.sort();
    // One row per order, also for orders shipped in several boxes.
    expected.dedup();
    assert!(expected.len() > 50, "several revenue pages: {}", expected.len());
    let mut seen = Vec::new();
    let mut rows = std::pin::pin!(client.revenue_history(day("2026-10-01"), day("2026-10-31")));
    while let Some(row) = rows.next().await {
        let row = row.unwrap().signed();
        assert!(row.items.iter().all(|i| i.sale_price > 0 && i.quantity > 0));
        seen.push(row.order_id);
    }
    seen.sort();
    assert_eq!(seen, expected);
}

/// The v4 path of the same box answers in v4 formats (plain won, Korea time without offset); the
/// client's models read both to the same record.
#[tokio::test]
async fn v4_and_v5_answers_of_one_box_decode_to_the_same_record() {
    use coupang_ingest::client::model::OrderSheet;
    let sim = start(SimConfig {
        days: 20,
        vendors: vec![vendor("A00020009")],
        lifecycle: LifecycleConfig::plain(),
        ..SimConfig::default()
    })
    .await;
    let snapshot = sim.world();
    let world = &snapshot.vendors["A00020009"];
    let confirmed = world.boxes.iter().find(|b| b.confirmed_at.is_some() && b.remote_price.is_some()).unwrap();
    let get = |version: &str, second: i64| {
        let path = format!(
            "/v2/providers/openapi/apis/api/{version}/vendors/A00020009/ordersheets/{}",
            confirmed.shipment_box_id
        );
        let date = etl_core::cea::signed_date(chrono::Utc::now() - chrono::Duration::seconds(second));
        let signature = etl_core::cea::signature("secret-A00020009", &date, "GET", &path, "");
        let header = etl_core::cea::authorization_header("access-A00020009", &date, &signature);
        let url = format!("{}{path}", sim.base_url());
        async move {
            let body: serde_json::Value = reqwest::Client::new()
                .get(url)
                .header("Authorization", header)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["data"].clone()
        }
    };
    let (v4, v5) = (get("v4", 1).await, get("v5", 2).await);
    assert!(v4["shippingPrice"].is_i64() && v5["shippingPrice"].is_object(), "{v4}\n{v5}");
    assert!(!v4["paidAt"].as_str().unwrap().contains('+') && v5["paidAt"].as_str().unwrap().ends_with("+09:00"));
    assert_eq!(v4["orderItems"][0]["confirmDate"].as_str().unwrap().len(), "2025-07-29 10:11:12".len());
    assert!(v4["orderItems"][0]["discountPrice"].is_null(), "null in v4, as in Coupang's examples");
    let (v4, mut v5): (OrderSheet, OrderSheet) =
        (serde_json::from_value(v4).unwrap(), serde_json::from_value(v5).unwrap());
    // v4's discountPrice is null; its parts are there in both.
    v5.order_items.iter_mut().for_each(|item| item.discount_price = Default::default());
    assert_eq!(format!("{v4:?}"), format!("{v5:?}"));
    assert_eq!(v5.remote_price.0, confirmed.remote_price.unwrap_or(0));
}

/// With the full lifecycle on: orders cancelled while ACCEPT leave the order-sheet lists and appear only
/// under cancelType=CANCEL; returns are listed by status; revenue-history carries coupons, SALE rows with
/// `items: []` for orders undone before confirmation, and REFUND rows that subtract.
#[tokio::test]
async fn cancels_returns_refunds_and_coupons_are_served_as_coupang_does() {
    use coupang_ingest::client::model::SaleType;
    let config = SimConfig {
        days: 25,
        orders_per_day: 30,
        lifecycle: LifecycleConfig::realistic(),
        vendors: vec![vendor("A00020010")],
        ..SimConfig::default()
    };
    let sim = start(config).await;
    let client = client(&sim, account("lifecycle", "A00020010"), 10.0);
    let snapshot = sim.world();
    let world = &snapshot.vendors["A00020010"];
    let (from, to) = (day("2026-09-30"), day("2026-10-25"));

    let listed = all_boxes_in(&client, from, to).await;
    let cancels: Vec<_> = client.return_requests(from, to, ReturnQuery::Cancel).collect().await;
    let cancels: Vec<_> = cancels.into_iter().map(Result::unwrap).collect();
    let unlisted: Vec<i64> = world.boxes.iter().filter(|b| !b.listed).map(|b| b.shipment_box_id).collect();
    assert!(!unlisted.is_empty() && unlisted.iter().all(|id| !listed.contains(id)), "undone boxes leave the lists");
    let cancelled_orders: Vec<i64> = cancels.iter().map(|r| r.order_id).collect();
    let cancelled = |b: &&coupang_sim::world::ShipmentBox| b.receipts.iter().any(|r| r.kind == ReceiptKind::Cancel);
    for b in world
        .boxes
        .iter()
        .filter(|b| !b.listed && b.zero_sale_at.is_some() && b.delivered_at.is_none())
        .filter(cancelled)
    {
        assert!(
            cancelled_orders.contains(&b.order_id),
            "order {} cancelled while ACCEPT is in the CANCEL list",
            b.order_id
        );
    }
    let completed_returns: Vec<_> =
        client.return_requests(from, day("2026-10-30"), ReturnQuery::Return("CC")).collect().await;
    assert!(!completed_returns.is_empty());
    assert!(completed_returns.iter().all(|r| r.as_ref().unwrap().receipt_status == ReceiptStatus::ReturnsCompleted));

    let rows: Vec<_> = client.revenue_history(day("2026-10-01"), day("2026-10-31")).collect().await;
    let rows: Vec<_> = rows.into_iter().map(Result::unwrap).collect();
    let refunds: Vec<_> = rows.iter().filter(|r| r.sale_type == SaleType::Refund).map(|r| r.signed()).collect();
    assert!(
        !refunds.is_empty() && refunds.iter().all(|r| r.delivery_fee <= 0 && r.items.iter().all(|i| i.sale_price < 0))
    );
    assert!(rows.iter().any(|r| r.sale_type == SaleType::Sale && r.items.is_empty()), "undone before confirmation");
    assert!(rows.iter().flat_map(|r| &r.items).any(|i| i.seller_discount_coupon.0 > 0), "coupons at confirmation");
    println!(
        "{} listed boxes, {} cancels, {} completed returns, {} revenue rows ({} refunds)",
        listed.len(),
        cancels.len(),
        completed_returns.len(),
        rows.len(),
        refunds.len()
    );
}

async fn all_boxes_in(client: &CoupangClient, from: NaiveDate, to: NaiveDate) -> Vec<i64> {
    let mut seen = Vec::new();
    for status in OrderStatus::KNOWN {
        let mut stream = std::pin::pin!(client.order_sheets(from, to, status));
        while let Some(sheet) = stream.next().await {
            seen.push(sheet.unwrap().shipment_box_id);
        }
    }
    seen
}

/// Revenue-history's settlement amounts of the rows recognised in `month`, with seller signs.
async fn revenue_target(client: &CoupangClient, month: RecognitionMonth) -> i64 {
    use coupang_ingest::client::model::seller_sign;
    let rows: Vec<_> = client.revenue_history(month.first_day(), month.last_day()).collect().await;
    rows.into_iter()
        .map(Result::unwrap)
        .map(|row| {
            let items: i64 = row.signed().items.iter().map(|i| i.settlement_amount).sum();
            items + seller_sign(row.sale_type, row.delivery_fee.map_or(0, |fee| fee.settlement_amount.0))
        })
        .sum()
}

/// Payouts come as Coupang sends them (a bare array, bank fields masked) and agree with revenue-history:
/// a month's WEEKLY targets add up to its settlement amounts, and so does its RESERVE target; the WEEKLY
/// 70% and the RESERVE 30% pay the target; the RESERVE pays `settlementAmount − deductionAmount`. The
/// fault makes one payout of one month disagree by its amount, and no other.
#[tokio::test]
async fn payouts_agree_with_revenue_history_unless_a_fault_says_otherwise() {
    use coupang_schemas::{SettlementStatus, SettlementType};
    use coupang_sim::config::DisagreeingPayout;
    let disagreement = DisagreeingPayout { vendor_id: "A00020011".into(), month: "2026-10".into(), won: 1_000 };
    let config = SimConfig {
        start_date: day("2026-09-01"),
        days: 61,
        orders_per_day: 20,
        lifecycle: LifecycleConfig::realistic(),
        vendors: vec![vendor("A00020011")],
        faults: FaultConfig { disagreeing_payout: Some(disagreement), ..FaultConfig::default() },
        ..SimConfig::default()
    };
    let sim = start(config).await;
    let client = client(&sim, account("payouts", "A00020011"), 10.0);
    for (month, skew) in [("2026-09", 0), ("2026-10", 1_000)] {
        let month: RecognitionMonth = month.parse().unwrap();
        let payouts: Vec<_> =
            client.settlement_histories(month).await.unwrap().into_iter().map(Result::unwrap).collect();
        let revenue = revenue_target(&client, month).await;
        assert!(revenue > 0, "{month}: revenue recognised");
        let of = |kind: SettlementType| payouts.iter().filter(move |p| p.settlement_type == kind);
        let weekly_target: i64 = of(SettlementType::Weekly).map(|p| p.settlement_target_amount.0).sum();
        let reserve = of(SettlementType::Reserve).next().expect("the month closed: its RESERVE row");
        assert_eq!(weekly_target, revenue + skew, "{month}: WEEKLY targets against revenue-history");
        assert_eq!(reserve.settlement_target_amount.0, revenue, "{month}: RESERVE target against revenue-history");
        let weekly_paid: i64 = of(SettlementType::Weekly).map(|p| p.settlement_amount.0).sum();
        assert_eq!(weekly_paid + reserve.settlement_amount.0, weekly_target, "{month}: 70% + 30%");
        assert_eq!(reserve.final_amount.0, reserve.settlement_amount.0 - reserve.deduction_amount.0);
        for p in &payouts {
            assert_eq!(p.total_sale.0 - p.service_fee.0, p.settlement_target_amount.0, "{month}: {p:?}");
        }
        let done = payouts.iter().filter(|p| p.status == SettlementStatus::Done).count();
        println!("{month}: {} payouts ({done} paid), revenue-history target {revenue} won", payouts.len());
    }
    assert!(sim.faults_injected().contains_key("disagreeing_payout"));
    let future = client.settlement_histories("2027-12".parse().unwrap()).await.unwrap_err();
    assert!(future.to_string().contains("after this month"), "{future}");
    sim.stop().await;
}
