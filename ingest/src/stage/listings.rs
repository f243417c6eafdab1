//! One account's listings, stream by stream, sent as raw events: order sheets (one listing per status),
//! cancel/return receipts, the orders those receipts name that the lists no longer show, and revenue
//! rows. What they share is [`AccountSweep::send_changed`]: read a listing chunk by chunk, send only
//! what changed, dead-letter what cannot be read, and wait for the broker's acknowledgement.

use chrono::{NaiveDate, NaiveDateTime, Utc};
use etl_core::metrics::metrics;
use futures::stream::BoxStream;
use futures::StreamExt;
use std::collections::BTreeSet;
use tokio_util::sync::CancellationToken;

use super::change_filter::ChangeFilter;
use super::error::IngestError;
use super::plan::{months, windows, Stream};
use super::sweep::{AccountSweep, Outcome};
use crate::client::model::{OrderSheet, OrderStatus, ReturnRequest, RevenueRecord};
use crate::client::{ClientError, CoupangClient, RecognitionMonth, RecordId, ReturnQuery, SettlementRow};
use crate::config::NEW_ORDER_POLL_CALLS;
use crate::event::{order_sheet_event, return_request_event, settlement_event, RevenueListing};

/// Order-sheet lists return boxes in their current status, so a full sweep asks for each one.
const ORDER_SHEET_STATUSES: [OrderStatus; 6] = [
    OrderStatus::Accept,
    OrderStatus::Instruct,
    OrderStatus::Departure,
    OrderStatus::Delivering,
    OrderStatus::FinalDelivery,
    OrderStatus::NoneTracking,
];

/// The statuses of an order that became visible minutes ago: paid, or already being prepared (a box
/// departs hours after payment, and the next sweep of the look-back days sees anything later).
const NEW_ORDER_STATUSES: [OrderStatus; NEW_ORDER_POLL_CALLS] = [OrderStatus::Accept, OrderStatus::Instruct];

/// What one listing did.
struct Listing {
    /// Records read (bad ones excluded).
    seen: u64,
    /// Records sent (changed ones) and acknowledged.
    sent: u64,
    /// Why the listing ended early, if it did.
    stopped: Option<Outcome>,
}

/// A record made into its event: the source time of its newest change and, when the event changed
/// since it was last sent, its Kafka key and encoded bytes.
struct RecordEvent {
    newest_change: i64,
    changed: Option<(String, Vec<u8>)>,
}

/// Makes a record, collected at the given time (epoch ms), into its event, asking the account's change
/// filter whether it changed.
type MakeEvent<'a, R> = dyn FnMut(R, i64, &mut ChangeFilter) -> Result<RecordEvent, IngestError> + Send + 'a;

