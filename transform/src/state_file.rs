//! The process's order states on local disk: per order, the exact record last sent to the changelog,
//! and per input partition the changelog offset its states are complete up to.
//!
//! The records lie in append-only segment files ([`crate::value_log`]); one redb file indexes them,
//! with a table per input partition mapping each order to its record, the offsets, and each segment's
//! size and live bytes. An index page then holds about a hundred orders rather than five records, and
//! the records go out in one sequential write per batch (BENCHMARKS.md, "Values apart from the index").
//!
//! The file is a cache of the changelog, never ahead of it: states are written only after the broker
//! took them (and the batch's offsets were committed), and a partition's states and its `applied_end`
//! change in one atomic commit of the index, after the records it points at are written (and synced,
//! for a durable one). Whatever snapshot the index reopens at (after a clean stop, or after a SIGKILL,
//! which rolls back to the last durable commit), each table holds the latest state per key of its
//! changelog partition below its own `applied_end`, and the rest is read from the changelog; segment
//! bytes past that snapshot are cut off.
//!
//! One file for all partitions makes a batch one commit whatever the partition count, and durability
//! one fsync per `DURABLE_EVERY` (5 s).

use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableHandle, WriteTransaction,
};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::value_log::{Appender, Pointer, Segments};

const META: TableDefinition<&str, i64> = TableDefinition::new("applied_end");

/// Per segment: its length and the bytes of its records the index points at (`[len, live]`).
const SEGMENTS: TableDefinition<u32, [u64; 2]> = TableDefinition::new("segments");

/// The layout this code reads: a file without it (older, with the records inside redb) is replaced.
const FORMAT: TableDefinition<&str, u32> = TableDefinition::new("format");
const VALUES_APART: u32 = 1;

/// Longest the file goes without a durable commit: what a SIGKILL makes the next start read again
/// from the changelog, at most.
const DURABLE_EVERY: Duration = Duration::from_secs(5);

/// Files a host may hold for one changelog: a second process (or a second stage in one process) that
/// finds the first file locked takes the next, and catches its partitions up from wherever that copy
/// stopped.
const SLOTS: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("state file {path}: {source}")]
pub struct StateFileError {
    pub path: PathBuf,
    #[source]
    pub source: Box<redb::Error>,
}

/// What failed at `path`: redb's errors, and I/O errors as redb names them.
fn failed(path: &Path, source: impl Into<redb::Error>) -> StateFileError {
    StateFileError { path: path.into(), source: Box::new(source.into()) }
}

/// One partition's writes: its records (key, encoded state) and the offset they bring it to.
pub struct PartitionWrite<'a> {
    pub partition: i32,
    pub records: Vec<(&'a str, &'a [u8])>,
    pub applied_end: i64,
}

fn index(name: &str) -> TableDefinition<'_, &'static str, [u8; 16]> {
    TableDefinition::new(name)
}

/// A snapshot of one partition's table.
pub struct PartitionReader {
    /// `None`: the partition has no table yet.
    table: Option<ReadOnlyTable<&'static str, [u8; 16]>>,
    partition: i32,
    segments: Arc<Segments>,
    /// The last record read, reused for the next.
    buffer: Mutex<Vec<u8>>,
    path: PathBuf,
}

impl PartitionReader {
    /// The record last written for `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateFileError> {
        self.read(key, <[u8]>::to_vec)
    }

    /// `read` applied to the record last written for `key`, as read from its segment.
    pub fn read<T>(&self, key: &str, read: impl FnOnce(&[u8]) -> T) -> Result<Option<T>, StateFileError> {
        let Some(table) = &self.table else { return Ok(None) };
        let found = table.get(key).map_err(|e| failed(&self.path, e))?;
        let Some(pointer) = found.map(|v| Pointer::from_bytes(v.value())) else {
            return Ok(None);
        };
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let value = self.segments.read(pointer, self.partition, key, &mut buffer).map_err(|e| failed(&self.path, e))?;
        Ok(Some(read(value)))
    }
}

