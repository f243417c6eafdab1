//! The state file's values: each state record appended to a segment file, the way WiscKey and
//! Bitcask keep values apart from their index. The index (redb) then holds a 16-byte [`Pointer`] per
//! order instead of the 0.7 KB record, so about a hundred orders share a 4 KiB page: a batch's states,
//! which follow the listings' key order, dirty a page per ~7 orders instead of one each, and the records
//! themselves go to disk in one sequential write per batch (BENCHMARKS.md, "Values apart from the index").
//!
//! A segment is appended to until it reaches its size, then sealed; a sealed segment whose records are
//! mostly superseded is compacted (its live records appended again, the segment deleted) by
//! [`crate::state_file::StateFile`], which keeps each segment's size and live bytes in the index, in the
//! same commits as the pointers.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Where a record lies: its segment, offset and length (header included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pointer {
    pub segment: u32,
    pub offset: u64,
    pub len: u32,
}

impl Pointer {
    pub fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..4].copy_from_slice(&self.segment.to_le_bytes());
        bytes[4..12].copy_from_slice(&self.offset.to_le_bytes());
        bytes[12..].copy_from_slice(&self.len.to_le_bytes());
        bytes
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Pointer {
        let [s0, s1, s2, s3, o0, o1, o2, o3, o4, o5, o6, o7, l0, l1, l2, l3] = bytes;
        Pointer {
            segment: u32::from_le_bytes([s0, s1, s2, s3]),
            offset: u64::from_le_bytes([o0, o1, o2, o3, o4, o5, o6, o7]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
        }
    }
}

/// A record's header: its whole length (u32), its partition (i32) and its key's length (u16), little
/// endian; then the key and the value. The header lets a compaction walk a segment, and a read check
/// that a pointer leads to the record of the key it was asked for.
const HEADER: usize = 10;

/// A record as stored, split into its parts.
pub struct Record<'a> {
    pub partition: i32,
    pub key: &'a str,
    pub value: &'a [u8],
}

fn corrupt(path: &Path, offset: u64, what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} at offset {offset}: {what}", path.display()))
}

/// Splits one stored record (`bytes`, header included, exactly its length).
fn parse<'a>(path: &Path, offset: u64, bytes: &'a [u8]) -> std::io::Result<Record<'a>> {
    let bad = |what| corrupt(path, offset, what);
    let header: &[u8; HEADER] =
        bytes.get(..HEADER).and_then(|h| h.try_into().ok()).ok_or_else(|| bad("short record"))?;
    let [l0, l1, l2, l3, p0, p1, p2, p3, k0, k1] = *header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let key_len = u16::from_le_bytes([k0, k1]) as usize;
    if len != bytes.len() || HEADER + key_len > len {
        return Err(bad("record length does not match its header"));
    }
    let key = std::str::from_utf8(&bytes[HEADER..HEADER + key_len]).map_err(|_| bad("key is not UTF-8"))?;
    Ok(Record { partition: i32::from_le_bytes([p0, p1, p2, p3]), key, value: &bytes[HEADER + key_len..] })
}

/// The segment files of one state file (`{slot}-{segment}.values` beside `{slot}.redb`), open for
/// reading and appending; shared by the writer and the batch's readers.
#[derive(Debug)]
pub struct Segments {
    dir: PathBuf,
    slot: usize,
    files: RwLock<BTreeMap<u32, Arc<File>>>,
}

