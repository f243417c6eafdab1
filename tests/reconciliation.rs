//! A simulated quarter through the whole pipeline (real Kafka, real ClickHouse), reconciled: every
//! account and month ties to the won with the simulator's own revenue-history and payouts, and the one
//! payout the simulator was told to skew is reported unexplained, for its account and month only.

mod common;

use chrono::NaiveDate;
use common::*;
use coupang_etl::pipeline::run_range;
use coupang_load::{Reader, ReconciliationStatus};
use coupang_sim::config::{DisagreeingPayout, FaultConfig};
use coupang_sim::settlement::{payout_rows, totals, SELLER_SERVICE_FEE, SERVICE_FEE_THRESHOLD};
use coupang_sim::SimConfig;
use etl_core::Shutdown;

const SKEWED_VENDOR: &str = "A00010002";
const SKEW: i64 = 1_000;

fn month(m: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, 1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_quarter_ties_to_the_won_and_the_disagreeing_payout_is_named() {
    let skewed = DisagreeingPayout { vendor_id: SKEWED_VENDOR.into(), month: "2026-07".into(), won: SKEW };
    // June to August; the world stops on 1 September, when July's RESERVE is paid and August's scheduled.
    let world = SimConfig {
        start_date: month(6),
        days: 92,
        orders_per_day: 8,
        faults: FaultConfig { disagreeing_payout: Some(skewed), ..FaultConfig::default() },
        ..SimConfig::default()
    };
    let mut config = config("reconcile", world);
    let sim = with_simulator(&mut config).await;
    let (from, to) = sim_range(&config);
    let report = run_range(&config, from, to, &Shutdown::new()).await.unwrap();
    assert!(report.ingest.accounts.values().all(|a| a.error.is_none() && a.bad_records() == 0), "{report:?}");

    let reader = Reader::connect(&config.clickhouse).await.unwrap();
    let months = reader.reconciliation((month(6), month(8)), None).await.unwrap();
    assert_eq!(months.len(), 9, "three accounts × three months: {months:#?}");
    let today = config.sim.end_date() + chrono::Duration::days(1);
    let revenue = coupang_sim::revenue::rows_of(&sim.world());
    for m in &months {
        let rows = &revenue[&m.vendor_id];
        let last = m.month + chrono::Months::new(1) - chrono::Duration::days(1);
        let truth = totals(rows, m.month, last);
        let what = format!("{} {}", m.vendor_id, m.month.format("%Y-%m"));
        assert_eq!(
            (m.revenue_total_sale, m.revenue_service_fee, m.revenue_settlement),
            (truth.total_sale, truth.service_fee, truth.settlement_target),
            "{what}: revenue-history as loaded equals the simulator's"
        );
        let skewed = m.vendor_id == SKEWED_VENDOR && m.month == month(7);
        let payouts = payout_rows(rows, m.month, today, if skewed { SKEW } else { 0 });
        let sum = |field: &str| payouts.iter().map(|p| p[field].as_i64().unwrap()).sum::<i64>();
        assert_eq!(m.final_amount, sum("finalAmount"), "{what}: what reaches the bank");
        let fee = if truth.total_sale >= SERVICE_FEE_THRESHOLD { SELLER_SERVICE_FEE } else { 0 };
        assert_eq!((m.seller_service_fee, m.deductions), (fee, fee), "{what}: the monthly fee is the only deduction");
        assert_eq!(m.not_yet_in_payout, 0, "{what}: every recognised won is in a payout");
        if m.month < month(8) {
            // Every payment of June and July was recognised by September: our facts tie to revenue-history.
            assert_eq!(m.payment_day_gap, 0, "{what}: confirmed payments + Coupang coupons = revenue by payment day");
            assert!(m.confirmed_payments > 0 && m.revenue_by_payment_day > m.confirmed_payments, "{what}");
        }
        if skewed {
            assert_eq!(m.status, ReconciliationStatus::Unexplained, "{what}: {m:#?}");
            assert_eq!((m.target_gap, m.reserve_gap, m.unexplained), (SKEW, 0, SKEW), "{what}");
            assert!(m.reasons.contains("payouts differ from revenue-history by 1000"), "{}", m.reasons);
        } else {
            assert_eq!(m.status, ReconciliationStatus::Tied, "{what}: {m:#?}");
            assert_eq!((m.target_gap, m.reserve_gap, m.rounding, m.unexplained), (0, 0, 0, 0), "{what}");
            assert_eq!(m.cycle_target, truth.settlement_target, "{what}: the cycles' targets");
            assert_eq!(m.reserve_target, truth.settlement_target, "{what}: the RESERVE's target");
            assert_eq!(m.cycle_paid + m.reserve_paid, truth.settlement_target, "{what}: 70% + 30% = target");
        }
    }
    for m in &months {
        // June's payouts were all paid by 1 September; August's RESERVE (and its last weeks) are scheduled.
        let scheduled = m.scheduled_amount > 0;
        assert_eq!(scheduled, m.month == month(8), "{} {}: {m:#?}", m.vendor_id, m.month);
    }

    // The loader's metrics: every account-month, the skewed one at its 1,000 won and status 2.
    assert!(coupang_load::reconciliation::refresh_metrics(&reader).await.unwrap() >= 9);
    let metrics = etl_core::metrics::metrics().render();
    let skewed_alias = &config.accounts.iter().find(|a| a.vendor_id == SKEWED_VENDOR).unwrap().alias;
    for (name, value) in [("unexplained_won", 1_000), ("status", 2)] {
        let line = format!("coupang_etl_reconciliation_{name}{{account=\"{skewed_alias}\",month=\"2026-07\"}} {value}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    let tied = metrics.lines().filter(|l| l.starts_with("coupang_etl_reconciliation_status{") && l.ends_with(" 0"));
    assert!(tied.count() >= 8, "the other account-months are tied:\n{metrics}");

    // The command, as a finance person runs it: exit 7 naming the account and month, 0 where all ties.
    let file = write_config_file(&config, "reconcile");
    let july = coupang_etl_command(&file).args(["reconcile", "--month", "2026-07"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&july.stdout), String::from_utf8_lossy(&july.stderr));
    assert_eq!(july.status.code(), Some(7), "{stdout}{stderr}");
    assert!(stderr.contains(&format!("{skewed_alias} 2026-07 1,000")), "{stderr}");
    assert!(stdout.contains("UNEXPLAINED") && stdout.matches("TIED").count() == 2, "{stdout}");
    let june = coupang_etl_command(&file).args(["reconcile", "--month", "2026-06"]).output().unwrap();
    assert_eq!(june.status.code(), Some(0), "{}", String::from_utf8_lossy(&june.stderr));
    let other = &config.accounts.iter().find(|a| a.vendor_id != SKEWED_VENDOR).unwrap().alias;
    let one =
        coupang_etl_command(&file).args(["reconcile", "--month", "2026-07", "--account", other]).output().unwrap();
    let one_out = String::from_utf8_lossy(&one.stdout);
    assert_eq!(one.status.code(), Some(0), "{one_out}");
    assert_eq!(one_out.matches("TIED").count(), 1, "only {other}: {one_out}");
    println!("{stdout}");
    let august: Vec<String> = months
        .iter()
        .filter(|m| m.month == month(8))
        .map(|m| format!("{} {} (provisional {})", m.vendor_id, m.payment_day_gap, m.provisional_payments))
        .collect();
    println!("August, confirmed payments against revenue by payment day (not all recognised yet): {august:?}");
    std::fs::remove_file(file).ok();
    sim.stop().await;
    finish(&config).await;
}
