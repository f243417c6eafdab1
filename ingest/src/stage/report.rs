//! What a run reports: per account, what its sweep read, sent and dead-lettered, and why it stopped.

use std::collections::{BTreeMap, BTreeSet};

use super::error::AccountFailure;

/// What one account's sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AccountReport {
    pub alias: String,
    pub vendor_id: String,
    /// Shipment boxes read from the API (a box read twice, e.g. listed again after a status change,
    /// counts twice).
    pub boxes: u64,
    /// Distinct shipment boxes this process has read for the account (in a range collection: the
    /// range's).
    pub distinct_boxes: u64,
    /// Raw events acknowledged by the broker.
    pub events: u64,
    /// Records that could not be read, even alone, and went to the dead-letter topic, as
    /// `endpoint record-id field` (each is dead-lettered once per sweep).
    pub dead_lettered: BTreeSet<String>,
    /// Cancel/return receipts acknowledged by the broker.
    pub receipts: u64,
    /// Revenue rows acknowledged by the broker.
    pub revenue_rows: u64,
    /// Payout rows acknowledged by the broker.
    pub payouts: u64,
    /// Requests sent to Coupang for the account's plan, every attempt counted (not the polls of an
    /// account done before the others, made while they still sweep).
    pub api_calls: u64,
    /// Orders asked for alone because a receipt named them and their boxes were no longer listed.
    pub orders_fetched: u64,
    /// Records not sent because they had not changed since they were last sent (re-swept windows,
    /// records repeated across pages).
    pub unchanged: u64,
    /// Per stream, the source time (epoch ms) of the newest change seen: its age is the freshness.
    pub newest_change: BTreeMap<&'static str, i64>,
    /// Why the account stopped, when it did (e.g. its key was rejected).
    pub error: Option<String>,
    /// The kind of `error`.
    pub failure: Option<AccountFailure>,
}

#[derive(Debug, Default, Clone)]
pub struct IngestReport {
    /// By account alias.
    pub accounts: BTreeMap<String, AccountReport>,
}

impl AccountReport {
    /// How many records went to the dead-letter topic.
    pub fn bad_records(&self) -> u64 {
        self.dead_lettered.len() as u64
    }
}

impl IngestReport {
    /// Over all accounts: (boxes read, order-sheet events, receipts, revenue rows) sent.
    pub fn ingest_totals(&self) -> (u64, u64, u64, u64) {
        self.accounts
            .values()
            .fold((0, 0, 0, 0), |t, a| (t.0 + a.boxes, t.1 + a.events, t.2 + a.receipts, t.3 + a.revenue_rows))
    }
}
