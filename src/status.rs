//! `coupang-etl status`: one screen per account (key, last successful calls, checkpoints, how current
//! its numbers in ClickHouse are) and the pipeline's consumer lag and dead letters.
//!
//! Everything is read from where the stages leave it (the account-status and checkpoint topics, the
//! consumer groups' committed offsets, the dead-letter topic, `payment_facts`), so it works from any
//! machine that reaches Kafka and ClickHouse, while the pipeline runs or not. Each source that cannot
//! be read is shown as such; the rest is still printed.

use chrono::{DateTime, NaiveDate, Utc};
use coupang_ingest::{AccountStatus, Checkpoint};
use coupang_load::schema::SchemaError;
use coupang_load::summary::{AccountFreshness, Reader};
use coupang_load::ClickHouseConfig;
use coupang_load::{Reconciliation, ReconciliationStatus};
use etl_core::account::{AccountConfig, KeyHealth};
use etl_core::kafka::Consumes;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::time::Duration;

use crate::exit::Findings;
use crate::Config;

/// What `status` found; rendered by [`StatusReport::render`].
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub now: DateTime<Utc>,
    pub accounts: Vec<AccountView>,
    pub statuses: Result<(), String>,
    pub clickhouse: Result<(), String>,
    /// Per stage, the messages its consumer group has not committed yet, over its input topics.
    pub lag: Vec<(&'static str, Result<i64, String>)>,
    /// Per stage that sent any, the records in the dead-letter topic.
    pub dead_letters: Result<BTreeMap<String, u64>, String>,
    /// The open recognition months' reconciliation, every account (shown, not a finding: `reconcile`
    /// and the loader's metrics are its checks).
    pub reconciliation: Result<Vec<Reconciliation>, String>,
}

#[derive(Debug, Clone)]
pub struct AccountView {
    pub alias: String,
    pub vendor_id: String,
    pub key_expires_on: NaiveDate,
    pub key: KeyHealth,
    pub status: Option<AccountStatus>,
    /// Live checkpoints by stream name.
    pub checkpoints: BTreeMap<String, Checkpoint>,
    pub loaded: Option<AccountFreshness>,
}

const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads every source (in parallel); failures are kept per source.
pub async fn gather(config: &Config) -> StatusReport {
    gather_with(config, None).await
}

/// [`gather`], reading ClickHouse through `reader` when the command already has one (no second
/// version query); without one, it connects its own.
pub async fn gather_with(config: &Config, reader: Option<&Reader>) -> StatusReport {
    let kafka = &config.kafka;
    // Without a broker (the demo's embedded one is gone), every Kafka source says so.
    let broker = || match kafka.brokers.is_empty() {
        true => Err("no kafka.brokers configured".to_string()),
        false => Ok(()),
    };
    let statuses = async {
        broker()?;
        coupang_ingest::account_statuses(kafka, READ_TIMEOUT).await.map_err(|e| e.to_string())
    };
    let checkpoints = async {
        broker()?;
        coupang_ingest::load_checkpoints(kafka).await.map_err(|e| e.to_string())
    };
    let freshness = async { read_freshness(&config.clickhouse, reader).await.map_err(|e| e.to_string()) };
    let reconciliation = async { read_reconciliation(&config.clickhouse, reader).await.map_err(|e| e.to_string()) };
    let lag_of = |consumes: Consumes| async move {
        broker()?;
        consumes.lag(kafka).await.map_err(|e| e.to_string())
    };
    let transform_lag = lag_of(coupang_transform::consumes(&config.transform, kafka));
    let load_lag = lag_of(coupang_load::consumes(&config.load, kafka));
    let dead_letters = async {
        broker()?;
        etl_core::kafka::dead_letters_by_stage(kafka, READ_TIMEOUT).await.map_err(|e| e.to_string())
    };
    let (statuses, checkpoints, freshness, transform_lag, load_lag, dead_letters, reconciliation) =
        futures::join!(statuses, checkpoints, freshness, transform_lag, load_lag, dead_letters, reconciliation);

    let today = etl_core::time::now_kst().date_naive();
    let accounts = config
        .accounts
        .iter()
        .map(|account| {
            account_view(account, today, statuses.as_ref().ok(), checkpoints.as_ref().ok(), freshness.as_deref().ok())
        })
        .collect();
    StatusReport {
        now: Utc::now(),
        accounts,
        statuses: statuses.map(|_| ()).and(checkpoints.map(|_| ())),
        clickhouse: freshness.map(|_| ()),
        lag: vec![("transform", transform_lag), ("load", load_lag)],
        dead_letters,
        reconciliation,
    }
}

