//! The transform's state: one [`OrderState`] per order, held per input partition and backed by a
//! compacted changelog topic with the same partitioning.
//!
//! - Every state change is written to changelog partition *p* for input partition *p* (explicitly,
//!   whatever the producer's partitioner), keyed `vendorId:orderId`, before the input offsets are
//!   committed. A restart or a partition moving to another process restores *p* from the changelog,
//!   never from the raw history.
//! - Each partition's states also live in a local file ([`StateFile`]), written after the broker took
//!   them: memory holds only a bounded cache of decoded states (`transform.state_cache_mib`), and a
//!   restart reads from the changelog only what the file has not seen yet.

use coupang_schemas::{
    decode, encode, CodecError, OrderSheetEvent, OrderStateRecord, ReturnRequestEvent, RevenueEvent,
};
use etl_core::kafka::KafkaConfig;
use lru::LruCache;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::order::{OrderState, RevenueSlot};
use crate::state_file::{StateFile, StateFileError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("changelog {topic} partition {partition}: {source}")]
    Kafka {
        topic: String,
        partition: i32,
        #[source]
        source: KafkaError,
    },
    #[error("changelog {topic} partition {partition} offset {offset}: record for {key} does not decode: {source}")]
    Corrupt {
        topic: String,
        partition: i32,
        offset: i64,
        key: String,
        #[source]
        source: CodecError,
    },
    #[error(transparent)]
    File(#[from] StateFileError),
    #[error("state file {path}: the state of {key} does not decode: {source}")]
    Unreadable {
        path: PathBuf,
        key: String,
        #[source]
        source: CodecError,
    },
    #[error("blocking changelog read panicked or was cancelled")]
    Join,
}

/// An order's state as the changelog holds it.
pub fn to_record(vendor_id: &str, order_id: i64, state: &OrderState) -> Result<OrderStateRecord, CodecError> {
    Ok(OrderStateRecord {
        vendor_id: vendor_id.to_string(),
        order_id,
        source_time: state.source_time,
        boxes: state.boxes.values().map(encode).collect::<Result<_, _>>()?,
        receipts: state.receipts.values().map(encode).collect::<Result<_, _>>()?,
        revenue: state.revenue.values().map(encode).collect::<Result<_, _>>()?,
    })
}

pub fn from_record(record: &OrderStateRecord) -> Result<OrderState, CodecError> {
    let mut state = OrderState { source_time: record.source_time, ..OrderState::default() };
    for bytes in &record.boxes {
        let e: OrderSheetEvent = decode(bytes)?;
        state.boxes.insert(e.shipment_box_id, e);
    }
    for bytes in &record.receipts {
        let e: ReturnRequestEvent = decode(bytes)?;
        state.receipts.insert(e.receipt_id, e);
    }
    for bytes in &record.revenue {
        let e: RevenueEvent = decode(bytes)?;
        state.revenue.insert(RevenueSlot::of(&e), e);
    }
    Ok(state)
}

/// Decoded bytes an order's state takes in memory per byte of its encoded record (measured on the
/// simulator's orders; see BENCHMARKS.md): what the cache's budget is counted in.
const DECODED_BYTES_PER_RECORD_BYTE: usize = 6;

/// Longest a partition's file goes without a durable commit: what a SIGKILL makes the next start read
/// again from the changelog, at most.
const DURABLE_EVERY: Duration = Duration::from_secs(2);

/// How the last restore brought a partition's file up to the changelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreMode {
    /// The file was complete: nothing read.
    Reuse,
    /// The file stopped short (a crash, or another process wrote since): the rest was read.
    CatchUp,
    /// No usable file: the whole changelog was read.
    Rebuild,
}

impl std::fmt::Display for RestoreMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RestoreMode::Reuse => "reuse",
            RestoreMode::CatchUp => "catch_up",
            RestoreMode::Rebuild => "rebuild",
        })
    }
}

/// Where the partitions' files are and how much memory their states may take.
#[derive(Debug, Clone)]
pub struct StateLayout {
    /// `{transform.state_dir}/{changelog topic}`.
    pub dir: PathBuf,
    /// `transform.state_cache_mib`, in bytes, for all partitions of this process together.
    pub cache_bytes: usize,
}

