//! A linked Coupang vendor account: what the user typed when linking it (alias, vendor code, keys).

use crate::invalid::InvalidSetting;
use crate::secret::Secret;
use chrono::NaiveDate;
use serde::Deserialize;

/// Coupang keys are valid for 180 days from issue (coupang-api.md §2).
pub const KEY_VALIDITY_DAYS: i64 = 180;
/// The reissue button opens this many days before expiry.
pub const KEY_REISSUE_WINDOW_DAYS: i64 = 14;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The user's name for this account (e.g. a brand); shown in logs, errors and BI views.
    pub alias: String,
    /// Coupang vendor code, `A` or `C` followed by 8 digits.
    pub vendor_id: String,
    pub access_key: String,
    pub secret_key: Secret,
    /// The day the key was issued (or last reissued); it expires 180 days later.
    pub key_issued_on: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHealth {
    Valid { days_left: i64 },
    ReissueWindow { days_left: i64 },
    Expired { days_ago: i64 },
}

impl KeyHealth {
    /// `129 days left`, `expired 3 days ago` (for people).
    pub fn days_left_text(&self) -> String {
        match self {
            KeyHealth::Valid { days_left } | KeyHealth::ReissueWindow { days_left } => format!("{days_left} days left"),
            KeyHealth::Expired { days_ago } => format!("expired {days_ago} days ago"),
        }
    }
}

impl AccountConfig {
    pub fn key_expires_on(&self) -> NaiveDate {
        self.key_issued_on + chrono::Duration::days(KEY_VALIDITY_DAYS)
    }

    /// Whether a 401 may only mean that Coupang has not activated the key yet: a new key can take up to
    /// 24 hours (30 minutes after a reissue). `key_issued_on` is a day, so the grace runs 24 hours past
    /// that day's end (Korea time).
    pub fn key_may_be_activating(&self, now: chrono::DateTime<chrono::FixedOffset>) -> bool {
        now.date_naive() <= self.key_issued_on + chrono::Duration::days(1)
    }

    pub fn key_health(&self, today: NaiveDate) -> KeyHealth {
        let days_left = (self.key_expires_on() - today).num_days();
        if days_left <= 0 {
            KeyHealth::Expired { days_ago: -days_left }
        } else if days_left <= KEY_REISSUE_WINDOW_DAYS {
            KeyHealth::ReissueWindow { days_left }
        } else {
            KeyHealth::Valid { days_left }
        }
    }

    /// Checks what can be checked offline; the message names the account by alias only.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.alias.trim().is_empty() {
            return Err(InvalidSetting::new(
                "accounts.alias",
                format!("account with vendor_id {:?} has an empty alias", self.vendor_id),
            ));
        }
        if !is_vendor_code(&self.vendor_id) {
            return Err(InvalidSetting::new(
                "accounts.vendor_id",
                format!(
                    "account {:?}: vendor_id {:?} is not a Coupang vendor code (A or C followed by 8 digits)",
                    self.alias, self.vendor_id
                ),
            ));
        }
        if self.access_key.trim().is_empty() || self.secret_key.expose().trim().is_empty() {
            return Err(InvalidSetting::new(
                "accounts.secret_key",
                format!("account {:?}: access_key and secret_key must not be empty", self.alias),
            ));
        }
        Ok(())
    }
}

pub fn is_vendor_code(code: &str) -> bool {
    let bytes = code.as_bytes();
    bytes.len() == 9 && matches!(bytes[0], b'A' | b'C') && bytes[1..].iter().all(u8::is_ascii_digit)
}

/// Aliases and vendor codes must be unique across accounts, or data of two accounts could mix.
pub fn validate_accounts(accounts: &[AccountConfig]) -> Result<(), InvalidSetting> {
    let mut seen_alias = std::collections::HashSet::new();
    let mut seen_vendor = std::collections::HashSet::new();
    for account in accounts {
        account.validate()?;
        if !seen_alias.insert(account.alias.as_str()) {
            return Err(InvalidSetting::new(
                "accounts.alias",
                format!("account alias {:?} is used twice", account.alias),
            ));
        }
        if !seen_vendor.insert(account.vendor_id.as_str()) {
            return Err(InvalidSetting::new(
                "accounts.vendor_id",
                format!("vendor_id {} is linked twice", account.vendor_id),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn account(issued: NaiveDate) -> AccountConfig {
        AccountConfig {
            alias: "brand-a".into(),
            vendor_id: "A00012345".into(),
            access_key: "ak".into(),
            secret_key: Secret::new("sk"),
            key_issued_on: issued,
        }
    }

    #[test]
    fn a_key_may_be_activating_until_24_hours_after_its_issue_day() {
        let a = account(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        let at = |day: u32, hour: u32| crate::time::kst().with_ymd_and_hms(2026, 1, day, hour, 0, 0).single().unwrap();
        assert!(a.key_may_be_activating(at(1, 9)));
        assert!(a.key_may_be_activating(at(2, 23)));
        assert!(!a.key_may_be_activating(at(3, 0)));
    }

    #[test]
    fn key_health_follows_the_180_day_lifetime() {
        let issued = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let a = account(issued);
        assert_eq!(a.key_expires_on(), NaiveDate::from_ymd_opt(2026, 6, 30).unwrap());
        assert_eq!(a.key_health(issued), KeyHealth::Valid { days_left: 180 });
        let in_window = a.key_expires_on() - chrono::Duration::days(14);
        assert_eq!(a.key_health(in_window), KeyHealth::ReissueWindow { days_left: 14 });
        assert_eq!(a.key_health(a.key_expires_on()), KeyHealth::Expired { days_ago: 0 });
        assert_eq!(a.key_health(in_window).days_left_text(), "14 days left");
        // On the expiry day the key is refused, so no screen says "0 days left".
        assert_eq!(a.key_health(a.key_expires_on()).days_left_text(), "expired 0 days ago");
    }

    #[test]
    fn vendor_codes() {
        assert!(is_vendor_code("A00012345"));
        assert!(is_vendor_code("C12345678"));
        assert!(!is_vendor_code("B00012345"));
        assert!(!is_vendor_code("A0001234"));
        assert!(!is_vendor_code("A0001234x"));
    }

    #[test]
    fn duplicate_accounts_are_refused() {
        let a = account(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
        let mut b = a.clone();
        b.vendor_id = "A00099999".into();
        assert!(validate_accounts(&[a.clone(), b.clone()]).unwrap_err().message.contains("alias"));
        b.alias = "other".into();
        assert!(validate_accounts(&[a, b]).is_ok());
    }
}
