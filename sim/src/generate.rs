//! Drawing the world: each vendor-day from a generator of its own, with ids from a block of its own,
//! so any day can be generated alone; [`crate::lifecycle`] draws what happens to each order.

use chrono::{DateTime, Duration, FixedOffset};

use crate::config::SimConfig;
use crate::prng::SplitMix64;
use crate::world::{
    at_kst, catalogue, maybe, Adjustment, Product, ShipmentBox, VendorWorld, World, BOX_IDS_PER_DAY, BOX_ID_BASE,
    MAX_DAYS, ORDER_IDS_PER_DAY, ORDER_ID_BASE,
};

impl World {
    /// The world as it stands the morning after the last payment day (recent orders still moving).
    pub fn generate(config: &SimConfig) -> World {
        World::generate_at(config, World::final_moment(config))
    }

    /// The moment [`World::generate`] observes: 09:00 (Seoul) the day after the period.
    pub fn final_moment(config: &SimConfig) -> DateTime<FixedOffset> {
        at_kst(config.end_date() + Duration::days(1), 9 * 3600)
    }

    /// The world as it stands at `as_of`. Every draw is independent of `as_of`, so the same seed gives
    /// the same orders at every moment, each further along its lifecycle; orders paid less than the
    /// visibility delay before `as_of` are not there yet (Coupang lists new orders ~10 minutes late).
    pub fn generate_at(config: &SimConfig, as_of: DateTime<FixedOffset>) -> World {
        let vendors = (0..config.vendors.len())
            .map(|index| {
                let vendor = VendorWorld::generate_at(config, index, as_of);
                (vendor.vendor_id.clone(), vendor)
            })
            .collect();
        World { as_of, vendors }
    }
}

impl VendorWorld {
    /// One vendor's part of the world at `as_of`, day by day (each day from its own generator).
    pub fn generate_at(config: &SimConfig, vendor_index: usize, as_of: DateTime<FixedOffset>) -> VendorWorld {
        let catalogue = catalogue(config, vendor_index);
        let mut boxes = Vec::new();
        let mut adjustments = Vec::new();
        for day in 0..config.days.min(MAX_DAYS as u32) {
            let orders = DayOrders::generate(config, vendor_index, &catalogue, day, as_of);
            boxes.extend(orders.boxes);
            adjustments.extend(orders.adjustment);
        }
        // Each day draws its ids from its own block, later days from higher blocks: this is by id already.
        boxes.sort_by_key(|b| b.shipment_box_id);
        VendorWorld { vendor_id: config.vendors[vendor_index].vendor_id.clone(), boxes, adjustments }
    }
}

/// The orders of one vendor paid on one day of the period, as they stand at `as_of` (those visible
/// by then), and the day's non-order adjustment if it was recognised by then.
#[derive(Debug, Clone)]
pub struct DayOrders {
    /// By shipment box id.
    pub boxes: Vec<ShipmentBox>,
    pub adjustment: Option<Adjustment>,
}

/// The generator stream of a vendor-day's adjustment, apart from its orders'.
const ADJUSTMENT_STREAM: u64 = 7;

impl DayOrders {
    /// Draws `day` (0 = the period's first) of vendor `vendor_index` from its own generator: the same
    /// whatever else is drawn, so any day can be generated alone.
    pub fn generate(
        config: &SimConfig,
        vendor_index: usize,
        catalogue: &[Product],
        day: u32,
        as_of: DateTime<FixedOffset>,
    ) -> DayOrders {
        let index = vendor_index as u64;
        let mut rng = SplitMix64::fork(config.seed, &[index, u64::from(day)]);
        let block = vendor_index as i64 * MAX_DAYS + i64::from(day);
        let mut order_id = ORDER_ID_BASE + block * ORDER_IDS_PER_DAY;
        let mut box_id = BOX_ID_BASE + block * BOX_IDS_PER_DAY;
        let date = config.start_date + Duration::days(i64::from(day));
        let mean = i64::from(config.orders_per_day);
        let count = rng.range(mean / 2, mean + mean / 2);
        let visible_until = as_of - Duration::minutes(config.visibility_delay_minutes);
        let mut boxes = Vec::new();
        for _ in 0..count {
            // Steps small enough that a day of up to 20,000 orders stays inside its blocks.
            order_id += rng.range(1, 40);
            box_id += rng.range(1, 4_000);
            let ids = (order_id, box_id);
            let drawn = crate::lifecycle::order(&mut rng, &config.lifecycle, catalogue, date, as_of, ids);
            box_id += 1;
            boxes.extend(drawn.into_iter().filter(|b| b.paid_at <= visible_until));
        }
        let mut rng = SplitMix64::fork(config.seed, &[index, u64::from(day), ADJUSTMENT_STREAM]);
        let adjustment = (maybe(&mut rng, config.lifecycle.adjustment_rate) && date < as_of.date_naive())
            .then(|| Adjustment { recognized_on: date, amount: -rng.range(1, 50) * 1_000 });
        DayOrders { boxes, adjustment }
    }
}
