//! What ingest remembers about accounts from one sweep to the next, in memory: change filters,
//! checkpoints, last successful calls, stopped accounts, and the once-a-day chores already done.

use chrono::{DateTime, NaiveDate, Utc};
use etl_core::account::AccountConfig;
use etl_core::secret::Secret;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::bookkeeping::Checkpoint;
use super::change_filter::ChangeFilter;

/// What ingest remembers about accounts between sweeps.
#[derive(Default)]
pub(super) struct AccountTracker {
    /// Per account, when each endpoint last answered with success.
    pub(super) last_success: HashMap<String, BTreeMap<String, DateTime<Utc>>>,
    /// Accounts stopped by a rejected key, with the key that was rejected and why.
    pub(super) stopped: HashMap<String, Stopped>,
    /// The day each account's expiry warning was last logged.
    pub(super) warned_on: HashMap<String, NaiveDate>,
    /// What was last sent per account, so unchanged records are not sent again.
    pub(super) filters: HashMap<String, ChangeFilter>,
    /// The latest checkpoint per (alias, stream).
    pub(super) checkpoints: HashMap<(String, String), Checkpoint>,
    /// The day each account's revenue was last swept (once a day is enough).
    pub(super) revenue_swept_on: HashMap<String, NaiveDate>,
}

impl AccountTracker {
    /// The reason an account is still stopped: its key was rejected, has not changed since, and was
    /// last tried less than `retry_after` ago (a key can start working late, an allow-list be fixed).
    pub(super) fn still_stopped(
        &self,
        account: &AccountConfig,
        now: DateTime<Utc>,
        retry_after: Duration,
    ) -> Option<String> {
        let stopped = self.stopped.get(&account.alias)?;
        let same_key = stopped.access_key == account.access_key && stopped.secret_key == account.secret_key;
        let retry_at = stopped.at + chrono::Duration::from_std(retry_after).unwrap_or(chrono::Duration::MAX);
        (same_key && now < retry_at).then(|| {
            let retry_at = retry_at.with_timezone(&etl_core::time::kst()).format("%Y-%m-%d %H:%M KST");
            format!("{} (stopped until its keys change in the config; tried again at {retry_at})", stopped.error)
        })
    }

    pub(super) fn stop(&mut self, account: &AccountConfig, error: &str, at: DateTime<Utc>) {
        let stopped = Stopped {
            access_key: account.access_key.clone(),
            secret_key: account.secret_key.clone(),
            error: error.to_string(),
            at,
        };
        self.stopped.insert(account.alias.clone(), stopped);
    }
}

/// An account stopped by a rejected key: the key that was rejected, why, and when.
pub(super) struct Stopped {
    access_key: String,
    secret_key: Secret,
    error: String,
    at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(access: &str, secret: &str) -> AccountConfig {
        AccountConfig {
            alias: "brand-a".into(),
            vendor_id: "A00012345".into(),
            access_key: access.into(),
            secret_key: Secret::new(secret),
            key_issued_on: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        }
    }

    #[test]
    fn a_stopped_account_resumes_when_its_keys_change_or_its_retry_time_comes() {
        let mut tracker = AccountTracker::default();
        let old = account("ak", "sk");
        let stopped_at = Utc::now();
        let hour = Duration::from_secs(3_600);
        tracker.stop(&old, "account brand-a: Coupang rejected the key (HTTP 401)", stopped_at);
        let reason = tracker.still_stopped(&old, stopped_at, hour).unwrap();
        assert!(reason.contains("HTTP 401") && reason.contains("tried again at"), "{reason}");
        assert!(tracker.still_stopped(&account("ak", "new-secret"), stopped_at, hour).is_none());
        assert!(tracker.still_stopped(&account("new-ak", "new-secret"), stopped_at, hour).is_none());
        let later = stopped_at + chrono::Duration::minutes(59);
        assert!(tracker.still_stopped(&old, later, hour).is_some());
        assert!(tracker.still_stopped(&old, later + chrono::Duration::minutes(1), hour).is_none(), "tried again");
    }
}
