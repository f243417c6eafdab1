//! The producer of facts and states: each delivery report lands in a ledger by the record's index, and
//! the stage's thread sleeps until the last one of a batch is in.
//!
//! Why not rdkafka's `FutureProducer`: per record it allocates a channel and boxes its sender, and
//! each acknowledgement wakes the awaiting task. Here a record's opaque is its index (8% more events
//! per CPU-second, BENCHMARKS.md). The reports are still served by the `ThreadedProducer`'s thread: a
//! `BaseProducer` polled by the waiting thread spins, since its `poll` counts the time left in whole
//! milliseconds and polls without waiting once under one.

use etl_core::Shutdown;
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
pub(crate) struct DeliveryLedger {
    reports: Mutex<Ledger>,
    /// Notified when a report leaves none outstanding.
    all_in: Condvar,
    /// Held through a whole [`send_and_wait`]: two at once would share the ledger's indexes.
    sending: Mutex<()>,
    /// How long a wait goes on once the stage is told to stop (the broker may be gone).
    stop_grace: Duration,
}

impl Default for DeliveryLedger {
    fn default() -> Self {
        DeliveryLedger::with_stop_grace(STOP_GRACE)
    }
}

#[derive(Default)]
struct Ledger {
    outcomes: Vec<Option<Delivered>>,
    outstanding: usize,
    /// A wait was given up at a stop: reports may still come for its indexes, so nothing more is sent.
    abandoned: bool,
}

impl ClientContext for DeliveryLedger {}

impl ProducerContext for DeliveryLedger {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(message) => Ok(message.offset()),
            Err((error, _)) => Err(error.clone()),
        };
        if self.lock().settle(index, outcome) {
            self.all_in.notify_all();
        }
    }
}

impl Ledger {
    /// Records the outcome of the record at `index`, once; true when none is outstanding any more.
    fn settle(&mut self, index: usize, outcome: Delivered) -> bool {
        if let Some(slot @ None) = self.outcomes.get_mut(index) {
            *slot = Some(outcome);
            self.outstanding -= 1;
            return self.outstanding == 0;
        }
        false
    }
}

impl DeliveryLedger {
    fn with_stop_grace(stop_grace: Duration) -> Self {
        DeliveryLedger { reports: Mutex::default(), all_in: Condvar::new(), sending: Mutex::default(), stop_grace }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.reports.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long a sender waits for reports to make room in a full queue before it tries again.
const ROOM_WAIT: Duration = Duration::from_millis(10);

/// How often a wait for reports looks whether the stage was told to stop.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// How long a wait for reports goes on after the stage was told to stop: enough for a broker that is
/// there, well within the 30 s a run gives its stages to stop.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Sends `records` (librdkafka batches them; each one's opaque is set to its index) and waits for every
/// delivery report; the outcomes come back in the order of `records`. When librdkafka's queue is full,
/// a record waits for room for up to `queue_timeout`. librdkafka reports every record queued, after
/// about `message.timeout.ms` at most. Once `shutdown` is cancelled the wait goes on for a grace
/// period, then gives up: the records not yet reported come back as `Canceled`, and the producer sends
/// nothing more (the batch was not committed, so a restart sends it again). Blocks: call it through
/// [`etl_core::kafka::blocking`].
pub(crate) fn send_and_wait<'a, K, P>(
    producer: &OutputProducer,
    records: Vec<BaseRecord<'a, K, P, usize>>,
    queue_timeout: Duration,
    shutdown: &Shutdown,
) -> Vec<Delivered>
where
    K: ToBytes + ?Sized + 'a,
    P: ToBytes + ?Sized + 'a,
{
    let ledger = producer.context();
    let _one_at_a_time = ledger.sending.lock().unwrap_or_else(|e| e.into_inner());
    {
        let mut ledger = ledger.lock();
        if ledger.abandoned {
            return records.iter().map(|_| Err(KafkaError::Canceled)).collect();
        }
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
            // Settled on this thread, which is the one that would wait: nobody to notify.
            ledger.lock().settle(index, Err(error));
        }
    }
    let mut reports = ledger.lock();
    let mut stop_by = None;
    while reports.outstanding > 0 {
        reports = ledger.all_in.wait_timeout(reports, STOP_CHECK).unwrap_or_else(|e| e.into_inner()).0;
        if shutdown.is_cancelled() {
            let stop_by = *stop_by.get_or_insert_with(|| Instant::now() + ledger.stop_grace);
            if reports.outstanding > 0 && Instant::now() >= stop_by {
                reports.abandoned = true;
                break;
            }
        }
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
            send_and_wait(&producer, records.collect(), Duration::from_secs(10), &Shutdown::new())
        };
        let outcomes = send(&payloads);
        assert!(matches!(outcomes[..], [Ok(0), Err(_), Ok(1), Ok(2)]), "{outcomes:?}");
        // The ledger starts afresh for the next batch.
        assert!(matches!(send(&payloads[2..])[..], [Ok(3), Ok(4)]));
    }

    #[test]
    fn a_stop_gives_up_waiting_for_a_broker_that_is_gone_and_sends_no_more() {
        let producer: OutputProducer = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .create_with_context(DeliveryLedger::with_stop_grace(Duration::from_millis(300)))
            .unwrap();
        let shutdown = Shutdown::new();
        shutdown.cancel();
        let send = || {
            let record = BaseRecord::with_opaque_to("facts", 0).key("k").payload("fact");
            send_and_wait(&producer, vec![record], Duration::from_secs(10), &shutdown)
        };
        let started = Instant::now();
        assert!(matches!(send()[..], [Err(KafkaError::Canceled)]));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(matches!(send()[..], [Err(KafkaError::Canceled)]), "nothing more is sent");
    }
}
