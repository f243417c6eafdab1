//! Current ClickHouse (26.9, the engine inside PyPI's chdb, served over ClickHouse's HTTP interface by
//! tests/python/chdb_http.py) beside Debian's 18.16 server: the pipeline's own ClickHouse code runs
//! unchanged against both. The loader migrates 26.9 as it would any server reporting 26.x, writes its
//! RowBinary INSERTs with their deduplication tokens, and every view and every example query of
//! docs/analysts.md returns exactly what 18.16 returns over the same facts.

mod common;

use common::*;
use coupang_etl::demo::compare;
use coupang_etl::pipeline::run_range;
use coupang_load::summary::{
    account_freshness, daily_payments, fact_counts, optimize_facts, order_payments, AccountFreshness,
};
use coupang_load::ClickHouseConfig;
use coupang_schemas::decode_facts;
use coupang_sim::truth::Truth;
use etl_core::Shutdown;
use rdkafka::Message;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/chdb_http.py");

/// ClickHouse 26.9 in a process of its own, with its data in a fresh directory; killed when dropped.
struct CurrentClickHouse {
    process: Child,
    url: String,
    data: PathBuf,
}

impl CurrentClickHouse {
    /// Starts it with the server's fault options (`--lose-answers N`, `--keep-every-row`).
    fn start(test: &str, options: &[&str]) -> CurrentClickHouse {
        let data = std::env::temp_dir().join(unique(test));
        std::fs::create_dir_all(&data).unwrap();
        let mut process = Command::new(project_python("chdb"))
            // The server time zone of the 18.16 server (deploy/services.sh), whatever the host's zone:
            // both then write DateTime values alike and agree on `today()` and `now()`'s day.
            .env("TZ", "UTC")
            .arg(SERVER)
            .arg("--data")
            .arg(&data)
            .args(options)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(process.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("chdb_http.py said {line:?}"));
        CurrentClickHouse { process, url: format!("http://127.0.0.1:{port}"), data }
    }

    fn config(&self, database: &str) -> ClickHouseConfig {
        ClickHouseConfig { url: self.url.clone(), database: database.into(), ..ClickHouseConfig::default() }
    }

    /// What the server did: INSERTs executed, answers lost.
    async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/test/stats", self.url)).await.unwrap().json().await.unwrap()
    }
}

