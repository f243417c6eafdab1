//! One batch of the transform: decode and validate each raw message (poison to the dead-letter topic),
//! fold it into its order's state, then send the orders' changed facts and states (see the stage's
//! module docs for the order of the writes and why a replay is harmless).

use coupang_schemas::{decode, encode_order_facts, OrderKey, OrderStateRecord, PaymentFact};
use etl_core::kafka::{blocking, DeadLetter, QUEUE_TIMEOUT};
use etl_core::metrics::PerAccount;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::BaseRecord;
use std::collections::BTreeMap;

use crate::error::{TransformError, STAGE};
use crate::order::{PoisonEvent, RawEvent, RawStream};
use crate::output::{send_and_wait, OutputProducer};
use crate::rules::{apply, facts_sent_again, Emission};
use crate::state_file::StateFile;
use crate::store::{from_record, PartitionState, Resend, StoreError, Superseded, Written};

/// Counters of one batch, for logs and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct BatchReport {
    pub events: usize,
    pub facts: usize,
    pub states: usize,
    pub dead_letters: usize,
}

/// Where a batch's results go: facts to their topic, changed states to the changelog, poison to the
/// dead-letter topic.
pub(crate) struct Outputs<'a> {
    pub producer: &'a OutputProducer,
    pub dead_letter: &'a DeadLetter,
    pub topics: &'a etl_core::kafka::Topics,
    /// The stage's stop: a wait for the broker's acknowledgements gives up some time after it.
    pub shutdown: &'a etl_core::Shutdown,
}

/// A batch folded into its orders' states.
#[derive(Default)]
struct Folded {
    /// Messages folded: the batch's first ones (see [`fold_batch`]).
    messages: usize,
    /// The facts each event made or restated, one order's per event whose facts changed, in batch
    /// order: each goes out as one message.
    facts: Vec<Vec<PaymentFact>>,
    /// Orders whose state changed, with their input partition: their states go to the changelog.
    /// Pushed per event, then sorted and deduplicated once (a `BTreeSet` insert per event was 1.5%
    /// of the process).
    changed: Vec<ChangedOrder>,
    events_in: PerAccount,
    dead_letters: usize,
}

/// An order whose state the batch changed: (input partition, order id, key). Ordered by the integers
/// first: comparing the key's vendor id first (equal for most of a batch) was 3% of the stage's
/// instructions. States go out per partition in this order.
type ChangedOrder = (i32, i64, OrderKey);

/// A changed state on its way to the changelog: its input partition, key and encoded record.
pub(crate) struct EncodedState {
    partition: i32,
    key: String,
    payload: Vec<u8>,
}

/// A batch's changed states, each with its changelog offset once the broker took it. They go to the
/// partitions' files only after the batch's offsets are committed (see [`persist`]).
#[derive(Default)]
pub(crate) struct SentStates(Vec<(EncodedState, i64)>);

/// Writes the batch's states to their partitions' files and lets go of the batch's decoded states.
/// Called once the batch is committed: a file is never ahead of what the changelog and the
/// committed offsets say. A partition whose states landed past this process's last write (plus the
/// commit marker that follows each transaction) was written by another process meanwhile, one frozen
/// past its session, say: it is marked, to be restored before the next batch.
pub(crate) fn persist(
    file: &StateFile,
    owned: &mut BTreeMap<i32, PartitionState>,
    sent: &SentStates,
    transactions: bool,
) -> Result<(), TransformError> {
    let per_partition = owned.iter_mut().map(|(partition, store)| {
        // States are sent in (partition, key) order, so each partition's are contiguous.
        let from = sent.0.partition_point(|(state, _)| state.partition < *partition);
        let to = sent.0.partition_point(|(state, _)| state.partition <= *partition);
        let written: Vec<Written<'_>> = sent.0[from..to]
            .iter()
            .map(|(state, offset)| Written { key: &state.key, payload: &state.payload, offset: *offset })
            .collect();
        if !written.is_empty() && !follows_on(store.changelog_end, written.iter().map(|w| w.offset), transactions) {
            tracing::warn!(partition, changelog_end = store.changelog_end, "another process wrote this changelog partition since this one's last batch: restoring it before the next");
            store.foreign_writes = true;
        }
        (store, written)
    });
    Ok(crate::store::persist(file, per_partition)?)
}

