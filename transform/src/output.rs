//! The producer of facts and states: each delivery report lands in a ledger by the record's index, and
//! the stage's thread sleeps until the last one of a batch is in.
//!
//! Why not rdkafka's `FutureProducer`: per record it allocates a channel and boxes its sender, and
//! each acknowledgement wakes the awaiting task. Here a record's opaque is its index (8% more events
//! per CPU-second, BENCHMARKS.md). The reports are still served by the `ThreadedProducer`'s thread: a
//! `BaseProducer` polled by the waiting thread spins, since its `poll` counts the time left in whole
//! milliseconds and polls without waiting once under one.

use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message, ToBytes};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The facts and states producer.
pub(crate) type OutputProducer = ThreadedProducer<DeliveryLedger>;

/// A record's outcome: the offset the broker gave it, or why it was not delivered.
pub(crate) type Delivered = Result<i64, KafkaError>;

/// The delivery reports of the records in flight, by index; `None` until reported.
#[derive(Default)]
pub(crate) struct DeliveryLedger {
    reports: Mutex<Ledger>,
    /// Notified when a report leaves none outstanding.
    all_in: Condvar,
}

#[derive(Default)]
struct Ledger {
    outcomes: Vec<Option<Delivered>>,
    outstanding: usize,
}

impl ClientContext for DeliveryLedger {}

impl ProducerContext for DeliveryLedger {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(message) => Ok(message.offset()),
            Err((error, _)) => Err(error.clone()),
        };
        let mut ledger = self.lock();
        if let Some(slot @ None) = ledger.outcomes.get_mut(index) {
            *slot = Some(outcome);
            ledger.outstanding -= 1;
            if ledger.outstanding == 0 {
                self.all_in.notify_all();
            }
        }
    }
}

impl DeliveryLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.reports.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long a sender waits for reports to make room in a full queue before it tries again.
const ROOM_WAIT: Duration = Duration::from_millis(10);

/// Sends `records` (librdkafka batches them; each one's opaque is set to its index) and waits for every
/// delivery report; the outcomes come back in the order of `records`. When librdkafka's queue is full,
/// a record waits for room for up to `queue_timeout`. Every record queued is reported within
/// `message.timeout.ms`, which librdkafka guarantees. Blocks: call it through
/// [`etl_core::kafka::blocking`].
pub(crate) fn send_and_wait<'a, K, P>(
    producer: &OutputProducer,
    records: Vec<BaseRecord<'a, K, P, usize>>,
    queue_timeout: Duration,
) -> Vec<Delivered>
where
    K: ToBytes + ?Sized + 'a,
    P: ToBytes + ?Sized + 'a,
{
    let ledger = producer.context();
    {
        let mut ledger = ledger.lock();
        ledger.outcomes.clear();
        ledger.outcomes.resize_with(records.len(), || None);
        ledger.outstanding = records.len();
    }
    for (index, mut record) in records.into_iter().enumerate() {
        record.delivery_opaque = index;
        let mut queued_at = None;
        let refused = loop {
            match producer.send(record) {
                Ok(()) => break None,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if queued_at.get_or_insert_with(Instant::now).elapsed() < queue_timeout =>
                {
                    record = back;
                    std::thread::sleep(ROOM_WAIT);
                }
                Err((error, _)) => break Some(error),
            }
        };
        if let Some(error) = refused {
            let mut ledger = ledger.lock();
            ledger.outcomes[index] = Some(Err(error));
            ledger.outstanding -= 1;
        }
    }
    let mut reports = ledger.lock();
    while reports.outstanding > 0 {
        reports = ledger.all_in.wait(reports).unwrap_or_else(|e| e.into_inner());
    }
    let outcomes = std::mem::take(&mut reports.outcomes);
    outcomes.into_iter().map(|outcome| outcome.unwrap_or(Err(KafkaError::Canceled))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::ClientConfig;

    #[test]
    fn outcomes_come_back_in_record_order_with_their_offsets_and_refusals() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("facts", 1, 1).unwrap();
        let producer: OutputProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("message.max.bytes", "1000")
            .create_with_context(DeliveryLedger::default())
            .unwrap();
        let too_large = vec![0u8; 5_000];
        let payloads: [&[u8]; 4] = [b"first", &too_large, b"second", b"third"];
        let send = |payloads: &[&[u8]]| {
            let records = payloads.iter().map(|p| BaseRecord::with_opaque_to("facts", 0).key("k").payload(*p));
            send_and_wait(&producer, records.collect(), Duration::from_secs(10))
        };
        let outcomes = send(&payloads);
        assert!(matches!(outcomes[..], [Ok(0), Err(_), Ok(1), Ok(2)]), "{outcomes:?}");
        // The ledger starts afresh for the next batch.
        assert!(matches!(send(&payloads[2..])[..], [Ok(3), Ok(4)]));
    }
}