impl Drop for CurrentClickHouse {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

async fn sql(clickhouse: &ClickHouseConfig, sql: &str) -> String {
    sql_tsv(clickhouse, sql).await.unwrap_or_else(|e| panic!("{sql}\n→ {e}"))
}

/// Runs an INSERT … VALUES (no output format may follow it).
async fn insert(clickhouse: &ClickHouseConfig, statement: &str) {
    let url = format!("{}/?database={}", clickhouse.url, clickhouse.database);
    let response = reqwest::Client::new().post(url).body(statement.to_string()).send().await.unwrap();
    let status = response.status();
    assert!(status.is_success(), "{statement}\n→ {}", response.text().await.unwrap_or_default());
}

/// Every view, whole, in key order.
const VIEWS: [&str; 4] = [
    "SELECT * FROM item_payments ORDER BY vendor_id, order_id, vendor_item_id",
    "SELECT * FROM order_payments ORDER BY vendor_id, order_id",
    "SELECT * FROM daily_payments ORDER BY vendor_id, payment_date",
    "SELECT * FROM reconciliation ORDER BY vendor_id, month",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_26_gives_every_view_and_analyst_query_exactly_what_18_16_gives() {
    // Five weeks up to today: two months, confirmed and provisional orders, the analysts' "last 30 days".
    let mut config = config("ch_current", recent_world(35, 0, 8));
    let sim = with_simulator(&mut config).await;
    let truth = Truth::of(&sim.world());
    let (from, to) = sim_range(&config);
    run_range(&config, from, to, &Shutdown::new()).await.unwrap();
    let old = &config.clickhouse;
    assert!(compare(&daily_payments(old).await.unwrap(), &truth).is_empty(), "18.16 holds the truth");

    // A second loader, in a group of its own, loads the same facts topic into ClickHouse 26.9. The
    // server loses the answers of its first two INSERTs after committing them; small batches make
    // many INSERTs.
    let current = CurrentClickHouse::start("ch_current", &["--lose-answers", "2", "--keep-every-row"]);
    let mut config_26 = config.clone();
    config_26.clickhouse = current.config(&config.clickhouse.database);
    config_26.load.group_id = format!("{}-26", config.load.group_id);
    config_26.load.batch_rows = 100;
    config_26.load.max_backoff_secs = 1;
    let new = &config_26.clickhouse;
    let shutdown = Shutdown::new();
    let loader = {
        let (config, shutdown) = (config_26.clone(), shutdown.clone());
        tokio::spawn(async move { coupang_load::run(&config.load, &config.clickhouse, &config.kafka, shutdown).await })
    };
    let facts_topic = config.kafka.topics().payment_facts;
    let inputs = coupang_load::consumes(&config_26.load, &config_26.kafka);
    let loaded = || async {
        inputs.lag(&config_26.kafka).await.is_ok_and(|lag| lag == 0)
            && daily_payments(new).await.is_ok_and(|daily| compare(&daily, &truth).is_empty())
    };
    assert!(
        eventually(Duration::from_secs(180), loaded).await,
        "26.9 loaded and exact; logs:\n{}",
        logged_warnings(20)
    );
    shutdown.cancel();
    loader.await.unwrap().unwrap();

    // The loader took the server for what it is, and migrated it as it migrates any 26.x.
    let version = sql(new, "SELECT version()").await;
    assert!(version.starts_with("26."), "{version}");
    let migrations = "SELECT version FROM schema_migrations ORDER BY version";
    assert_eq!(sql(new, migrations).await, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n");
    let old_ones = "1\n2\n3\n4\n7\n8\n9\n11\n12\n13\n";
    assert_eq!(sql(old, migrations).await, old_ones, "18.16 has neither deduplication window nor codecs");
    let again = coupang_load::migrate(old).await.unwrap();
    let left_out: Vec<_> = again.left_out.iter().map(|(version, _, reason)| (*version, reason.as_str())).collect();
    let too_old = "needs ClickHouse 22.8 or newer; this server is 18.16.1";
    assert_eq!(left_out, [(5, too_old), (6, too_old), (10, too_old)]);
    assert!(coupang_load::migrate(new).await.unwrap().left_out.is_empty());
    let history = sql(new, "SHOW CREATE TABLE payment_fact_history").await;
    assert!(history.contains("TTL loaded_at + toIntervalDay(730)"), "load.history_retention_days: {history}");
    let table = sql(new, "SHOW CREATE TABLE payment_facts").await;
    assert!(table.contains("non_replicated_deduplication_window = 1000"), "{table}");
    let codecs = "SELECT name, compression_codec FROM system.columns \
                  WHERE database = currentDatabase() AND table = 'payment_facts' AND compression_codec != ''";
    let codecs = sql(new, codecs).await;
    assert_eq!(codecs.lines().count(), 18, "{codecs}");
    assert!(codecs.contains("order_id\tCODEC(Delta(8), ZSTD(1))"), "{codecs}");

    // The INSERTs whose answers were lost were retried with the same token and dropped by the server:
    // with merges stopped and versions of one key in one INSERT kept apart, every fact of the topic is
    // in the table exactly once.
    let stats = current.stats().await;
    assert_eq!(stats["lost_answers"], 2, "{stats}");
    let messages = read_topic(&config.kafka, &facts_topic);
    let facts: usize = messages.iter().map(|m| decode_facts(m.payload().unwrap_or_default()).unwrap().len()).sum();
    let rows: usize = sql(new, "SELECT count() FROM payment_facts").await.trim().parse().unwrap();
    assert_eq!(rows, facts, "rows in payment_facts = facts in the topic; {stats}");
    let dropped = "SELECT value FROM system.events WHERE event = 'DuplicatedInsertedBlocks'";
    let dropped: u64 = sql(new, dropped).await.trim().parse().unwrap();
    assert!(dropped >= 2, "the two retried INSERTs were dropped as duplicates: {dropped}");

    // The binary's own read-backs (`summary`, `status`, the demo) give the same on both.
    assert_eq!(order_payments(old).await.unwrap(), order_payments(new).await.unwrap());
    assert_eq!(fact_counts(old).await.unwrap().current_rows, fact_counts(new).await.unwrap().current_rows);
    let newest = |accounts: Vec<AccountFreshness>| -> Vec<(String, u32)> {
        accounts.into_iter().map(|a| (a.account_alias, a.newest_change)).collect()
    };
    assert_eq!(newest(account_freshness(old).await.unwrap()), newest(account_freshness(new).await.unwrap()));

    // Every view and every analyst example, byte for byte.
    let queries: Vec<String> = VIEWS.map(String::from).into_iter().chain(analyst_examples()).collect();
    assert!(queries.len() >= 12, "four views and the examples of docs/analysts.md");
    let mut compared = 0;
    for query in &queries {
        let (on_18, on_26) = (sql(old, query).await, sql(new, query).await);
        assert!(!on_18.trim().is_empty(), "no rows from:\n{query}");
        if on_18 != on_26 {
            let first = on_18.lines().zip(on_26.lines()).find(|(a, b)| a != b);
            panic!("{query}\n18.16 and 26.9 differ: first differing rows {first:?}");
        }
        compared += on_18.lines().count();
    }
    // After a full merge one row per key remains on 26.9 as well.
    sql(new, "SYSTEM START MERGES payment_facts").await;
    optimize_facts(new).await.unwrap();
    let counts = fact_counts(new).await.unwrap();
    assert_eq!(counts.stored_rows, counts.current_rows, "{counts:?}");
    println!(
        "ClickHouse {}: {} queries ({compared} rows) identical to 18.16; {} facts, {} INSERTs, {} answers lost and \
         their retries dropped",
        version.trim(),
        queries.len(),
        facts,
        stats["inserts"],
        stats["lost_answers"]
    );
    sim.stop().await;
    finish(&config).await;
}

/// The cluster DDL (deploy/clickhouse-cluster.sql) on 26.9, as far as one process without ZooKeeper or
/// a cluster allows: every statement parses as written; the local table, with a plain engine, has the
/// columns of the table the loader creates; the replicated engine and the Distributed table are refused
/// only for the missing ZooKeeper and cluster.
#[tokio::test]
async fn the_cluster_ddl_parses_on_clickhouse_26_and_matches_the_single_server_table() {
    let current = CurrentClickHouse::start("ch_cluster_ddl", &[]);
    let single = current.config("coupang");
    coupang_load::migrate(&single).await.unwrap();
    let server = current.config("default");
    for statement in cluster_ddl_statements() {
        let written = statement.replace("{cluster}", "analytics").replace("{db}", "coupang_cluster");
        let literal = written.replace('\\', "\\\\").replace('\'', "\\'");
        let formatted = sql(&server, &format!("SELECT formatQuery('{literal}')")).await;
        assert!(formatted.contains("ON CLUSTER analytics"), "{formatted}");
        let local = local_form(&statement, "coupang_cluster");
        let outcome = sql_tsv(&server, &local).await;
        if local.contains("Distributed(") {
            assert!(outcome.as_ref().is_err_and(|e| e.contains("CLUSTER_DOESNT_EXIST")), "{local}\n→ {outcome:?}");
        } else {
            assert!(outcome.is_ok(), "{local}\n→ {outcome:?}");
        }
    }
    let replicated = "CREATE TABLE coupang_cluster.replica_check (v UInt64) \
                      ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/1/check', 'r1', v) ORDER BY v";
    let refused = sql_tsv(&server, replicated).await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("NO_ZOOKEEPER")), "{refused:?}");
    let columns_of = |database: &str, table: &str| {
        format!(
            "SELECT name, type FROM system.columns WHERE database = '{database}' AND table = '{table}' ORDER BY name"
        )
    };
    let local = sql(&server, &columns_of("coupang_cluster", "payment_facts_local")).await;
    let loader = sql(&server, &columns_of("coupang", "payment_facts")).await;
    assert!(loader.contains("payment_amount\tInt64"), "{loader}");
    assert_eq!(local, loader, "the cluster's local table has the single-server table's columns");

    // Where payment_facts is a table over other tables (Distributed on a cluster; a Merge table here,
    // which needs no cluster), the loader's migrations leave out what only a single-node MergeTree takes.
    sql(&server, "CREATE DATABASE proxied").await;
    sql(
        &server,
        "CREATE TABLE proxied.payment_facts AS coupang.payment_facts ENGINE = Merge(coupang, '^payment_facts$')",
    )
    .await;
    let report = coupang_load::migrate(&current.config("proxied")).await.unwrap();
    let reasons: Vec<_> = report.left_out.iter().map(|(version, _, reason)| (*version, reason.as_str())).collect();
    let not_single = "payment_facts is a Merge table, not a single-node MergeTree";
    assert_eq!(reasons, [(5, not_single), (6, not_single), (13, not_single)]);
}

/// A revenue-history row of `vendor` recognised on 2026-09-`day`, settling `settled` (fee: 10% of the sale).
fn revenue_row(vendor: &str, order: i64, day: u32, settled: i64, known: u8) -> String {
    let sale = settled * 10 / 9;
    format!(
        "('{vendor}', 'shop', {order}, 'SALE', '2026-09-{day:02}', 0, '2026-09-01', 1, {sale}, 0, 0, 0, 0, {sale}, {}, {settled}, {known}, 1)",
        sale - settled
    )
}

/// A payout of `vendor` for 2026-09-`from`..`to`: (target, paid, held back, deductions of which the
/// seller service fee), paid or scheduled.
fn payout_row(
    vendor: &str,
    kind: &str,
    (from, to): (u32, u32),
    money: (i64, i64, i64, i64, i64),
    done: bool,
) -> String {
    let (target, paid, last, deduction, fee) = money;
    let status = if done { "DONE" } else { "SUBJECT" };
    format!(
        "('{vendor}', 'shop', '{kind}', '2026-09-{from:02}', '2026-09-{to:02}', '2026-09-01', '2026-10-20', {target}, 0, \
         {target}, {paid}, {last}, 0, 0, 0, {fee}, {deduction}, 0, {}, '{status}', 1)",
        paid - deduction
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciliation_names_every_gap_and_decides_alike_on_18_16_and_26_9() {
    let config = config("reconcile_rules", small_world());
    let current = CurrentClickHouse::start("reconcile_rules", &[]);
    let servers = [config.clickhouse.clone(), current.config(&config.clickhouse.database)];
    // One vendor per case, all in September 2026; weeks 1–6, 7–13, …, 28–30.
    let revenue = [
        // Only the first week is paid so far: the rest is not yet in a payout, 30% is held back.
        revenue_row("V1-open", 1, 3, 10_000, 1),
        revenue_row("V1-open", 2, 20, 900, 1),
        // Paid in full, 1 won off in the 70/30 split of two rows: explained by rounding.
        revenue_row("V2-rounding", 3, 3, 10_001, 1),
        revenue_row("V2-rounding", 4, 9, 10_001, 1),
        // Paid in full, 5 won off over two rows: beyond rounding.
        revenue_row("V3-paid-off", 5, 3, 10_000, 1),
        // The RESERVE counts another month than revenue-history shows.
        revenue_row("V4-reserve", 6, 3, 10_000, 1),
        // Paid in full with an early-payout withdrawal and an additional payout: tied, both named.
        revenue_row("V5-deductions", 7, 3, 10_000, 1),
        // Collected before the shipping settlement was, 270 won short of the payout.
        revenue_row("V6-old-rows", 8, 3, 9_730, 0),
    ];
    let payouts = [
        payout_row("V1-open", "WEEKLY", (1, 6), (10_000, 7_000, 3_000, 0, 0), true),
        payout_row("V2-rounding", "WEEKLY", (1, 6), (10_001, 7_001, 3_000, 0, 0), true),
        payout_row("V2-rounding", "WEEKLY", (7, 13), (10_001, 7_001, 3_000, 0, 0), true),
        payout_row("V2-rounding", "RESERVE", (1, 30), (20_002, 6_001, 0, 55_000, 55_000), false),
        payout_row("V3-paid-off", "WEEKLY", (1, 6), (10_000, 7_000, 3_000, 0, 0), true),
        payout_row("V3-paid-off", "RESERVE", (1, 30), (10_000, 3_005, 0, 0, 0), false),
        payout_row("V4-reserve", "WEEKLY", (1, 6), (10_000, 7_000, 3_000, 0, 0), true),
        payout_row("V4-reserve", "RESERVE", (1, 30), (12_000, 3_000, 0, 0, 0), false),
        payout_row("V5-deductions", "WEEKLY", (1, 6), (10_000, 7_000, 3_000, 4_000, 0), true),
        payout_row("V5-deductions", "RESERVE", (1, 30), (10_000, 3_000, 0, 0, 0), true),
        payout_row("V5-deductions", "ADDITIONAL", (1, 30), (0, 500, 0, 0, 0), true),
        payout_row("V6-old-rows", "WEEKLY", (1, 6), (10_000, 7_000, 3_000, 0, 0), true),
    ];
    let mut answers = Vec::new();
    for server in &servers {
        coupang_load::migrate(server).await.unwrap();
        insert(server, &format!("INSERT INTO revenue_rows (vendor_id, account_alias, order_id, sale_type, recognition_date, \
            same_day_row, sale_date, quantity, sale_price, seller_discount_coupon, downloadable_coupon, coupang_discount_coupon, \
            delivery_fee, total_sale, service_fee, settlement_amount, settlement_known, version) VALUES {}", revenue.join(", ")))
        .await;
        insert(server, &format!("INSERT INTO settlements (vendor_id, account_alias, settlement_type, recognition_date_from, \
            recognition_date_to, recognition_month, settlement_date, total_sale, service_fee, settlement_target_amount, \
            settlement_amount, last_amount, pending_released_amount, seller_discount_coupon, downloadable_coupon, \
            seller_service_fee, deduction_amount, debt_of_last_week, final_amount, status, version) VALUES {}", payouts.join(", ")))
        .await;
        answers.push(
            sql(server, "SELECT vendor_id, status, unexplained, reasons FROM reconciliation ORDER BY vendor_id").await,
        );
    }
    let expected = "\
V1-open\texplained\t0\tnot yet in a payout 900; reserve held back 3000
V2-rounding\texplained\t0\tseller service fee 55000; rounding 1
V3-paid-off\tunexplained\t5\tpaid differs from the target by 5
V4-reserve\tunexplained\t2000\tthe reserve differs from the month by 2000
V5-deductions\ttied\t0\tother deductions 4000; additional payouts 500
V6-old-rows\tunexplained\t270\tpayouts differ from revenue-history by 270; 1 revenue rows collected without their shipping settlement; reserve held back 3000
";
    assert_eq!(answers[0], expected, "18.16");
    assert_eq!(answers[1], expected, "26.9");
    drop_database(&servers[0]).await;
}
