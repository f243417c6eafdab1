//! Korea time. Payment dates are Asia/Seoul calendar days; Korea has kept UTC+9 without daylight
//! saving since 1988, so a fixed offset is exact for every date this pipeline sees.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};

pub fn kst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset")
}

/// The Asia/Seoul calendar day of an instant given in epoch milliseconds.
pub fn kst_date_of_millis(epoch_millis: i64) -> Option<NaiveDate> {
    Utc.timestamp_millis_opt(epoch_millis).single().map(|t| t.with_timezone(&kst()).date_naive())
}

/// Days since 1970-01-01 (ClickHouse `Date`, Avro `date`).
pub fn days_since_epoch(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

/// The day `days` after 1970-01-01; `None` beyond chrono's range (about ±262,000 years).
pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_epoch_days(days)
}

/// Epoch milliseconds of midnight starting the Korean day `days` after 1970-01-01: what
/// [`kst_midnight_millis`] gives for that day, in arithmetic (the transform asks once per revenue
/// row it compares, and chrono's calendar and offset arithmetic was ~3% of its instructions).
pub fn kst_midnight_millis_of_days(days: i32) -> Option<i64> {
    const MILLIS_PER_DAY: i64 = 86_400_000;
    const KST_OFFSET_MILLIS: i64 = 9 * 3_600_000;
    date_from_days(days)?;
    Some(i64::from(days) * MILLIS_PER_DAY - KST_OFFSET_MILLIS)
}

/// Epoch milliseconds of midnight starting a Korean day.
pub fn kst_midnight_millis(day: NaiveDate) -> Option<i64> {
    Some(day.and_time(chrono::NaiveTime::MIN).and_local_timezone(kst()).single()?.timestamp_millis())
}

pub fn now_kst() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&kst())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_date_is_the_korean_day() {
        // 2025-07-28 15:30 UTC is 2025-07-29 00:30 in Seoul.
        let t = Utc.with_ymd_and_hms(2025, 7, 28, 15, 30, 0).unwrap().timestamp_millis();
        assert_eq!(kst_date_of_millis(t), NaiveDate::from_ymd_opt(2025, 7, 29));
    }

    #[test]
    fn midnight_of_a_day_number_is_midnight_of_its_date() {
        let days = [-719_162, -1, 0, 1, 19_000, 20_392, 2_000_000, i32::MIN, i32::MAX];
        for day in days.into_iter().chain((-400..400).map(|i| 20_000 + i * 37)) {
            assert_eq!(kst_midnight_millis_of_days(day), date_from_days(day).and_then(kst_midnight_millis), "{day}");
        }
        // 2026-10-05 00:00 in Seoul is 2026-10-04 15:00 UTC.
        let day = days_since_epoch(NaiveDate::from_ymd_opt(2026, 10, 5).unwrap());
        let expected = Utc.with_ymd_and_hms(2026, 10, 4, 15, 0, 0).unwrap().timestamp_millis();
        assert_eq!(kst_midnight_millis_of_days(day), Some(expected));
    }

    #[test]
    fn day_numbers_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 10, 31).unwrap();
        assert_eq!(date_from_days(days_since_epoch(d)), Some(d));
        assert_eq!(days_since_epoch(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
        assert_eq!(date_from_days(-1), NaiveDate::from_ymd_opt(1969, 12, 31));
        assert_eq!((date_from_days(i32::MAX), date_from_days(i32::MIN)), (None, None));
    }
}
