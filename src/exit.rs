//! Exit codes of the commands that end by themselves (`run` and `ingest` with `--from/--to`,
//! `backfill`, `demo`, `status`, `migrate`, `validate`, `accounts`, `summary`, `reconcile`, `sim truth`), so that cron,
//! Airflow or a monitoring check tells a clean run from one that needs a person without reading logs.
//!
//! | code | [`Outcome`] | meaning |
//! |---|---|---|
//! | 0 | `Success` | done |
//! | 1 | `Failure` | the command could not do its job: bad config, Kafka or ClickHouse unreachable, a stage failed |
//! | 2 | (clap) | usage error: unknown option, missing value |
//! | 3 | `RecordsDeadLettered` | done, but records went to the dead-letter topic |
//! | 4 | `Interrupted` | Ctrl-C or SIGTERM before the end |
//! | 5 | `RequestsGaveUp` | an account's requests failed for good (retries exhausted, refused) |
//! | 6 | `AccountStopped` | an account's key was rejected or has expired |
//! | 7 | `Unreconciled` | `reconcile` found payouts and revenue-history apart beyond rounding, with no reason |
//!
//! When several happen the most severe one gives the code: 1, then 7, 6, 5, 4, 3. Apart from 1 (nothing
//! else can be trusted when the command itself failed), a higher code is a worse outcome. Follow mode
//! (`run`, `ingest`, `transform`, `load`, `sim` without a range) is not covered: it runs until a signal
//! and exits 0 then, or 1 when a stage fails.

use coupang_ingest::{AccountFailure, IngestError, IngestReport};
use std::collections::{BTreeMap, BTreeSet};

use crate::pipeline::PipelineError;

/// How a self-ending command ended, as its exit code says it. The variants are declared from the least
/// to the most severe, so `Ord` is the precedence: of several outcomes, the greatest is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Everything the command set out to do was done.
    Success,
    /// Done, but some records could not be read and went to the dead-letter topic: the numbers lack
    /// them until someone reads their `dlq.reason`.
    RecordsDeadLettered,
    /// Ctrl-C or SIGTERM ended the command before it finished; run it again (a backfill resumes).
    Interrupted,
    /// An account's requests failed for good (429s, 5xx or timeouts after every retry, or a request
    /// Coupang refused): part of its range is missing, and running again may well succeed.
    RequestsGaveUp,
    /// An account's key was rejected or has expired: nothing comes from it until a person reissues or
    /// re-links the key.
    AccountStopped,
    /// Coupang's payouts and its revenue-history disagree for an account and month beyond rounding, and
    /// no reason explains it: money a finance team cannot sign off until a person looks.
    Unreconciled,
    /// The command could not do its job: a bad config, Kafka or ClickHouse unreachable, a stage that
    /// failed, the demo not matching its ground truth.
    Failure,
}

/// clap's own exit code for a command line it cannot parse; no [`Outcome`] uses it.
pub const USAGE_ERROR: u8 = 2;

/// The exit codes as `--help` lists them (a unit test keeps this text in step with [`Outcome`]).
pub const HELP: &str = "\
Exit codes of the commands that end by themselves (the most severe wins: 1, then 7 > 6 > 5 > 4 > 3):
  0  success
  1  failure: bad config, Kafka or ClickHouse unreachable, a stage failed
  2  usage error
  3  records dead-lettered
  4  interrupted (Ctrl-C or SIGTERM) before the end
  5  requests gave up (retries exhausted, or refused)
  6  account stopped (key rejected or expired)
  7  unexplained reconciliation gap (reconcile)";