/// Per segment: its length and its live bytes (those of the records the index points at).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    len: u64,
    live: u64,
}

/// What only the writer touches, under one lock.
#[derive(Debug)]
struct Writer {
    appender: Appender,
    /// As of the index's last commit.
    usage: BTreeMap<u32, Usage>,
    last_durable: Instant,
    /// Commits made since the last durable one, which a SIGKILL would lose.
    since_durable: bool,
}

/// The process's state file.
pub struct StateFile {
    db: Database,
    segments: Arc<Segments>,
    writer: Mutex<Writer>,
    path: PathBuf,
    /// Which of the host's files for this changelog: the same for a process restarted on this host.
    slot: usize,
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile").field("path", &self.path).finish()
    }
}

fn orders(partition: i32) -> String {
    format!("orders.{partition}")
}

/// The index's record of each segment, as of its last commit.
fn usage_of(db: &Database) -> Result<BTreeMap<u32, Usage>, redb::Error> {
    let table = match db.begin_read()?.open_table(SEGMENTS) {
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(BTreeMap::new()),
        table => table?,
    };
    let mut usage = BTreeMap::new();
    for entry in table.iter()? {
        let (segment, value) = entry?;
        let [len, live] = value.value();
        usage.insert(segment.value(), Usage { len, live });
    }
    Ok(usage)
}

