//! One TOML config file for every command, with environment overrides.
//!
//! Override any setting with `COUPANG_ETL__SECTION__KEY=value` (double underscores between levels,
//! array elements by index): `COUPANG_ETL__KAFKA__BROKERS=10.0.0.5:9092`,
//! `COUPANG_ETL__ACCOUNTS__0__ACCESS_KEY=…`. A value is read as a TOML literal when it is one
//! (`true`, `42`, `2026-10-01`), otherwise as a string. Unknown keys are errors, in the file and in the
//! environment alike, so a typo never silently falls back to a default.

use coupang_ingest::{AccountSource, IngestConfig};
use coupang_load::{ClickHouseConfig, LoadConfig};
use coupang_sim::SimConfig;
use coupang_transform::TransformConfig;
use etl_core::account::{validate_accounts, AccountConfig};
use etl_core::invalid::InvalidSetting;
use etl_core::kafka::KafkaConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const ENV_PREFIX: &str = "COUPANG_ETL__";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub clickhouse: ClickHouseConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub transform: TransformConfig,
    #[serde(default)]
    pub load: LoadConfig,
    /// The built-in simulator (`coupang-etl sim`, `coupang-etl demo`).
    #[serde(default)]
    pub sim: SimConfig,
    /// Linked Coupang vendor accounts.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// Metrics, health and logs of the process.
    #[serde(default)]
    pub observability: ObservabilityConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// Where `/metrics`, `/health/live` and `/health/ready` are served (`host:port`; port 0 picks a
    /// free one, logged at start); `""` turns them off. Processes on one host need one port each.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    /// `pretty` (human-readable lines) or `json` (one object per line, for log shippers).
    #[serde(default)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9464".into()
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        ObservabilityConfig { metrics_listen: default_metrics_listen(), log_format: LogFormat::default() }
    }
}

impl ObservabilityConfig {
    /// The metrics address, `None` when turned off.
    pub fn metrics_address(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        if self.metrics_listen.trim().is_empty() {
            return Ok(None);
        }
        self.metrics_listen.trim().parse().map(Some).map_err(|_| {
            ConfigError::Invalid(InvalidSetting::new(
                "observability.metrics_listen",
                format!(
                    "observability.metrics_listen {:?} must be host:port (e.g. 127.0.0.1:9464) or \"\" for off",
                    self.metrics_listen
                ),
            ))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("config: {0}")]
    Invalid(#[from] InvalidSetting),
}

impl Config {
    /// Reads `path` (or only defaults when `None`) and applies `COUPANG_ETL__…` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (text, origin) = match path {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?,
                path.display().to_string(),
            ),
            None => (String::new(), "(defaults)".to_string()),
        };
        Config::parse(&text, &origin, std::env::vars())
    }

    pub fn parse(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse { origin: origin.to_string(), message };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| parse_error(e.to_string()))?;
        let mut overrides: Vec<(String, String)> =
            env.into_iter().filter(|(name, _)| name.starts_with(ENV_PREFIX)).collect();
        overrides.sort();
        for (name, value) in overrides {
            let path: Vec<String> = name[ENV_PREFIX.len()..].split("__").map(|p| p.to_ascii_lowercase()).collect();
            set_path(&mut table, &path, env_value(&value))
                .map_err(|message| ConfigError::Parse { origin: format!("environment {name}"), message })?;
        }
        let config: Config =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| parse_error(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_accounts(&self.accounts)?;
        self.ingest.validate()?;
        self.kafka.validate()?;
        self.clickhouse.validate()?;
        self.transform.validate()?;
        self.check_isolation()?;
        self.load.validate()?;
        self.sim.validate()?;
        self.observability.metrics_address()?;
        Ok(())
    }

    /// With transactions, the transform leaves out versions that say nothing new, which is exact only
    /// if no reader (the loader, a restore) sees an aborted batch: `read_committed` may not be undone.
    fn check_isolation(&self) -> Result<(), InvalidSetting> {
        let isolation = self.kafka.properties.get("isolation.level").map(|v| v.trim());
        if self.transform.transactions && isolation.is_some_and(|v| v != "read_committed") {
            return Err(InvalidSetting::new(
                "kafka.properties.isolation.level",
                "transform.transactions needs isolation.level = read_committed (the default): readers must not see \
                 an aborted batch",
            ));
        }
        Ok(())
    }

