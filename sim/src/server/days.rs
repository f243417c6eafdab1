//! The world as the gateway serves it: generated lazily, one vendor-day at a time, from the seed, and
//! indexed, so an answer costs the days it spans and its page, never the whole world.
//!
//! A vendor-day is generated when a request first needs it and kept in a small cache (least recently
//! used out). With a running clock it is generated again when it is older than [`fresh_for`], so every
//! answer follows the simulated clock; frozen, it never changes.

use chrono::{DateTime, FixedOffset, NaiveDate};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::SimConfig;
use crate::generate::DayOrders;
use crate::world::{catalogue, BoxStatus, Product, ShipmentBox};

/// How long a generated vendor-day (or world) serves a running clock before it is drawn again at the
/// new time: until the clock moved one simulated second (the lists give times to the second), and at
/// least 100 ms of real time (a fast clock would otherwise draw it again for every request). At real
/// speed that is a day drawn once a second, not ten times: a day of 10,000 orders costs a debug
/// build's test process a core at ten draws a second.
pub(super) fn fresh_for(time_scale: f64) -> Duration {
    const REAL_FLOOR: Duration = Duration::from_millis(100);
    if time_scale <= 0.0 {
        return Duration::MAX;
    }
    Duration::try_from_secs_f64(1.0 / time_scale).map_or(Duration::MAX, |one_second| one_second.max(REAL_FLOOR))
}

/// Vendor-days kept; a 31-day window of returns or revenue spans up to ~100 days of one vendor.
const CACHED_DAYS: usize = 512;

/// One vendor-day, indexed for the lists.
pub(super) struct IndexedDay {
    pub orders: DayOrders,
    /// Positions in `orders.boxes` of the boxes the order-sheet lists show, by status, in box id order.
    listed: HashMap<BoxStatus, Vec<usize>>,
    /// Every receipt id of the day's orders with its (box, receipt) positions (a split order's receipt
    /// spans its boxes), by receipt id.
    pub receipts: Vec<(i64, Vec<(usize, usize)>)>,
    /// Positions of the boxes of each order, by order id.
    pub orders_boxes: Vec<(i64, Vec<usize>)>,
}

impl IndexedDay {
    fn index(orders: DayOrders) -> IndexedDay {
        let mut listed: HashMap<BoxStatus, Vec<usize>> = HashMap::new();
        let mut receipts: HashMap<i64, Vec<(usize, usize)>> = HashMap::new();
        let mut orders_boxes: HashMap<i64, Vec<usize>> = HashMap::new();
        for (i, b) in orders.boxes.iter().enumerate() {
            if b.listed {
                listed.entry(b.status).or_default().push(i);
            }
            for (k, r) in b.receipts.iter().enumerate() {
                receipts.entry(r.receipt_id).or_default().push((i, k));
            }
            orders_boxes.entry(b.order_id).or_default().push(i);
        }
        let mut receipts: Vec<(i64, Vec<(usize, usize)>)> = receipts.into_iter().collect();
        receipts.sort_by_key(|(id, _)| *id);
        let mut orders_boxes: Vec<(i64, Vec<usize>)> = orders_boxes.into_iter().collect();
        orders_boxes.sort_by_key(|(order, _)| *order);
        IndexedDay { orders, listed, receipts, orders_boxes }
    }

    /// The listed boxes in `status`, by box id, from the first with id ≥ `from_id`.
    pub fn listed_from(&self, status: BoxStatus, from_id: i64) -> impl Iterator<Item = &ShipmentBox> {
        let positions = self.listed.get(&status).map(Vec::as_slice).unwrap_or_default();
        let start = positions.partition_point(|&i| self.orders.boxes[i].shipment_box_id < from_id);
        positions[start..].iter().map(|&i| &self.orders.boxes[i])
    }

    pub fn find_box(&self, shipment_box_id: i64) -> Option<&ShipmentBox> {
        let i = self.orders.boxes.binary_search_by_key(&shipment_box_id, |b| b.shipment_box_id).ok()?;
        Some(&self.orders.boxes[i])
    }

