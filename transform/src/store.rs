//! The transform's state: one [`OrderState`] per order, held per input partition and backed by a
//! compacted changelog topic with the same partitioning.
//!
//! - Every state change is written to changelog partition *p* for input partition *p* (explicitly,
//!   whatever the producer's partitioner), keyed `vendorId:orderId`, before the input offsets are
//!   committed. A restart or a partition moving to another process restores *p* from the changelog,
//!   never from the raw history.
//! - Each partition's states also live in a local file ([`StateFile`]), written after the broker took
//!   them: memory holds only the file's bounded page cache (`transform.state_cache_mib`) and the
//!   batch's decoded states (bounded by `transform.batch_state_kib`), and a restart reads from the
//!   changelog only what the file has not seen yet.

use coupang_schemas::{decode, CodecError, OrderStateRecord};
use etl_core::kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::order::{OrderState, SlotKey};
use crate::record::{encode_record_from, from_record_keeping_bytes, kept, EncodedSlots, Kept};
pub use crate::record::{from_record, to_record};
use crate::state_file::{PartitionReader, PartitionWrite, StateFile, StateFileError};
use std::sync::Arc;

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

/// A state a restore kept over the changelog's last record of its order, to be sent again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resend {
    pub key: String,
    /// The state kept, as its changelog record.
    pub record: Vec<u8>,
    pub superseded: Superseded,
}

/// What a kept state superseded on the changelog: what the facts the loader holds may come from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Superseded {
    /// A record that does not decode, which made no facts.
    Corrupt,
    /// A state sent late (`record`, the last of them), whose facts went out late too: see
    /// [`crate::rules::facts_sent_again`]. `sent_before`: the other state whose facts went out (in
    /// whichever order with the late ones), when only one late state came: the state kept, or the
    /// one a join was made with (a join is on no changelog record until sent again). `None` after
    /// several late states.
    Late { record: Vec<u8>, sent_before: Option<Vec<u8>> },
}

/// What a restore met after the state it kept, for [`Superseded`].
enum Met {
    Corrupt,
    /// The last late state; `single`: the only one.
    Late {
        record: Vec<u8>,
        single: bool,
    },
}

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

/// Opens the process's state file under `{state_dir}/{changelog topic}` (so two pipelines, or two
/// test runs, on one host never share files), with `cache_bytes` (at least 1 MiB) as its cache and
/// segments of `segment_bytes`.
pub fn open_state_file(
    state_dir: &std::path::Path,
    topic: &str,
    cache_bytes: usize,
    segment_bytes: u64,
) -> Result<Arc<StateFile>, StoreError> {
    Ok(Arc::new(StateFile::open(&state_dir.join(topic), cache_bytes.max(1 << 20), segment_bytes)?))
}

/// The orders of one input partition, on disk. Only the orders of the batch in hand are decoded in
/// memory: a cache of decoded states measured slower and 5× larger than reading them again (the file's
/// own cache and the OS's page cache serve the reads; BENCHMARKS.md).
pub struct PartitionState {
    file: Arc<StateFile>,
    partition: i32,
    /// States the current batch read or changed, with their slots' bytes, until the batch is
    /// committed and they are on disk.
    /// Keyed by foldhash rather than SipHash: hashing them was 4% of the stage's instructions.
    touched: HashMap<String, (OrderState, EncodedSlots), foldhash::fast::RandomState>,
    /// The batch's snapshot of the partition's table, opened at its first read.
    reader: Option<PartitionReader>,
    /// Bytes of stored states the current batch read from the file.
    read_bytes: usize,
    /// The changelog's end offset after this process's last write or restore.
    pub changelog_end: i64,
    /// Records the last restore read: the orders the file had not seen, plus older states compaction
    /// has not removed yet.
    pub records_restored: usize,
    pub restore_mode: RestoreMode,
    /// Records of the changelog that did not decode, met by the last restore (for the dead-letter
    /// topic): each was skipped, and its key kept its previous state (sent again when it had one, see `resend`).
    pub corrupt: Vec<CorruptRecord>,
    /// States the last restore kept although the changelog's last record of their key knows less:
    /// sent late by a process frozen past its group session, after its successor wrote newer ones;
    /// or a record that does not decode. The stage sends them again, so that the state kept is last
    /// again before compaction removes it, with the facts the late ones may hide.
    pub resend: Vec<Resend>,
    /// A batch's states landed past this process's last write: another process wrote the partition
    /// in between (see [`Changelog::catch_up`]), or between the states a restore sent again
    /// ([`PartitionState::resent`]). Its file's `applied_end` stays where it was, so that the next
    /// restore, which the stage runs before its next batch, reads those records.
    pub foreign_writes: bool,
}