    /// What the stages would use, for `coupang-etl validate` (a dry run: nothing is contacted).
    /// Secrets show only as "set".
    pub fn describe(&self, today: chrono::NaiveDate) -> String {
        let kafka = &self.kafka;
        let brokers = if kafka.brokers.is_empty() { "(embedded: demo only)" } else { kafka.brokers.as_str() };
        let mut out = format!(
            "kafka          {brokers}; topics {}* ({} partitions, replication {})\n",
            kafka.topic_prefix, kafka.partitions, kafka.replication_factor
        );
        let ch = &self.clickhouse;
        let password = if ch.password.is_some() { "password set" } else { "no password" };
        out += &format!("clickhouse     {}, database {}, user {}, {password}\n", ch.url, ch.database, ch.user);
        let ingest = &self.ingest;
        out += &format!(
            "ingest         {}: new orders every {} s, sweeps at least {} s apart (≤ {}% of the calls) over the last {} days, {} calls/s per vendor ({} for backfills)\n",
            ingest.base_url,
            ingest.new_orders_poll_secs,
            ingest.poll_interval_secs,
            ingest.follow_api_share * 100.0,
            ingest.lookback_days,
            ingest.requests_per_second,
            ingest.backfill_requests_per_second
        );
        let commits = if self.transform.transactions { "one transaction per batch" } else { "ack then commit" };
        let transform = &self.transform;
        out += &format!(
            "transform      group {}, {commits}; state in {} ({} MiB cache)\n",
            transform.group_id,
            transform.state_dir.display(),
            transform.state_cache_mib
        );
        out +=
            &format!("load           group {}, up to {} rows per INSERT\n", self.load.group_id, self.load.batch_rows);
        let metrics = match self.observability.metrics_address() {
            Ok(Some(address)) => format!("http://{address}/metrics and /health/ready"),
            _ => "off".to_string(),
        };
        out += &format!("observability  metrics {metrics}; {:?} logs\n", self.observability.log_format);
        if self.accounts.is_empty() {
            out += "accounts       none (ingest, run and backfill need at least one)\n";
        }
        for account in &self.accounts {
            let key = account.key_health(today).days_left_text();
            out += &format!(
                "account        {} (vendor {}): key expires {} ({key}), secret set\n",
                account.alias,
                account.vendor_id,
                account.key_expires_on()
            );
        }
        out
    }

    /// The settings a `coupang-etl` process needs to join this pipeline, as a config file (the tests and
    /// benchmarks write one for the processes they start): Kafka's brokers, topic prefix and partitions;
    /// ClickHouse's URL and database, with the user and password when a password is set; the stages'
    /// consumer groups and transactions; ingest's gateway, request rates and attempts; the metrics
    /// address; the simulated world's seed, period, size, rate limit and vendors; and the accounts.
    /// Nothing else: every other setting reads as its default (or a `COUPANG_ETL__…` override).
    ///
    /// Secrets are written as themselves, literal strings, so the text is as secret as they are.
    pub fn to_toml(&self) -> String {
        let value = |v: toml::Value| v.to_string();
        let quoted = |text: &str| value(text.into());
        let (kafka, clickhouse, ingest, sim) = (&self.kafka, &self.clickhouse, &self.ingest, &self.sim);
        let mut text = format!(
            "[kafka]\nbrokers = {}\ntopic_prefix = {}\npartitions = {}\n\n[clickhouse]\nurl = {}\ndatabase = {}\n",
            quoted(&kafka.brokers),
            quoted(&kafka.topic_prefix),
            kafka.partitions,
            quoted(&clickhouse.url),
            quoted(&clickhouse.database)
        );
        if let Some(password) = &clickhouse.password {
            text += &format!("user = {}\npassword = {}\n", quoted(&clickhouse.user), quoted(password.expose()));
        }
        text += &format!(
            "\n[transform]\ngroup_id = {}\ntransactions = {}\n\n[load]\ngroup_id = {}\n\n\
             [ingest]\nbase_url = {}\nrequests_per_second = {}\nbackfill_requests_per_second = {}\nmax_attempts = {}\n\n\
             [observability]\nmetrics_listen = {}\n\n\
             [sim]\nseed = {}\nstart_date = {}\ndays = {}\norders_per_day = {}\nrate_limit_per_second = {}\n",
            quoted(&self.transform.group_id),
            self.transform.transactions,
            quoted(&self.load.group_id),
            quoted(&ingest.base_url),
            value(ingest.requests_per_second.into()),
            value(ingest.backfill_requests_per_second.into()),
            ingest.max_attempts,
            quoted(&self.observability.metrics_listen),
            sim.seed,
            sim.start_date,
            sim.days,
            sim.orders_per_day,
            sim.rate_limit_per_second
        );
        for vendor in &sim.vendors {
            text += &format!(
                "\n[[sim.vendors]]\nvendor_id = {}\naccess_key = {}\nsecret_key = {}\n",
                quoted(&vendor.vendor_id),
                quoted(&vendor.access_key),
                quoted(vendor.secret_key.expose())
            );
        }
        for account in &self.accounts {
            text += &format!(
                "\n[[accounts]]\nalias = {}\nvendor_id = {}\naccess_key = {}\nsecret_key = {}\nkey_issued_on = {}\n",
                quoted(&account.alias),
                quoted(&account.vendor_id),
                quoted(&account.access_key),
                quoted(account.secret_key.expose()),
                account.key_issued_on
            );
        }
        text
    }

    pub fn account(&self, alias: &str) -> Option<&AccountConfig> {
        self.accounts.iter().find(|a| a.alias == alias)
    }