/// Whether records this process sent to a changelog partition at `offsets` (one producer's sends, one
/// per key) directly follow its last write, which ended at `end`: they start there (or one after, past
/// the marker of this process's last transaction) and take consecutive offsets. Otherwise another
/// process wrote the partition before or between them.
pub(crate) fn follows_on(end: i64, offsets: impl Iterator<Item = i64>, transactions: bool) -> bool {
    let (mut first, mut last, mut count) = (i64::MAX, i64::MIN, 0);
    for offset in offsets {
        (first, last, count) = (first.min(offset), last.max(offset), count + 1);
    }
    (end..=end + i64::from(transactions)).contains(&first) && last - first + 1 == count
}

/// How a batch's facts, states and input offsets reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writes {
    /// The facts acknowledged, then the states; the caller then commits the offsets. A crash can
    /// leave a batch's facts visible without its states and offsets.
    InOrder,
    /// Facts and states sent at once inside a transaction, which the caller commits with the offsets:
    /// all of a batch becomes visible, or none of it.
    Transaction,
}

impl Writes {
    /// When an order's facts go out: only a transaction makes it safe to leave out those that say
    /// nothing new (see [`Emission`]).
    fn emission(self) -> Emission {
        match self {
            Writes::InOrder => Emission::OnVersionChange,
            Writes::Transaction => Emission::OnContentChange,
        }
    }
}

/// Folds a batch's first messages, until the states they read from disk reach `state_bytes` (see
/// [`fold_batch`]), then sends their facts and changed states as `writes` says. The report's `events`
/// says how many messages were handled: the rest are the caller's to hand over again.
pub(crate) async fn process(
    batch: &[OwnedMessage],
    state_bytes: usize,
    owned: &mut BTreeMap<i32, PartitionState>,
    outputs: &Outputs<'_>,
    writes: Writes,
) -> Result<(BatchReport, SentStates), TransformError> {
    let folded = fold_batch(batch, state_bytes, owned, outputs, writes.emission()).await?;
    let facts = encode_facts(&folded.facts);
    let states = encode_states(&folded.changed, owned)?;
    owned.values_mut().for_each(PartitionState::release_decoded);
    let state_offsets = blocking(|| send_outputs(outputs, &facts, &states, writes))?;

    folded.events_in.record_in(STAGE);
    count_facts_out(&folded.facts);
    let report = BatchReport {
        events: folded.messages,
        facts: folded.facts.iter().map(Vec::len).sum(),
        states: states.len(),
        dead_letters: folded.dead_letters,
    };
    Ok((report, SentStates(states.into_iter().zip(state_offsets).collect())))
}

/// Decodes, validates and folds each message into its order's state; poison goes to the dead-letter
/// topic at once, so it never blocks its partition. Stops after the message whose states read from
/// disk reach `state_bytes`: decoded, they are most of what a batch holds, and a batch of updates to
/// orders already known reads a state per event (in the bench ~600 KB per 2,000 events, against under
/// 160 KB for batches of mostly new orders).
async fn fold_batch(
    batch: &[OwnedMessage],
    state_bytes: usize,
    owned: &mut BTreeMap<i32, PartitionState>,
    outputs: &Outputs<'_>,
    emission: Emission,
) -> Result<Folded, TransformError> {
    let mut folded = Folded::default();
    // Stored bytes this batch has read so far, summed over its partitions.
    let mut read_bytes = 0;
    for message in batch {
        if read_bytes >= state_bytes {
            break;
        }
        folded.messages += 1;
        let event = match read_event(message, outputs.topics) {
            Ok(Some(event)) => event,
            Ok(None) => continue,
            Err(reason) => {
                outputs.dead_letter.send(message, &reason.to_string()).await?;
                folded.dead_letters += 1;
                continue;
            }
        };
        folded.events_in.add(event.as_ref().collection().1, 1);
        let partition = message.partition();
        let Some(store) = owned.get_mut(&partition) else { continue };
        let read_before = store.read_bytes();
        let event_folded = fold_into(store, event, message.payload().unwrap_or_default(), emission)?;
        read_bytes += store.read_bytes() - read_before;
        if let Some(key) = event_folded.changed {
            folded.changed.push((partition, key.order_id, key));
        }
        if !event_folded.facts.is_empty() {
            folded.facts.push(event_folded.facts);
        }
    }
    folded.changed.sort_unstable();
    folded.changed.dedup();
    Ok(folded)
}