    /// The boxes of one order, by box id.
    pub fn boxes_of(&self, order_id: i64) -> Vec<&ShipmentBox> {
        match self.orders_boxes.binary_search_by_key(&order_id, |(order, _)| *order) {
            Ok(i) => self.orders_boxes[i].1.iter().map(|&b| &self.orders.boxes[b]).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// (vendor index, day of the period)
type VendorDay = (usize, u32);

struct Cached {
    day: Arc<IndexedDay>,
    generated: Instant,
    last_used: u64,
}

/// The vendor-days of one simulated world, generated on demand.
pub(super) struct Days {
    config: SimConfig,
    catalogues: Vec<Vec<Product>>,
    vendor_index: HashMap<String, usize>,
    /// How long a generated vendor-day serves the clock: forever when it is frozen.
    fresh_for: Duration,
    /// Cached vendor-days by (vendor, day), and the use counter that orders them by recency.
    cache: Mutex<(HashMap<VendorDay, Cached>, u64)>,
}

impl Days {
    pub fn new(config: &SimConfig) -> Days {
        Days {
            catalogues: (0..config.vendors.len()).map(|v| catalogue(config, v)).collect(),
            vendor_index: config.vendors.iter().enumerate().map(|(i, v)| (v.vendor_id.clone(), i)).collect(),
            fresh_for: fresh_for(config.time_scale),
            config: config.clone(),
            cache: Mutex::new((HashMap::new(), 0)),
        }
    }

    pub fn vendor(&self, vendor_id: &str) -> Option<usize> {
        self.vendor_index.get(vendor_id).copied()
    }

    /// The period's days (0-based) whose payments fall in `from..=to`, clamped to the period.
    pub fn days_paid(&self, from: NaiveDate, to: NaiveDate) -> std::ops::Range<u32> {
        let index = |date: NaiveDate| (date - self.config.start_date).num_days().clamp(0, i64::from(self.config.days));
        index(from) as u32..(index(to) + 1).min(i64::from(self.config.days)) as u32
    }

    /// The day an id was drawn for (`world::day_of_box`, `world::day_of_order`), when it is one of
    /// `vendor`'s days of the period: ids of other vendors or outside the period are nobody's.
    pub fn holding(
        &self,
        vendor: usize,
        drawn_for: Option<(usize, u32)>,
        now: DateTime<FixedOffset>,
    ) -> Option<Arc<IndexedDay>> {
        let (owner, day) = drawn_for.filter(|(owner, day)| *owner == vendor && *day < self.config.days)?;
        Some(self.get(owner, day, now))
    }

    /// Vendor `vendor`'s orders paid on `day` as they stand at `now` (generated or cached).
    pub fn get(&self, vendor: usize, day: u32, now: DateTime<FixedOffset>) -> Arc<IndexedDay> {
        if let Some(cached) = self.cached(vendor, day) {
            return cached;
        }
        // Drawn outside the lock, so other requests go on meanwhile (two may draw one day; the same).
        let orders = DayOrders::generate(&self.config, vendor, &self.catalogues[vendor], day, now);
        let day_world = Arc::new(IndexedDay::index(orders));
        let mut guard = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (cache, tick) = &mut *guard;
        *tick += 1;
        if cache.len() >= CACHED_DAYS {
            if let Some(oldest) = cache.iter().min_by_key(|(_, c)| c.last_used).map(|(k, _)| *k) {
                cache.remove(&oldest);
            }
        }
        cache.insert((vendor, day), Cached { day: day_world.clone(), generated: Instant::now(), last_used: *tick });
        day_world
    }

    /// The cached vendor-day, unless there is none or the running clock has left it behind.
    fn cached(&self, vendor: usize, day: u32) -> Option<Arc<IndexedDay>> {
        let mut guard = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (cache, tick) = &mut *guard;
        *tick += 1;
        let entry = cache.get_mut(&(vendor, day)).filter(|e| e.generated.elapsed() < self.fresh_for)?;
        entry.last_used = *tick;
        Some(entry.day.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::fresh_for;
    use std::time::Duration;

    #[test]
    fn a_vendor_day_serves_one_simulated_second_and_at_least_100_ms() {
        assert_eq!(fresh_for(0.0), Duration::MAX, "frozen: drawn once");
        assert_eq!(fresh_for(1.0), Duration::from_secs(1), "real speed: once a second");
        assert_eq!(fresh_for(4.0), Duration::from_millis(250));
        assert_eq!(fresh_for(7_200.0), Duration::from_millis(100), "fast: at most ten times a second");
        assert!(fresh_for(1e-6) >= Duration::from_secs(1_000_000), "nearly frozen: as good as once");
    }
}
