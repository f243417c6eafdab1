use crate::server::ServerInfo;
use etl_core::invalid::InvalidSetting;
use etl_core::secret::Secret;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    #[serde(default = "default_url")]
    pub url: String,
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default = "default_user")]
    pub user: String,
    /// A string, `{ env = "VAR" }` or `{ file = "path" }`; never logged.
    #[serde(default)]
    pub password: Option<Secret>,
}

fn default_url() -> String {
    "http://127.0.0.1:8123".into()
}
fn default_database() -> String {
    "coupang".into()
}
fn default_user() -> String {
    "default".into()
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig { url: default_url(), database: default_database(), user: default_user(), password: None }
    }
}

impl ClickHouseConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let valid_name = !self.database.is_empty()
            && self.database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !self.database.starts_with(|c: char| c.is_ascii_digit());
        if !valid_name {
            return Err(InvalidSetting::new(
                "clickhouse.database",
                format!("clickhouse.database {:?} must be letters, digits and _ only", self.database),
            ));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(InvalidSetting::new(
                "clickhouse.url",
                format!("clickhouse.url {:?} must start with http:// or https://", self.url),
            ));
        }
        Ok(())
    }

    /// A client without a default database (for `CREATE DATABASE`), for any server: rows travel as
    /// plain RowBinary, without their types checked.
    pub(crate) fn server_client(&self) -> clickhouse::Client {
        let mut client = clickhouse::Client::default().with_url(&self.url).with_user(&self.user).with_validation(false);
        if let Some(password) = &self.password {
            client = client.with_password(password.expose());
        }
        client
    }

    /// `server_client` for a known server: where it has RowBinaryWithNamesAndTypes (≥ 22.8) every row
    /// type is checked against the columns the server sends or expects (a mismatch fails loudly
    /// instead of misreading bytes: a scalar subquery's count is Nullable(UInt64) on current servers,
    /// UInt64 on 18.16). ClickHouse 18.16 lacks the format; there, our row types are tested against
    /// the DDL instead.
    pub(crate) fn server_client_for(&self, server: &ServerInfo) -> clickhouse::Client {
        self.server_client().with_validation(server.is_modern())
    }

    /// A client of the pipeline's database for any server (plain RowBinary, password when configured).
    pub fn client(&self) -> clickhouse::Client {
        self.server_client().with_database(&self.database)
    }

    /// A client of the pipeline's database for a known server (row types checked where it can).
    pub fn client_for(&self, server: &ServerInfo) -> clickhouse::Client {
        self.server_client_for(server).with_database(&self.database)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Most messages per batch, one INSERT per table: a facts message holds one order's facts (two rows
    /// on average), a revenue or payout message one row.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Most message payload bytes per batch (a batch ends at whichever of messages, bytes or wait comes
    /// first).
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: usize,
    /// Longest wait for a batch to fill, milliseconds.
    #[serde(default = "default_batch_wait_ms")]
    pub batch_wait_ms: u64,
    /// Longest pause between two attempts of a failing INSERT, seconds.
    #[serde(default = "default_max_backoff_secs")]
    pub max_backoff_secs: u64,
    /// How often the loader reads the `reconciliation` view (every account and recognition month) into
    /// its metrics, seconds; 0 turns it off. Each read scans the tables with FINAL.
    #[serde(default = "default_reconcile_every_secs")]
    pub reconcile_every_secs: u64,
    /// Days `payment_fact_history` keeps a version after it was loaded (a TTL, on servers ≥ 22.8);
    /// 0 keeps every version.
    #[serde(default = "default_history_retention_days")]
    pub history_retention_days: u32,
}

fn default_group_id() -> String {
    "coupang-etl-load".into()
}
fn default_batch_rows() -> usize {
    20_000
}
fn default_batch_wait_ms() -> u64 {
    500
}
fn default_batch_bytes() -> usize {
    16 << 20
}
fn default_max_backoff_secs() -> u64 {
    30
}
fn default_reconcile_every_secs() -> u64 {
    600
}
/// Two years: "what did we report for this month last year" stays answerable.
fn default_history_retention_days() -> u32 {
    730
}

impl LoadConfig {
    /// Checks what can be checked offline.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.group_id.trim().is_empty() {
            return Err(InvalidSetting::new("load.group_id", "load.group_id must not be empty"));
        }
        for (setting, value) in [
            ("load.batch_rows", self.batch_rows as u64),
            ("load.batch_bytes", self.batch_bytes as u64),
            ("load.max_backoff_secs", self.max_backoff_secs),
        ] {
            if value == 0 {
                return Err(InvalidSetting::new(setting, format!("{setting} must be 1 or more")));
            }
        }
        Ok(())
    }
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            group_id: default_group_id(),
            batch_rows: default_batch_rows(),
            batch_wait_ms: default_batch_wait_ms(),
            batch_bytes: default_batch_bytes(),
            max_backoff_secs: default_max_backoff_secs(),
            reconcile_every_secs: default_reconcile_every_secs(),
            history_retention_days: default_history_retention_days(),
        }
    }
}