/// What folding one event did to its partition's state.
#[derive(Debug, Default)]
pub struct EventFolded {
    /// The event's order, when its state changed: the state must go to the changelog.
    pub changed: Option<OrderKey>,
    /// The order's facts, when they changed.
    pub facts: Vec<PaymentFact>,
}

/// Folds one decoded event into its order's state in `store`; when the event takes its slot, the raw
/// message's `payload` becomes that slot's bytes. `emission` says when the order's facts go out. The
/// stage's batches and the CPU bench both fold through this.
pub fn fold_into(
    store: &mut PartitionState,
    event: RawEvent,
    payload: &[u8],
    emission: Emission,
) -> Result<EventFolded, StoreError> {
    let key = event.order_key();
    let text = key.text();
    let slot = event.slot();
    let applied = apply(store.state(&text)?, event, emission);
    if applied.took_slot {
        store.keep_payload(&text, slot, payload);
    }
    Ok(EventFolded { changed: applied.state_changed.then_some(key), facts: applied.facts.unwrap_or_default() })
}

/// The changed orders' states as changelog records.
fn encode_states(
    changed: &[ChangedOrder],
    owned: &mut BTreeMap<i32, PartitionState>,
) -> Result<Vec<EncodedState>, TransformError> {
    let mut states = Vec::with_capacity(changed.len());
    for (partition, _, key) in changed {
        let Some(store) = owned.get_mut(partition) else { continue };
        let text = key.text();
        let Some(payload) = store.encoded_record(&text, &key.vendor_id, key.order_id)? else { continue };
        states.push(EncodedState { partition: *partition, key: text, payload });
    }
    Ok(states)
}

/// The facts to send with the states a restore of `partition` kept over the changelog's last record
/// of their order ([`PartitionState::resend`]): those the late ones may hide ([`facts_sent_again`]),
/// one order's at a time.
pub(crate) fn facts_to_send_again(partition: i32, resend: &[Resend]) -> Result<Vec<Vec<PaymentFact>>, TransformError> {
    let mut facts = Vec::new();
    for again in resend {
        let Superseded::Late { record, sent_before } = &again.superseded else { continue };
        let state = |record: &[u8]| {
            decode::<OrderStateRecord>(record).and_then(from_record).map_err(|source| TransformError::Resend {
                partition,
                key: again.key.clone(),
                source,
            })
        };
        let sent_before = sent_before.as_deref().map(state).transpose()?;
        let order_facts = facts_sent_again(&state(record)?, sent_before.as_ref(), &state(&again.record)?);
        if !order_facts.is_empty() {
            facts.push(order_facts);
        }
    }
    Ok(facts)
}

/// Sends `facts`, then the states of `resend` to changelog partition `partition` again, as `writes`
/// says (a transaction is the caller's to begin and commit, and the facts its to count once
/// committed); gives where the states landed.
pub(crate) fn send_again(
    outputs: &Outputs<'_>,
    partition: i32,
    facts: &[Vec<PaymentFact>],
    resend: &[Resend],
    writes: Writes,
) -> Result<Vec<i64>, TransformError> {
    let encoded = encode_facts(facts);
    let states: Vec<EncodedState> = resend
        .iter()
        .map(|again| EncodedState { partition, key: again.key.clone(), payload: again.record.clone() })
        .collect();
    send_outputs(outputs, &encoded, &states, writes)
}

/// Each order's facts as one message (key, payload), keyed by the order (`vendorId:orderId`): a reader
/// gets the items an event restated together, and an order's messages in one partition, in order.
/// One message per order rather than per fact: a message costs the stage ~0.8 µs to send
/// (BENCHMARKS.md).
pub fn encode_facts(orders: &[Vec<PaymentFact>]) -> Vec<(String, Vec<u8>)> {
    orders
        .iter()
        .filter_map(|facts| {
            let first = facts.first()?;
            let key = OrderKey { vendor_id: first.vendor_id.clone(), order_id: first.order_id };
            Some((key.text(), encode_order_facts(&first.vendor_id, first.order_id, facts)))
        })
        .collect()
}

