//! `coupang-etl demo`: the whole pipeline against the built-in simulator, ending in the daily payment
//! amounts read back from ClickHouse and checked against the simulator's own ground truth.

use chrono::NaiveDate;
use coupang_load::summary::{DailyPayment, Reader};
use coupang_sim::truth::Truth;
use coupang_sim::Simulator;
use etl_core::account::AccountConfig;
use etl_core::Shutdown;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use crate::config::Config;
use crate::pipeline::{run_range, PipelineError, RunReport};
use crate::reports::won;

/// Who owns the databases the demo creates (the mark it leaves in them).
pub const DEMO_OWNER: &str = "coupang_etl_demo";

/// The database the demo writes to: `--database`; else the config's, unless it is the default
/// `coupang` (a production name the demo never takes unasked); else `coupang_demo`.
pub fn database(requested: Option<String>, configured: &str) -> String {
    let default = coupang_load::ClickHouseConfig::default().database;
    requested.unwrap_or_else(|| if configured == default { "coupang_demo".into() } else { configured.into() })
}

/// Accounts for the simulator's vendors, named `demo-a`, `demo-b`, …
pub fn sim_accounts(config: &Config, today: NaiveDate) -> Vec<AccountConfig> {
    config
        .sim
        .vendors
        .iter()
        .enumerate()
        .map(|(i, vendor)| AccountConfig {
            alias: format!("demo-{}", (b'a' + (i % 26) as u8) as char),
            vendor_id: vendor.vendor_id.clone(),
            access_key: vendor.access_key.clone(),
            secret_key: vendor.secret_key.clone(),
            key_issued_on: today - chrono::Duration::days(30),
        })
        .collect()
}

/// A day where ClickHouse and the ground truth disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub vendor_id: String,
    pub payment_date: NaiveDate,
    pub clickhouse: Option<(u64, i64)>,
    pub truth: Option<(u64, i64)>,
}

/// Compares orders and payment amount per vendor and payment day, exactly.
pub fn compare(daily: &[DailyPayment], truth: &Truth) -> Vec<Mismatch> {
    let loaded: BTreeMap<(String, NaiveDate), (u64, i64)> =
        daily.iter().map(|d| ((d.vendor_id.clone(), d.payment_date), (d.orders, d.payment_amount))).collect();
    let expected: BTreeMap<(String, NaiveDate), (u64, i64)> =
        truth.daily.iter().map(|(k, d)| (k.clone(), (d.orders, d.payment_amount))).collect();
    let mut keys: Vec<&(String, NaiveDate)> = loaded.keys().chain(expected.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| loaded.get(*k) != expected.get(*k))
        .map(|k| Mismatch {
            vendor_id: k.0.clone(),
            payment_date: k.1,
            clickhouse: loaded.get(k).copied(),
            truth: expected.get(k).copied(),
        })
        .collect()
}

pub struct DemoOutcome {
    pub report: RunReport,
    pub daily: Vec<DailyPayment>,
    pub mismatches: Vec<Mismatch>,
    /// The `coupang-etl status` screen at the end of the run.
    pub status: crate::status::StatusReport,
}

/// Runs the simulator and the pipeline over the simulated period; `config.kafka.brokers` must be set
/// (the CLI starts an embedded broker when it is not).
/// Without `kafka.brokers`, an in-process broker (librdkafka's mock cluster) with the demo's topics,
/// which `config` is pointed at; keep it alive while the demo runs. `None` when a real broker is set.
pub fn embedded_kafka(
    config: &mut Config,
) -> Result<Option<MockCluster<'static, DefaultProducerContext>>, PipelineError> {
    if !config.kafka.brokers.is_empty() {
        eprintln!("Kafka: {}", config.kafka.brokers);
        return Ok(None);
    }
    // librdkafka's mock broker accepts transactions but stores no offsets sent with them, so the
    // transform would read the same batch forever.
    if config.transform.transactions {
        return Err(PipelineError::TransactionsNeedABroker);
    }
    let cluster = MockCluster::new(1).map_err(PipelineError::EmbeddedKafka)?;
    config.kafka.brokers = cluster.bootstrap_servers();
    // The mock broker has no CreateTopics API: make the topics through its own interface.
    for topic in config.kafka.topics().all() {
        cluster.create_topic(topic, config.kafka.partitions, 1).map_err(PipelineError::EmbeddedKafka)?;
    }
    eprintln!("Kafka: embedded in-process broker at {} (set kafka.brokers to use a real one)", config.kafka.brokers);
    Ok(Some(cluster))
}

