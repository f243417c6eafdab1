//! The error of every `validate()` of a config section.

/// A setting the pipeline cannot run with: its path in the config (`clickhouse.database`,
/// `kafka.partitions`, `accounts`) and what is wrong, in a message that names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidSetting {
    pub setting: String,
    pub message: String,
}

impl InvalidSetting {
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> InvalidSetting {
        InvalidSetting { setting: setting.into(), message: message.into() }
    }
}