impl StateLayout {
    /// (decoded states, redb cache) in bytes for each of `partitions`: three quarters of the budget
    /// for decoded states, the rest for the files' own caches (at least 256 KiB each).
    fn split(&self, partitions: usize) -> (usize, usize) {
        let share = self.cache_bytes / partitions.max(1);
        (share / 4 * 3, (share / 4).max(256 << 10))
    }
}

/// The orders of one input partition: on disk, with the recently used ones decoded in memory.
pub struct PartitionState {
    file: StateFile,
    /// Decoded states of recently used orders, with their estimated size.
    cache: LruCache<String, (OrderState, usize)>,
    cached_bytes: usize,
    cache_budget: usize,
    /// States the current batch read or changed. They stay out of the cache until they are on disk,
    /// so that no eviction can lose a change.
    touched: HashMap<String, OrderState>,
    last_durable: Instant,
    /// The changelog's end offset after this process's last write or restore.
    pub changelog_end: i64,
    /// Records the last restore read: the orders the file had not seen, plus older states compaction
    /// has not removed yet.
    pub records_restored: usize,
    pub restore_mode: RestoreMode,
    /// Records of the changelog that did not decode, met by the last restore (for the dead-letter
    /// topic): each was skipped, and its key kept its previous state.
    pub corrupt: Vec<CorruptRecord>,
}

impl std::fmt::Debug for PartitionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionState")
            .field("file", &self.file)
            .field("cached", &self.cache.len())
            .field("touched", &self.touched.len())
            .field("changelog_end", &self.changelog_end)
            .finish()
    }
}

/// A changelog record that is not a state this stage wrote (e.g. injected by hand).
#[derive(Debug)]
pub struct CorruptRecord {
    pub offset: i64,
    pub key: String,
    pub payload: Vec<u8>,
    pub reason: String,
}

/// A state the broker took: its key, the record sent and where it landed in the changelog.
pub struct Written<'a> {
    pub key: &'a str,
    pub payload: &'a [u8],
    pub offset: i64,
}

impl PartitionState {
    fn open(layout: &StateLayout, partition: i32, partitions: usize) -> Result<PartitionState, StoreError> {
        let (decoded, file_cache) = layout.split(partitions);
        Ok(PartitionState {
            file: StateFile::open(&layout.dir, partition, file_cache)?,
            cache: LruCache::unbounded(),
            cached_bytes: 0,
            cache_budget: decoded,
            touched: HashMap::new(),
            last_durable: Instant::now(),
            changelog_end: 0,
            records_restored: 0,
            restore_mode: RestoreMode::Reuse,
            corrupt: Vec::new(),
        })
    }

    /// Orders held (on disk).
    pub fn orders(&self) -> Result<u64, StoreError> {
        Ok(self.file.len()?)
    }

    /// Decoded states held in memory.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Shares the memory budget anew, when the number of owned partitions changed.
    pub fn resize(&mut self, layout: &StateLayout, partitions: usize) {
        self.cache_budget = layout.split(partitions).0;
        self.evict();
    }

    /// The state of `key`, for the current batch: as it changed earlier in the batch, from the cache,
    /// from the file, or new.
    pub fn state(&mut self, key: &str) -> Result<&mut OrderState, StoreError> {
        if !self.touched.contains_key(key) {
            let state = match self.cache.pop(key) {
                Some((state, size)) => {
                    self.cached_bytes -= size;
                    state
                }
                None => self.read(key)?.unwrap_or_default(),
            };
            self.touched.insert(key.to_string(), state);
        }
        Ok(self.touched.get_mut(key).expect("inserted above"))
    }

    fn read(&self, key: &str) -> Result<Option<OrderState>, StoreError> {
        let Some(bytes) = self.file.get(key)? else { return Ok(None) };
        let unreadable =
            |source| StoreError::Unreadable { path: self.file.path().to_path_buf(), key: key.to_string(), source };
        decode::<OrderStateRecord>(&bytes).and_then(|record| from_record(&record)).map(Some).map_err(unreadable)
    }