impl std::fmt::Debug for PartitionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionState")
            .field("partition", &self.partition)
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

/// After the broker took a batch's states (and its offsets are committed): writes them to the state
/// file in one commit, then lets go of the batch's decoded states.
pub fn persist<'a>(
    file: &StateFile,
    owned: impl IntoIterator<Item = (&'a mut PartitionState, Vec<Written<'a>>)>,
) -> Result<(), StoreError> {
    // Each partition with its new end: past the last state written, if any was.
    let mut owned: Vec<_> = owned
        .into_iter()
        .map(|(state, written)| {
            let end = written.iter().map(|w| w.offset + 1).max();
            (state, written, end)
        })
        .collect();
    // The batch's snapshots go before the write, so that redb can reuse the pages they held.
    owned.iter_mut().for_each(|(state, _, _)| state.release_decoded());
    let mut writes: Vec<PartitionWrite<'_>> = Vec::with_capacity(owned.len());
    for (state, written, end) in &owned {
        let Some(end) = *end else { continue };
        // States past another process's writes: kept, but the file's end stays, to read those again.
        let applied_end = if state.foreign_writes { file.applied_end(state.partition)?.unwrap_or(0) } else { end };
        let records = written.iter().map(|w| (w.key, w.payload)).collect();
        writes.push(PartitionWrite { partition: state.partition, records, applied_end });
    }
    if !writes.is_empty() {
        file.write(&writes, false)?;
    }
    for (state, _, end) in owned {
        if !state.foreign_writes {
            state.settle(end);
        }
    }
    Ok(())
}

impl PartitionState {
    /// A partition with nothing restored: its states are what `file` holds (benches and tests; the
    /// stage takes its partitions from [`Changelog::catch_up`]).
    pub fn new(file: Arc<StateFile>, partition: i32) -> PartitionState {
        PartitionState {
            file,
            partition,
            touched: HashMap::default(),
            reader: None,
            read_bytes: 0,
            changelog_end: 0,
            records_restored: 0,
            restore_mode: RestoreMode::Reuse,
            corrupt: Vec::new(),
            resend: Vec::new(),
            foreign_writes: false,
        }
    }

    /// Orders held (on disk).
    pub fn orders(&self) -> Result<u64, StoreError> {
        Ok(self.file.len(self.partition)?)
    }

    /// The state of `key`, for the current batch: as it changed earlier in the batch, from the file,
    /// or new.
    pub fn state(&mut self, key: &str) -> Result<&mut OrderState, StoreError> {
        if !self.touched.contains_key(key) {
            let read = self.read(key)?.unwrap_or_default();
            self.touched.insert(key.to_string(), read);
        }
        Ok(&mut self.touched.get_mut(key).expect("inserted above").0)
    }

    /// Keeps `payload` as the bytes of `slot`, which an event took in `key`'s state.
    pub fn keep_payload(&mut self, key: &str, slot: SlotKey, payload: &[u8]) {
        if let Some((_, known)) = self.touched.get_mut(key) {
            known.keep(slot, payload);
        }
    }

