//! The simulated calendar: the same seeded orders at every moment, each further along its lifecycle.

use chrono::Duration;
use coupang_sim::config::LifecycleConfig;
use coupang_sim::world::World;
use coupang_sim::{SimConfig, Simulator};
use std::collections::HashMap;

#[test]
fn one_world_seen_at_several_moments_only_moves_forward() {
    let config = SimConfig { days: 10, lifecycle: LifecycleConfig::realistic(), ..SimConfig::default() };
    let start = World::final_moment(&config) - Duration::days(11);
    let moments: Vec<_> = (1..=12).map(|day| start + Duration::days(day) + Duration::hours(7)).collect();
    let mut previous: HashMap<i64, (coupang_sim::world::BoxStatus, i64, usize)> = HashMap::new();
    let mut sizes = Vec::new();
    for at in moments {
        let world = World::generate_at(&config, at);
        let boxes: Vec<_> = world.vendors.values().flat_map(|v| v.boxes.iter()).collect();
        sizes.push(boxes.len());
        for b in &boxes {
            assert!(b.paid_at <= at - Duration::minutes(10), "nothing shows before the visibility delay");
            let price: i64 = b.lines.iter().map(|l| l.order_price()).sum();
            // A withdrawn request leaves the receipts for the withdrawals.
            let undone = b.receipts.len() + b.withdrawals.len();
            if let Some((status, earlier_price, earlier_receipts)) = previous.get(&b.shipment_box_id) {
                assert!(b.status >= *status, "order {} went back from {status:?} to {:?}", b.order_id, b.status);
                assert_eq!(price, *earlier_price, "same order, same amounts");
                assert!(undone >= *earlier_receipts);
            }
            previous.insert(b.shipment_box_id, (b.status, price, undone));
        }
    }
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]) && sizes[0] < sizes[10], "orders accumulate: {sizes:?}");
}

#[tokio::test]
async fn with_a_time_scale_the_clock_runs_and_the_world_grows() {
    // A day per second.
    let config = SimConfig { days: 5, time_scale: 86_400.0, ..SimConfig::default() };
    let sim = Simulator::start(&config, ([127, 0, 0, 1], 0).into()).await.unwrap();
    let first = sim.now();
    assert_eq!(first.date_naive(), config.start_date);
    let early: usize = sim.world().vendors.values().map(|v| v.boxes.len()).sum();
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let later_clock: serde_json::Value =
        reqwest::get(format!("{}/sim/clock", sim.base_url())).await.unwrap().json().await.unwrap();
    let later = chrono::DateTime::parse_from_rfc3339(later_clock["now"].as_str().unwrap()).unwrap();
    assert!(later - first >= Duration::hours(30), "1.5 s is a day and a half: {first} → {later}");
    let grown: usize = sim.world().vendors.values().map(|v| v.boxes.len()).sum();
    assert!(grown > early, "orders paid meanwhile appear: {early} → {grown}");
    println!("{first} → {later}: {early} → {grown} orders");
}