/// Counts facts sent, per account (an order's facts are one account's).
pub(crate) fn count_facts_out(orders: &[Vec<PaymentFact>]) {
    let mut facts_out = PerAccount::default();
    for facts in orders {
        if let Some(first) = facts.first() {
            facts_out.add(&first.account_alias, facts.len() as u64);
        }
    }
    facts_out.record_out(STAGE);
}

/// Sends the facts and the states (each state to its input partition's changelog partition), in order
/// or together (see [`Writes`]), and gives the changelog offset of each state once all are acknowledged.
fn send_outputs(
    outputs: &Outputs<'_>,
    facts: &[(String, Vec<u8>)],
    states: &[EncodedState],
    writes: Writes,
) -> Result<Vec<i64>, TransformError> {
    let topics = outputs.topics;
    let fact_records = facts
        .iter()
        .map(|(key, payload)| BaseRecord::with_opaque_to(&topics.payment_facts, 0).key(key).payload(payload));
    let state_records = states.iter().map(|state| {
        BaseRecord::with_opaque_to(&topics.transform_state, 0)
            .partition(state.partition)
            .key(&state.key)
            .payload(&state.payload)
    });
    let send = |records| send_and_wait(outputs.producer, records, QUEUE_TIMEOUT, outputs.shutdown);
    let written = if writes == Writes::InOrder {
        // 1. Facts, acknowledged; 2. then the changed states, acknowledged.
        send(fact_records.collect()).into_iter().collect::<Result<Vec<_>, _>>()?;
        send(state_records.collect())
    } else {
        let mut delivered = send(fact_records.chain(state_records).collect());
        let written = delivered.split_off(facts.len());
        delivered.into_iter().collect::<Result<Vec<_>, _>>()?;
        written
    };
    Ok(written.into_iter().collect::<Result<_, _>>()?)
}

