//! Freshness of new orders under follow mode: minute-window polls during and between sweeps. Timed
//! against the simulator's real-time clock, so it has a test binary of its own: beside the other
//! stream tests on a loaded machine, a poll could come late enough to miss the bound.

mod common;

use common::*;
use coupang_schemas::decode;
use coupang_sim::SimConfig;
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_orders_arrive_within_seconds_through_minute_window_polls_during_and_between_sweeps() {
    // Coupang's clock: the simulator's runs in real time from now, so the polls' windows (Korea time,
    // now) meet the orders becoming visible now. Payment times are uniform over the day.
    let now = etl_core::time::now_kst();
    // A box shows `visibility_delay_minutes` after payment, so in a day's first minutes the boxes that
    // show were paid the day before: the world starts on the day of the earliest payment that can
    // show while ingest runs, and ends tomorrow (a run that crosses midnight).
    let shows_after = chrono::Duration::minutes(SimConfig::default().visibility_delay_minutes);
    let first_day = (now - shows_after).date_naive();
    let sim = SimConfig {
        start_date: first_day,
        days: (now.date_naive() - first_day).num_days() as u32 + 2,
        orders_per_day: 10_000,
        time_scale: 1.0,
        clock_start: Some(now.naive_local()),
        rate_limit_per_second: 0, // the first sweep at 200 calls/s, so the test waits less for it
        ..SimConfig::default()
    };
    let mut config = config("new-orders", sim);
    // Slow enough that the first sweep takes a while when the day is far along: polls go on between
    // its pages. The simulator draws each shop-day's size around the mean: with the default seed the
    // first shop's day is about twice the others' (when today is the world's first day, as it is
    // from 00:10 KST on), so their sweeps end tens of seconds before its own, and meanwhile their
    // polls must go on too.
    config.ingest.requests_per_second = 15.0;
    config.ingest.lookback_days = 0;
    config.ingest.poll_interval_secs = 3_600; // one sweep, at the start
    config.ingest.new_orders_poll_secs = 1;
    config.ingest.follow_api_share = 1.0;
    let sim = with_simulator(&mut config).await;
    // The simulator's clock starts at `now` when the simulator starts, seconds after `now` was read
    // (more on a loaded machine): an order shows by its clock, so this much later by the test's.
    let clock_lag = chrono::Utc::now() - sim.now().with_timezone(&chrono::Utc);
    let calls =
        |endpoint: &str| -> u64 { sim.stats().iter().filter(|((_, e, _), _)| e == endpoint).map(|(_, n)| n).sum() };
    let started = chrono::Utc::now();
    let (shutdown, ingest) = spawn_ingest(&config);

    // The first sweep is over once ingest logged it for every account. (Telling it from the calls
    // alone, a quiet stretch of a slow sweep on a loaded machine once passed for its end.)
    let vendors = config.accounts.len() as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    while logged_lines_with("sweep done") < config.accounts.len() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            std::time::Instant::now() < deadline,
            "the first sweep did not end: no `sweep done` logged for every account (COUPANG_ETL_TEST_LOG, when set, \
             must let coupang_ingest's INFO lines through)"
        );
    }
    let (swept_at, receipt_calls, sheet_calls) = (chrono::Utc::now(), calls("returnRequests"), calls("ordersheets"));
    println!(
        "first sweep over after {} s; the simulator's clock {} ms behind the test's",
        (swept_at - started).num_seconds(),
        clock_lag.num_milliseconds()
    );
    // Every box that became visible (10 minutes after payment) while ingest ran, during the first sweep
    // or after it, is checked. A box that showed in the last seconds may still be on its way (the
    // machine is shared), so the check ends 10 s before now.
    type Time = chrono::DateTime<chrono::Utc>;
    let visible_in = |world: &coupang_sim::World, until: Time| -> HashMap<i64, Time> {
        world
            .vendors
            .values()
            .flat_map(|v| v.boxes.iter())
            .map(|b| (b.shipment_box_id, (b.paid_at + shows_after).with_timezone(&chrono::Utc) + clock_lag))
            .filter(|(_, visible)| *visible > started + chrono::Duration::seconds(2) && *visible <= until)
            .collect()
    };
    // Polls alone for at least 20 s, and until a few boxes showed. Early in the day the first sweep
    // reads few orders and takes seconds, which leaves a short stretch to check, and boxes show about
    // 3 s apart (three shops of ~10,000 orders a day).
    let (polled_until, polled_for, sheet_calls) = loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (now, calls_now) = (chrono::Utc::now(), calls("ordersheets"));
        let (until, polled_for) = (now - chrono::Duration::seconds(10), now - swept_at);
        // Drawing the world takes a while in a debug build: meanwhile this worker thread's other
        // tasks (ingest's, the simulator's) move to another, so the polls being timed go on.
        let shown = tokio::task::block_in_place(|| visible_in(&sim.world(), until).len());
        if (polled_for >= chrono::Duration::seconds(20) && shown >= 5) || polled_for >= chrono::Duration::seconds(90) {
            break (until, polled_for, calls_now - sheet_calls);
        }
    };
    assert_eq!(calls("returnRequests"), receipt_calls, "no sweep after the first one: only polls");
    shutdown.cancel();
    ingest.await.unwrap().unwrap();

    // Each of them was sent within seconds: by a poll, not by a sweep.
    let world = sim.world();
    let became_visible = visible_in(&world, polled_until);
    let mut first_sent: HashMap<i64, i64> = HashMap::new();
    for message in read_topic(&config.kafka, &config.kafka.topics().raw_order_sheets) {
        let event = decode::<coupang_schemas::OrderSheetEvent>(rdkafka::Message::payload(&message).unwrap_or_default())
            .unwrap();
        let sent = rdkafka::Message::timestamp(&message).to_millis().unwrap();
        first_sent.entry(event.shipment_box_id).and_modify(|t| *t = (*t).min(sent)).or_insert(sent);
    }
    assert!(!became_visible.is_empty(), "orders became visible while ingest ran");
    let mut waits: Vec<i64> = Vec::new();
    for (id, visible) in &became_visible {
        let sent = first_sent.get(id).unwrap_or_else(|| {
            let b = world.vendors.values().flat_map(|v| v.boxes.iter()).find(|b| b.shipment_box_id == *id);
            let b = b.map(|b| (b.status, b.listed, b.ordered_at, b.paid_at, &b.paths));
            panic!("box {id}, visible at {visible}, was never sent: {b:?}; logged:\n{}", logged_warnings(30))
        });
        waits.push(sent - visible.timestamp_millis());
    }
    waits.sort_unstable();
    let longest = *waits.last().unwrap();
    assert!(
        longest <= 30_000,
        "every new box sent within 30 s of showing, not at the sweep's end: waits (ms) {waits:?}"
    );
    println!(
        "{} boxes became visible while ingest ran, each sent within {longest} ms; {sheet_calls} order-sheet calls in {:.1} s between sweeps for {vendors} accounts",
        became_visible.len(),
        polled_for.num_milliseconds() as f64 / 1000.0
    );
    sim.stop().await;
}