impl AccountSweep<'_> {
    /// Order sheets created on `from..=to`, one listing per status (lists show current statuses).
    pub(super) async fn order_sheets(&mut self, from: NaiveDate, to: NaiveDate) -> Result<Outcome, IngestError> {
        let client = self.client;
        let mut prepare = order_sheet_preparation(client);
        for (window_from, window_to) in windows(from, to) {
            for status in &ORDER_SHEET_STATUSES {
                let records = client.order_sheets(window_from, window_to, status).then(|r| with_refetch(client, r));
                let listing = self.send_changed(records.boxed(), Stream::OrderSheets, &mut prepare).await?;
                self.report.boxes += listing.seen;
                self.report.events += listing.sent;
                if let Some(outcome) = listing.stopped {
                    return Ok(outcome);
                }
            }
        }
        Ok(Outcome::Done)
    }

    /// Order sheets created in the minute window `from..=to` (at most 24 hours) in the statuses of new
    /// orders: one unpaged call per status.
    pub(super) async fn new_orders(&mut self, from: NaiveDateTime, to: NaiveDateTime) -> Result<Outcome, IngestError> {
        if let Some(polls) = &mut self.new_orders {
            polls.polling = true;
            polls.next = tokio::time::Instant::now() + polls.every;
        }
        let outcome = self.new_orders_listings(from, to).await;
        if let Some(polls) = &mut self.new_orders {
            polls.polling = false;
        }
        outcome
    }

    async fn new_orders_listings(&mut self, from: NaiveDateTime, to: NaiveDateTime) -> Result<Outcome, IngestError> {
        let client = self.client;
        let mut prepare = order_sheet_preparation(client);
        for status in &NEW_ORDER_STATUSES {
            let records = match client.order_sheets_time_frame(from, to, status).await {
                Ok(records) => records,
                Err(error) => return Ok(Outcome::Failed(error)),
            };
            let records = futures::stream::iter(records).then(|r| with_refetch(client, r));
            let listing = self.send_changed(records.boxed(), Stream::OrderSheets, &mut prepare).await?;
            self.report.boxes += listing.seen;
            self.report.events += listing.sent;
            if let Some(outcome) = listing.stopped {
                return Ok(outcome);
            }
        }
        Ok(Outcome::Done)
    }

    /// When the next poll for new orders is due, if polls are on and none is under way.
    fn next_poll_due(&self) -> Option<tokio::time::Instant> {
        self.new_orders.as_ref().filter(|polls| !polls.polling).map(|polls| polls.next)
    }

    /// Polls for new orders as they fall due until `stop` (or shutdown): while other accounts' sweeps
    /// go on after this account's. Ends early with the error of a poll that stops the account (its
    /// key was rejected); other failed polls only wait for the next one.
    pub(super) async fn poll_new_orders_until(
        &mut self,
        stop: &CancellationToken,
    ) -> Result<Option<ClientError>, IngestError> {
        while let Some(due) = self.next_poll_due() {
            tokio::select! {
                // The last account to finish finds `stop` already set: no poll then.
                biased;
                () = stop.cancelled() => break,
                () = self.shutdown.cancelled() => break,
                () = tokio::time::sleep_until(due) => {
                    if let Some(error) = self.poll_new_orders_if_due().await? {
                        if error.stops_account() {
                            return Ok(Some(error));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// During a sweep, or after it while others go on: polls for new orders when a poll is due, and
    /// gives the error of a failed poll. During a sweep the caller only waits for the next poll (the
    /// sweep itself reads those orders too).
    async fn poll_new_orders_if_due(&mut self) -> Result<Option<ClientError>, IngestError> {
        let Some(polls) = &self.new_orders else { return Ok(None) };
        if polls.polling || tokio::time::Instant::now() < polls.next {
            return Ok(None);
        }
        let to = etl_core::time::now_kst().naive_local();
        let from = to - polls.window;
        // Boxed: the poll's own listing goes through `send_changed`, which called this.
        if let Outcome::Failed(error) = Box::pin(self.new_orders(from, to)).await? {
            tracing::warn!(account = %self.client.account().alias, "polling new orders: {error}");
            return Ok(Some(error));
        }
        Ok(None)
    }

    /// Cancel and return receipts requested on `from..=to`, then the orders they name whose order sheets
    /// were never read.
    pub(super) async fn return_requests(&mut self, from: NaiveDate, to: NaiveDate) -> Result<Outcome, IngestError> {
        let client = self.client;
        let account = client.account();
        let (vendor, alias) = (account.vendor_id.as_str(), account.alias.as_str());
        let mut unseen = BTreeSet::new();
        let mut prepare = |receipt: ReturnRequest, collected_at, filter: &mut ChangeFilter| {
            if filter.misses_order_of(&receipt) {
                unseen.insert(receipt.order_id);
            }
            let event = return_request_event(vendor, alias, collected_at, &receipt);
            let newest_change = event.modified_at.unwrap_or(event.created_at);
            let bytes =
                filter.encode_if_changed(format!("receipt:{}", receipt.receipt_id), &event, |e| e.collected_at = 0)?;
            Ok(RecordEvent { newest_change, changed: bytes.map(|b| (event.kafka_key(), b)) })
        };
        for (window_from, window_to) in windows(from, to) {
            for which in ReturnQuery::ALL {
                let records = client.return_requests(window_from, window_to, which).boxed();
                let listing = self.send_changed(records, Stream::ReturnRequests, &mut prepare).await?;
                self.report.receipts += listing.sent;
                if let Some(outcome) = listing.stopped {
                    return Ok(outcome);
                }
            }
        }
        self.unlisted_orders(unseen).await
    }

    /// Asks for the orders named by receipts whose order sheets were never read (a box cancelled or
    /// returned whole leaves the lists), one call per order. A failure only skips that order: the next
    /// sweep asks again, since it is still unseen.
    async fn unlisted_orders(&mut self, orders: BTreeSet<i64>) -> Result<Outcome, IngestError> {
        let client = self.client;
        let orders: Vec<i64> = orders.into_iter().collect();
        let paid_until = self.filter.paid_until;
        if orders.is_empty() {
            return Ok(Outcome::Done);
        }
        self.report.orders_fetched += orders.len() as u64;
        let records = futures::stream::iter(orders)
            .then(|order_id| async move {
                match client.order_sheets_of_order(order_id).await {
                    Ok(records) => records,
                    Err(error) => {
                        tracing::warn!(account = %client.account().alias, order_id, "cannot read the order of a receipt: {error}");
                        Vec::new()
                    }
                }
            })
            .flat_map(futures::stream::iter)
            .filter(move |sheet| {
                let in_range = match (paid_until, sheet) {
                    (Some(until), Ok(sheet)) => sheet.paid_at.0 <= end_of_day_millis(until),
                    _ => true,
                };
                futures::future::ready(in_range)
            })
            .boxed();
        let mut prepare = order_sheet_preparation(client);
        let listing = self.send_changed(records, Stream::OrderSheets, &mut prepare).await?;
        self.report.boxes += listing.seen;
        self.report.events += listing.sent;
        Ok(listing.stopped.unwrap_or(Outcome::Done))
    }

    /// Revenue rows recognised on `from..=to` (all before today).
    pub(super) async fn revenue(&mut self, from: NaiveDate, to: NaiveDate) -> Result<Outcome, IngestError> {
        let client = self.client;
        let account = client.account();
        let (vendor, alias) = (account.vendor_id.as_str(), account.alias.as_str());
        let mut rows = RevenueListing::default();
        let mut prepare = |row: RevenueRecord, collected_at, filter: &mut ChangeFilter| {
            let event = rows.event(vendor, alias, collected_at, &row);
            // A revenue row's change is its recognition: midnight of that day, Korea time.
            let recognised = etl_core::time::date_from_days(event.recognition_date)
                .and_then(etl_core::time::kst_midnight_millis)
                .unwrap_or(collected_at);
            let id = format!(
                "revenue:{}:{}:{}:{}",
                event.order_id, event.sale_type, event.recognition_date, event.same_day_row
            );
            let bytes = filter.encode_if_changed(id, &event, |e| e.collected_at = 0)?;
            Ok(RecordEvent { newest_change: recognised, changed: bytes.map(|b| (event.kafka_key(), b)) })
        };
        for (window_from, window_to) in windows(from, to) {
            let records = client.revenue_history(window_from, window_to).boxed();
            let listing = self.send_changed(records, Stream::Revenue, &mut prepare).await?;
            self.report.revenue_rows += listing.sent;
            if let Some(outcome) = listing.stopped {
                return Ok(outcome);
            }
        }
        Ok(Outcome::Done)
    }

    /// Payout rows of the recognition months `from..=to` touch (one call per month, up to this month).
    pub(super) async fn settlements(&mut self, from: NaiveDate, to: NaiveDate) -> Result<Outcome, IngestError> {
        let client = self.client;
        let account = client.account();
        let (vendor, alias) = (account.vendor_id.as_str(), account.alias.as_str());
        for (first_day, _) in months(from, to) {
            let month = RecognitionMonth::of(first_day);
            let rows = match client.settlement_histories(month).await {
                Ok(rows) => rows,
                Err(error) => return Ok(Outcome::Failed(error)),
            };
            let mut prepare = |row: SettlementRow, collected_at, filter: &mut ChangeFilter| {
                let event = settlement_event(vendor, alias, collected_at, month, &row);
                // A payout's change is its payout day (scheduled or done), midnight Korea time.
                let paid_on = etl_core::time::date_from_days(event.settlement_date)
                    .and_then(etl_core::time::kst_midnight_millis)
                    .unwrap_or(collected_at);
                let bytes = filter
                    .encode_if_changed(format!("payout:{}", event.kafka_key()), &event, |e| e.collected_at = 0)?;
                Ok(RecordEvent { newest_change: paid_on, changed: bytes.map(|b| (event.kafka_key(), b)) })
            };
            let listing =
                self.send_changed(futures::stream::iter(rows).boxed(), Stream::Settlements, &mut prepare).await?;
            self.report.payouts += listing.sent;
            if let Some(outcome) = listing.stopped {
                return Ok(outcome);
            }
        }
        Ok(Outcome::Done)
    }

    /// Reads one listing chunk by chunk and sends the records that changed to `stream`'s raw topic,
    /// waiting for the broker's acknowledgement of each chunk. Records that cannot be read are
    /// dead-lettered; any other API error ends the listing, as does shutdown.
    async fn send_changed<R: Send>(
        &mut self,
        records: BoxStream<'_, Result<R, ClientError>>,
        stream: Stream,
        prepare: &mut MakeEvent<'_, R>,
    ) -> Result<Listing, IngestError> {
        let sink = self.sink;
        let topic = sink.raw_topic(stream);
        let mut listing = Listing { seen: 0, sent: 0, stopped: None };
        // Before each listing as well as between its chunks: a sweep through quiet days makes many
        // calls that return nothing, and a poll only between chunks would wait for the next record.
        // A failed poll here was warned of; the listing's own calls meet a rejected key too.
        self.poll_new_orders_if_due().await?;
        let mut chunks = records.chunks(50);
        while let Some(chunk) = chunks.next().await {
            if self.shutdown.is_cancelled() {
                listing.stopped = Some(Outcome::Interrupted);
                return Ok(listing);
            }
            self.poll_new_orders_if_due().await?;
            let collected_at = Utc::now().timestamp_millis();
            let mut encoded = Vec::with_capacity(chunk.len());
            let seen_before = listing.seen;
            for record in chunk {
                let record = match record {
                    Ok(record) => record,
                    Err(bad @ ClientError::BadRecord { .. }) => {
                        sink.send_dead_letter(bad, &mut self.report).await?;
                        continue;
                    }
                    Err(error) => {
                        // The records of the chunk before it are still sent: the change filter has
                        // already noted them as sent.
                        listing.stopped = Some(Outcome::Failed(error));
                        break;
                    }
                };
                listing.seen += 1;
                let prepared = prepare(record, collected_at, &mut self.filter)?;
                let newest = self.report.newest_change.entry(stream.name()).or_insert(prepared.newest_change);
                *newest = (*newest).max(prepared.newest_change);
                match prepared.changed {
                    Some(key_and_bytes) => encoded.push(key_and_bytes),
                    None => self.report.unchanged += 1,
                }
            }
            metrics().record_in("ingest", &self.report.alias, listing.seen - seen_before);
            let sent = sink.send_all(topic, &encoded).await?;
            metrics().record_out("ingest", &self.report.alias, sent);
            listing.sent += sent;
            if listing.stopped.is_some() {
                return Ok(listing);
            }
        }
        Ok(listing)
    }
}

/// Makes order sheets into events (sent only when changed) and remembers their orders and boxes.
fn order_sheet_preparation(
    client: &CoupangClient,
) -> impl FnMut(OrderSheet, i64, &mut ChangeFilter) -> Result<RecordEvent, IngestError> + Send + '_ {
    let account = client.account();
    let (vendor, alias) = (account.vendor_id.as_str(), account.alias.as_str());
    move |sheet: OrderSheet, collected_at: i64, filter: &mut ChangeFilter| {
        filter.orders_seen.insert(sheet.order_id);
        filter.boxes_seen.insert(sheet.shipment_box_id);
        let event = order_sheet_event(vendor, alias, collected_at, &sheet);
        let changes = [Some(event.paid_at), event.in_transit_at, event.delivered_at];
        let newest_change = changes.into_iter().flatten().max().unwrap_or(event.paid_at);
        let bytes =
            filter.encode_if_changed(format!("box:{}", sheet.shipment_box_id), &event, |e| e.collected_at = 0)?;
        Ok(RecordEvent { newest_change, changed: bytes.map(|b| (event.kafka_key(), b)) })
    }
}

/// Coupang sometimes sends a record incomplete: ask for that box alone before giving up on it (it is
/// dead-lettered, intact minus personal data, only when that fails too).
async fn with_refetch(
    client: &CoupangClient,
    record: Result<OrderSheet, ClientError>,
) -> Result<OrderSheet, ClientError> {
    match record {
        Err(bad) => {
            let again = match &bad {
                ClientError::BadRecord { record_id, .. } => refetch(client, record_id).await,
                _ => None,
            };
            again.ok_or(bad)
        }
        ok => ok,
    }
}

/// A record that did not decode, asked for alone by its shipment box; `None` when that fails too.
async fn refetch(client: &CoupangClient, record_id: &RecordId) -> Option<OrderSheet> {
    let id = record_id.shipment_box_id()?;
    match client.order_sheet(id).await {
        Ok(sheet) => Some(sheet),
        Err(error) => {
            tracing::warn!(account = %client.account().alias, shipment_box_id = id, "re-fetching a bad record failed: {error}");
            None
        }
    }
}

/// The last millisecond of a Korean day.
fn end_of_day_millis(day: NaiveDate) -> i64 {
    etl_core::time::kst_midnight_millis(day + chrono::Duration::days(1)).map_or(i64::MAX, |next| next - 1)
}
