use etl_core::invalid::InvalidSetting;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Consumer group: several transform processes with the same group share the partitions.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Most raw events handled per commit.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// A batch also ends once the order states it read from the state file reach this many KiB (the
    /// messages left start the next batch). Decoded, those states are most of what a batch holds: a
    /// batch of updates to known orders reads a state per event, one of new orders hardly any, so a
    /// bound on events alone let memory follow the mix of the stream (BENCHMARKS.md).
    #[serde(default = "default_batch_state_kib")]
    pub batch_state_kib: u32,
    /// Longest wait for a batch to fill, milliseconds.
    #[serde(default = "default_batch_wait_ms")]
    pub batch_wait_ms: u64,
    /// Where each partition's order states are kept on local disk (a folder per changelog topic below
    /// it). Losing it costs only time: the states are read again from the changelog.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Memory for the state file's cache, MiB (at least 1), for all partitions of the process
    /// together; the states live on disk, and only those of the batch in hand are decoded. Small by
    /// default: the OS's page cache serves the file too, and 1 and 64 MiB measured the same events
    /// per CPU-second (BENCHMARKS.md), while a cache only a large backlog fills makes memory grow with it.
    #[serde(default = "default_state_cache_mib")]
    pub state_cache_mib: u32,
    /// Size of the state file's segments, MiB (at least 1): state records are appended to one until it
    /// holds this much, and a full one whose records are mostly superseded is compacted. The disk
    /// holds at most about twice the live records plus one segment; smaller segments are compacted
    /// sooner and more often (BENCHMARKS.md, "Values apart from the index").
    #[serde(default = "default_state_segment_mib")]
    pub state_segment_mib: u32,
    /// No longer used: since states live on disk, no horizon decides what stays in memory. Accepted so
    /// that configurations written for earlier versions still load.
    #[serde(default)]
    pub state_horizon_days: Option<u32>,
    /// Writes each batch's facts, changed states and input offsets in one Kafka transaction, instead
    /// of facts acknowledged, then states, then offsets committed. Both are exact (versions and
    /// idempotent folding make replays harmless); transactions need a broker that has them (Apache
    /// Kafka, Redpanda, MSK) and hide a crashed batch's partial output from `read_committed` readers.
    /// With them, an event that changes nothing an order's facts say emits no new version of them (a
    /// fifth fewer facts when the bench's events come in the order they happened), which is safe only
    /// because a batch is then visible whole or not at all: turn them on only once every process
    /// without them has stopped cleanly (its log says "transform stopped"), so that no half-written
    /// batch of theirs is replayed. BENCHMARKS.md compares the two.
    #[serde(default)]
    pub transactions: bool,
}

fn default_state_dir() -> PathBuf {
    std::env::temp_dir().join("coupang-etl-state")
}
fn default_state_cache_mib() -> u32 {
    4
}
fn default_state_segment_mib() -> u32 {
    64
}

fn default_group_id() -> String {
    "coupang-etl-transform".into()
}
fn default_batch_size() -> usize {
    2_000
}
fn default_batch_state_kib() -> u32 {
    256
}
fn default_batch_wait_ms() -> u64 {
    200
}

impl Default for TransformConfig {
    fn default() -> Self {
        TransformConfig {
            group_id: default_group_id(),
            batch_size: default_batch_size(),
            batch_state_kib: default_batch_state_kib(),
            batch_wait_ms: default_batch_wait_ms(),
            state_dir: default_state_dir(),
            state_cache_mib: default_state_cache_mib(),
            state_segment_mib: default_state_segment_mib(),
            state_horizon_days: None,
            transactions: false,
        }
    }
}

impl TransformConfig {
    /// [`TransformConfig::batch_state_kib`] in bytes.
    pub fn batch_state_bytes(&self) -> usize {
        usize::try_from(self.batch_state_kib).unwrap_or(usize::MAX / (1 << 10)) << 10
    }

    pub fn state_cache_bytes(&self) -> usize {
        usize::try_from(self.state_cache_mib).unwrap_or(usize::MAX / (1 << 20)) << 20
    }

    /// [`TransformConfig::state_segment_mib`] in bytes.
    pub fn state_segment_bytes(&self) -> u64 {
        u64::from(self.state_segment_mib) << 20
    }

    /// Checks what can be checked offline.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.group_id.trim().is_empty() {
            return Err(InvalidSetting::new("transform.group_id", "transform.group_id must not be empty"));
        }
        if self.batch_size == 0 {
            return Err(InvalidSetting::new("transform.batch_size", "transform.batch_size must be 1 or more"));
        }
        if self.batch_state_kib == 0 {
            return Err(InvalidSetting::new(
                "transform.batch_state_kib",
                "transform.batch_state_kib must be 1 or more",
            ));
        }
        if self.state_segment_mib == 0 {
            return Err(InvalidSetting::new(
                "transform.state_segment_mib",
                "transform.state_segment_mib must be 1 or more",
            ));
        }
        if self.state_dir.as_os_str().is_empty() {
            return Err(InvalidSetting::new("transform.state_dir", "transform.state_dir must name a folder"));
        }
        if self.state_horizon_days.is_some() {
            tracing::warn!("transform.state_horizon_days is no longer used: order states live in transform.state_dir");
        }
        Ok(())
    }
}