    /// After the broker took the batch's states (and its offsets are committed): writes them to the
    /// file, then moves the batch's states into the cache.
    pub fn persist(&mut self, written: &[Written<'_>]) -> Result<(), StoreError> {
        if let Some(last) = written.iter().map(|w| w.offset).max() {
            self.changelog_end = self.changelog_end.max(last + 1);
            let durable = self.last_durable.elapsed() >= DURABLE_EVERY;
            self.file.write(written.iter().map(|w| (w.key, w.payload)), last + 1, durable)?;
            if durable {
                self.last_durable = Instant::now();
            }
        }
        let sizes: HashMap<&str, usize> = written.iter().map(|w| (w.key, w.payload.len())).collect();
        for (key, state) in std::mem::take(&mut self.touched) {
            // Unchanged states were not re-encoded: their size is the estimate of an average order.
            let size = sizes.get(key.as_str()).copied().unwrap_or(1_024) * DECODED_BYTES_PER_RECORD_BYTE;
            self.cached_bytes += size;
            if let Some((_, old)) = self.cache.put(key, (state, size)) {
                self.cached_bytes -= old;
            }
        }
        self.evict();
        Ok(())
    }

    fn evict(&mut self) {
        while self.cached_bytes > self.cache_budget {
            let Some((_, (_, size))) = self.cache.pop_lru() else { break };
            self.cached_bytes -= size;
        }
    }

    /// Makes everything written so far durable (at a clean stop).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(applied_end) = self.file.applied_end()? {
            self.file.write([], applied_end, true)?;
        }
        Ok(())
    }
}

/// Reads the changelog: what a partition's file has not seen yet, on restore.
pub struct Changelog {
    pub topic: String,
    config: rdkafka::ClientConfig,
    timeout: Duration,
}

impl Changelog {
    pub fn new(kafka: &KafkaConfig, topic: String) -> Changelog {
        let mut config = kafka.client_config();
        // librdkafka wants a group id even for assigned partitions; nothing is ever committed to it.
        config.set("group.id", "coupang-etl-state-reader").set("enable.auto.commit", "false");
        // The end of a partition is the broker's signal, not the high watermark: with transactions the
        // last offsets are commit markers, never delivered, and records of a transaction still open
        // (or aborted) are not read at all (`read_committed`).
        config.set("enable.partition.eof", "true").set("isolation.level", "read_committed");
        // A restore streams into the file: a small fetch queue keeps its memory small too.
        config.set("queued.max.messages.kbytes", "16384");
        Changelog { topic, config, timeout: Duration::from_secs(30) }
    }

    /// Where the partitions' files go under `state_dir`: a folder per changelog topic, so that two
    /// pipelines (or two test runs) on one host never share files.
    pub fn layout(&self, state_dir: &std::path::Path, cache_bytes: usize) -> StateLayout {
        StateLayout { dir: state_dir.join(&self.topic), cache_bytes }
    }

