//! One input partition's order states on local disk: a redb file holding, per order, the exact record
//! last sent to the changelog, and the changelog offset the file is complete up to.
//!
//! The file is a cache of the changelog, never ahead of it: states are written only after the broker
//! took them (and the batch's offsets were committed), and every write stores the states and the new
//! `applied_end` in one atomic commit. Whatever snapshot the file reopens at (after a clean stop or a
//! SIGKILL, which rolls back to the last durable commit), it holds the latest state per key of the
//! changelog below its own `applied_end`, and the rest is read from the changelog.

use redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};

const ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("orders");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const APPLIED_END: &str = "applied_end";

/// Files a partition may use on one host: a second process (or a second stage in one process) that
/// finds the first file locked takes the next, and catches it up from wherever that copy stopped.
const SLOTS: usize = 8;

#[derive(Debug, thiserror::Error)]
#[error("state file {path}: {source}")]
pub struct StateFileError {
    pub path: PathBuf,
    #[source]
    pub source: Box<redb::Error>,
}

/// One partition's state file.
pub struct StateFile {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile").field("path", &self.path).finish()
    }
}

impl StateFile {
    /// Opens (or creates) the first free file of `partition` under `dir`, with `cache_bytes` of redb
    /// cache. A file that does not open as a redb file (foreign, or an older format) is replaced.
    pub fn open(dir: &Path, partition: i32, cache_bytes: usize) -> Result<StateFile, StateFileError> {
        let io = |path: &Path, e: std::io::Error| StateFileError { path: path.into(), source: Box::new(e.into()) };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut builder = Database::builder();
        builder.set_cache_size(cache_bytes);
        let mut last = None;
        for slot in 0..SLOTS {
            let name = if slot == 0 { format!("{partition}.redb") } else { format!("{partition}.{slot}.redb") };
            let path = dir.join(name);
            let db = match builder.create(&path) {
                Ok(db) => db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    last = Some(StateFileError { path, source: Box::new(redb::Error::DatabaseAlreadyOpen) });
                    continue;
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "state file unreadable: replaced, rebuilt from the changelog");
                    std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
                    builder
                        .create(&path)
                        .map_err(|e| StateFileError { path: path.clone(), source: Box::new(e.into()) })?
                }
            };
            let file = StateFile { db, path };
            file.ensure_tables()?;
            return Ok(file);
        }
        Err(last.unwrap_or_else(|| io(dir, std::io::ErrorKind::NotFound.into())))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self) -> impl Fn(redb::Error) -> StateFileError + '_ {
        move |source| StateFileError { path: self.path.clone(), source: Box::new(source) }
    }

    fn ensure_tables(&self) -> Result<(), StateFileError> {
        let write = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            txn.open_table(ORDERS)?;
            txn.open_table(META)?;
            txn.commit()?;
            Ok(())
        };
        write().map_err(self.error())
    }

    /// The record last written for `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateFileError> {
        let read = || -> Result<Option<Vec<u8>>, redb::Error> {
            let table = self.db.begin_read()?.open_table(ORDERS)?;
            Ok(table.get(key)?.map(|value| value.value().to_vec()))
        };
        read().map_err(self.error())
    }

    /// The changelog offset the file holds every state below of; `None` for a new file.
    pub fn applied_end(&self) -> Result<Option<i64>, StateFileError> {
        let read = || -> Result<Option<i64>, redb::Error> {
            let table = self.db.begin_read()?.open_table(META)?;
            Ok(table.get(APPLIED_END)?.map(|value| value.value()))
        };
        read().map_err(self.error())
    }

    /// Orders held.
    pub fn len(&self) -> Result<u64, StateFileError> {
        let read = || -> Result<u64, redb::Error> { Ok(self.db.begin_read()?.open_table(ORDERS)?.len()?) };
        read().map_err(self.error())
    }

    pub fn is_empty(&self) -> Result<bool, StateFileError> {
        Ok(self.len()? == 0)
    }

    /// Writes `records` (key, encoded state) and `applied_end` in one commit. A durable commit reaches
    /// the disk before this returns; the others survive a process crash only once a durable one follows.
    pub fn write<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        applied_end: i64,
        durable: bool,
    ) -> Result<(), StateFileError> {
        let write = || -> Result<(), redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
            // A crash leaves the allocator state saved, so the next open needs no repair pass.
            txn.set_quick_repair(durable);
            {
                let mut orders = txn.open_table(ORDERS)?;
                for (key, record) in records {
                    orders.insert(key, record)?;
                }
                txn.open_table(META)?.insert(APPLIED_END, applied_end)?;
            }
            txn.commit()?;
            Ok(())
        };
        write().map_err(self.error())
    }

    /// Empties the file, to rebuild it from the changelog's start.
    pub fn clear(&self) -> Result<(), StateFileError> {
        let write = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            txn.delete_table(ORDERS)?;
            txn.delete_table(META)?;
            txn.open_table(ORDERS)?;
            txn.open_table(META)?;
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

    #[test]
    fn states_and_their_offset_reopen_together() {
        let dir = scratch("reopen");
        {
            let file = StateFile::open(&dir, 3, 1 << 20).unwrap();
            assert_eq!(file.applied_end().unwrap(), None);
            file.write([("A:1", &b"one"[..]), ("A:2", &b"two"[..])], 2, false).unwrap();
            file.write([("A:1", &b"uno"[..])], 3, true).unwrap();
        }
        let file = StateFile::open(&dir, 3, 1 << 20).unwrap();
        assert_eq!(file.applied_end().unwrap(), Some(3));
        assert_eq!(file.get("A:1").unwrap().as_deref(), Some(&b"uno"[..]));
        assert_eq!(file.len().unwrap(), 2);
        file.clear().unwrap();
        assert_eq!((file.len().unwrap(), file.applied_end().unwrap()), (0, None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_opener_takes_the_next_slot() {
        let dir = scratch("slots");
        let first = StateFile::open(&dir, 0, 1 << 20).unwrap();
        let second = StateFile::open(&dir, 0, 1 << 20).unwrap();
        assert_ne!(first.path(), second.path());
        drop((first, second));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_foreign_file_is_replaced() {
        let dir = scratch("foreign");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("5.redb"), b"not a redb file at all").unwrap();
        let file = StateFile::open(&dir, 5, 1 << 20).unwrap();
        assert_eq!(file.applied_end().unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