pub async fn run(mut config: Config, shutdown: &Shutdown) -> Result<DemoOutcome, PipelineError> {
    let simulator =
        Simulator::start(&config.sim, ([127, 0, 0, 1], 0).into()).await.map_err(PipelineError::Simulator)?;
    config.ingest.base_url = simulator.base_url();
    if config.accounts.is_empty() {
        config.accounts = sim_accounts(&config, etl_core::time::now_kst().date_naive());
    }
    let truth = Truth::of(&simulator.world());
    // The demo's database is its own: it starts empty, so what it shows is this run's world alone. A
    // database the demo did not create is refused, never emptied.
    coupang_load::schema::recreate_own_database(&config.clickhouse, DEMO_OWNER).await?;
    // Coupang selects order sheets by creation day, and an order placed just before midnight can be paid
    // on the next day: collect from one day earlier so the first payment day is complete.
    let from = config.sim.start_date - chrono::Duration::days(1);
    let report = run_range(&config, from, config.sim.end_date(), shutdown).await;
    simulator.stop().await;
    let report = report?;
    // One reader for both read-backs: the server's version is asked once.
    let reader = Reader::connect(&config.clickhouse).await?;
    let daily = reader.daily_payments().await?;
    let mismatches = compare(&daily, &truth);
    let status = crate::status::gather_with(&config, Some(&reader)).await;
    Ok(DemoOutcome { report, daily, mismatches, status })
}

/// The readable summary the demo ends with.
pub fn render(outcome: &DemoOutcome, database: &str) -> String {
    let mut out = String::new();
    let r = &outcome.report;
    let _ =
        writeln!(out, "\nCollected from the simulator (ClickHouse {} at `{database}`):", r.migration.server.version);
    for (alias, account) in &r.ingest.accounts {
        let _ = writeln!(
            out,
            "  {alias:<10} {}  {:>6} shipment boxes → {:>6} raw events{}",
            account.vendor_id,
            account.distinct_boxes,
            account.events,
            account.error.as_ref().map(|e| format!("  ERROR: {e}")).unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "\nDaily payment amount (KRW) per account, from `{database}.daily_payments` (current versions, FINAL):"
    );
    let mut by_account: BTreeMap<(&str, &str), Vec<&DailyPayment>> = BTreeMap::new();
    for day in &outcome.daily {
        by_account.entry((&day.account_alias, &day.vendor_id)).or_default().push(day);
    }
    let bad: HashSet<(&str, NaiveDate)> =
        outcome.mismatches.iter().map(|m| (m.vendor_id.as_str(), m.payment_date)).collect();
    for ((alias, vendor), days) in &by_account {
        render_account_days(&mut out, alias, vendor, days, &bad);
    }
    render_verdict(&mut out, outcome);
    out
}

/// One account's table of payment days, each marked ✓ or ✗ against the truth, and its total.
fn render_account_days(
    out: &mut String,
    alias: &str,
    vendor: &str,
    days: &[&DailyPayment],
    bad: &HashSet<(&str, NaiveDate)>,
) {
    let _ = writeln!(out, "\n  {alias} ({vendor})");
    let _ = writeln!(
        out,
        "    {:<12} {:>7} {:>7} {:>16} {:>16}  truth",
        "payment date", "orders", "items", "payment amount", "provisional"
    );
    let (mut orders, mut items, mut amount) = (0, 0, 0);
    for d in days {
        let mark = if bad.contains(&(vendor, d.payment_date)) { "✗" } else { "✓" };
        let _ = writeln!(
            out,
            "    {:<12} {:>7} {:>7} {:>16} {:>16}  {mark}",
            d.payment_date.to_string(),
            d.orders,
            d.items,
            won(d.payment_amount),
            won(d.provisional_amount)
        );
        orders += d.orders;
        items += d.items;
        amount += d.payment_amount;
    }
    let _ = writeln!(out, "    {:<12} {orders:>7} {items:>7} {:>16}", "total", won(amount));
}

/// Whether every day matched the ground truth, or which did not.
fn render_verdict(out: &mut String, outcome: &DemoOutcome) {
    if outcome.mismatches.is_empty() {
        let _ = writeln!(
            out,
            "\n✓ Every account and payment day matches the simulator's ground truth to the won ({} days, {:.1} s).",
            outcome.daily.len(),
            outcome.report.elapsed.as_secs_f64()
        );
    } else {
        let _ =
            writeln!(out, "\n✗ {} account-days differ from the simulator's ground truth:", outcome.mismatches.len());
        for m in &outcome.mismatches {
            let _ = writeln!(
                out,
                "    {} {}: ClickHouse {:?}, truth {:?} (orders, won)",
                m.vendor_id, m.payment_date, m.clickhouse, m.truth
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn won_groups_thousands() {
        assert_eq!(won(0), "0");
        assert_eq!(won(1_234_567), "1,234,567");
        assert_eq!(won(-19_900), "-19,900");
        assert_eq!(won(100), "100");
    }
}