    fn error(&self, partition: i32) -> impl Fn(KafkaError) -> StoreError + '_ {
        move |source| StoreError::Kafka { topic: self.topic.clone(), partition, source }
    }

    /// The partition's end offset (where the next record will go).
    pub async fn end_offset(&self, partition: i32) -> Result<i64, StoreError> {
        let (config, topic, timeout) = (self.config.clone(), self.topic.clone(), self.timeout);
        let result = tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = config.create()?;
            consumer.fetch_watermarks(&topic, partition, timeout).map(|(_, high)| high)
        })
        .await
        .map_err(|_| StoreError::Join)?;
        result.map_err(self.error(partition))
    }

    /// Brings a partition's file (`held`, or the one on disk) up to the changelog's end: reads only what
    /// the file has not seen, or everything when the file is new or does not belong to this changelog.
    pub async fn catch_up(
        &self,
        partition: i32,
        held: Option<PartitionState>,
        layout: &StateLayout,
        partitions: usize,
    ) -> Result<PartitionState, StoreError> {
        let reader =
            Reader { topic: self.topic.clone(), partition, config: self.config.clone(), timeout: self.timeout };
        let layout = layout.clone();
        tokio::task::spawn_blocking(move || {
            let state = match held {
                Some(state) => state,
                None => PartitionState::open(&layout, partition, partitions)?,
            };
            reader.catch_up(state)
        })
        .await
        .map_err(|_| StoreError::Join)?
    }

    /// Reads partitions `0..partitions` whole, as a process rebuilding all of them does, and returns
    /// (records read, orders): what a rebuild costs against what it yields.
    pub async fn restore_all(&self, partitions: i32) -> Result<(usize, usize), StoreError> {
        let (mut records, mut orders) = (0, 0);
        for partition in 0..partitions {
            let reader =
                Reader { topic: self.topic.clone(), partition, config: self.config.clone(), timeout: self.timeout };
            let (read, keys) = tokio::task::spawn_blocking(move || {
                let (mut read, mut keys) = (0, HashSet::new());
                reader.read(None, |offset, key, payload| {
                    read += 1;
                    if reader.decode(offset, key, payload).is_ok() {
                        keys.insert(key.to_string());
                    }
                    Ok(())
                })?;
                Ok::<_, StoreError>((read, keys.len()))
            })
            .await
            .map_err(|_| StoreError::Join)??;
            records += read;
            orders += keys;
        }
        Ok((records, orders))
    }
}

/// Records written to the file per commit while catching up: a crash mid-restore resumes there.
const RESTORE_CHUNK: usize = 10_000;

/// One partition of the changelog, read on a blocking thread.
struct Reader {
    topic: String,
    partition: i32,
    config: rdkafka::ClientConfig,
    timeout: Duration,
}

impl Reader {
    fn catch_up(&self, mut state: PartitionState) -> Result<PartitionState, StoreError> {
        let consumer: BaseConsumer = self.config.create().map_err(|e| self.kafka(e))?;
        let (low, high) =
            consumer.fetch_watermarks(&self.topic, self.partition, self.timeout).map_err(|e| self.kafka(e))?;
        // A file ahead of the changelog, or behind records deleted since, belongs to another history.
        let from = match state.file.applied_end()? {
            Some(applied) if (low..=high).contains(&applied) => {
                state.restore_mode = RestoreMode::CatchUp;
                applied
            }
            _ => {
                state.file.clear()?;
                state.restore_mode = RestoreMode::Rebuild;
                low
            }
        };
        state.cache.clear();
        state.cached_bytes = 0;
        let mut pending: Vec<(String, Vec<u8>)> = Vec::new();
        let (mut read, mut corrupt) = (0, Vec::new());
        let end = self.read(Some(from), |offset, key, payload| {
            read += 1;
            match self.decode(offset, key, payload) {
                Ok(_) => pending.push((key.to_string(), payload.to_vec())),
                // Only this stage writes the changelog, so this is foreign data; one bad record must
                // not stop the stage. The key keeps the state it had before the record.
                Err(error) => corrupt.push(CorruptRecord {
                    offset,
                    key: key.to_string(),
                    payload: payload.to_vec(),
                    reason: error.to_string(),
                }),
            }
            if pending.len() >= RESTORE_CHUNK {
                let records = pending.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
                state.file.write(records, offset + 1, false)?;
                pending.clear();
            }
            Ok(())
        })?;
        let records = pending.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
        state.file.write(records, end.max(from), true)?;
        if read == 0 && state.restore_mode == RestoreMode::CatchUp {
            state.restore_mode = RestoreMode::Reuse;
        }
        state.last_durable = Instant::now();
        state.records_restored = read;
        state.corrupt = corrupt;
        state.changelog_end = high;
        Ok(state)
    }

    fn kafka(&self, source: KafkaError) -> StoreError {
        StoreError::Kafka { topic: self.topic.clone(), partition: self.partition, source }
    }

    fn decode(&self, offset: i64, key: &str, payload: &[u8]) -> Result<OrderState, StoreError> {
        let corrupt = |source| StoreError::Corrupt {
            topic: self.topic.clone(),
            partition: self.partition,
            offset,
            key: key.to_string(),
            source,
        };
        decode::<OrderStateRecord>(payload).and_then(|record| from_record(&record)).map_err(corrupt)
    }

