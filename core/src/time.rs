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

pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(days as i64))
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
    fn day_numbers_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 10, 31).unwrap();
        assert_eq!(date_from_days(days_since_epoch(d)), Some(d));
        assert_eq!(days_since_epoch(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
    }
}
