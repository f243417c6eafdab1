//! How fast the simulator serves a large world, read by the real client (`cargo bench --bench simulator`).
//!
//! Serves a world of `--vendors` × `--days` × `--orders-per-day` in this process with the rate limit off,
//! and reads every list of every vendor at once through `CoupangClient` (signing, decoding and all):
//! order sheets in each status, every returnRequests list, revenue-history. Prints records per second
//! and, to show an answer costs its page and not the world, the time of one first page in a world 100×
//! smaller and in this one.

use chrono::{Duration, NaiveDate};
use coupang_ingest::client::model::OrderStatus;
use coupang_ingest::client::ReturnQuery;
use coupang_ingest::{CoupangClient, IngestConfig};
use coupang_sim::{SimConfig, SimVendor, Simulator};
use etl_core::account::AccountConfig;
use etl_core::secret::Secret;
use futures::StreamExt;
use std::time::Instant;

struct Args {
    vendors: usize,
    days: u32,
    orders_per_day: u32,
}

fn args() -> Args {
    let mut args = Args { vendors: 10, days: 31, orders_per_day: 1_700 };
    let argv: Vec<String> = std::env::args().collect();
    let value = |i: usize| argv.get(i + 1).and_then(|v| v.parse::<u64>().ok()).expect("a number after the flag");
    for (i, flag) in argv.iter().enumerate() {
        match flag.as_str() {
            "--vendors" => args.vendors = value(i) as usize,
            "--days" => args.days = value(i) as u32,
            "--orders-per-day" => args.orders_per_day = value(i) as u32,
            _ => {}
        }
    }
    args
}

/// A world that ended long enough ago for every order to have settled.
fn world(args: &Args) -> SimConfig {
    let today = etl_core::time::now_kst().date_naive();
    SimConfig {
        start_date: today - Duration::days(i64::from(args.days) + 90),
        days: args.days,
        orders_per_day: args.orders_per_day,
        rate_limit_per_second: 0,
        vendors: (0..args.vendors)
            .map(|i| SimVendor {
                vendor_id: format!("A{:08}", 20_001 + i),
                access_key: format!("bench-access-{i}"),
                secret_key: Secret::new(format!("bench-secret-{i}")),
                key_issued_on: None,
                allowed_ips: Vec::new(),
            })
            .collect(),
        ..SimConfig::default()
    }
}

fn client(sim: &Simulator, vendor: &SimVendor) -> CoupangClient {
    let config = IngestConfig {
        base_url: sim.base_url(),
        requests_per_second: 100_000.0,
        backfill_requests_per_second: 100_000.0,
        ..IngestConfig::default()
    };
    let account = AccountConfig {
        alias: vendor.vendor_id.to_lowercase(),
        vendor_id: vendor.vendor_id.clone(),
        access_key: vendor.access_key.clone(),
        secret_key: vendor.secret_key.clone(),
        key_issued_on: etl_core::time::now_kst().date_naive(),
    };
    CoupangClient::new(&config, account).expect("client")
}

/// Windows of at most 31 days covering `from..=to`.
fn windows(from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = (start + Duration::days(30)).min(to);
        out.push((start, end));
        start = end + Duration::days(1);
    }
    out
}

#[derive(Default, Debug, Clone, Copy)]
struct Read {
    boxes: u64,
    receipts: u64,
    revenue_rows: u64,
    unreadable: u64,
}

/// Every list of one vendor, as a backfill of the whole period reads them.
async fn read_everything(client: &CoupangClient, config: &SimConfig) -> Read {
    let mut read = Read::default();
    let (from, to) = (config.start_date - Duration::days(1), config.end_date());
    let yesterday = etl_core::time::now_kst().date_naive() - Duration::days(1);
    let count = |result: Result<(), coupang_ingest::ClientError>, n: &mut u64, bad: &mut u64| match result {
        Ok(()) => *n += 1,
        Err(_) => *bad += 1,
    };
    for (a, b) in windows(from, to) {
        for status in OrderStatus::KNOWN {
            let mut records = client.order_sheets(a, b, status).boxed();
            while let Some(record) = records.next().await {
                count(record.map(|_| ()), &mut read.boxes, &mut read.unreadable);
            }
        }
    }
    for (a, b) in windows(from, (to + Duration::days(coupang_sim::lifecycle::LATEST_REQUEST_DAYS)).min(yesterday)) {
        for which in ReturnQuery::ALL {
            let mut records = client.return_requests(a, b, which).boxed();
            while let Some(record) = records.next().await {
                count(record.map(|_| ()), &mut read.receipts, &mut read.unreadable);
            }
        }
    }
    for (a, b) in windows(from, (to + Duration::days(coupang_sim::lifecycle::LATEST_RECOGNITION_DAYS)).min(yesterday)) {
        let mut records = client.revenue_history(a, b).boxed();
        while let Some(record) = records.next().await {
            count(record.map(|_| ()), &mut read.revenue_rows, &mut read.unreadable);
        }
    }
    read
}