    /// Streams `[from or the start, end)` of the partition to `on_record(offset, key, payload)` and
    /// returns the position it stopped at: the end, or under `read_committed` the first offset of a
    /// transaction still open.
    fn read(
        &self,
        from: Option<i64>,
        mut on_record: impl FnMut(i64, &str, &[u8]) -> Result<(), StoreError>,
    ) -> Result<i64, StoreError> {
        let consumer: BaseConsumer = self.config.create().map_err(|e| self.kafka(e))?;
        let (low, high) =
            consumer.fetch_watermarks(&self.topic, self.partition, self.timeout).map_err(|e| self.kafka(e))?;
        let start = from.unwrap_or(low).max(low);
        if start >= high {
            return Ok(start);
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&self.topic, self.partition, Offset::Offset(start))
            .map_err(|e| self.kafka(e))?;
        consumer.assign(&assignment).map_err(|e| self.kafka(e))?;
        // Gives up only when nothing arrives for `timeout`: a long changelog may take longer than that.
        let mut deadline = Instant::now() + self.timeout;
        let mut position = start;
        while position < high {
            if Instant::now() > deadline {
                let timed_out = KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::OperationTimedOut);
                return Err(self.kafka(timed_out));
            }
            let message = match consumer.poll(Duration::from_millis(200)) {
                None => continue,
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    // At the end (or at an open transaction): the consumer's position says where.
                    let at = consumer.position().ok().and_then(|list| {
                        list.find_partition(&self.topic, self.partition).and_then(|e| e.offset().to_raw())
                    });
                    position = position.max(at.unwrap_or(position));
                    break;
                }
                Some(received) => received.map_err(|e| self.kafka(e))?,
            };
            deadline = Instant::now() + self.timeout;
            position = message.offset() + 1;
            if let Some(key) = message.key() {
                on_record(message.offset(), &String::from_utf8_lossy(key), message.payload().unwrap_or_default())?;
            }
        }
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::tests::{line, receipt, revenue, sheet};
    use crate::order::RawEvent;
    use coupang_schemas::SaleType;

    #[test]
    fn a_state_survives_the_changelog_encoding() {
        let mut state = OrderState::default();
        state.fold(&RawEvent::OrderSheet(sheet(1, "FINAL_DELIVERY", vec![line(7, 2, 1_000)], 3_000)));
        state.fold(&RawEvent::ReturnRequest(receipt(9, "RETURN", true, &[(7, 1)])));
        state.fold(&RawEvent::Revenue(revenue(SaleType::Sale, 10, &[(7, 2, 1_000, 100, 50)])));
        let record = to_record("A00012345", 24_000_000_000_001, &state).unwrap();
        let bytes = encode(&record).unwrap();
        let back = from_record(&decode::<OrderStateRecord>(&bytes).unwrap()).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.version(), state.version());
    }

    #[test]
    fn a_state_evicted_from_memory_is_read_back_from_disk() {
        let dir = std::env::temp_dir().join(format!("partition-state-{}", std::process::id()));
        // No memory for decoded states: every batch reads its orders from the file.
        let layout = StateLayout { dir: dir.clone(), cache_bytes: 0 };
        let mut partition = PartitionState::open(&layout, 0, 1).unwrap();
        let mut expected = OrderState::default();
        expected.fold(&RawEvent::OrderSheet(sheet(1, "INSTRUCT", vec![line(7, 1, 1_000)], 0)));
        partition.state("A:1").unwrap().clone_from(&expected);
        let payload = encode(&to_record("A", 1, &expected).unwrap()).unwrap();
        partition.persist(&[Written { key: "A:1", payload: &payload, offset: 41 }]).unwrap();
        assert_eq!((partition.cached(), partition.orders().unwrap(), partition.changelog_end), (0, 1, 42));
        assert_eq!(partition.state("A:1").unwrap(), &expected);
        assert_eq!(partition.state("A:2").unwrap(), &OrderState::default());
        // Unchanged states leave the batch without a write.
        partition.persist(&[]).unwrap();
        assert_eq!(partition.orders().unwrap(), 1);
        drop(partition);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