/// Whether the file has this layout; a new one (no table yet) is given it.
fn of_this_layout(db: &Database) -> Result<bool, redb::Error> {
    let txn = db.begin_read()?;
    match txn.open_table(FORMAT) {
        Ok(table) => Ok(table.get("values")?.is_some_and(|v| v.value() == VALUES_APART)),
        Err(redb::TableError::TableDoesNotExist(_)) if txn.list_tables()?.next().is_none() => {
            let txn = db.begin_write()?;
            txn.open_table(FORMAT)?.insert("values", VALUES_APART)?;
            txn.commit()?;
            Ok(true)
        }
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Whether the file has the table `name` (opening it in a write transaction would create it).
fn has_table(txn: &WriteTransaction, name: &str) -> Result<bool, redb::Error> {
    Ok(txn.list_tables()?.any(|table| table.name() == name))
}

/// Records each segment whose usage changed from `before` to `after`.
fn record_usage(
    txn: &WriteTransaction,
    before: &BTreeMap<u32, Usage>,
    after: &BTreeMap<u32, Usage>,
) -> Result<(), redb::Error> {
    let mut table = txn.open_table(SEGMENTS)?;
    for segment in before.keys().filter(|s| !after.contains_key(s)) {
        table.remove(segment)?;
    }
    for (segment, usage) in after.iter().filter(|(s, u)| before.get(s) != Some(u)) {
        table.insert(segment, [usage.len, usage.live])?;
    }
    Ok(())
}

/// Counts `pointer`'s record as live in `usage`, or (`released`) as superseded.
fn account(usage: &mut BTreeMap<u32, Usage>, pointer: Pointer, released: bool) {
    let entry = usage.entry(pointer.segment).or_default();
    if released {
        entry.live = entry.live.saturating_sub(pointer.len.into());
    } else {
        entry.live += u64::from(pointer.len);
        entry.len = entry.len.max(pointer.offset + u64::from(pointer.len));
    }
}

impl StateFile {
    /// Opens (or creates) the first free file under `dir`, with `cache_bytes` of redb cache. A file
    /// that does not open as a redb file of this layout (foreign, or an older format), or whose
    /// segments are missing, is replaced.
    /// Records are appended to a segment until it holds `segment_bytes` (at least 1 MiB outside tests).
    pub fn open(dir: &Path, cache_bytes: usize, segment_bytes: u64) -> Result<StateFile, StateFileError> {
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
        let mut builder = Database::builder();
        builder.set_cache_size(cache_bytes);
        // A new file, and its slot's segments gone.
        let fresh = |path: &Path, slot: usize| -> Result<Database, StateFileError> {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(path, e)),
                _ => {}
            }
            for segment in Segments::on_disk(dir, slot).map_err(|e| failed(dir, e))?.into_values() {
                std::fs::remove_file(&segment).map_err(|e| failed(&segment, e))?;
            }
            let db = builder.create(path).map_err(|e| failed(path, e))?;
            of_this_layout(&db).map_err(|e| failed(path, e))?;
            Ok(db)
        };
        for slot in 0..SLOTS {
            let path = dir.join(format!("{slot}.redb"));
            let db = match builder.create(&path) {
                Ok(db) => db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => continue,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "state file unreadable: replaced, rebuilt from the changelog");
                    fresh(&path, slot)?
                }
            };
            let db = if of_this_layout(&db).map_err(|e| failed(&path, e))? {
                db
            } else {
                tracing::warn!(path = %path.display(), "state file of another layout: replaced, rebuilt from the changelog");
                drop(db);
                fresh(&path, slot)?
            };
            let (db, usage) = Self::segments_of(db, &path, dir, slot, &fresh)?;
            let segments = Segments::new(dir, slot);
            for (segment, usage) in &usage {
                segments.open(*segment, usage.len, false).map_err(|e| failed(&segments.path(*segment), e))?;
            }
            let (active, end) = match usage.last_key_value() {
                Some((segment, usage)) => (*segment, usage.len),
                None => {
                    segments.open(1, 0, true).map_err(|e| failed(&segments.path(1), e))?;
                    (1, 0)
                }
            };
            let writer = Writer {
                appender: Appender::new(active, end, segment_bytes),
                usage,
                last_durable: Instant::now(),
                since_durable: false,
            };
            return Ok(StateFile { db, segments: Arc::new(segments), writer: Mutex::new(writer), path, slot });
        }
        Err(failed(dir, std::io::Error::other(format!("all {SLOTS} state files are in use by other processes"))))
    }

    /// The segments the index knows, once the slot's other segment files are deleted (appended after
    /// the last durable commit, or compacted before a crash let the process delete them). A segment the
    /// index knows but the disk lacks, or holds shorter than the index says, makes the file useless:
    /// replaced.
    fn segments_of(
        db: Database,
        path: &Path,
        dir: &Path,
        slot: usize,
        fresh: &dyn Fn(&Path, usize) -> Result<Database, StateFileError>,
    ) -> Result<(Database, BTreeMap<u32, Usage>), StateFileError> {
        let usage = usage_of(&db).map_err(|e| failed(path, e))?;
        let on_disk = Segments::on_disk(dir, slot).map_err(|e| failed(dir, e))?;
        let whole = |segment: &u32, usage: &Usage| {
            let on_disk = on_disk.get(segment).and_then(|path| std::fs::metadata(path).ok());
            on_disk.is_some_and(|metadata| metadata.len() >= usage.len)
        };
        if let Some((missing, _)) = usage.iter().find(|(segment, usage)| !whole(segment, usage)) {
            tracing::warn!(path = %path.display(), segment = missing, "state file's segment missing or cut short: replaced, rebuilt from the changelog");
            drop(db);
            return Ok((fresh(path, slot)?, BTreeMap::new()));
        }
        for (_, stray) in on_disk.iter().filter(|(segment, _)| !usage.contains_key(segment)) {
            std::fs::remove_file(stray).map_err(|e| failed(stray, e))?;
        }
        Ok((db, usage))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which of the host's files this is (0 for the first process, 1 for a second one beside it, …).
    pub fn slot(&self) -> usize {
        self.slot
    }

    fn error<E: Into<redb::Error>>(&self) -> impl Fn(E) -> StateFileError + '_ {
        move |source| failed(&self.path, source)
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record last written for `key` in `partition`.
    pub fn get(&self, partition: i32, key: &str) -> Result<Option<Vec<u8>>, StateFileError> {
        self.reader(partition)?.get(key)
    }

    /// A snapshot of `partition`'s table as last committed, for many reads: a batch opens one, and lets
    /// go of it before it writes (a write may compact the segments it points into).
    pub fn reader(&self, partition: i32) -> Result<PartitionReader, StateFileError> {
        let open = || -> Result<Option<ReadOnlyTable<&'static str, [u8; 16]>>, redb::Error> {
            let name = orders(partition);
            match self.db.begin_read()?.open_table(index(&name)) {
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                table => Ok(Some(table?)),
            }
        };
        Ok(PartitionReader {
            table: open().map_err(self.error())?,
            partition,
            segments: self.segments.clone(),
            buffer: Mutex::new(Vec::new()),
            path: self.path.clone(),
        })
    }

    /// The changelog offset the partition's table holds every state below of; `None` when new.
    pub fn applied_end(&self, partition: i32) -> Result<Option<i64>, StateFileError> {
        let read = || -> Result<Option<i64>, redb::Error> {
            let table = match self.db.begin_read()?.open_table(META) {
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                table => table?,
            };
            Ok(table.get(orders(partition).as_str())?.map(|value| value.value()))
        };
        read().map_err(self.error())
    }

    /// Orders held for `partition`.
    pub fn len(&self, partition: i32) -> Result<u64, StateFileError> {
        let read = || -> Result<u64, redb::Error> {
            let name = orders(partition);
            match self.db.begin_read()?.open_table(index(&name)) {
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
                table => Ok(table?.len()?),
            }
        };
        read().map_err(self.error())
    }

    /// Writes every partition's records and `applied_end` in one commit: durable (on disk before this
    /// returns) with `durable`, or when the last durable commit is `DURABLE_EVERY` (5 s) old; the others
    /// survive a process crash only once a durable one follows. Then compacts a segment, if one is
    /// mostly superseded.
    pub fn write(&self, writes: &[PartitionWrite<'_>], durable: bool) -> Result<(), StateFileError> {
        let mut writer = self.writer();
        let writer = &mut *writer;
        let durable = durable || writer.last_durable.elapsed() >= DURABLE_EVERY;
        // The records first, then the index that points at them.
        let mut pointers = Vec::with_capacity(writes.iter().map(|w| w.records.len()).sum());
        for write in writes {
            for (key, record) in &write.records {
                let pointer = writer.appender.append(&self.segments, write.partition, key, record);
                pointers.push(pointer.map_err(self.error())?);
            }
        }
        let written =
            if durable { writer.appender.sync(&self.segments) } else { writer.appender.flush(&self.segments) };
        written.map_err(self.error())?;
        let mut usage = writer.usage.clone();
        let commit = |usage: &mut BTreeMap<u32, Usage>| -> Result<(), redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
            // A crash leaves the allocator state saved, so the next open needs no repair pass.
            txn.set_quick_repair(durable);
            {
                let mut meta = txn.open_table(META)?;
                let mut pointers = pointers.iter();
                for write in writes {
                    let name = orders(write.partition);
                    let mut table = txn.open_table(index(&name))?;
                    for ((key, _), pointer) in write.records.iter().zip(pointers.by_ref()) {
                        account(usage, *pointer, false);
                        if let Some(old) = table.insert(*key, pointer.to_bytes())? {
                            account(usage, Pointer::from_bytes(old.value()), true);
                        }
                    }
                    meta.insert(name.as_str(), write.applied_end)?;
                }
            }
            record_usage(&txn, &writer.usage, usage)?;
            txn.commit()?;
            Ok(())
        };
        commit(&mut usage).map_err(self.error())?;
        writer.usage = usage;
        if durable {
            writer.last_durable = Instant::now();
        }
        writer.since_durable = !durable;
        self.compact(writer)
    }

    /// Makes the commits since the last durable one durable, if there are any: for a stage that has
    /// caught up, so that a SIGKILL while it waits loses nothing the next start would read again.
    pub fn make_durable(&self) -> Result<(), StateFileError> {
        let pending = self.writer().since_durable;
        if pending {
            self.write(&[], true)?;
        }
        Ok(())
    }

    /// Compacts the sealed segment with the smallest share of live records, if that share is under
    /// half: appends its live records again, points the index at them in a durable commit, and deletes
    /// the segment.
    fn compact(&self, writer: &mut Writer) -> Result<(), StateFileError> {
        let active = writer.appender.segment;
        let worst =
            writer.usage.iter().filter(|(segment, usage)| **segment != active && usage.live * 2 < usage.len).min_by(
                |(_, a), (_, b)| {
                    (u128::from(a.live) * u128::from(b.len)).cmp(&(u128::from(b.live) * u128::from(a.len)))
                },
            );
        let Some((&segment, &Usage { len, live })) = worst else { return Ok(()) };
        let mut usage = writer.usage.clone();
        usage.remove(&segment);
        let mut commit = || -> Result<(), redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            txn.set_quick_repair(true);
            if live > 0 {
                // Each partition's table, opened at its first record; `None`: cleared since.
                let mut tables = HashMap::new();
                self.segments.scan(segment, len, |at, record| -> Result<(), redb::Error> {
                    let table = match tables.entry(record.partition) {
                        Entry::Occupied(open) => open.into_mut(),
                        Entry::Vacant(new) => {
                            let name = orders(record.partition);
                            new.insert(has_table(&txn, &name)?.then(|| txn.open_table(index(&name))).transpose()?)
                        }
                    };
                    let Some(table) = table else { return Ok(()) };
                    let current = table.get(record.key)?.map(|v| Pointer::from_bytes(v.value()));
                    if current == Some(at) {
                        let moved =
                            writer.appender.append(&self.segments, record.partition, record.key, record.value)?;
                        table.insert(record.key, moved.to_bytes())?;
                        account(&mut usage, moved, false);
                    }
                    Ok(())
                })?;
            }
            writer.appender.sync(&self.segments)?;
            record_usage(&txn, &writer.usage, &usage)?;
            txn.commit()?;
            Ok(())
        };
        commit().map_err(self.error())?;
        writer.usage = usage;
        writer.last_durable = Instant::now();
        writer.since_durable = false;
        tracing::info!(path = %self.path.display(), segment, bytes = len, live_bytes = live, "state segment compacted");
        self.segments.delete(segment).map_err(self.error())
    }

    /// Empties a partition's table, to rebuild it from the changelog's start.
    pub fn clear(&self, partition: i32) -> Result<(), StateFileError> {
        let mut writer = self.writer();
        let mut usage = writer.usage.clone();
        let write = |usage: &mut BTreeMap<u32, Usage>| -> Result<(), redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(Durability::None)?;
            let name = orders(partition);
            if has_table(&txn, &name)? {
                let table = txn.open_table(index(&name))?;
                for entry in table.iter()? {
                    account(usage, Pointer::from_bytes(entry?.1.value()), true);
                }
            }
            txn.delete_table(index(&name))?;
            txn.open_table(META)?.remove(name.as_str())?;
            record_usage(&txn, &writer.usage, usage)?;
            txn.commit()?;
            Ok(())
        };
        write(&mut usage).map_err(self.error())?;
        writer.usage = usage;
        writer.since_durable = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("state-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn write<'a>(partition: i32, records: &[(&'a str, &'a [u8])], applied_end: i64) -> PartitionWrite<'a> {
        PartitionWrite { partition, records: records.to_vec(), applied_end }
    }

    #[test]
    fn states_and_their_offset_reopen_together() {
        let dir = scratch("reopen");
        {
            let file = StateFile::open(&dir, 1 << 20, 1 << 20).unwrap();
            assert_eq!(file.applied_end(3).unwrap(), None);
            assert_eq!((file.get(3, "A:1").unwrap(), file.len(3).unwrap()), (None, 0));
            file.write(&[write(3, &[("A:1", b"one"), ("A:2", b"two")], 2), write(4, &[("B:1", b"x")], 1)], false)
                .unwrap();
            file.write(&[write(3, &[("A:1", b"uno")], 3)], true).unwrap();
        }
        let file = StateFile::open(&dir, 1 << 20, 1 << 20).unwrap();
        assert_eq!((file.applied_end(3).unwrap(), file.applied_end(4).unwrap()), (Some(3), Some(1)));
        assert_eq!(file.get(3, "A:1").unwrap().as_deref(), Some(&b"uno"[..]));
        assert_eq!((file.len(3).unwrap(), file.len(4).unwrap()), (2, 1));
        file.clear(3).unwrap();
        assert_eq!((file.len(3).unwrap(), file.applied_end(3).unwrap()), (0, None));
        assert_eq!(file.len(4).unwrap(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Each segment's live bytes as the index's pointers count them.
    fn live_by_pointers(file: &StateFile, partitions: &[i32]) -> BTreeMap<u32, u64> {
        let mut live = BTreeMap::new();
        let txn = file.db.begin_read().unwrap();
        for partition in partitions {
            let table = txn.open_table(index(&orders(*partition))).unwrap();
            for entry in table.iter().unwrap() {
                let pointer = Pointer::from_bytes(entry.unwrap().1.value());
                *live.entry(pointer.segment).or_default() += u64::from(pointer.len);
            }
        }
        live
    }

    #[test]
    fn superseded_records_are_compacted_away_and_the_latest_read_back() {
        let dir = scratch("compact");
        let value = |key: usize, round: usize| format!("{key}:{round}:{}", "x".repeat(key % 7 * 10)).into_bytes();
        let keys: Vec<String> = (0..40).map(|k| format!("A:{k}")).collect();
        let rounds = 30;
        {
            let file = StateFile::open(&dir, 1 << 20, 2048).unwrap();
            for round in 0..rounds {
                // Each round rewrites a third of the keys, alternately in two partitions.
                let values: Vec<(usize, Vec<u8>)> = (0..keys.len())
                    .filter(|k| (k + round) % 3 == 0 || round == 0)
                    .map(|k| (k, value(k, round)))
                    .collect();
                let records = |partition: i32| -> Vec<(&str, &[u8])> {
                    values
                        .iter()
                        .filter(|(k, _)| k % 2 == partition as usize)
                        .map(|(k, v)| (keys[*k].as_str(), &v[..]))
                        .collect()
                };
                let writes = [
                    PartitionWrite { partition: 0, records: records(0), applied_end: round as i64 },
                    PartitionWrite { partition: 1, records: records(1), applied_end: round as i64 },
                ];
                file.write(&writes, round % 5 == 0).unwrap();
            }
            file.write(&[], true).unwrap();
            let usage = file.writer().usage.clone();
            assert!(usage.keys().next() > Some(&1), "the first segments were compacted: {usage:?}");
            // The segments hold at most about twice the live records, plus the active one.
            let (len, live): (u64, u64) = usage.values().fold((0, 0), |(l, v), u| (l + u.len, v + u.live));
            assert!(len <= 2 * live + 2 * 2048, "{len} bytes for {live} live");
            assert_eq!(
                Segments::on_disk(&dir, 0).unwrap().keys().copied().collect::<Vec<_>>(),
                usage.keys().copied().collect::<Vec<_>>()
            );
            let counted: BTreeMap<u32, u64> =
                usage.iter().filter(|(_, u)| u.live > 0).map(|(s, u)| (*s, u.live)).collect();
            assert_eq!(live_by_pointers(&file, &[0, 1]), counted);
        }
        let file = StateFile::open(&dir, 1 << 20, 2048).unwrap();
        for (k, key) in keys.iter().enumerate() {
            let last = (0..rounds).filter(|round| (k + round) % 3 == 0 || *round == 0).max().unwrap();
            assert_eq!(file.get(k as i32 % 2, key).unwrap(), Some(value(k, last)), "{key}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn segment_bytes_and_files_past_the_index_are_dropped_on_open() {
        let dir = scratch("stray");
        {
            let file = StateFile::open(&dir, 1 << 20, 1 << 20).unwrap();
            file.write(&[write(0, &[("A:1", b"one")], 1)], true).unwrap();
        }
        let segments = Segments::on_disk(&dir, 0).unwrap();
        let (_, active) = segments.last_key_value().unwrap();
        let len = std::fs::metadata(active).unwrap().len();
        // What a crash leaves: records appended after the last durable commit, and a new segment.
        std::fs::OpenOptions::new().append(true).open(active).unwrap().write_all(b"half a record").unwrap();
        std::fs::write(dir.join("0-00000099.values"), b"later").unwrap();
        let file = StateFile::open(&dir, 1 << 20, 1 << 20).unwrap();
        assert_eq!(std::fs::metadata(active).unwrap().len(), len);
        assert!(!dir.join("0-00000099.values").exists());
        file.write(&[write(0, &[("A:2", b"two")], 2)], false).unwrap();
        assert_eq!(file.get(0, "A:1").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(file.get(0, "A:2").unwrap().as_deref(), Some(&b"two"[..]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_of_the_older_layout_or_with_segments_missing_or_cut_short_is_replaced() {
        let dir = scratch("layout");
        std::fs::create_dir_all(&dir).unwrap();
        {
            // The layout before segments: records inside redb, no format mark.
            let db = Database::create(dir.join("0.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert("orders.0", 5).unwrap();
            txn.open_table(TableDefinition::<&str, &[u8]>::new("orders.0"))
                .unwrap()
                .insert("A:1", &b"old"[..])
                .unwrap();
            txn.commit().unwrap();
        }
        {
            let file = StateFile::open(&dir, 1 << 20, 1 << 20).unwrap();
            assert_eq!((file.applied_end(0).unwrap(), file.len(0).unwrap()), (None, 0));
            file.write(&[write(0, &[("A:1", b"new")], 6)], true).unwrap();
        }
        // A segment cut short (by hand: nothing in the stage writes one) ...
        for (_, segment) in Segments::on_disk(&dir, 0).unwrap() {
            std::fs::OpenOptions::new().write(true).open(segment).unwrap().set_len(3).unwrap();
        }
        {
            let file = StateFile::open(&dir, 1 << 20, 1 << 20).unwrap();
            assert_eq!((file.applied_end(0).unwrap(), file.get(0, "A:1").unwrap()), (None, None));
            file.write(&[write(0, &[("A:1", b"again")], 7)], true).unwrap();
        }
        // ... or gone.
        for (_, segment) in Segments::on_disk(&dir, 0).unwrap() {
            std::fs::remove_file(segment).unwrap();
        }
        let file = StateFile::open(&dir, 1 << 20, 1 << 20).unwrap();
        assert_eq!((file.applied_end(0).unwrap(), file.get(0, "A:1").unwrap()), (None, None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_commits_since_the_last_durable_one_make_a_durable_commit() {
        let dir = scratch("durable");
        let file = StateFile::open(&dir, 1 << 20, 1 << 20).unwrap();
        assert!(!file.writer().since_durable);
        file.write(&[write(0, &[("A:1", b"one")], 1)], false).unwrap();
        assert!(file.writer().since_durable);
        file.make_durable().unwrap();
        assert!(!file.writer().since_durable);
        file.make_durable().unwrap();
        assert_eq!(file.get(0, "A:1").unwrap().as_deref(), Some(&b"one"[..]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_opener_takes_the_next_slot() {
        let dir = scratch("slots");
        let first = StateFile::open(&dir, 1 << 20, 1 << 20).unwrap();
        let second = StateFile::open(&dir, 1 << 20, 1 << 20).unwrap();
        assert_ne!(first.path(), second.path());
        assert_eq!((first.slot(), second.slot()), (0, 1));
        // A restart takes the slot its predecessor let go of, and with it the same transactional id.
        drop(first);
        assert_eq!(StateFile::open(&dir, 1 << 20, 1 << 20).unwrap().slot(), 0);
        drop(second);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_foreign_file_is_replaced() {
        let dir = scratch("foreign");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0.redb"), b"not a redb file at all").unwrap();
        let file = StateFile::open(&dir, 1 << 20, 1 << 20).unwrap();
        assert_eq!(file.applied_end(0).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