/// Mean time of the first page of one day's list, over `n` calls of different days and statuses (the
/// client never sends one request twice in a second, as Coupang refuses a signature it has seen), once
/// every day was generated: (cold, warm) milliseconds.
async fn first_page_ms(sim: &Simulator, config: &SimConfig, n: u32) -> (f64, f64) {
    let client = client(sim, &config.vendors[0]);
    client.order_sheets_page(config.start_date, config.start_date, &OrderStatus::Accept, "").await.expect("a page");
    let mut times = Vec::new();
    for status in [OrderStatus::FinalDelivery, OrderStatus::Delivering] {
        let started = Instant::now();
        for i in 0..n {
            let day = config.start_date + Duration::days(i64::from(i % config.days));
            client.order_sheets_page(day, day, &status, "").await.expect("a page");
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0 / f64::from(n));
    }
    (times[0], times[1])
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next());
    kib.and_then(|k| k.parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = args();
    let config = world(&args);

    // One first page in a world 100× smaller, then in this one: O(page) serving keeps them alike.
    let small = SimConfig { orders_per_day: (args.orders_per_day / 100).max(1), ..config.clone() };
    let sim_small = Simulator::start(&small, ([127, 0, 0, 1], 0).into()).await.expect("simulator");
    let small_ms = first_page_ms(&sim_small, &small, args.days).await;
    sim_small.stop().await;

    let sim = Simulator::start(&config, ([127, 0, 0, 1], 0).into()).await.expect("simulator");
    let large_ms = first_page_ms(&sim, &config, args.days).await;

    let started = Instant::now();
    let reads = futures::future::join_all(config.vendors.iter().map(|vendor| {
        let (client, config) = (client(&sim, vendor), &config);
        async move { read_everything(&client, config).await }
    }))
    .await;
    let secs = started.elapsed().as_secs_f64();
    let total = reads.iter().fold(Read::default(), |t, r| Read {
        boxes: t.boxes + r.boxes,
        receipts: t.receipts + r.receipts,
        revenue_rows: t.revenue_rows + r.revenue_rows,
        unreadable: t.unreadable + r.unreadable,
    });
    let calls: u64 = sim.stats().values().sum();
    let records = total.boxes + total.receipts + total.revenue_rows;
    let serving_rss = peak_rss_mib();
    let world = sim.world();
    let items: usize = world.vendors.values().flat_map(|v| v.boxes.iter().map(|b| b.lines.len())).sum();
    let boxes: usize = world.vendors.values().map(|v| v.boxes.len()).sum();
    println!(
        "world: {} vendors × {} days × ~{} orders/day = {boxes} boxes, {items} order items",
        args.vendors, args.days, args.orders_per_day
    );
    println!(
        "read: {} boxes + {} receipts + {} revenue rows = {records} records ({} unreadable) in {secs:.1} s \
         = {:.0} records/s, {calls} calls = {:.0} calls/s",
        total.boxes,
        total.receipts,
        total.revenue_rows,
        total.unreadable,
        records as f64 / secs,
        calls as f64 / secs
    );
    println!(
        "first page of a day's list (days generated on the way / already generated): {:.2} / {:.2} ms at ~{} orders/day, \
         {:.2} / {:.2} ms at ~{} orders/day",
        small_ms.0, small_ms.1, small.orders_per_day, large_ms.0, large_ms.1, args.orders_per_day
    );
    println!(
        "peak RSS of this process (simulator and {} clients) while serving: {serving_rss:.0} MiB; \
         after generating the whole world at once for the counts above: {:.0} MiB",
        args.vendors,
        peak_rss_mib()
    );
    sim.stop().await;
}