    /// The encoded changelog record of `key`'s state in the batch, from the bytes at hand where possible.
    pub fn encoded_record(&self, key: &str, vendor_id: &str, order_id: i64) -> Result<Option<Vec<u8>>, CodecError> {
        let Some((state, known)) = self.touched.get(key) else { return Ok(None) };
        encode_record_from(vendor_id, order_id, state, known).map(Some)
    }

    fn read(&mut self, key: &str) -> Result<Option<(OrderState, EncodedSlots)>, StoreError> {
        if self.reader.is_none() {
            self.reader = Some(self.file.reader(self.partition)?);
        }
        let reader = self.reader.as_ref().expect("opened above");
        let Some((len, state)) = reader
            .read(key, |bytes| (bytes.len(), decode::<OrderStateRecord>(bytes).and_then(from_record_keeping_bytes)))?
        else {
            return Ok(None);
        };
        self.read_bytes += len;
        let unreadable =
            |source| StoreError::Unreadable { path: self.file.path().to_path_buf(), key: key.to_string(), source };
        state.map(Some).map_err(unreadable)
    }

    /// Lets go of the batch's decoded states and its snapshot of the file, once its records are
    /// encoded: nothing reads them again, and keeping them while the broker acknowledges the batch
    /// held them beside the records on their way out.
    pub fn release_decoded(&mut self) {
        // Not `clear`: a batch may take most of its events from one partition, and twelve maps each
        // keeping room for a whole batch was ~10 MiB held for nothing (heaptrack, 10×).
        self.touched = HashMap::default();
        self.reader = None;
        self.read_bytes = 0;
    }

    /// Records that the states of [`PartitionState::resend`] were sent again: the file takes them (the
    /// joins were not in it yet). With `end`, the last landed before it, and the file's `applied_end`,
    /// held back by the restore until then, moves there; without, other records came between them,
    /// and it stays, for the next restore to read those.
    pub fn resent(&mut self, end: Option<i64>) -> Result<(), StoreError> {
        let resend = std::mem::take(&mut self.resend);
        let records = resend.iter().map(|again| (again.key.as_str(), again.record.as_slice())).collect();
        let applied_end = match end {
            Some(end) => end,
            None => self.file.applied_end(self.partition)?.unwrap_or(0),
        };
        self.file.write(&[PartitionWrite { partition: self.partition, records, applied_end }], false)?;
        let Some(end) = end else { return Ok(()) };
        self.changelog_end = self.changelog_end.max(end);
        Ok(())
    }

    /// Bytes of stored states the current batch has read from the file: what its decoded states grow
    /// with.
    pub fn read_bytes(&self) -> usize {
        self.read_bytes
    }

    /// Records the changelog's new end once the batch's states are on disk; `end`: past the last one, if
    /// any. (The batch's decoded states were let go before the write.)
    fn settle(&mut self, end: Option<i64>) {
        if let Some(end) = end {
            self.changelog_end = self.changelog_end.max(end);
        }
    }
}

/// Reads the changelog: what a partition's file has not seen yet, on restore.
#[derive(Clone)]
pub struct Changelog {
    pub topic: String,
    config: rdkafka::ClientConfig,
    consumer: SharedConsumer,
    /// A `read_uncommitted` client, only asked for a partition's high watermark, which a transaction
    /// still open does not hold back (created on first use, with transactions only).
    uncommitted: SharedConsumer,
    timeout: Duration,
}

/// One consumer for every read of the changelog by this process, created on first use: a librdkafka
/// client created and destroyed per partition costs ~0.1 s, seconds for a process taking 96 partitions.
type SharedConsumer = Arc<std::sync::Mutex<Option<BaseConsumer>>>;

/// The fetch queue of the changelog reader and of the input consumer: 2 MiB of queued messages, refilled
/// 20 ms after it was full (librdkafka's defaults: 64 MiB, 1 s).
pub(crate) const SMALL_FETCH_QUEUE: [(&str, &str); 2] =
    [("queued.max.messages.kbytes", "2048"), ("fetch.queue.backoff.ms", "20")];

