//! Restatements explained (real Kafka, real ClickHouse): a simulated month seen at three moments, as
//! the pipeline would see it on three days. The daily totals of each moment are read back later "as of"
//! that moment from the history, exactly; every change of an order between the moments is in the
//! history with the amount the simulator's truth moved by, and a cause that fits the change.

mod common;

use chrono::{NaiveDate, NaiveDateTime};
use common::*;
use coupang_etl::demo::compare;
use coupang_etl::pipeline::run_range;
use coupang_load::summary::daily_payments;
use coupang_load::Reader;
use coupang_sim::truth::Truth;
use coupang_sim::SimConfig;
use etl_core::Shutdown;
use std::collections::BTreeMap;
use std::time::Duration;

fn moment(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
}

/// `daily_payments` as known at `known_at` (unix seconds), from the history: per vendor and day.
async fn daily_as_of(config: &coupang_load::ClickHouseConfig, known_at: i64) -> BTreeMap<(String, String), i64> {
    let sql = format!(
        "SELECT vendor_id, toString(payment_date), sum(amount) FROM (
             SELECT vendor_id, payment_date, argMax(payment_amount, version) AS amount
             FROM payment_fact_history FINAL
             WHERE toUInt32(loaded_at) <= {known_at}
             GROUP BY vendor_id, payment_date, order_id, vendor_item_id
         ) GROUP BY vendor_id, payment_date ORDER BY vendor_id, payment_date"
    );
    let tsv = sql_tsv(config, &sql).await.unwrap();
    tsv.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            ((fields[0].to_string(), fields[1].to_string()), fields[2].parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_read_as_of_three_moments_gives_what_was_reported_then_and_every_change_has_its_cause() {
    let world = SimConfig {
        start_date: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
        days: 30,
        orders_per_day: 8,
        ..small_world()
    };
    let mut config = config("history", world);
    let moments = [moment("2026-09-12 09:00"), moment("2026-09-22 09:00"), moment("2026-10-20 09:00")];
    let shutdown = Shutdown::new();
    let mut reported = Vec::new();
    let mut truths = Vec::new();
    for at in moments {
        // The same world, its clock at `at` (and nearly stopped).
        config.sim.clock_start = Some(at);
        config.sim.time_scale = 1e-6;
        let sim = with_simulator(&mut config).await;
        let truth = Truth::of(&sim.world());
        let to = at.date().min(config.sim.end_date());
        run_range(&config, config.sim.start_date - chrono::Duration::days(1), to, &shutdown).await.unwrap();
        let daily = daily_payments(&config.clickhouse).await.unwrap();
        assert_eq!(compare(&daily, &truth), vec![], "at {at}, ClickHouse holds the truth of that moment");
        // A second's margin on both sides: load times are whole seconds.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let known_at = chrono::Utc::now().timestamp();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let totals: BTreeMap<(String, String), i64> =
            daily.iter().map(|d| ((d.vendor_id.clone(), d.payment_date.to_string()), d.payment_amount)).collect();
        reported.push((known_at, totals));
        truths.push(truth);
        sim.stop().await;
    }

    // Later, the history gives each moment's totals exactly.
    for (i, (known_at, totals)) in reported.iter().enumerate() {
        assert_eq!(&daily_as_of(&config.clickhouse, *known_at).await, totals, "as of moment {}", i + 1);
    }
    let (first, last) = (&reported[0].1, &reported[2].1);
    assert_ne!(first, last, "the month moved between the first and the last moment");

    // Every order that moved between the first and the last moment, by exactly the truth's change,
    // each change with a cause that fits it.
    let reader = Reader::connect(&config.clickhouse).await.unwrap();
    let since = u32::try_from(reported[0].0).unwrap();
    let mut moved: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut causes: BTreeMap<String, usize> = BTreeMap::new();
    let days: Vec<(String, NaiveDate)> = last.keys().map(|(v, d)| (v.clone(), d.parse().unwrap())).collect();
    for (vendor, day) in &days {
        for change in reader.restatements(vendor, *day, since).await.unwrap() {
            *moved.entry((vendor.clone(), change.order_id)).or_default() += change.new_amount - change.old_amount;
            for cause in change.causes.split(',') {
                *causes.entry(cause.to_string()).or_default() += 1;
            }
            let what = format!("{vendor} order {} on {day}: {change:?}", change.order_id);
            let cancel_like = ["CANCEL", "RETURN", "REFUND"].iter().any(|c| change.causes.contains(c));
            if change.causes.contains("NEW_ORDER") {
                // A new order, or new items of it (a second box that showed later; an item undone
                // before its first fact counts 0).
                assert!(change.new_amount >= change.old_amount, "{what}");
            } else if change.new_amount == 0 {
                assert!(cancel_like, "an amount that went to 0 was cancelled, returned or refunded: {what}");
            } else if change.new_amount < change.old_amount {
                assert!(cancel_like || change.causes.contains("CONFIRMATION"), "{what}");
            } else {
                assert!(!change.causes.is_empty(), "{what}");
            }
        }
    }
    let (before, after) = (&truths[0].orders, &truths[2].orders);
    let expected: BTreeMap<(String, i64), i64> = after
        .iter()
        .map(|(key, amount)| (key.clone(), amount - before.get(key).copied().unwrap_or(0)))
        .filter(|(_, change)| *change != 0)
        .collect();
    moved.retain(|_, change| *change != 0);
    assert_eq!(moved, expected, "the history's net change of every order equals the truth's");
    // Over the whole month (not only since the first moment), every kind of change a month brings.
    let mut all_causes: BTreeMap<String, usize> = BTreeMap::new();
    for (vendor, day) in &days {
        for change in reader.restatements(vendor, *day, 0).await.unwrap() {
            for cause in change.causes.split(',') {
                *all_causes.entry(cause.to_string()).or_default() += 1;
            }
        }
    }
    // (Cancels come within hours of payment, so a collection days apart sees a cancelled order first
    // as a new order of 0 won: nothing was reported for it, nothing is restated.)
    for cause in ["NEW_ORDER", "CONFIRMATION", "RETURN"] {
        assert!(all_causes.get(cause).copied().unwrap_or(0) > 0, "the month has {cause}: {all_causes:?}");
    }
    println!(
        "{} orders moved between the first and the last moment; causes since then {causes:?}, over the month {all_causes:?}",
        expected.len()
    );

    // What the history costs (BENCHMARKS.md): bytes on disk per version and per current fact, merged.
    sql_tsv(&config.clickhouse, "OPTIMIZE TABLE payment_fact_history FINAL").await.unwrap();
    let footprint = sql_tsv(
        &config.clickhouse,
        "SELECT sum(rows), sum(bytes_on_disk), (SELECT count() FROM payment_facts FINAL) \
         FROM system.parts WHERE database = currentDatabase() AND table = 'payment_fact_history' AND active",
    )
    .await
    .unwrap();
    let numbers: Vec<f64> = footprint.split_whitespace().map(|n| n.parse().unwrap()).collect();
    println!(
        "history: {} versions of {} facts, {} bytes on disk: {:.1} bytes per version, {:.1} per fact",
        numbers[0],
        numbers[2],
        numbers[1],
        numbers[1] / numbers[0],
        numbers[1] / numbers[2]
    );

    // The command, for people.
    let file = write_config_file(&config, "history");
    let (vendor, day) = &days[0];
    let output = coupang_etl_command(&file)
        .args(["changes", "--account", vendor, "--day", &day.to_string(), "--since", "2026-01-01"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("NEW_ORDER") && stdout.contains(" changes, net "), "{stdout}");
    println!("{stdout}");
    std::fs::remove_file(file).ok();
    finish(&config).await;
}