impl Segments {
    /// The slot's segment files found under `dir`, by number (unreadable names are not the slot's).
    pub fn on_disk(dir: &Path, slot: usize) -> std::io::Result<BTreeMap<u32, PathBuf>> {
        let prefix = format!("{slot}-");
        let mut found = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let number = name.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix(".values"));
            if let Some(number) = number.and_then(|n| n.parse().ok()) {
                found.insert(number, path);
            }
        }
        Ok(found)
    }

    pub fn new(dir: &Path, slot: usize) -> Segments {
        Segments { dir: dir.to_path_buf(), slot, files: RwLock::new(BTreeMap::new()) }
    }

    pub fn path(&self, segment: u32) -> PathBuf {
        self.dir.join(format!("{}-{segment:08}.values", self.slot))
    }

    /// Opens `segment` (creating it when `create`), cut to `len` bytes: what a crash appended past the
    /// last durable commit is no record.
    pub fn open(&self, segment: u32, len: u64, create: bool) -> std::io::Result<()> {
        let path = self.path(segment);
        let file = std::fs::OpenOptions::new().read(true).write(true).create(create).truncate(false).open(&path)?;
        if file.metadata()?.len() != len {
            file.set_len(len)?;
        }
        self.files.write().unwrap_or_else(|e| e.into_inner()).insert(segment, Arc::new(file));
        Ok(())
    }

    fn file(&self, segment: u32) -> std::io::Result<Arc<File>> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        files.get(&segment).cloned().ok_or_else(|| corrupt(&self.path(segment), 0, "segment missing"))
    }

    /// Deletes `segment`, whose records are all superseded or appended again.
    pub fn delete(&self, segment: u32) -> std::io::Result<()> {
        self.files.write().unwrap_or_else(|e| e.into_inner()).remove(&segment);
        std::fs::remove_file(self.path(segment))
    }

    /// Reads the record at `pointer` into `buffer` and returns its value, checking that it is the
    /// record of `key` in `partition`.
    pub fn read<'b>(
        &self,
        pointer: Pointer,
        partition: i32,
        key: &str,
        buffer: &'b mut Vec<u8>,
    ) -> std::io::Result<&'b [u8]> {
        buffer.resize(pointer.len as usize, 0);
        self.file(pointer.segment)?.read_exact_at(buffer, pointer.offset)?;
        let record = parse(&self.path(pointer.segment), pointer.offset, buffer)?;
        if record.partition != partition || record.key != key {
            let what = format!("holds {}:{} where {partition}:{key} was expected", record.partition, record.key);
            return Err(corrupt(&self.path(pointer.segment), pointer.offset, &what));
        }
        let value_start = HEADER + key.len();
        Ok(&buffer[value_start..])
    }

    /// Calls `each` with every record of the first `len` bytes of `segment`, and where it lies.
    pub fn scan<E: From<std::io::Error>>(
        &self,
        segment: u32,
        len: u64,
        mut each: impl FnMut(Pointer, Record<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let path = self.path(segment);
        let mut reader = std::io::BufReader::with_capacity(1 << 20, At { file: self.file(segment)?, position: 0 });
        let (mut offset, mut record) = (0, Vec::new());
        while offset < len {
            let mut header = [0; HEADER];
            reader.read_exact(&mut header).map_err(|_| corrupt(&path, offset, "truncated record"))?;
            let record_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            if (record_len as usize) < HEADER {
                return Err(corrupt(&path, offset, "record length does not match its header").into());
            }
            record.clear();
            record.extend_from_slice(&header);
            record.resize(record_len as usize, 0);
            reader.read_exact(&mut record[HEADER..]).map_err(|_| corrupt(&path, offset, "truncated record"))?;
            each(Pointer { segment, offset, len: record_len }, parse(&path, offset, &record)?)?;
            offset += u64::from(record_len);
        }
        Ok(())
    }
}

/// A file read from a position onwards, for a buffered scan.
struct At {
    file: Arc<File>,
    position: u64,
}

