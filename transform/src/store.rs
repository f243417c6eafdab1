//! The transform's state: one [`OrderState`] per order, held per input partition and backed by a
//! compacted changelog topic with the same partitioning.
//!
//! - Every state change is written to changelog partition *p* for input partition *p* (explicitly,
//!   whatever the producer's partitioner), keyed `vendorId:orderId`, before the input offsets are
//!   committed. A restart or a partition moving to another process restores *p* from the changelog,
//!   never from the raw history.
//! - Finished orders (confirmed, cancelled or returned whole) whose newest source time is older than
//!   the horizon behind the partition's newest source time leave memory: only the changelog offset of
//!   their latest state stays, and it is read back when another event for the order arrives.

use coupang_schemas::{
    decode, encode, CodecError, OrderSheetEvent, OrderStateRecord, ReturnRequestEvent, RevenueEvent,
};
use etl_core::kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::Duration;

use crate::order::{OrderState, RevenueSlot};

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
    #[error("changelog {topic} partition {partition}: offset {offset} of {key} could not be read back")]
    Missing { topic: String, partition: i32, offset: i64, key: String },
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

/// One order's slot: its state when in memory, and where its latest state is in the changelog.
#[derive(Debug, Default)]
struct Entry {
    state: Option<OrderState>,
    offset: Option<i64>,
}

/// The orders of one input partition.
#[derive(Debug, Default)]
pub struct PartitionState {
    entries: HashMap<String, Entry>,
    /// Newest source time seen in the partition: the clock eviction is measured against, so that
    /// what stays in memory depends on the data, not on when it is processed.
    newest: i64,
    /// The changelog's end offset after this process's last write or restore.
    pub changelog_end: i64,
    /// Records the last restore read: the live orders, plus older states compaction has not removed yet.
    pub records_restored: usize,
    /// Records of the changelog that did not decode, met by the last restore (for the dead-letter
    /// topic): each was skipped, and its key kept its previous state.
    pub corrupt: Vec<CorruptRecord>,
}

/// A changelog record that is not a state this stage wrote (e.g. injected by hand).
#[derive(Debug)]
pub struct CorruptRecord {
    pub offset: i64,
    pub key: String,
    pub payload: Vec<u8>,
    pub reason: String,
}

impl PartitionState {
    pub fn in_memory(&self) -> usize {
        self.entries.values().filter(|e| e.state.is_some()).count()
    }

    pub fn evicted(&self) -> usize {
        self.entries.values().filter(|e| e.state.is_none()).count()
    }

    pub fn note_written(&mut self, key: &str, offset: i64) {
        self.entries.entry(key.to_string()).or_default().offset = Some(offset);
        self.changelog_end = self.changelog_end.max(offset + 1);
    }

    /// Moves finished orders older than `horizon_ms` out of memory (their changelog offset stays).
    pub fn evict(&mut self, horizon_ms: i64) -> usize {
        let cutoff = self.newest.saturating_sub(horizon_ms);
        let mut evicted = 0;
        for entry in self.entries.values_mut() {
            let old_and_done = entry.state.as_ref().is_some_and(|s| s.finished() && s.source_time < cutoff);
            if old_and_done && entry.offset.is_some() {
                entry.state = None;
                evicted += 1;
            }
        }
        evicted
    }
}