impl Changelog {
    pub fn new(kafka: &KafkaConfig, topic: String) -> Changelog {
        let mut config = kafka.client_config();
        // librdkafka wants a group id even for assigned partitions; nothing is ever committed to it.
        config.set("group.id", "coupang-etl-state-reader").set("enable.auto.commit", "false");
        // The end of a partition is the broker's signal, not the high watermark: with transactions the
        // last offsets are commit markers, never delivered, and records of a transaction still open
        // (or aborted) are not read at all (`read_committed`).
        config.set("enable.partition.eof", "true").set("isolation.level", "read_committed");
        // A restore streams into the file: a small fetch queue keeps its memory small too (16 MiB
        // made a rebuild peak at 64–75 MiB, above the stage; 2 MiB, refilled after 20 ms rather than
        // librdkafka's 1 s, 39–47 MiB at about the same speed: BENCHMARKS.md).
        for (key, value) in SMALL_FETCH_QUEUE {
            config.set(key, value);
        }
        // Partitions are read one after another with one consumer, and the next one's fetch waits for
        // the broker to answer the last one's, which holds an empty fetch for up to this long (500 ms
        // by default: half a second per partition restored, measured). A reader that stops at the end
        // has nothing to wait for.
        config.set("fetch.wait.max.ms", "10");
        Changelog {
            topic,
            config,
            consumer: SharedConsumer::default(),
            uncommitted: SharedConsumer::default(),
            timeout: Duration::from_secs(30),
        }
    }

    /// With transactions: waits until no transaction is open on any of `partitions` (each one's stable
    /// end, where a `read_committed` reader stops, has reached its high watermark), or until `wait` has
    /// passed; returns the partitions still holding one then.
    ///
    /// A partition taken over may hold a transaction its previous owner left open: killed (the broker
    /// aborts it after its timeout), or stalled past the group's session, which may still commit it,
    /// offsets included. A restore stopping at the stable end would then miss that batch's states,
    /// while the input consumer (whose committed offsets wait for pending transactional ones) starts
    /// after its events. This process's own last commit may also still be writing its markers (a
    /// commit returns before they land), which this waits out too.
    pub async fn wait_for_open_transactions(&self, partitions: &[i32], wait: Duration) -> Result<Vec<i32>, StoreError> {
        let (log, mut open) = (self.clone(), partitions.to_vec());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut logged = false;
            loop {
                let mut still_open = Vec::new();
                for partition in open {
                    let reader = log.reader(partition);
                    if reader.with_consumer(|consumer| reader.transaction_open(consumer))? {
                        still_open.push(partition);
                    }
                }
                open = still_open;
                if open.is_empty() || started.elapsed() >= wait {
                    return Ok(open);
                }
                if !logged && started.elapsed() >= Duration::from_secs(1) {
                    tracing::info!(topic = %log.topic, partitions = ?open, "a transaction is open on the changelog: waiting for it to end before restoring");
                    logged = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .map_err(|_| StoreError::Join)?
    }

    fn reader(&self, partition: i32) -> Reader {
        Reader { log: self.clone(), partition }
    }

    /// The partition's end offset (where the next record will go), as a `read_committed` reader sees it.
    pub async fn end_offset(&self, partition: i32) -> Result<i64, StoreError> {
        let reader = self.reader(partition);
        tokio::task::spawn_blocking(move || reader.with_consumer(|consumer| Ok(reader.watermarks(consumer)?.1)))
            .await
            .map_err(|_| StoreError::Join)?
    }

    /// Brings a partition's file (`held`, or the one on disk) up to the changelog's end: reads only what
    /// the file has not seen, or everything when the file is new or does not belong to this changelog.
    ///
    /// A record replaces its key's state unless the state held knows more ([`crate::record::kept`]: it
    /// holds every snapshot the record does, or a newer one); when each knows something the other
    /// does not, their join is kept.
    /// Without transactions nothing fences a process frozen past its group session (a VM paused):
    /// thawed, it finishes its batch and sends its states after its successor sent newer ones. Those
    /// keys (and any joined, and any whose last record does not decode while a state of it is held)
    /// come back in [`PartitionState::resend`], and the file's `applied_end` stays at the first such
    /// record until [`PartitionState::resent`] says they were sent again, with nothing between them.
    pub async fn catch_up(
        &self,
        partition: i32,
        held: Option<PartitionState>,
        file: &Arc<StateFile>,
    ) -> Result<PartitionState, StoreError> {
        let reader = self.reader(partition);
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            let state = held.unwrap_or_else(|| PartitionState::new(file, partition));
            reader.with_consumer(|consumer| reader.catch_up(consumer, state))
        })
        .await
        .map_err(|_| StoreError::Join)?
    }

