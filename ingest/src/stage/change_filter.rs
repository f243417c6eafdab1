//! The change filter: what ingest last sent per record, so only changes go downstream, and which
//! orders and boxes it has read, so receipts for orders the lists no longer show can be followed up.

use chrono::NaiveDate;
use coupang_schemas::encode;
use std::collections::{HashMap, HashSet};

use super::error::IngestError;
use crate::client::model::ReturnRequest;

/// Remembers what was last sent for each record (a hash of its event, collection time aside), so a
/// record Coupang lists again unchanged (re-swept windows, repeated pages) is not sent again and the
/// stages after ingest see only changes. In memory: after a restart every record is sent once more,
/// which the next stages absorb (same versions). One per account.
#[derive(Default)]
pub(super) struct ChangeFilter {
    sent: HashMap<String, u64>,
    /// Orders whose order sheet this process has read: a receipt for any other order makes ingest
    /// ask for that order alone (cancelled or returned boxes leave the lists, and without the order
    /// sheet the pipeline has no price or payment time for them).
    pub(super) orders_seen: HashSet<i64>,
    /// Shipment boxes read, for receipts that name their boxes (a split order's second box can leave
    /// the lists while the first stays).
    pub(super) boxes_seen: HashSet<i64>,
    /// For a range collection: orders read alone are kept only when paid by this day, so days after
    /// the range never show partial totals.
    pub(super) paid_until: Option<NaiveDate>,
}

impl ChangeFilter {
    /// A filter for a collection of days up to `to`: orders read alone count only when paid by then.
    pub(super) fn for_range_ending(to: NaiveDate) -> ChangeFilter {
        ChangeFilter { paid_until: Some(to), ..ChangeFilter::default() }
    }

    /// Whether a receipt names a box (or, without box ids, an order) whose order sheet was never read.
    pub(super) fn misses_order_of(&self, receipt: &ReturnRequest) -> bool {
        let boxes: Vec<i64> = receipt.return_items.iter().filter_map(|item| item.shipment_box_id).collect();
        if boxes.is_empty() {
            !self.orders_seen.contains(&receipt.order_id)
        } else {
            boxes.iter().any(|id| !self.boxes_seen.contains(id))
        }
    }

    /// The encoded event when it differs from the last one sent under `id`; `None` when unchanged.
    pub(super) fn encode_if_changed<E: coupang_schemas::EventType + Clone>(
        &mut self,
        id: String,
        event: &E,
        without_collection_time: impl FnOnce(&mut E),
    ) -> Result<Option<Vec<u8>>, IngestError> {
        use std::hash::{Hash, Hasher};
        let mut timeless = event.clone();
        without_collection_time(&mut timeless);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        encode(&timeless)?.hash(&mut hasher);
        let hash = hasher.finish();
        if self.sent.insert(id, hash) == Some(hash) {
            return Ok(None);
        }
        Ok(Some(encode(event)?))
    }
}
