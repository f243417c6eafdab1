//! What the ClickHouse server is, for choosing features: 18.16 here, current servers in production
//! (26.9 tested here through chdb).

/// The first server version with what the loader's modern path uses: `insert_deduplication_token`,
/// `non_replicated_deduplication_window`, `ALTER … MODIFY SETTING`.
pub const MODERN: (u32, u32) = (22, 8);

/// The server's version, from `SELECT version()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub version: String,
    pub major: u32,
    pub minor: u32,
}

impl ServerInfo {
    pub fn parse(version: &str) -> ServerInfo {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        ServerInfo { version: version.to_string(), major: parts.next().unwrap_or(0), minor: parts.next().unwrap_or(0) }
    }

    /// Whether the server has `insert_deduplication_token`, `non_replicated_deduplication_window` and
    /// RowBinaryWithNamesAndTypes (from 22.8 on).
    pub fn is_modern(&self) -> bool {
        self.is_at_least(MODERN)
    }

    pub fn is_at_least(&self, (major, minor): (u32, u32)) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_choose_features() {
        assert!(!ServerInfo::parse("18.16.1").is_modern());
        assert!(ServerInfo::parse("23.8.2.7").is_modern());
        assert!(ServerInfo::parse("24.3.1").is_modern());
        assert_eq!(ServerInfo::parse("garbage").major, 0);
    }
}