impl Outcome {
    /// Every outcome, from the least to the most severe.
    pub const ALL: [Outcome; 7] = [
        Outcome::Success,
        Outcome::RecordsDeadLettered,
        Outcome::Interrupted,
        Outcome::RequestsGaveUp,
        Outcome::AccountStopped,
        Outcome::Unreconciled,
        Outcome::Failure,
    ];

    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::RecordsDeadLettered => 3,
            Outcome::Interrupted => 4,
            Outcome::RequestsGaveUp => 5,
            Outcome::AccountStopped => 6,
            Outcome::Unreconciled => 7,
        }
    }

    /// A few words for the summary line.
    pub fn meaning(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::RecordsDeadLettered => "records dead-lettered",
            Outcome::Interrupted => "interrupted",
            Outcome::RequestsGaveUp => "requests gave up",
            Outcome::AccountStopped => "account stopped",
            Outcome::Unreconciled => "unexplained reconciliation gap",
        }
    }

    pub fn of_account_failure(failure: AccountFailure) -> Outcome {
        match failure {
            AccountFailure::Stopped => Outcome::AccountStopped,
            AccountFailure::RequestsFailed => Outcome::RequestsGaveUp,
        }
    }

    /// The outcome of an ingest error that ended a command: an account's own failure (a backfill's
    /// only account) by its kind, anything else a failure.
    pub fn of_ingest_error(error: &IngestError) -> Outcome {
        match error {
            IngestError::Account { failure, .. } => Outcome::of_account_failure(*failure),
            _ => Outcome::Failure,
        }
    }

    /// The outcome of a pipeline error that ended a command.
    pub fn of_pipeline_error(error: &PipelineError) -> Outcome {
        match error {
            PipelineError::Interrupted => Outcome::Interrupted,
            PipelineError::Ingest(ingest) => Outcome::of_ingest_error(ingest),
            _ => Outcome::Failure,
        }
    }
}

impl From<Outcome> for std::process::ExitCode {
    fn from(outcome: Outcome) -> Self {
        std::process::ExitCode::from(outcome.code())
    }
}

/// What a command that ended by itself found wrong, per account and stage; the exit [`Outcome`] and
/// the one-line summary on stderr are made from it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    /// Accounts whose key was rejected or has expired.
    pub stopped: BTreeSet<String>,
    /// Accounts whose requests failed for good.
    pub gave_up: BTreeSet<String>,
    /// Records ingest dead-lettered, by account alias.
    pub dead_lettered_by_account: BTreeMap<String, u64>,
    /// Records the transform and load stages dead-lettered, by stage (they are not per account).
    pub dead_lettered_by_stage: BTreeMap<String, u64>,
    /// A signal ended the command before it finished.
    pub interrupted: bool,
    /// What the command could not do (e.g. read Kafka): any of it makes the outcome a failure.
    pub failures: Vec<String>,
    /// Account months whose payouts and revenue-history differ with no reason (`alias 2026-09 1,000`).
    pub unreconciled: Vec<String>,
}

impl Findings {
    /// The accounts of an ingest report that stopped, gave up or dead-lettered records.
    pub fn of_ingest(report: &IngestReport) -> Findings {
        let mut findings = Findings::default();
        for (alias, account) in &report.accounts {
            match (account.failure, &account.error) {
                (Some(failure), _) => findings.account_failed(alias, failure),
                // An error of no stated kind: not one the key caused, so the requests failed.
                (None, Some(_)) => findings.account_failed(alias, AccountFailure::RequestsFailed),
                (None, None) => {}
            }
            findings.dead_lettered_by_account(alias, account.bad_records());
        }
        findings
    }

    pub fn account_failed(&mut self, alias: &str, failure: AccountFailure) {
        match failure {
            AccountFailure::Stopped => self.stopped.insert(alias.to_string()),
            AccountFailure::RequestsFailed => self.gave_up.insert(alias.to_string()),
        };
    }

    pub fn dead_lettered_by_account(&mut self, alias: &str, records: u64) {
        if records > 0 {
            *self.dead_lettered_by_account.entry(alias.to_string()).or_default() += records;
        }
    }

    pub fn dead_lettered_by_stage(&mut self, stage: &str, records: u64) {
        if records > 0 {
            *self.dead_lettered_by_stage.entry(stage.to_string()).or_default() += records;
        }
    }

    /// The most severe of what was found.
    pub fn outcome(&self) -> Outcome {
        let dead_lettered = self.dead_lettered_records() > 0;
        [
            (!self.failures.is_empty(), Outcome::Failure),
            (!self.unreconciled.is_empty(), Outcome::Unreconciled),
            (!self.stopped.is_empty(), Outcome::AccountStopped),
            (!self.gave_up.is_empty(), Outcome::RequestsGaveUp),
            (self.interrupted, Outcome::Interrupted),
            (dead_lettered, Outcome::RecordsDeadLettered),
        ]
        .into_iter()
        .filter_map(|(found, outcome)| found.then_some(outcome))
        .max()
        .unwrap_or(Outcome::Success)
    }

    pub fn dead_lettered_records(&self) -> u64 {
        self.dead_lettered_by_account.values().chain(self.dead_lettered_by_stage.values()).sum()
    }