/// The event in a raw message; `Ok(None)` for records that belong to no order (revenue adjustments
/// with `orderId = 0`), `Err(reason)` for poison.
fn read_event(message: &OwnedMessage, topics: &etl_core::kafka::Topics) -> Result<Option<RawEvent>, PoisonEvent> {
    let topic = message.topic();
    let stream = if topic == topics.raw_order_sheets {
        RawStream::OrderSheets
    } else if topic == topics.raw_return_requests {
        RawStream::ReturnRequests
    } else if topic == topics.raw_revenue {
        RawStream::Revenue
    } else {
        return Err(PoisonEvent::UnexpectedTopic(topic.to_string()));
    };
    let event = RawEvent::read(stream, message.payload().unwrap_or_default())?;
    if event.is_none() {
        tracing::debug!(topic, "revenue adjustment without an order skipped");
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::tests::{line, sheet};
    use crate::order::OrderState;
    use crate::store::{open_state_file, to_record, Written};
    use coupang_schemas::encode;
    use coupang_schemas::OrderSheetEvent;
    use etl_core::kafka::KafkaConfig;
    use rdkafka::message::Timestamp;

    /// Raw order-sheet messages of partition 0, one per order id.
    fn sheets(topic: &str, order_ids: std::ops::Range<i64>) -> Vec<OwnedMessage> {
        order_ids
            .map(|order_id| {
                let event = OrderSheetEvent { order_id, ..sheet(order_id, "DEPARTURE", vec![line(7, 1, 1_000)], 0) };
                let payload = encode(&event).unwrap();
                OwnedMessage::new(Some(payload), None, topic.into(), Timestamp::NotAvailable, 0, order_id, None)
            })
            .collect()
    }

    #[test]
    fn states_landing_past_this_process_s_last_write_mark_the_partition_and_keep_its_file_s_end() {
        let dir = std::env::temp_dir().join(format!("batch-foreign-{}", std::process::id()));
        let file = open_state_file(&dir, "changelog", 0, 1 << 20).unwrap();
        let state = |key: &str| EncodedState { partition: 0, key: key.into(), payload: b"state".to_vec() };
        for transactions in [false, true] {
            let mut owned = BTreeMap::from([(0, PartitionState::new(file.clone(), 0))]);
            let markers = i64::from(transactions);
            // Right after this process's last write (and its commit marker): its own.
            owned.get_mut(&0).unwrap().changelog_end = 10;
            persist(&file, &mut owned, &SentStates(vec![(state("A:1"), 10 + markers)]), transactions).unwrap();
            assert!(!owned[&0].foreign_writes);
            assert_eq!((owned[&0].changelog_end, file.applied_end(0).unwrap()), (11 + markers, Some(11 + markers)));
            // Two offsets further: another process wrote in between.
            let end = owned[&0].changelog_end;
            persist(&file, &mut owned, &SentStates(vec![(state("A:2"), end + markers + 2)]), transactions).unwrap();
            assert!(owned[&0].foreign_writes, "transactions {transactions}");
            assert_eq!(owned[&0].changelog_end, end, "the next restore reads from here");
            assert_eq!(file.applied_end(0).unwrap(), Some(end));
            assert_eq!(file.get(0, "A:2").unwrap().as_deref(), Some(&b"state"[..]), "its states are kept");
        }
        // Another process's records between this batch's own are met too.
        assert!(follows_on(10, [10, 11, 12].into_iter(), false));
        assert!(!follows_on(10, [10, 12, 13].into_iter(), false));
        assert!(follows_on(10, [11, 12].into_iter(), true) && follows_on(10, [10].into_iter(), true));
        assert!(!follows_on(10, [12].into_iter(), true));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_a_transaction_leaves_out_versions_that_say_nothing_new() {
        assert_eq!(Writes::InOrder.emission(), Emission::OnVersionChange);
        assert_eq!(Writes::Transaction.emission(), Emission::OnContentChange);
    }

    #[tokio::test]
    async fn a_batch_ends_once_the_states_it_read_reach_the_bound() {
        let dir = std::env::temp_dir().join(format!("batch-bound-{}", std::process::id()));
        let file = open_state_file(&dir, "changelog", 0, 1 << 20).unwrap();
        let kafka = KafkaConfig::default();
        let topics = kafka.topics();
        let producer: OutputProducer = kafka.producer_config().create_with_context(Default::default()).unwrap();
        let dead_letters = kafka.producer_config().create().unwrap();
        let dead_letter = DeadLetter::new(dead_letters, topics.dead_letter.clone(), "transform");
        let shutdown = etl_core::Shutdown::new();
        let outputs = Outputs { producer: &producer, dead_letter: &dead_letter, topics: &topics, shutdown: &shutdown };
        let mut owned = BTreeMap::from([(0, PartitionState::new(file.clone(), 0))]);

        // Orders 1..=10 are new: nothing is read, so no bound ends the batch early.
        let new_orders = sheets(&topics.raw_order_sheets, 1..11);
        let folded = fold_batch(&new_orders, 1, &mut owned, &outputs, Emission::OnVersionChange).await.unwrap();
        assert_eq!(folded.messages, 10);
        // They are stored; a later event of each reads its state (the same size each).
        let records: Vec<(String, Vec<u8>)> = new_orders
            .iter()
            .map(|message| {
                let Ok(Some(event)) = read_event(message, &topics) else { panic!("an order sheet") };
                let mut state = OrderState::default();
                state.fold(&event);
                let key = event.order_key();
                (key.text(), encode(&to_record(&key.vendor_id, key.order_id, &state).unwrap()).unwrap())
            })
            .collect();
        let written =
            records.iter().zip(0..).map(|((key, payload), offset)| Written { key, payload, offset }).collect();
        crate::store::persist(&file, [(owned.get_mut(&0).unwrap(), written)]).unwrap();
        let one_state = records[0].1.len();

        let updates = sheets(&topics.raw_order_sheets, 1..11);
        // The third read reaches 2.5 states' bytes: the batch ends after that event.
        let folded =
            fold_batch(&updates, one_state * 5 / 2, &mut owned, &outputs, Emission::OnVersionChange).await.unwrap();
        assert_eq!(folded.messages, 3);
        assert_eq!(owned[&0].read_bytes(), 3 * one_state);
        owned.values_mut().for_each(PartitionState::release_decoded);
        // Any bound lets at least one event through.
        assert_eq!(fold_batch(&updates, 1, &mut owned, &outputs, Emission::OnVersionChange).await.unwrap().messages, 1);
        drop((owned, file));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
