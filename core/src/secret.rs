//! Secrets (Coupang secret keys, ClickHouse passwords) that cannot leak by accident.
//!
//! `Secret` has no `Display`, no `Serialize`, and a `Debug` that prints `[redacted]`, so neither
//! logs, errors nor `{:?}` of a config can show it. The value is read only through [`Secret::expose`].
//!
//! In config files a secret is written as a literal string, `{ env = "VAR" }` or `{ file = "path" }`;
//! the last two keep the secret itself out of the file.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::PathBuf;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call sites are few and easy to audit: signing and connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret comes from in the config file.
#[derive(Deserialize)]
#[serde(untagged)]
enum SecretSource {
    Literal(String),
    Env { env: String },
    File { file: PathBuf },
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let source = SecretSource::deserialize(deserializer)
            .map_err(|_| D::Error::custom("a secret must be a string, { env = \"VAR\" } or { file = \"path\" }"))?;
        match source {
            SecretSource::Literal(value) => Ok(Secret(value)),
            SecretSource::Env { env } => std::env::var(&env)
                .map(Secret)
                .map_err(|_| D::Error::custom(format!("environment variable {env} is not set"))),
            SecretSource::File { file } => std::fs::read_to_string(&file)
                .map(|s| Secret(s.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|e| D::Error::custom(format!("cannot read secret file {}: {e}", file.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Holder {
        #[allow(dead_code)]
        key: Secret,
    }

    #[test]
    fn debug_never_shows_the_value() {
        let h: Holder = toml::from_str(r#"key = "hunter2-very-secret""#).unwrap();
        let shown = format!("{h:?} {:?}", h.key);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"));
        assert_eq!(h.key.expose(), "hunter2-very-secret");
    }

    #[test]
    fn reads_from_env_and_file() {
        std::env::set_var("ETL_CORE_TEST_SECRET", "from-env");
        let h: Holder = toml::from_str(r#"key = { env = "ETL_CORE_TEST_SECRET" }"#).unwrap();
        assert_eq!(h.key.expose(), "from-env");

        let path = std::env::temp_dir().join(format!("etl-core-secret-{}", std::process::id()));
        std::fs::write(&path, "from-file\n").unwrap();
        let text = format!("key = {{ file = {:?} }}", path.display().to_string());
        let h: Holder = toml::from_str(&text).unwrap();
        assert_eq!(h.key.expose(), "from-file");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn missing_env_names_the_variable_not_a_value() {
        let err = toml::from_str::<Holder>(r#"key = { env = "ETL_CORE_SURELY_UNSET" }"#).unwrap_err().to_string();
        assert!(err.contains("ETL_CORE_SURELY_UNSET"), "{err}");
    }
}
