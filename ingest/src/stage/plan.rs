//! What a sweep collects: the streams, and the days of each, split into windows the API accepts.

use chrono::{NaiveDate, NaiveDateTime};

use crate::client::{RecognitionMonth, MAX_WINDOW_DAYS};

/// The things ingest collects per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    OrderSheets,
    ReturnRequests,
    Revenue,
    /// Payouts, by revenue-recognition month: a plan's days stand for the months they fall in.
    Settlements,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::OrderSheets => "ordersheets",
            Stream::ReturnRequests => "returnrequests",
            Stream::Revenue => "revenue",
            Stream::Settlements => "settlements",
        }
    }
}

/// One step of an account's sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// A stream's records of `from..=to` (creation, recognition or payout days): every listing,
    /// recorded as a checkpoint when complete.
    Days(Stream, NaiveDate, NaiveDate),
    /// Order sheets created in a minute window (Korea time, at most 24 hours) in the statuses a new
    /// order has: follow mode's cheap poll between sweeps, so new orders arrive within a poll or two.
    NewOrders { created_from: NaiveDateTime, created_to: NaiveDateTime },
}

/// What to collect for one account, swept in this order.
pub(super) type Plan = Vec<Step>;

/// Splits `from..=to` into API-legal windows of at most 31 days.
pub(super) fn windows(from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = (start + chrono::Duration::days(MAX_WINDOW_DAYS - 1)).min(to);
        out.push((start, end));
        start = end + chrono::Duration::days(1);
    }
    out
}

/// The recognition months `from..=to` touch, each as its first and last day (one call each).
pub(super) fn months(from: NaiveDate, to: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut month = RecognitionMonth::of(from);
    while from <= to && month.first_day() <= to {
        out.push((month.first_day(), month.last_day()));
        month = month.next();
    }
    out
}

/// Where follow mode re-reads payouts from: the first day of the month two months back, since a
/// month's RESERVE payout stays scheduled (`SUBJECT`, its figures may change) until early in the month
/// after next.
pub(super) fn payouts_open_since(today: NaiveDate) -> NaiveDate {
    let this_month = RecognitionMonth::of(today).first_day();
    let last_month = RecognitionMonth::of(this_month - chrono::Duration::days(1)).first_day();
    RecognitionMonth::of(last_month - chrono::Duration::days(1)).first_day()
}

/// The last day whose receipts a collection of days up to `to` reads: a cancel or return can be
/// requested weeks after the payment day, and a box cancelled or returned whole leaves the order-sheet
/// lists, so receipts are read for a month past the range (up to today).
pub(super) fn receipts_until(to: NaiveDate, yesterday: NaiveDate) -> NaiveDate {
    let today = yesterday + chrono::Duration::days(1);
    (to + chrono::Duration::days(MAX_WINDOW_DAYS)).min(today).max(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Duration::days(n)
    }

    proptest! {
        #[test]
        fn windows_cover_the_range_exactly_and_stay_legal(start in 0i64..400, len in 0i64..400) {
            let (from, to) = (day(start), day(start + len));
            let ws = windows(from, to);
            prop_assert_eq!(ws.first().unwrap().0, from);
            prop_assert_eq!(ws.last().unwrap().1, to);
            for pair in ws.windows(2) {
                prop_assert_eq!(pair[0].1 + chrono::Duration::days(1), pair[1].0);
            }
            for (a, b) in ws {
                prop_assert!(a <= b && (b - a).num_days() < MAX_WINDOW_DAYS);
            }
        }
    }

    #[test]
    fn payouts_are_read_by_month() {
        let d = |text: &str| text.parse::<NaiveDate>().unwrap();
        let expected = vec![(d("2026-09-01"), d("2026-09-30")), (d("2026-10-01"), d("2026-10-31"))];
        assert_eq!(months(d("2026-09-15"), d("2026-10-02")), expected);
        assert!(months(d("2026-10-02"), d("2026-09-15")).is_empty());
        assert_eq!(payouts_open_since(d("2026-11-30")), d("2026-09-01"));
        assert_eq!(payouts_open_since(d("2026-01-05")), d("2025-11-01"));
    }

    #[test]
    fn empty_when_reversed() {
        assert!(windows(day(5), day(4)).is_empty());
    }
}
