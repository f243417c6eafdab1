//! A stage's consumer side: batches, offset commits after the batch's effect is durable, and closing
//! group consumers without stalling the async runtime.

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::Duration;

use crate::Shutdown;

/// Waits up to `max_wait` for up to `max_messages`, returning early on shutdown. An empty batch
/// means nothing arrived in time (or shutdown was requested).
pub async fn next_batch<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    max_messages: usize,
    max_wait: Duration,
    shutdown: &Shutdown,
) -> Result<Vec<OwnedMessage>, KafkaError> {
    next_batch_within(consumer, (max_messages, usize::MAX, max_wait), shutdown).await
}

/// Like [`next_batch`], also ending the batch once its payloads reach `max_bytes` (the message that
/// crosses the limit is kept, so a single large message still makes progress).
pub async fn next_batch_within<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    (max_messages, max_bytes, max_wait): (usize, usize, Duration),
    shutdown: &Shutdown,
) -> Result<Vec<OwnedMessage>, KafkaError> {
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    // One timer and one cancellation wait for the whole batch, not one per message: a batch of
    // thousands of messages already queued would otherwise register and drop thousands of timers.
    let deadline = tokio::time::sleep(max_wait);
    let cancelled = shutdown.cancelled();
    tokio::pin!(deadline, cancelled);
    while batch.len() < max_messages && bytes < max_bytes {
        tokio::select! {
            biased;
            _ = &mut cancelled => break,
            _ = &mut deadline => break,
            received = consumer.recv() => match received {
                Ok(message) => {
                    let message = message.detach();
                    bytes += message.payload().map_or(0, <[u8]>::len);
                    batch.push(message);
                }
                // A broker restart or a lost connection: librdkafka reconnects (and rejoins the
                // group) by itself, so the batch just waits for it.
                Err(KafkaError::MessageConsumption(code)) => {
                    tracing::warn!(error = %code, "Kafka consumer: transient error, librdkafka retries");
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok(batch)
}

/// Commits, synchronously, the position after the last message of each partition in `batch`, and
/// returns what it committed.
pub fn commit_batch<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    batch: &[OwnedMessage],
) -> Result<TopicPartitionList, KafkaError> {
    let list = batch_offsets(batch)?;
    if list.count() > 0 {
        blocking(|| consumer.commit(&list, CommitMode::Sync))?;
    }
    Ok(list)
}

/// What a consumer last committed per (topic, partition) in this process.
pub type CommittedOffsets = HashMap<(String, i32), i64>;

/// Commits an idle consumer's positions where they moved past the last committed offset without a
/// message: the markers that end Kafka transactions take offsets but are never delivered, so a stage
/// that commits "after its last message" of a transactional topic would show a lag of one per
/// partition forever. Call it only when every consumed message's effect is durable (nothing in flight).
pub fn commit_idle_positions<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    committed: &mut CommittedOffsets,
) -> Result<(), KafkaError> {
    let mut list = TopicPartitionList::new();
    for element in consumer.position()?.elements() {
        let Offset::Offset(position) = element.offset() else { continue };
        if committed.get(&(element.topic().to_string(), element.partition())) != Some(&position) {
            list.add_partition_offset(element.topic(), element.partition(), Offset::Offset(position))?;
        }
    }
    if list.count() == 0 {
        return Ok(());
    }
    blocking(|| consumer.commit(&list, CommitMode::Sync))?;
    note_committed(&list, committed);
    Ok(())
}

/// Records the offsets of a successful commit of `list`.
pub fn note_committed(list: &TopicPartitionList, committed: &mut CommittedOffsets) {
    for element in list.elements() {
        if let Offset::Offset(offset) = element.offset() {
            committed.insert((element.topic().to_string(), element.partition()), offset);
        }
    }
}

/// The position after the last message of each partition in `batch`: what a commit of the batch stores.
pub fn batch_offsets(batch: &[OwnedMessage]) -> Result<TopicPartitionList, KafkaError> {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for message in batch {
        let slot = next.entry((message.topic(), message.partition())).or_insert(0);
        *slot = (*slot).max(message.offset() + 1);
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    Ok(list)
}

/// Runs a blocking librdkafka call (a synchronous commit, closing a group consumer) so that it cannot
/// stall the async runtime: while the broker is away such a call waits for the group coordinator,
/// and two of them on two workers would stop every timer, every other task and the reconnect itself.
/// On a multi-threaded runtime the worker hands its tasks to another thread first; elsewhere (a
/// current-thread runtime, or no runtime) the call simply runs.
pub fn blocking<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

/// A Kafka client whose drop (its close) runs through [`blocking`]: a group consumer's close waits for
/// the coordinator (to leave the group), which must not hold an async worker while the broker is down.
pub struct BlockingDrop<T>(Option<T>);

impl<T> BlockingDrop<T> {
    pub fn new(client: T) -> Self {
        BlockingDrop(Some(client))
    }
}

impl<T> std::ops::Deref for BlockingDrop<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("only taken in drop")
    }
}

impl<T> Drop for BlockingDrop<T> {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            blocking(move || drop(client));
        }
    }
}
