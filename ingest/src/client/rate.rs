//! Per-vendor request pacing. Coupang allows about 10 calls per second per vendor key, and every task
//! that uses a key (live polling, backfill, look-ups) shares one budget, so limiters live in a
//! process-wide registry keyed by vendor id.
//!
//! The limiter is a token bucket of capacity one: calls are spaced evenly at the current rate, never
//! bursting. Spacing carries a 10% margin, so that delays on the way (a busy machine, the network)
//! must exceed about 100 ms before they squeeze one second's worth of calls into less than a second
//! on Coupang's side. (A 2% margin was not enough: under load, a test saw 6 calls land in one second
//! at 5 calls/s.) On 429 the rate halves; each granted call earns a
//! little back, up to the configured rate. A new limiter's first call waits one second, for whatever
//! a previous process with the same key sent just before it stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// Coupang's documented per-vendor limit; configuration can never exceed it.
pub const COUPANG_MAX_PER_SECOND: f64 = 10.0;
const SPACING_MARGIN: f64 = 1.10;

pub struct RateLimiter {
    state: Mutex<State>,
    configured_per_second: f64,
    slowdowns: AtomicU64,
    /// Signatures issued in the current second: the signed-date has one-second resolution, and Coupang
    /// refuses a signature it has seen, so two identical requests in one second must not both go out.
    signatures: Mutex<(i64, std::collections::HashSet<String>)>,
}

struct State {
    next_slot: Instant,
    per_second: f64,
    /// While Coupang keeps answering 429: no call of this vendor goes out before this moment.
    cool_down: Option<CoolDown>,
}

/// A vendor's cool-down after persistent 429s: Coupang blocks a key for minutes to tens of minutes,
/// and calls during the block only prolong it.
#[derive(Debug, Clone, Copy)]
struct CoolDown {
    until: Instant,
    /// The pause last set; the next one is twice as long (up to [`MAX_COOL_DOWN`]).
    pause: Duration,
    started: Instant,
}

/// The longest single cool-down pause: past it, one probe call every 15 minutes.
pub const MAX_COOL_DOWN: Duration = Duration::from_secs(15 * 60);

impl RateLimiter {
    pub fn new(per_second: f64) -> Self {
        Self::with_ceiling(per_second, COUPANG_MAX_PER_SECOND)
    }

    /// A limiter whose rate may go up to `ceiling` (only a simulator on loopback lifts it above
    /// Coupang's limit).
    pub fn with_ceiling(per_second: f64, ceiling: f64) -> Self {
        let per_second = per_second.clamp(0.1, ceiling.max(0.1));
        RateLimiter {
            // A process cannot know what a predecessor with the same key (killed, or restarted a moment
            // ago) sent in its last second: the first call waits that second out, so the vendor's
            // per-second budget holds across restarts too.
            state: Mutex::new(State {
                next_slot: Instant::now() + Duration::from_secs(1),
                per_second,
                cool_down: None,
            }),
            configured_per_second: per_second,
            slowdowns: AtomicU64::new(0),
            signatures: Mutex::new((0, Default::default())),
        }
    }

    /// The limiter shared by every client of `vendor_id` in this process (created at `per_second`).
    pub fn for_vendor(vendor_id: &str, per_second: f64) -> Arc<RateLimiter> {
        Self::for_vendor_up_to(vendor_id, per_second, COUPANG_MAX_PER_SECOND)
    }