    /// Accounts for follow mode: re-read from the config file (and environment) at every call, so keys
    /// can be re-linked without a restart. A file that no longer parses keeps the last good accounts,
    /// with an error in the log.
    pub fn account_source(&self, path: Option<&Path>) -> AccountSource {
        let last_good = Arc::new(Mutex::new(self.accounts.clone()));
        let path = path.map(Path::to_path_buf);
        Arc::new(move || {
            let mut accounts = last_good.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(path) = &path {
                match Config::load(Some(path)) {
                    Ok(config) => *accounts = config.accounts,
                    Err(error) => tracing::error!("{error}; keeping the accounts read before"),
                }
            }
            accounts.clone()
        })
    }
}

fn env_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("empty setting name")?;
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return Ok(());
    }
    let child = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    set_value_path(child, rest, value)
}

fn set_value_path(node: &mut toml::Value, path: &[String], value: toml::Value) -> Result<(), String> {
    match node {
        toml::Value::Table(table) => set_path(table, path, value),
        toml::Value::Array(items) => {
            let (index, rest) = path.split_first().ok_or("empty setting name")?;
            let index: usize = index.parse().map_err(|_| format!("{index:?} is not an array index"))?;
            while items.len() <= index {
                items.push(toml::Value::Table(toml::Table::new()));
            }
            if rest.is_empty() {
                items[index] = value;
                Ok(())
            } else {
                set_value_path(&mut items[index], rest, value)
            }
        }
        _ => Err(format!("{} is a value, not a section", path.join("."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        [kafka]
        brokers = "127.0.0.1:9092"

        [clickhouse]
        database = "sales"

        [[accounts]]
        alias = "brand-a"
        vendor_id = "A00012345"
        access_key = "ak-a"
        secret_key = "sk-a"
        key_issued_on = 2026-10-01
    "#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn file_and_env_overrides() {
        let config = Config::parse(
            EXAMPLE,
            "example",
            env(&[
                ("COUPANG_ETL__KAFKA__BROKERS", "10.0.0.5:9092"),
                ("COUPANG_ETL__ACCOUNTS__0__SECRET_KEY", "from-env"),
                ("COUPANG_ETL__INGEST__REQUESTS_PER_SECOND", "5"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.kafka.brokers, "10.0.0.5:9092");
        assert_eq!(config.clickhouse.database, "sales");
        assert_eq!(config.accounts[0].secret_key.expose(), "from-env");
        assert_eq!(config.ingest.requests_per_second, 5.0);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = Config::parse("[kafka]\nbrokerz = \"x\"", "f.toml", env(&[])).unwrap_err().to_string();
        assert!(err.contains("brokerz"), "{err}");
        let err = Config::parse("", "f.toml", env(&[("COUPANG_ETL__LOAD__BATCH", "1")])).unwrap_err().to_string();
        assert!(err.contains("batch"), "{err}");
    }

    #[test]
    fn invalid_values_are_refused() {
        let bad_vendor = EXAMPLE.replace("A00012345", "12345");
        assert!(Config::parse(&bad_vendor, "f", env(&[])).unwrap_err().to_string().contains("brand-a"));
        let mut uncommitted = Config::parse(EXAMPLE, "f", env(&[])).unwrap();
        uncommitted.kafka.properties.insert("isolation.level".into(), "read_uncommitted".into());
        assert!(uncommitted.validate().is_ok());
        uncommitted.transform.transactions = true;
        assert!(uncommitted.validate().unwrap_err().to_string().contains("read_committed"));
        let too_fast = env(&[("COUPANG_ETL__INGEST__REQUESTS_PER_SECOND", "50")]);
        assert!(Config::parse(EXAMPLE, "f", too_fast).unwrap_err().to_string().contains("at most 10"));
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let config = Config::parse(EXAMPLE, "example", env(&[])).unwrap();
        assert!(!format!("{config:?}").contains("sk-a"));
    }

    #[test]
    fn the_account_source_rereads_the_file_and_keeps_the_last_good_accounts() {
        let path = std::env::temp_dir().join(format!("coupang-etl-config-{}.toml", std::process::id()));
        std::fs::write(&path, EXAMPLE).unwrap();
        let config = Config::load(Some(&path)).unwrap();
        let source = config.account_source(Some(&path));
        assert_eq!(source()[0].access_key, "ak-a");
        std::fs::write(&path, EXAMPLE.replace("ak-a", "ak-relinked")).unwrap();
        assert_eq!(source()[0].access_key, "ak-relinked");
        std::fs::write(&path, "this is not toml [").unwrap();
        assert_eq!(source()[0].access_key, "ak-relinked");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn the_shipped_example_config_parses() {
        let text = include_str!("../deploy/coupang-etl.example.toml");
        std::env::set_var("COUPANG_SECRET_BRAND_A", "example-secret");
        let config = Config::parse(text, "deploy/coupang-etl.example.toml", env(&[])).unwrap();
        assert_eq!(config.accounts[0].secret_key.expose(), "example-secret");
        assert_eq!(config.kafka.topics().payment_facts, "coupang.facts.payments");
    }
}
