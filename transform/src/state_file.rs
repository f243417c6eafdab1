//! The process's order states on local disk: one redb file with a table per input partition, holding
//! per order the exact record last sent to the changelog, and per partition the changelog offset the
//! table is complete up to.
//!
//! The file is a cache of the changelog, never ahead of it: states are written only after the broker
//! took them (and the batch's offsets were committed), and a partition's states and its `applied_end`
//! change in one atomic commit. Whatever snapshot the file reopens at (after a clean stop, or after a
//! SIGKILL, which rolls back to the last durable commit), each table holds the latest state per key of
//! its changelog partition below its own `applied_end`, and the rest is read from the changelog.
//!
//! One file for all partitions makes a batch one commit whatever the partition count, and durability
//! one fsync per `DURABLE_EVERY` (5 s).

use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const META: TableDefinition<&str, i64> = TableDefinition::new("applied_end");

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

/// One partition's writes: its records (key, encoded state) and the offset they bring it to.
pub struct PartitionWrite<'a> {
    pub partition: i32,
    pub records: Vec<(&'a str, &'a [u8])>,
    pub applied_end: i64,
}

/// A snapshot of one partition's table.
pub struct PartitionReader {
    /// `None`: the partition has no table yet.
    table: Option<ReadOnlyTable<&'static str, &'static [u8]>>,
    path: PathBuf,
}

impl PartitionReader {
    /// The record last written for `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateFileError> {
        self.read(key, <[u8]>::to_vec)
    }

    /// `read` applied to the record last written for `key`, as the file holds it (not copied first:
    /// a state's record is decoded straight from it).
    pub fn read<T>(&self, key: &str, read: impl FnOnce(&[u8]) -> T) -> Result<Option<T>, StateFileError> {
        let Some(table) = &self.table else { return Ok(None) };
        let value =
            table.get(key).map_err(|e| StateFileError { path: self.path.clone(), source: Box::new(e.into()) })?;
        Ok(value.map(|value| read(value.value())))
    }
}

/// The process's state file.
pub struct StateFile {
    db: Database,
    path: PathBuf,
    /// Which of the host's files for this changelog: the same for a process restarted on this host.
    slot: usize,
    last_durable: Mutex<Instant>,
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile").field("path", &self.path).finish()
    }
}

fn orders(partition: i32) -> String {
    format!("orders.{partition}")
}