/// Reads the changelog: whole partitions on restore, single records on demand.
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
        Changelog { topic, config, timeout: Duration::from_secs(30) }
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

    /// Rebuilds a partition's state from its changelog, evicting as it goes so memory stays bounded.
    pub async fn restore(&self, partition: i32, horizon_ms: i64) -> Result<PartitionState, StoreError> {
        let (config, topic, timeout) = (self.config.clone(), self.topic.clone(), self.timeout);
        let records = tokio::task::spawn_blocking(move || read_range(&config, &topic, partition, None, timeout))
            .await
            .map_err(|_| StoreError::Join)?
            .map_err(self.error(partition))?;
        let mut restored = PartitionState {
            changelog_end: records.end,
            records_restored: records.records.len(),
            ..PartitionState::default()
        };
        for (offset, key, payload) in records.records {
            let state = match self.decode(partition, offset, &key, &payload) {
                Ok(state) => state,
                Err(error) => {
                    // Only this stage writes the changelog, so this is foreign data; one bad record
                    // must not stop the stage. The key keeps the state it had before the record.
                    restored.corrupt.push(CorruptRecord { offset, key, payload, reason: error.to_string() });
                    continue;
                }
            };
            restored.newest = restored.newest.max(state.source_time);
            restored.entries.insert(key, Entry { state: Some(state), offset: Some(offset) });
            if restored.entries.len() % 10_000 == 0 {
                restored.evict(horizon_ms);
            }
        }
        restored.evict(horizon_ms);
        Ok(restored)
    }

    /// Restores partitions `0..partitions` one after another, as a process taking over all of them does,
    /// and returns (records read, orders restored): what a restore costs against what it yields.
    pub async fn restore_all(&self, partitions: i32) -> Result<(usize, usize), StoreError> {
        let (mut records, mut orders) = (0, 0);
        for partition in 0..partitions {
            let restored = self.restore(partition, i64::MAX / 4).await?;
            records += restored.records_restored;
            orders += restored.in_memory() + restored.evicted();
        }
        Ok((records, orders))
    }

    /// The state of `key`, read back from `offset`.
    async fn read_one(&self, partition: i32, offset: i64, key: &str) -> Result<OrderState, StoreError> {
        let (config, topic, timeout) = (self.config.clone(), self.topic.clone(), self.timeout);
        let records =
            tokio::task::spawn_blocking(move || read_range(&config, &topic, partition, Some(offset), timeout))
                .await
                .map_err(|_| StoreError::Join)?
                .map_err(self.error(partition))?;
        let missing = || StoreError::Missing { topic: self.topic.clone(), partition, offset, key: key.to_string() };
        let (_, found_key, payload) =
            records.records.into_iter().find(|(at, _, _)| *at == offset).ok_or_else(missing)?;
        if found_key != key {
            return Err(missing());
        }
        self.decode(partition, offset, key, &payload)
    }

    fn decode(&self, partition: i32, offset: i64, key: &str, payload: &[u8]) -> Result<OrderState, StoreError> {
        let corrupt =
            |source| StoreError::Corrupt { topic: self.topic.clone(), partition, offset, key: key.to_string(), source };
        decode::<OrderStateRecord>(payload).and_then(|record| from_record(&record)).map_err(corrupt)
    }

    /// The state of `key` in `partition`: from memory, from the changelog if it was evicted, or new.
    pub async fn state<'a>(
        &self,
        partition: i32,
        store: &'a mut PartitionState,
        key: &str,
    ) -> Result<&'a mut OrderState, StoreError> {
        let evicted_at = match store.entries.get(key) {
            Some(Entry { state: None, offset: Some(offset) }) => Some(*offset),
            _ => None,
        };
        if let Some(offset) = evicted_at {
            let state = self.read_one(partition, offset, key).await?;
            tracing::debug!(partition, key, offset, "evicted order state read back");
            store.entries.entry(key.to_string()).or_default().state = Some(state);
        }
        let entry = store.entries.entry(key.to_string()).or_default();
        let state = entry.state.get_or_insert_with(OrderState::default);
        Ok(state)
    }
}

impl PartitionState {
    pub fn note_source_time(&mut self, time: i64) {
        self.newest = self.newest.max(time);
    }
}

struct Range {
    /// (offset, key, payload), keys latest-wins when collected into a map by the caller.
    records: Vec<(i64, String, Vec<u8>)>,
    end: i64,
}

/// Reads `[from or the start, end)` of one partition; with `Some(from)` it stops after that record.
fn read_range(
    config: &rdkafka::ClientConfig,
    topic: &str,
    partition: i32,
    from: Option<i64>,
    timeout: Duration,
) -> Result<Range, KafkaError> {
    let consumer: BaseConsumer = config.create()?;
    let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    let start = from.unwrap_or(low).max(low);
    let stop = if from.is_some() { (start + 1).min(high) } else { high };
    let mut range = Range { records: Vec::new(), end: high };
    if start >= stop {
        return Ok(range);
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
    consumer.assign(&assignment)?;
    // Gives up only when nothing arrives for `timeout`: a long changelog may take longer than that.
    let mut deadline = std::time::Instant::now() + timeout;
    let mut position = start;
    while position < stop {
        if std::time::Instant::now() > deadline {
            return Err(KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::OperationTimedOut));
        }
        let message = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(received) => received?,
        };
        deadline = std::time::Instant::now() + timeout;
        position = message.offset() + 1;
        if let Some(key) = message.key() {
            let payload = message.payload().unwrap_or_default().to_vec();
            range.records.push((message.offset(), String::from_utf8_lossy(key).into_owned(), payload));
        }
    }
    Ok(range)
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
    fn only_old_finished_orders_leave_memory() {
        let mut partition = PartitionState::default();
        let mut open = OrderState::default();
        open.fold(&RawEvent::OrderSheet(sheet(1, "INSTRUCT", vec![line(7, 1, 1_000)], 0)));
        let mut done = open.clone();
        done.fold(&RawEvent::Revenue(revenue(SaleType::Sale, 10, &[(7, 1, 1_000, 0, 0)])));
        partition.entries.insert("open".into(), Entry { state: Some(open), offset: Some(1) });
        partition.entries.insert("done".into(), Entry { state: Some(done.clone()), offset: Some(2) });
        partition.note_source_time(done.source_time + 40 * 86_400_000);
        assert_eq!(partition.evict(30 * 86_400_000), 1);
        assert_eq!((partition.in_memory(), partition.evicted()), (1, 1));
        assert!(partition.entries["open"].state.is_some());
    }
}
