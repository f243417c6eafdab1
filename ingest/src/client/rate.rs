//! A per-vendor request pacer shared by every task that uses one vendor key. Coupang allows about
//! 10 calls per second per vendor; on 429 the pacer halves its own rate and recovers slowly.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub struct RateLimiter {
    state: Mutex<State>,
    configured_per_second: f64,
}

struct State {
    next_slot: Instant,
    per_second: f64,
}

impl RateLimiter {
    pub fn new(per_second: f64) -> Self {
        RateLimiter {
            state: Mutex::new(State {
                next_slot: Instant::now(),
                per_second,
            }),
            configured_per_second: per_second,
        }
    }

    /// Waits for this caller's slot. Slots are handed out in order, evenly spaced.
    pub async fn acquire(&self) {
        let slot = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let slot = state.next_slot.max(Instant::now());
            state.next_slot = slot + Duration::from_secs_f64(1.0 / state.per_second);
            // Each granted call earns back a little of the rate lost to 429s.
            state.per_second = (state.per_second * 1.02).min(self.configured_per_second);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Called on 429 or a temporary block: halve the rate (not below one call every two seconds).
    pub fn slow_down(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.per_second = (state.per_second / 2.0).max(0.5);
    }

    pub fn current_rate(&self) -> f64 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_faster_than_configured() {
        let limiter = RateLimiter::new(8.0);
        let start = Instant::now();
        for _ in 0..17 {
            limiter.acquire().await;
        }
        // 17 calls at 8/s: the 17th starts 2 s after the first.
        assert!(Instant::now() - start >= Duration::from_millis(1_990));
    }

    #[tokio::test(start_paused = true)]
    async fn slows_down_on_429_and_recovers() {
        let limiter = RateLimiter::new(8.0);
        limiter.slow_down();
        assert_eq!(limiter.current_rate(), 4.0);
        for _ in 0..200 {
            limiter.acquire().await;
        }
        assert_eq!(limiter.current_rate(), 8.0);
    }
}