impl Read for At {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let read = self.file.read_at(out, self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

/// The end the writer appends at: records are gathered in memory and written with one call per
/// batch ([`Appender::flush`]), before the index commit that points at them.
#[derive(Debug)]
pub struct Appender {
    pub segment: u32,
    /// The active segment's length, the buffer included.
    pub end: u64,
    /// Where the buffer starts in the active segment.
    written: u64,
    buffer: Vec<u8>,
    /// Segments written since the last sync.
    unsynced: BTreeSet<u32>,
    /// A segment is sealed once it holds this many bytes.
    segment_bytes: u64,
}

impl Appender {
    pub fn new(segment: u32, end: u64, segment_bytes: u64) -> Appender {
        Appender { segment, end, written: end, buffer: Vec::new(), unsynced: BTreeSet::new(), segment_bytes }
    }

    /// Appends one record and returns where it will lie, starting a new segment first when the
    /// active one is full.
    pub fn append(&mut self, segments: &Segments, partition: i32, key: &str, value: &[u8]) -> std::io::Result<Pointer> {
        let len = HEADER + key.len() + value.len();
        let too_long = || std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("state of {key} too long"));
        let len32 = u32::try_from(len).map_err(|_| too_long())?;
        let key_len = u16::try_from(key.len()).map_err(|_| too_long())?;
        if self.end > 0 && self.end + len as u64 > self.segment_bytes {
            self.flush(segments)?;
            self.segment += 1;
            segments.open(self.segment, 0, true)?;
            (self.end, self.written) = (0, 0);
        }
        let pointer = Pointer { segment: self.segment, offset: self.end, len: len32 };
        self.buffer.extend_from_slice(&len32.to_le_bytes());
        self.buffer.extend_from_slice(&partition.to_le_bytes());
        self.buffer.extend_from_slice(&key_len.to_le_bytes());
        self.buffer.extend_from_slice(key.as_bytes());
        self.buffer.extend_from_slice(value);
        self.end += len as u64;
        if self.buffer.len() >= 1 << 20 {
            self.flush(segments)?;
        }
        Ok(pointer)
    }

    /// Writes the gathered records to the active segment (not yet durable: see [`Appender::sync`]).
    pub fn flush(&mut self, segments: &Segments) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        segments.file(self.segment)?.write_all_at(&self.buffer, self.written)?;
        self.written = self.end;
        self.buffer.clear();
        self.unsynced.insert(self.segment);
        Ok(())
    }

    /// Makes every segment written since the last sync durable.
    pub fn sync(&mut self, segments: &Segments) -> std::io::Result<()> {
        self.flush(segments)?;
        for segment in std::mem::take(&mut self.unsynced) {
            match segments.file(segment) {
                Ok(file) => file.sync_data()?,
                // Compacted and deleted since it was written.
                Err(_) => continue,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_round_trips_through_its_bytes() {
        let pointer = Pointer { segment: 7, offset: (1 << 40) + 3, len: 812 };
        assert_eq!(Pointer::from_bytes(pointer.to_bytes()), pointer);
    }

    #[test]
    fn records_read_back_by_pointer_and_by_scan_across_segments() {
        let dir = std::env::temp_dir().join(format!("value-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let segments = Segments::new(&dir, 0);
        segments.open(1, 0, true).unwrap();
        let mut appender = Appender::new(1, 0, 64);
        let values: Vec<(String, Vec<u8>)> = (0..10).map(|i| (format!("A:{i}"), vec![i as u8; 20 + i])).collect();
        let pointers: Vec<Pointer> =
            values.iter().map(|(key, value)| appender.append(&segments, 3, key, value).unwrap()).collect();
        appender.sync(&segments).unwrap();
        assert!(pointers.last().unwrap().segment > 1, "small segments roll over");
        let mut buffer = Vec::new();
        for ((key, value), pointer) in values.iter().zip(&pointers) {
            assert_eq!(segments.read(*pointer, 3, key, &mut buffer).unwrap(), &value[..]);
        }
        // A pointer that leads to another key's record is refused.
        assert!(segments.read(pointers[1], 3, "A:0", &mut buffer).is_err());
        assert!(segments.read(pointers[1], 4, "A:1", &mut buffer).is_err());
        let mut scanned = Vec::new();
        for (segment, path) in Segments::on_disk(&dir, 0).unwrap() {
            let len = std::fs::metadata(path).unwrap().len();
            segments
                .scan(segment, len, |at, record| {
                    scanned.push((at, record.key.to_string(), record.value.to_vec()));
                    Ok::<_, std::io::Error>(())
                })
                .unwrap();
        }
        let expected: Vec<_> = pointers.iter().zip(values).map(|(p, (k, v))| (*p, k, v)).collect();
        assert_eq!(scanned, expected);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