    /// Reads partitions `0..partitions` whole, as a process rebuilding all of them does, and returns
    /// (records read, orders): what a rebuild costs against what it yields.
    pub async fn restore_all(&self, partitions: i32) -> Result<(usize, usize), StoreError> {
        let (mut records, mut orders) = (0, 0);
        for partition in 0..partitions {
            // A fresh consumer per partition, as a process that never read this changelog has.
            let reader = Reader { log: Changelog { consumer: SharedConsumer::default(), ..self.clone() }, partition };
            let (read, keys) = tokio::task::spawn_blocking(move || {
                let (mut read, mut keys) = (0, HashSet::new());
                reader.with_consumer(|consumer| {
                    let (low, high) = reader.watermarks(consumer)?;
                    reader.read(consumer, (low, high), |offset, key, payload| {
                        read += 1;
                        if reader.decode(offset, key, payload).is_ok() {
                            keys.insert(key.to_string());
                        }
                        Ok(())
                    })
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

/// The hash of the keys a restore has taken (see `Reader::catch_up`): fixed, so that it costs no
/// random state per restore.
const KEY_HASH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x5EED);

/// Records written to the file per commit while catching up: a crash mid-restore resumes there. A
/// commit's records, and the pages they dirty, are held until it commits: 10,000 made a rebuild peak
/// above the stage's own (73–84 MiB at 10×), 2,000 (a batch's worth) 66 MiB at the same speed
/// (`BENCHMARKS.md`).
const RESTORE_CHUNK: usize = 2_000;

/// One partition of the changelog, read on a blocking thread (which takes its own copy of the settings
/// and a handle on the shared consumer).
struct Reader {
    log: Changelog,
    partition: i32,
}

impl Reader {
    /// Runs `read` with the process's changelog consumer (created if need be), unassigned afterwards.
    fn with_consumer<T>(&self, read: impl FnOnce(&BaseConsumer) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let shared = self.client(&self.log.consumer, || self.log.config.clone())?;
        let consumer = shared.as_ref().expect("created by `client`");
        let result = read(consumer);
        let _ = consumer.unassign();
        result
    }

    /// The shared client in `slot`, created with the settings `config` makes on first use.
    fn client<'s>(
        &self,
        slot: &'s SharedConsumer,
        config: impl FnOnce() -> rdkafka::ClientConfig,
    ) -> Result<std::sync::MutexGuard<'s, Option<BaseConsumer>>, StoreError> {
        let mut shared = slot.lock().unwrap_or_else(|e| e.into_inner());
        if shared.is_none() {
            *shared = Some(config().create().map_err(|e| self.kafka(e))?);
        }
        Ok(shared)
    }

    fn watermarks(&self, consumer: &BaseConsumer) -> Result<(i64, i64), StoreError> {
        consumer.fetch_watermarks(&self.log.topic, self.partition, self.log.timeout).map_err(|e| self.kafka(e))
    }

    /// Whether a transaction is open on the partition: its stable end is below its high watermark (the
    /// last offset plus one, commit markers and open transactions' records included).
    fn transaction_open(&self, consumer: &BaseConsumer) -> Result<bool, StoreError> {
        let (_, stable_end) = self.watermarks(consumer)?;
        let uncommitted = || {
            let mut config = self.log.config.clone();
            config.set("isolation.level", "read_uncommitted");
            config
        };
        let shared = self.client(&self.log.uncommitted, uncommitted)?;
        let client = shared.as_ref().expect("created by `client`");
        // Asked second: a transaction ending between the two answers only costs another look.
        let (_, high) =
            client.fetch_watermarks(&self.log.topic, self.partition, self.log.timeout).map_err(|e| self.kafka(e))?;
        Ok(stable_end < high)
    }

    fn catch_up(&self, consumer: &BaseConsumer, mut state: PartitionState) -> Result<PartitionState, StoreError> {
        let file = state.file.clone();
        let applied_end = file.applied_end(self.partition)?;
        let (low, high) = self.watermarks(consumer)?;
        // A table ahead of the changelog, or behind records deleted since, belongs to another history. (With
        // transactions, also one ahead of a transaction still open after the wait before restoring:
        // rebuilt up to its start, see `Changelog::wait_for_open_transactions`.)
        let from = match applied_end {
            Some(applied) if (low..=high).contains(&applied) => {
                state.restore_mode = RestoreMode::CatchUp;
                applied
            }
            _ => {
                file.clear(self.partition)?;
                state.restore_mode = RestoreMode::Rebuild;
                low
            }
        };
        // Records read but not yet written (one commit per chunk).
        let mut pending: HashMap<String, Vec<u8>, foldhash::fast::RandomState> = HashMap::default();
        // Joins of two states (encoded), kept in memory only: the file keeps the state held before
        // until the join is sent again (`PartitionState::resent`), so that a restore cut short makes
        // the same join again and knows that its facts never went out.
        let mut joins: HashMap<String, Vec<u8>, foldhash::fast::RandomState> = HashMap::default();
        // In a rebuild, the hashes of the keys taken so far: the file held nothing before the rebuild,
        // so a key not in here has no state to read back (two keys sharing a hash only cost a read).
        let mut taken: HashSet<u64, foldhash::fast::FixedState> = HashSet::default();
        let mut on_disk = Some(file.reader(self.partition)?);
        // Keys whose last record on the changelog knows less than the state kept (an older state, one
        // joined with the state before it, or a record that does not decode): see `resend`. Until they
        // are sent again, the file's `applied_end` stays at the first such record, so that a restore
        // cut short (or a failed send) finds them again.
        let mut superseded: HashMap<String, Met> = HashMap::new();
        let mut first_superseded: Option<i64> = None;
        let (mut read, mut corrupt) = (0, Vec::new());
        let write = |pending: &HashMap<String, Vec<u8>, _>, applied_end: i64, durable: bool| {
            let records = pending.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
            file.write(&[PartitionWrite { partition: self.partition, records, applied_end }], durable)
        };
        let rebuild = state.restore_mode == RestoreMode::Rebuild;
        let end = self.read(consumer, (from, high), |offset, key, payload| {
            read += 1;
            match self.decode(offset, key, payload) {
                Ok(state) => {
                    // Only a rebuild keeps the set (a catch-up reads the file for every record).
                    let hash = rebuild.then(|| KEY_HASH.hash_one(key));
                    // Which to keep of this record and the state held for `key` (this restore's pending
                    // records, or the file's), decided exactly.
                    let decide = |on_disk: &Option<PartitionReader>| -> Result<Kept, StoreError> {
                        let against_held = |held: &[u8]| kept(held, &state, payload);
                        Ok(read_held(key, [&joins, &pending], on_disk, against_held)?.unwrap_or(Kept::Incoming))
                    };
                    // A key a rebuild has not taken yet has no state held; a catch-up's file also holds
                    // states from before it.
                    let keep = match hash {
                        Some(hash) if !taken.contains(&hash) => Kept::Incoming,
                        _ => decide(&on_disk)?,
                    };
                    let mut take = |record: Vec<u8>| {
                        if let Some(hash) = hash {
                            taken.insert(hash);
                        }
                        pending.insert(key.to_string(), record);
                    };
                    match keep {
                        Kept::Incoming => {
                            if !superseded.is_empty() {
                                superseded.remove(key);
                                joins.remove(key);
                            }
                            take(payload.to_vec());
                        }
                        Kept::Held => {
                            late(&mut superseded, key, payload);
                            first_superseded.get_or_insert(offset);
                        }
                        // Sent again like a held state: the changelog's last record of the order is not it.
                        Kept::Joined { record } => {
                            joins.insert(key.to_string(), record);
                            late(&mut superseded, key, payload);
                            first_superseded.get_or_insert(offset);
                        }
                    }
                }
                // Only this stage writes the changelog, so this is foreign data; one bad record must
                // not stop the stage. The key keeps the state it had before the record, which is sent
                // again like a held state: once compaction removed the states before it, a record that
                // does not decode would be all a later rebuild finds of the order.
                Err(error) => {
                    let may_hold = !rebuild || taken.contains(&KEY_HASH.hash_one(key));
                    if may_hold && read_held(key, [&joins, &pending], &on_disk, |_| ())?.is_some() {
                        superseded.entry(key.to_string()).or_insert(Met::Corrupt);
                        first_superseded.get_or_insert(offset);
                    }
                    corrupt.push(CorruptRecord {
                        offset,
                        key: key.to_string(),
                        payload: payload.to_vec(),
                        reason: error.to_string(),
                    })
                }
            }
            if pending.len() >= RESTORE_CHUNK {
                // The snapshot goes first, so that redb can reuse the pages it held.
                on_disk = None;
                write(&pending, first_superseded.map_or(offset + 1, |first| first.min(offset + 1)), false)?;
                pending.clear();
                on_disk = Some(file.reader(self.partition)?);
            }
            Ok(())
        })?;
        drop(on_disk);
        // A rebuilt or caught-up table is made durable at once: a crash now would redo the reading.
        let applied_end = first_superseded.filter(|_| !superseded.is_empty()).map_or(end, |first| first.min(end));
        if end > from || state.restore_mode == RestoreMode::Rebuild {
            write(&pending, applied_end, read > 0)?;
        }
        if read == 0 && state.restore_mode == RestoreMode::CatchUp {
            state.restore_mode = RestoreMode::Reuse;
        }
        state.records_restored = read;
        state.corrupt = corrupt;
        state.changelog_end = high;
        state.foreign_writes = false;
        let on_disk = file.reader(self.partition)?;
        state.resend = Vec::with_capacity(superseded.len());
        for (key, met) in superseded {
            // The state kept, or the one a join was made with: the file keeps it until the join is sent.
            let Some(held) = on_disk.get(&key)? else { continue };
            let superseded = match met {
                Met::Corrupt => Superseded::Corrupt,
                Met::Late { record, single } => Superseded::Late { record, sent_before: single.then(|| held.clone()) },
            };
            let record = joins.remove(&key).unwrap_or(held);
            state.resend.push(Resend { key, record, superseded });
        }
        state.resend.sort_unstable();
        Ok(state)
    }

    fn kafka(&self, source: KafkaError) -> StoreError {
        StoreError::Kafka { topic: self.log.topic.clone(), partition: self.partition, source }
    }

    fn decode(&self, offset: i64, key: &str, payload: &[u8]) -> Result<OrderState, StoreError> {
        let corrupt = |source| StoreError::Corrupt {
            topic: self.log.topic.clone(),
            partition: self.partition,
            offset,
            key: key.to_string(),
            source,
        };
        decode::<OrderStateRecord>(payload).and_then(from_record).map_err(corrupt)
    }

    /// Streams `[start, high)` of the partition to `on_record(offset, key, payload)` and returns the
    /// position it stopped at: `high`, or under `read_committed` the first offset of a transaction
    /// still open.
    fn read(
        &self,
        consumer: &BaseConsumer,
        (start, high): (i64, i64),
        mut on_record: impl FnMut(i64, &str, &[u8]) -> Result<(), StoreError>,
    ) -> Result<i64, StoreError> {
        if start >= high {
            return Ok(start);
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&self.log.topic, self.partition, Offset::Offset(start))
            .map_err(|e| self.kafka(e))?;
        consumer.assign(&assignment).map_err(|e| self.kafka(e))?;
        // Gives up only when nothing arrives for `timeout`: a long changelog may take longer than that.
        let mut deadline = Instant::now() + self.log.timeout;
        let mut position = start;
        while position < high {
            if Instant::now() > deadline {
                let timed_out = KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::OperationTimedOut);
                return Err(self.kafka(timed_out));
            }
            let message = match consumer.poll(Duration::from_millis(200)) {
                None => continue,
                // Left from an earlier partition's read: not this one's.
                Some(Err(KafkaError::PartitionEOF(other))) if other != self.partition => continue,
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    // At the end (or at an open transaction): the consumer's position says where.
                    let at = consumer.position().ok().and_then(|list| {
                        list.find_partition(&self.log.topic, self.partition).and_then(|e| e.offset().to_raw())
                    });
                    position = position.max(at.unwrap_or(position));
                    break;
                }
                Some(received) => received.map_err(|e| self.kafka(e))?,
            };
            if message.partition() != self.partition {
                continue;
            }
            deadline = Instant::now() + self.log.timeout;
            position = message.offset() + 1;
            if let Some(key) = message.key() {
                on_record(message.offset(), &String::from_utf8_lossy(key), message.payload().unwrap_or_default())?;
            }
        }
        Ok(position)
    }
}

/// `read` applied to the state a restore holds for `key`: in its maps (`joins`, then `pending`), else
/// in the file.
fn read_held<T, S: BuildHasher>(
    key: &str,
    maps: [&HashMap<String, Vec<u8>, S>; 2],
    on_disk: &Option<PartitionReader>,
    read: impl FnOnce(&[u8]) -> T,
) -> Result<Option<T>, StoreError> {
    if let Some(record) = maps.iter().find_map(|map| map.get(key)) {
        return Ok(Some(read(record)));
    }
    Ok(on_disk.as_ref().map(|file| file.read(key, read)).transpose()?.flatten())
}

/// Notes `record`, a state of `key` read after the state kept (which knows all it knows).
fn late(superseded: &mut HashMap<String, Met>, key: &str, record: &[u8]) {
    let single = !matches!(superseded.get(key), Some(Met::Late { .. }));
    superseded.insert(key.to_string(), Met::Late { record: record.to_vec(), single });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::tests::{line, sheet};
    use crate::order::RawEvent;
    use coupang_schemas::encode;

    #[test]
    fn a_state_committed_is_read_back_from_disk() {
        let dir = std::env::temp_dir().join(format!("partition-state-{}", std::process::id()));
        let file = open_state_file(&dir, "changelog", 0, 1 << 20).unwrap();
        let mut partition = PartitionState::new(file.clone(), 0);
        let mut expected = OrderState::default();
        expected.fold(&RawEvent::OrderSheet(sheet(1, "INSTRUCT", vec![line(7, 1, 1_000)], 0)));
        partition.state("A:1").unwrap().clone_from(&expected);
        let payload = encode(&to_record("A", 1, &expected).unwrap()).unwrap();
        let written = vec![Written { key: "A:1", payload: &payload, offset: 41 }];
        persist(&file, [(&mut partition, written)]).unwrap();
        assert_eq!((partition.orders().unwrap(), partition.changelog_end), (1, 42));
        assert_eq!(file.applied_end(0).unwrap(), Some(42));
        assert_eq!(partition.state("A:1").unwrap(), &expected);
        assert_eq!(partition.state("A:2").unwrap(), &OrderState::default());
        // Unchanged states leave the batch without a write.
        persist(&file, [(&mut partition, Vec::new())]).unwrap();
        assert_eq!(partition.orders().unwrap(), 1);
        drop((partition, file));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
