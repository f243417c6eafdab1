//! The client's errors: every way a call to Coupang can end other than with data, and which of them
//! stop an account until a person changes its configuration.

use chrono::NaiveDate;

use super::{FieldError, RecordId};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// 401, or 403 for a non-allow-listed IP: the account cannot work until a person fixes its key.
    #[error("account {alias}: Coupang rejected the key (HTTP {status}): {message}")]
    KeyRejected { alias: String, status: u16, message: String },
    /// 401 for a key issued so recently that Coupang may not have activated it yet (up to 24 hours):
    /// the account is tried again at the next sweep instead of stopping.
    #[error("account {alias}: Coupang does not accept the key yet (issued on {issued_on}; a new key can take up to 24 hours): {message}")]
    KeyNotActiveYet { alias: String, issued_on: NaiveDate, message: String },
    /// 400/404 and other refusals that retrying cannot fix.
    #[error("account {alias}: {endpoint} refused (HTTP {status}): {message}")]
    Refused { alias: String, endpoint: &'static str, status: u16, message: String },
    #[error("account {alias}: {endpoint} still failing after {attempts} attempts: {last}")]
    GaveUp { alias: String, endpoint: &'static str, attempts: u32, last: String },
    #[error("account {alias}: {endpoint} answered with something that is not Coupang's envelope: {reason}")]
    BadEnvelope { alias: String, endpoint: &'static str, reason: String },
    /// One record of a page could not be read: `fault` names the field at fault by its JSON path,
    /// with its raw value (or `absent`); `raw` keeps the record for the dead-letter topic.
    #[error("account {alias}: {endpoint} record {record_id}: field {} = {}: {}", fault.field, fault.value, fault.reason)]
    BadRecord { alias: String, endpoint: &'static str, record_id: RecordId, fault: Box<FieldError>, raw: String },
    /// A look-up by id answered with another record than asked: an error, never data.
    #[error("account {alias}: {endpoint} asked for {asked} and answered {answered}")]
    WrongRecord { alias: String, endpoint: &'static str, asked: String, answered: String },
    /// A request that would break a documented limit, refused before sending.
    #[error("account {alias}: {endpoint}: {reason}")]
    InvalidRequest { alias: String, endpoint: &'static str, reason: String },
    #[error("account {alias}: cannot build a request: {reason}")]
    Request { alias: String, reason: String },
}

impl ClientError {
    /// Errors after which polling this account is pointless until its configuration changes.
    pub fn stops_account(&self) -> bool {
        matches!(self, ClientError::KeyRejected { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tests::client;

    #[test]
    fn the_secret_never_shows_in_debug_or_errors() {
        let c = client();
        assert!(!format!("{:?}", c.account()).contains("test-secret"));
        let err =
            ClientError::KeyRejected { alias: "brand-a".into(), status: 401, message: "Invalid signature.".into() };
        assert_eq!(err.to_string(), "account brand-a: Coupang rejected the key (HTTP 401): Invalid signature.");
    }
}
