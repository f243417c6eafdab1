use etl_core::invalid::InvalidSetting;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Consumer group: several transform processes with the same group share the partitions.
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Most raw events handled per commit.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest wait for a batch to fill, milliseconds.
    #[serde(default = "default_batch_wait_ms")]
    pub batch_wait_ms: u64,
    /// Finished orders (confirmed, cancelled or returned) whose newest event is this many days older
    /// than the partition's newest leave memory; their state is read back from the changelog when a
    /// late event (a refund, say) arrives.
    #[serde(default = "default_state_horizon_days")]
    pub state_horizon_days: u32,
    /// Writes each batch's facts, changed states and input offsets in one Kafka transaction, instead
    /// of facts acknowledged, then states, then offsets committed. Both are exact (versions and
    /// idempotent folding make replays harmless); transactions need a broker that has them (Apache
    /// Kafka, Redpanda, MSK) and hide a crashed batch's partial output from `read_committed` readers.
    /// BENCHMARKS.md compares the two.
    #[serde(default)]
    pub transactions: bool,
}

fn default_state_horizon_days() -> u32 {
    30
}

fn default_group_id() -> String {
    "coupang-etl-transform".into()
}
fn default_batch_size() -> usize {
    2_000
}
fn default_batch_wait_ms() -> u64 {
    200
}

impl Default for TransformConfig {
    fn default() -> Self {
        TransformConfig {
            group_id: default_group_id(),
            batch_size: default_batch_size(),
            batch_wait_ms: default_batch_wait_ms(),
            state_horizon_days: default_state_horizon_days(),
            transactions: false,
        }
    }
}

impl TransformConfig {
    /// Checks what can be checked offline.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.group_id.trim().is_empty() {
            return Err(InvalidSetting::new("transform.group_id", "transform.group_id must not be empty"));
        }
        if self.batch_size == 0 {
            return Err(InvalidSetting::new("transform.batch_size", "transform.batch_size must be 1 or more"));
        }
        Ok(())
    }
}