impl StateFile {
    /// Opens (or creates) the first free file under `dir`, with `cache_bytes` of redb cache. A file
    /// that does not open as a redb file (foreign, or an older format) is replaced.
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<StateFile, StateFileError> {
        let io = |path: &Path, e: std::io::Error| StateFileError { path: path.into(), source: Box::new(e.into()) };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut builder = Database::builder();
        builder.set_cache_size(cache_bytes);
        for slot in 0..SLOTS {
            let path = dir.join(format!("{slot}.redb"));
            let db = match builder.create(&path) {
                Ok(db) => db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => continue,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "state file unreadable: replaced, rebuilt from the changelog");
                    std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
                    builder
                        .create(&path)
                        .map_err(|e| StateFileError { path: path.clone(), source: Box::new(e.into()) })?
                }
            };
            return Ok(StateFile { db, path, slot, last_durable: Mutex::new(Instant::now()) });
        }
        Err(io(dir, std::io::Error::other(format!("all {SLOTS} state files are in use by other processes"))))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which of the host's files this is (0 for the first process, 1 for a second one beside it, …).
    pub fn slot(&self) -> usize {
        self.slot
    }

    fn error(&self) -> impl Fn(redb::Error) -> StateFileError + '_ {
        move |source| StateFileError { path: self.path.clone(), source: Box::new(source) }
    }

    /// The record last written for `key` in `partition`.
    pub fn get(&self, partition: i32, key: &str) -> Result<Option<Vec<u8>>, StateFileError> {
        self.reader(partition)?.get(key)
    }

    /// A snapshot of `partition`'s table as last committed, for many reads: a batch opens one, and lets
    /// go of it before it writes.
    pub fn reader(&self, partition: i32) -> Result<PartitionReader, StateFileError> {
        let open = || -> Result<Option<ReadOnlyTable<&'static str, &'static [u8]>>, redb::Error> {
            let name = orders(partition);
            match self.db.begin_read()?.open_table(TableDefinition::<&str, &[u8]>::new(&name)) {
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                table => Ok(Some(table?)),
            }
        };
        Ok(PartitionReader { table: open().map_err(self.error())?, path: self.path.clone() })
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
            match self.db.begin_read()?.open_table(TableDefinition::<&str, &[u8]>::new(&name)) {
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
                table => Ok(table?.len()?),
            }
        };
        read().map_err(self.error())
    }

    /// Writes every partition's records and `applied_end` in one commit: durable (on disk before this
    /// returns) with `durable`, or when the last durable commit is `DURABLE_EVERY` (5 s) old; the others
    /// survive a process crash only once a durable one follows.
    pub fn write(&self, writes: &[PartitionWrite<'_>], durable: bool) -> Result<(), StateFileError> {
        let mut last_durable = self.last_durable.lock().unwrap_or_else(|e| e.into_inner());
        let durable = durable || last_durable.elapsed() >= DURABLE_EVERY;
        let write = || -> Result<(), redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
            // A crash leaves the allocator state saved, so the next open needs no repair pass.
            txn.set_quick_repair(durable);
            {
                let mut meta = txn.open_table(META)?;
                for write in writes {
                    let name = orders(write.partition);
                    let mut table = txn.open_table(TableDefinition::<&str, &[u8]>::new(&name))?;
                    for (key, record) in &write.records {
                        table.insert(*key, *record)?;
                    }
                    meta.insert(name.as_str(), write.applied_end)?;
                }
            }
            txn.commit()?;
            Ok(())
        };
        write().map_err(self.error())?;
        if durable {
            *last_durable = Instant::now();
        }
        Ok(())
    }

    /// Empties a partition's table, to rebuild it from the changelog's start.
    pub fn clear(&self, partition: i32) -> Result<(), StateFileError> {
        let write = || -> Result<(), redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(Durability::None)?;
            let name = orders(partition);
            txn.delete_table(TableDefinition::<&str, &[u8]>::new(&name))?;
            txn.open_table(META)?.remove(name.as_str())?;
            txn.commit()?;
            Ok(())
        };
        write().map_err(self.error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let file = StateFile::open(&dir, 1 << 20).unwrap();
            assert_eq!(file.applied_end(3).unwrap(), None);
            assert_eq!((file.get(3, "A:1").unwrap(), file.len(3).unwrap()), (None, 0));
            file.write(&[write(3, &[("A:1", b"one"), ("A:2", b"two")], 2), write(4, &[("B:1", b"x")], 1)], false)
                .unwrap();
            file.write(&[write(3, &[("A:1", b"uno")], 3)], true).unwrap();
        }
        let file = StateFile::open(&dir, 1 << 20).unwrap();
        assert_eq!((file.applied_end(3).unwrap(), file.applied_end(4).unwrap()), (Some(3), Some(1)));
        assert_eq!(file.get(3, "A:1").unwrap().as_deref(), Some(&b"uno"[..]));
        assert_eq!((file.len(3).unwrap(), file.len(4).unwrap()), (2, 1));
        file.clear(3).unwrap();
        assert_eq!((file.len(3).unwrap(), file.applied_end(3).unwrap()), (0, None));
        assert_eq!(file.len(4).unwrap(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_opener_takes_the_next_slot() {
        let dir = scratch("slots");
        let first = StateFile::open(&dir, 1 << 20).unwrap();
        let second = StateFile::open(&dir, 1 << 20).unwrap();
        assert_ne!(first.path(), second.path());
        assert_eq!((first.slot(), second.slot()), (0, 1));
        // A restart takes the slot its predecessor let go of, and with it the same transactional id.
        drop(first);
        assert_eq!(StateFile::open(&dir, 1 << 20).unwrap().slot(), 0);
        drop(second);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_foreign_file_is_replaced() {
        let dir = scratch("foreign");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0.redb"), b"not a redb file at all").unwrap();
        let file = StateFile::open(&dir, 1 << 20).unwrap();
        assert_eq!(file.applied_end(0).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