    /// Like [`for_vendor`](Self::for_vendor), with the rate allowed up to `ceiling`.
    pub fn for_vendor_up_to(vendor_id: &str, per_second: f64, ceiling: f64) -> Arc<RateLimiter> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<RateLimiter>>>> = OnceLock::new();
        let mut registry = REGISTRY.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        let create = || Arc::new(RateLimiter::with_ceiling(per_second, ceiling));
        registry.entry(vendor_id.to_string()).or_insert_with(create).clone()
    }

    /// Waits for this caller's slot. Slots are handed out in order, evenly spaced, and none during a
    /// cool-down.
    pub async fn acquire(&self) {
        let slot = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let cooled = state.cool_down.map_or(Instant::now(), |c| c.until);
            let slot = state.next_slot.max(Instant::now()).max(cooled);
            state.next_slot = slot + Duration::from_secs_f64(SPACING_MARGIN / state.per_second);
            state.per_second = (state.per_second * 1.02).min(self.configured_per_second);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Called on 429 or a temporary block: halve the rate (not below one call every two seconds).
    pub fn slow_down(&self) {
        self.slowdowns.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.per_second = (state.per_second / 2.0).max(0.5);
    }

    /// Puts the vendor in a cool-down after persistent 429s: no call before the pause has passed. The
    /// first pause is `first`; each one during the same episode doubles, up to `MAX_COOL_DOWN` (15 min).
    /// Returns the pause and how long the episode has lasted, and whether it just began.
    pub fn cool_down(&self, first: Duration) -> (Duration, Duration, bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (pause, started, began) = match state.cool_down {
            Some(c) => ((c.pause * 2).min(MAX_COOL_DOWN), c.started, false),
            None => (first.min(MAX_COOL_DOWN), now, true),
        };
        state.cool_down = Some(CoolDown { until: now + pause, pause, started });
        state.per_second = (state.per_second / 2.0).max(0.5);
        (pause, now - started, began)
    }

    /// A call went through: a cool-down episode, if any, is over. True when one was.
    pub fn end_cool_down(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.cool_down.take().is_some()
    }

    /// How long the vendor's calls still wait for a cool-down to end (`None` when not cooling down).
    pub fn cooling_down_for(&self) -> Option<Duration> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.cool_down.map(|c| c.until.saturating_duration_since(Instant::now()))
    }

    pub fn current_rate(&self) -> f64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).per_second
    }

    /// Claims a signature made at `signed_second` (epoch seconds). False when the same signature was
    /// already sent in that second: the caller must sign again in the next second.
    pub fn claim_signature(&self, signed_second: i64, signature: &str) -> bool {
        let mut ledger = self.signatures.lock().unwrap_or_else(|e| e.into_inner());
        if ledger.0 != signed_second {
            *ledger = (signed_second, Default::default());
        }
        ledger.1.insert(signature.to_string())
    }

    /// How often the limiter had to slow down (429s and temporary blocks seen).
    pub fn slowdowns(&self) -> u64 {
        self.slowdowns.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_call_waits_out_a_predecessors_last_second() {
        let limiter = RateLimiter::new(8.0);
        let start = Instant::now();
        limiter.acquire().await;
        assert!(Instant::now() - start >= Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn never_faster_than_configured() {
        let limiter = RateLimiter::new(8.0);
        let start = Instant::now();
        for _ in 0..17 {
            limiter.acquire().await;
        }
        // 17 calls at 8/s: the 17th starts at least 2 s after the first.
        assert!(Instant::now() - start >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn slows_down_on_429_and_recovers() {
        let limiter = RateLimiter::new(8.0);
        limiter.slow_down();
        assert_eq!(limiter.current_rate(), 4.0);
        assert_eq!(limiter.slowdowns(), 1);
        for _ in 0..200 {
            limiter.acquire().await;
        }
        assert_eq!(limiter.current_rate(), 8.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cool_down_holds_every_call_and_doubles_until_a_call_goes_through() {
        let limiter = RateLimiter::new(8.0);
        limiter.acquire().await;
        let (pause, lasted, began) = limiter.cool_down(Duration::from_secs(60));
        assert_eq!((pause, lasted, began), (Duration::from_secs(60), Duration::ZERO, true));
        let start = Instant::now();
        limiter.acquire().await;
        assert!(Instant::now() - start >= Duration::from_secs(60), "no call during the cool-down");
        let (pause, lasted, began) = limiter.cool_down(Duration::from_secs(60));
        assert_eq!((pause, began), (Duration::from_secs(120), false));
        assert!(lasted >= Duration::from_secs(60));
        for _ in 0..6 {
            limiter.cool_down(Duration::from_secs(60));
        }
        assert_eq!(limiter.cool_down(Duration::from_secs(60)).0, MAX_COOL_DOWN);
        assert!(limiter.cooling_down_for().is_some());
        assert!(limiter.end_cool_down());
        assert_eq!(limiter.cooling_down_for(), None);
        assert_eq!(limiter.cool_down(Duration::from_secs(60)).0, Duration::from_secs(60), "a new episode starts over");
    }

    #[test]
    fn a_signature_is_claimed_once_per_second() {
        let limiter = RateLimiter::new(8.0);
        assert!(limiter.claim_signature(100, "abc"));
        assert!(!limiter.claim_signature(100, "abc"));
        assert!(limiter.claim_signature(100, "abd"));
        assert!(limiter.claim_signature(101, "abc"));
    }

    #[test]
    fn never_above_coupangs_limit_and_shared_per_vendor() {
        assert_eq!(RateLimiter::new(50.0).current_rate(), COUPANG_MAX_PER_SECOND);
        let a = RateLimiter::for_vendor("A09999991", 5.0);
        let b = RateLimiter::for_vendor("A09999991", 9.0);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &RateLimiter::for_vendor("A09999992", 5.0)));
    }
}