    /// One line naming the exit code, then everything found, most severe first, with the accounts and
    /// counts; `None` on success.
    ///
    /// `exit 6 (account stopped): 1 account stopped (shop-c); 1 account's requests gave up (shop-b);
    /// 3 records dead-lettered (shop-a 2, stage transform 1)`
    pub fn summary(&self) -> Option<String> {
        let outcome = self.outcome();
        if outcome == Outcome::Success {
            return None;
        }
        let names = |aliases: &BTreeSet<String>| aliases.iter().cloned().collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        parts.extend(self.failures.iter().cloned());
        if !self.unreconciled.is_empty() {
            parts.push(format!("unexplained gap ({})", self.unreconciled.join(", ")));
        }
        if !self.stopped.is_empty() {
            let noun = if self.stopped.len() == 1 { "account" } else { "accounts" };
            parts.push(format!("{} {noun} stopped ({})", self.stopped.len(), names(&self.stopped)));
        }
        if !self.gave_up.is_empty() {
            let noun = if self.gave_up.len() == 1 { "account's" } else { "accounts'" };
            parts.push(format!("{} {noun} requests gave up ({})", self.gave_up.len(), names(&self.gave_up)));
        }
        if self.interrupted {
            parts.push("interrupted before the end".into());
        }
        let records = self.dead_lettered_records();
        if records > 0 {
            let by_account = self.dead_lettered_by_account.iter().map(|(alias, n)| format!("{alias} {n}"));
            let by_stage = self.dead_lettered_by_stage.iter().map(|(stage, n)| format!("stage {stage} {n}"));
            let sources = by_account.chain(by_stage).collect::<Vec<_>>().join(", ");
            let noun = if records == 1 { "record" } else { "records" };
            parts.push(format!("{records} {noun} dead-lettered ({sources})"));
        }
        Some(format!("exit {} ({}): {}", outcome.code(), outcome.meaning(), parts.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coupang_ingest::AccountReport;

    #[test]
    fn every_outcome_has_its_documented_code() {
        let table = [
            (Outcome::Success, 0, "success"),
            (Outcome::Failure, 1, "failure"),
            (Outcome::RecordsDeadLettered, 3, "records dead-lettered"),
            (Outcome::Interrupted, 4, "interrupted"),
            (Outcome::RequestsGaveUp, 5, "requests gave up"),
            (Outcome::AccountStopped, 6, "account stopped"),
            (Outcome::Unreconciled, 7, "unexplained reconciliation gap"),
        ];
        assert_eq!(table.len(), Outcome::ALL.len(), "the table names every outcome");
        for (outcome, code, meaning) in table {
            assert_eq!((outcome.code(), outcome.meaning()), (code, meaning), "{outcome:?}");
            assert_ne!(outcome.code(), USAGE_ERROR, "2 stays clap's usage error");
            assert!(HELP.contains(&format!("  {code}  {meaning}")), "--help lists {code} {meaning}:\n{HELP}");
        }
        let mut codes: Vec<u8> = Outcome::ALL.iter().map(|o| o.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Outcome::ALL.len(), "codes are distinct");
    }

    #[test]
    fn the_most_severe_outcome_wins_and_higher_codes_are_worse_apart_from_failure() {
        let mut sorted = Outcome::ALL;
        sorted.sort();
        assert_eq!(sorted, Outcome::ALL, "ALL is in the order of severity");
        let codes: Vec<u8> = Outcome::ALL[..6].iter().map(|o| o.code()).collect();
        assert_eq!(codes, [0, 3, 4, 5, 6, 7]);
        assert_eq!(Outcome::ALL.iter().max(), Some(&Outcome::Failure));

        let everything = Findings {
            stopped: ["shop-c".to_string()].into(),
            gave_up: ["shop-b".to_string()].into(),
            dead_lettered_by_account: [("shop-a".to_string(), 2)].into(),
            dead_lettered_by_stage: [("transform".to_string(), 1)].into(),
            interrupted: true,
            failures: vec!["Kafka could not be read".into()],
            unreconciled: vec!["shop-d 2026-09 1,000".into()],
        };
        // Take away the most severe finding, one after the other.
        let mut findings = everything.clone();
        assert_eq!(findings.outcome(), Outcome::Failure);
        findings.failures.clear();
        assert_eq!(findings.outcome(), Outcome::Unreconciled);
        findings.unreconciled.clear();
        assert_eq!(findings.outcome(), Outcome::AccountStopped);
        findings.stopped.clear();
        assert_eq!(findings.outcome(), Outcome::RequestsGaveUp);
        findings.gave_up.clear();
        assert_eq!(findings.outcome(), Outcome::Interrupted);
        findings.interrupted = false;
        assert_eq!(findings.outcome(), Outcome::RecordsDeadLettered);
        findings.dead_lettered_by_account.clear();
        assert_eq!(findings.outcome(), Outcome::RecordsDeadLettered, "stage dead letters count too");
        findings.dead_lettered_by_stage.clear();
        assert_eq!(findings.outcome(), Outcome::Success);
        assert_eq!(findings.summary(), None);
        assert_eq!(Findings::default(), findings);

        let mut no_failure = everything;
        no_failure.failures.clear();
        no_failure.unreconciled.clear();
        assert_eq!(
            no_failure.summary().as_deref(),
            Some(
                "exit 6 (account stopped): 1 account stopped (shop-c); 1 account's requests gave up (shop-b); \
                 interrupted before the end; 3 records dead-lettered (shop-a 2, stage transform 1)"
            )
        );
    }

    fn account(error: Option<&str>, failure: Option<AccountFailure>, bad_records: u64) -> AccountReport {
        let dead_lettered = (0..bad_records).map(|n| format!("ordersheets shipmentBoxId={n} paidAt")).collect();
        AccountReport { error: error.map(String::from), failure, dead_lettered, ..AccountReport::default() }
    }

    #[test]
    fn an_ingest_report_names_its_accounts_by_what_happened_to_them() {
        let mut report = IngestReport::default();
        report.accounts.insert("ok".into(), account(None, None, 0));
        report.accounts.insert("key".into(), account(Some("401"), Some(AccountFailure::Stopped), 0));
        report.accounts.insert("busy".into(), account(Some("500 × 6"), Some(AccountFailure::RequestsFailed), 1));
        report.accounts.insert("untyped".into(), account(Some("?"), None, 0));
        report.accounts.insert("poison".into(), account(None, None, 2));
        let findings = Findings::of_ingest(&report);
        assert_eq!(findings.stopped, ["key".to_string()].into());
        assert_eq!(findings.gave_up, ["busy".to_string(), "untyped".to_string()].into());
        assert_eq!(findings.dead_lettered_by_account, [("busy".to_string(), 1), ("poison".to_string(), 2)].into());
        assert_eq!(findings.outcome(), Outcome::AccountStopped);
        assert_eq!(
            findings.summary().as_deref(),
            Some(
                "exit 6 (account stopped): 1 account stopped (key); 2 accounts' requests gave up (busy, untyped); \
                 3 records dead-lettered (busy 1, poison 2)"
            )
        );

        // Dead letters alone: the run finished, and the code says some records need a look.
        let mut report = IngestReport::default();
        report.accounts.insert("shop-a".into(), account(None, None, 1));
        let findings = Findings::of_ingest(&report);
        assert_eq!(findings.outcome(), Outcome::RecordsDeadLettered);
        assert_eq!(
            findings.summary().as_deref(),
            Some("exit 3 (records dead-lettered): 1 record dead-lettered (shop-a 1)")
        );
    }

    #[test]
    fn errors_that_end_a_command_map_to_their_outcome() {
        let account_error = |failure| IngestError::Account { message: "account a: …".into(), failure };
        assert_eq!(Outcome::of_ingest_error(&account_error(AccountFailure::Stopped)), Outcome::AccountStopped);
        assert_eq!(Outcome::of_ingest_error(&account_error(AccountFailure::RequestsFailed)), Outcome::RequestsGaveUp);
        assert_eq!(
            Outcome::of_ingest_error(&IngestError::Config(etl_core::invalid::InvalidSetting::new("ingest", "bad"))),
            Outcome::Failure
        );
        assert_eq!(Outcome::of_pipeline_error(&PipelineError::Interrupted), Outcome::Interrupted);
        assert_eq!(Outcome::of_pipeline_error(&PipelineError::StageStopped("load")), Outcome::Failure);
        let wrapped = PipelineError::Ingest(account_error(AccountFailure::Stopped));
        assert_eq!(Outcome::of_pipeline_error(&wrapped), Outcome::AccountStopped);
    }
}