/// The open months' reconciliation: through the command's reader, or a reader of its own.
async fn read_reconciliation(
    config: &ClickHouseConfig,
    reader: Option<&Reader>,
) -> Result<Vec<Reconciliation>, SchemaError> {
    let months = coupang_load::reconciliation::open_months(etl_core::time::now_kst().date_naive());
    match reader {
        Some(reader) => reader.reconciliation(months, None).await,
        None => Reader::connect(config).await?.reconciliation(months, None).await,
    }
}

/// Per account, how current ClickHouse is: through the command's reader, or a reader of its own.
async fn read_freshness(
    config: &ClickHouseConfig,
    reader: Option<&Reader>,
) -> Result<Vec<AccountFreshness>, SchemaError> {
    match reader {
        Some(reader) => reader.account_freshness().await,
        None => Reader::connect(config).await?.account_freshness().await,
    }
}

/// One account's block, from what the sources returned (`None`: that source could not be read).
fn account_view(
    account: &AccountConfig,
    today: NaiveDate,
    statuses: Option<&HashMap<String, AccountStatus>>,
    checkpoints: Option<&HashMap<String, Checkpoint>>,
    freshness: Option<&[AccountFreshness]>,
) -> AccountView {
    AccountView {
        alias: account.alias.clone(),
        vendor_id: account.vendor_id.clone(),
        key_expires_on: account.key_expires_on(),
        key: account.key_health(today),
        status: statuses.and_then(|s| s.get(&account.alias)).cloned(),
        checkpoints: checkpoints
            .map(|all| {
                all.iter()
                    .filter(|(key, c)| c.alias == account.alias && c.is_live(key))
                    .map(|(_, c)| (c.stream.clone(), c.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        loaded: freshness.and_then(|f| f.iter().find(|r| r.account_alias == account.alias)).cloned(),
    }
}

impl StatusReport {
    /// The screen: a block per account, then the pipeline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "coupang-etl status at {} KST", kst(self.now));
        for account in &self.accounts {
            self.render_account(&mut out, account);
        }
        self.render_pipeline(&mut out);
        out
    }

    /// One account's state in a word or a sentence: ok, STOPPED, FAILED, COOLING DOWN.
    fn account_state(&self, account: &AccountView) -> String {
        match (&account.key, account.status.as_ref().and_then(|s| s.error.as_ref())) {
            (KeyHealth::Expired { .. }, _) => "STOPPED: key expired, reissue it in WING".to_string(),
            (_, Some(error))
                if account.status.as_ref().and_then(|s| s.failure)
                    == Some(coupang_ingest::AccountFailure::RequestsFailed) =>
            {
                format!("FAILED (tried again next sweep): {error}")
            }
            (_, Some(error)) => format!("STOPPED: {error}"),
            (_, None) if account.status.as_ref().and_then(|s| s.cooling_down_until).is_some_and(|t| t > self.now) => {
                let until = account.status.as_ref().and_then(|s| s.cooling_down_until).unwrap_or(self.now);
                format!("COOLING DOWN: Coupang keeps answering 429; calls resume at {} KST", kst(until))
            }
            (KeyHealth::ReissueWindow { .. }, None) => "ok, but reissue the key now (window open)".into(),
            (KeyHealth::Valid { .. }, None) => "ok".into(),
        }
    }

    /// An account's block: its state, key, last successful calls, checkpoints and loaded numbers.
    fn render_account(&self, out: &mut String, account: &AccountView) {
        let state = self.account_state(account);
        let _ = writeln!(out, "\n{} (vendor {}): {state}", account.alias, account.vendor_id);
        let days = account.key.days_left_text();
        let _ = writeln!(out, "  key             expires {}, {days}", account.key_expires_on);
        let calls: Vec<String> = match &account.status {
            Some(status) if !status.last_success_by_endpoint.is_empty() => status
                .last_success_by_endpoint
                .iter()
                .map(|(endpoint, at)| format!("{endpoint} {}", self.ago(*at)))
                .collect(),
            Some(AccountStatus { last_success_at: Some(at), .. }) => vec![format!("any {}", self.ago(*at))],
            _ if self.statuses.is_err() => vec!["unknown (see below)".into()],
            _ => vec!["never".into()],
        };
        let _ = writeln!(out, "  last success    {}", calls.join(" · "));
        let swept: Vec<String> = account
            .checkpoints
            .values()
            .map(|c| format!("{} through {} ({})", c.stream, c.swept_through, self.ago(c.completed_at)))
            .collect();
        let swept = if swept.is_empty() { "none yet".to_string() } else { swept.join(" · ") };
        let _ = writeln!(out, "  checkpoints     {swept}");
        let loaded = match &account.loaded {
            Some(f) => format!(
                "newest change {} · last load {} · {} stored rows",
                self.ago_secs(f.newest_change),
                self.ago_secs(f.last_load),
                f.stored_rows
            ),
            None if self.clickhouse.is_err() => "unknown (see below)".into(),
            None => "nothing loaded yet".into(),
        };
        let _ = writeln!(out, "  in ClickHouse   {loaded}");
        let _ = writeln!(out, "  reconciliation  {}", self.reconciliation_of(account));
    }

    /// An account's open months: `2026-10 tied · 2026-11 explained · 2026-12 UNEXPLAINED 1,000 won`.
    fn reconciliation_of(&self, account: &AccountView) -> String {
        let Ok(all) = &self.reconciliation else { return "unknown (see below)".into() };
        let months: Vec<String> = all
            .iter()
            .filter(|r| r.vendor_id == account.vendor_id)
            .map(|r| match r.status {
                ReconciliationStatus::Unexplained => {
                    format!("{} UNEXPLAINED {} won", r.month.format("%Y-%m"), crate::reports::won(r.unexplained))
                }
                status => format!("{} {}", r.month.format("%Y-%m"), status.as_str()),
            })
            .collect();
        if months.is_empty() {
            "no payments, revenue or payouts in the open months".into()
        } else {
            months.join(" · ")
        }
    }

    /// The pipeline's block: consumer lag, dead letters, and the sources that could not be read.
    fn render_pipeline(&self, out: &mut String) {
        let _ = writeln!(out, "\npipeline");
        let lag: Vec<String> = self
            .lag
            .iter()
            .map(|(stage, lag)| match lag {
                Ok(lag) => format!("{stage} {lag}"),
                Err(_) => format!("{stage} unknown"),
            })
            .collect();
        let _ = writeln!(out, "  consumer lag    {} (messages not yet committed)", lag.join(" · "));
        let dead = match &self.dead_letters {
            Ok(counts) if counts.is_empty() => "none".to_string(),
            Ok(counts) => counts.iter().map(|(stage, n)| format!("{stage} {n}")).collect::<Vec<_>>().join(" · "),
            Err(_) => "unknown".into(),
        };
        let _ = writeln!(out, "  dead letters    {dead}");
        let problems = [("Kafka", &self.statuses), ("ClickHouse", &self.clickhouse)];
        for (source, result) in problems {
            if let Err(error) = result {
                let _ = writeln!(out, "  ({source} could not be read: {error})");
            }
        }
        if let (Err(error), Ok(())) = (&self.reconciliation, &self.clickhouse) {
            let _ = writeln!(out, "  (the reconciliation could not be read: {error})");
        }
        if let Some((stage, Err(error))) = self.lag.iter().find(|(_, lag)| lag.is_err()) {
            let _ = writeln!(out, "  ({stage} lag could not be read: {error})");
        }
    }

    /// What a monitoring check needs from the screen, for the exit code (nagios-style: 0 means all is
    /// well). An account shown as STOPPED (key expired, or its last sweep ended with an error) counts
    /// as stopped: the account-status topic keeps the error as text, without its kind. Records in the
    /// dead-letter topic count by stage, until retention removes them. A part that could not be read
    /// makes the check a failure, since nothing can be vouched for then (nagios' UNKNOWN). Lag is left
    /// out: it is normal while a pipeline runs, and its alert needs a trend (docs/operations.md).
    pub fn findings(&self) -> Findings {
        let mut findings = Findings::default();
        for account in &self.accounts {
            let expired = matches!(account.key, KeyHealth::Expired { .. });
            let failed = account.status.as_ref().filter(|s| s.error.is_some());
            if expired {
                findings.account_failed(&account.alias, coupang_ingest::AccountFailure::Stopped);
            } else if let Some(status) = failed {
                // Statuses written before the kind was recorded count as stopped, as they did.
                let failure = status.failure.unwrap_or(coupang_ingest::AccountFailure::Stopped);
                findings.account_failed(&account.alias, failure);
            }
        }
        if let Ok(counts) = &self.dead_letters {
            for (stage, records) in counts {
                findings.dead_lettered_by_stage(stage, *records);
            }
        }
        // The screen shows each error; the summary line only names what could not be read.
        let mut unreadable = Vec::new();
        if self.statuses.is_err() {
            unreadable.push("Kafka (account statuses, checkpoints)".to_string());
        }
        if self.clickhouse.is_err() {
            unreadable.push("ClickHouse".to_string());
        }
        unreadable.extend(self.lag.iter().filter(|(_, lag)| lag.is_err()).map(|(stage, _)| format!("{stage} lag")));
        if self.dead_letters.is_err() {
            unreadable.push("dead letters".to_string());
        }
        if !unreadable.is_empty() {
            findings.failures.push(format!("could not read {}", unreadable.join(", ")));
        }
        findings
    }

    fn ago(&self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&etl_core::time::kst()).format("%m-%d %H:%M:%S");
        format!("{local}, {} ago", human((self.now - at).num_seconds()))
    }

    fn ago_secs(&self, unix: u32) -> String {
        DateTime::from_timestamp(i64::from(unix), 0).map_or_else(|| "never".into(), |at| self.ago(at))
    }
}

/// A moment as Asia/Seoul wall-clock time.
fn kst(t: DateTime<Utc>) -> String {
    t.with_timezone(&etl_core::time::kst()).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `42 s`, `5 min`, `3 h`, `2 d`.
fn human(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7_199 => format!("{} min", s / 60),
        7_200..=172_799 => format!("{} h", s / 3_600),
        _ => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(human(-3), "0 s");
        assert_eq!(human(59), "59 s");
        assert_eq!(human(600), "10 min");
        assert_eq!(human(3 * 3_600), "3 h");
        assert_eq!(human(3 * 86_400), "3 d");
    }

    #[test]
    fn unreadable_sources_are_named_and_the_rest_still_shows() {
        let now = Utc::now();
        let report = StatusReport {
            now,
            accounts: vec![AccountView {
                alias: "shop-a".into(),
                vendor_id: "A00012345".into(),
                key_expires_on: NaiveDate::from_ymd_opt(2027, 4, 1).unwrap(),
                key: KeyHealth::Valid { days_left: 129 },
                status: None,
                checkpoints: BTreeMap::new(),
                loaded: Some(AccountFreshness {
                    account_alias: "shop-a".into(),
                    stored_rows: 12,
                    newest_change: (now.timestamp() - 300) as u32,
                    last_load: (now.timestamp() - 20) as u32,
                }),
            }],
            statuses: Err("broker down".into()),
            clickhouse: Ok(()),
            lag: vec![("transform", Err("broker down".into())), ("load", Ok(0))],
            dead_letters: Err("broker down".into()),
            reconciliation: Ok(vec![]),
        };
        let text = report.render();
        assert!(text.contains("shop-a (vendor A00012345): ok"), "{text}");
        assert!(text.contains("expires 2027-04-01, 129 days left"), "{text}");
        assert!(text.contains("last success    unknown (see below)"), "{text}");
        assert!(text.contains("newest change") && text.contains("5 min ago") && text.contains("20 s ago"), "{text}");
        assert!(text.contains("transform unknown · load 0"), "{text}");
        assert!(text.contains("(Kafka could not be read: broker down)"), "{text}");
        let findings = report.findings();
        assert_eq!(findings.outcome(), crate::exit::Outcome::Failure, "what cannot be read cannot be vouched for");
        assert_eq!(
            findings.summary().as_deref(),
            Some("exit 1 (failure): could not read Kafka (account statuses, checkpoints), transform lag, dead letters")
        );
    }

    fn view(alias: &str, key: KeyHealth, error: Option<&str>) -> AccountView {
        let now = Utc::now();
        AccountView {
            alias: alias.into(),
            vendor_id: "A00012345".into(),
            key_expires_on: NaiveDate::from_ymd_opt(2027, 4, 1).unwrap(),
            key,
            // As ingest publishes it to the account-status topic (fields it added later default).
            status: Some(
                serde_json::from_value(serde_json::json!({
                    "alias": alias, "vendor_id": "A00012345", "last_success_at": now, "error": error, "updated_at": now
                }))
                .unwrap(),
            ),
            checkpoints: BTreeMap::new(),
            loaded: None,
        }
    }

    #[test]
    fn the_exit_code_says_whether_an_account_is_stopped_or_records_were_dead_lettered() {
        use crate::exit::Outcome;
        let healthy = StatusReport {
            now: Utc::now(),
            accounts: vec![
                view("shop-a", KeyHealth::Valid { days_left: 100 }, None),
                view("shop-b", KeyHealth::ReissueWindow { days_left: 9 }, None),
            ],
            statuses: Ok(()),
            clickhouse: Ok(()),
            lag: vec![("transform", Ok(120)), ("load", Ok(0))],
            dead_letters: Ok(BTreeMap::new()),
            reconciliation: Ok(vec![]),
        };
        // A key to reissue soon and lag while the pipeline works are no reason to page anyone.
        assert_eq!(healthy.findings().outcome(), Outcome::Success);

        let mut dead_letters = healthy.clone();
        dead_letters.dead_letters = Ok([("transform".to_string(), 2), ("load".to_string(), 1)].into());
        assert_eq!(
            dead_letters.findings().summary().as_deref(),
            Some("exit 3 (records dead-lettered): 3 records dead-lettered (stage load 1, stage transform 2)")
        );

        let mut stopped = dead_letters.clone();
        stopped.accounts.push(view("shop-c", KeyHealth::Valid { days_left: 90 }, Some("account shop-c: 401")));
        stopped.accounts.push(view("shop-d", KeyHealth::Expired { days_ago: 2 }, None));
        assert_eq!(stopped.findings().outcome(), Outcome::AccountStopped);
        assert_eq!(stopped.findings().stopped, ["shop-c".to_string(), "shop-d".to_string()].into());
    }
}
