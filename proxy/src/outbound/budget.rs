//! A retry budget: retries may be at most `retry_ratio` of the original
//! requests seen over the last `ttl`, plus `min_retries_per_second` that are
//! always allowed. Counts live in a ring of time slots covering `ttl`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use linkerd2_proxy_api::destination as api;

const SLOTS: usize = 10;

#[derive(Default, Clone, Copy)]
struct Slot {
    deposits: u64,
    withdrawals: u64,
}

struct Window {
    slots: [Slot; SLOTS],
    current: usize,
    slot_start: Instant,
}

/// A route's retry budget, shared by all requests to one service.
pub(crate) struct RetryBudget {
    ratio: f64,
    reserve: f64,
    slot_len: Duration,
    window: Mutex<Window>,
}

impl RetryBudget {
    /// Builds a budget; `None` for values the proxy treats as invalid
    /// (ratio outside 0..=1000, negative or over-long ttl).
    pub(crate) fn from_proto(b: api::RetryBudget) -> Option<Self> {
        let ttl = Duration::try_from(b.ttl?).ok().filter(|t| !t.is_zero())?;
        if !(0.0..=1000.0).contains(&b.retry_ratio)
            || i32::try_from(b.min_retries_per_second).is_err()
        {
            return None;
        }
        Some(Self::new(
            f64::from(b.retry_ratio),
            b.min_retries_per_second,
            ttl,
        ))
    }

    /// A budget of `ratio` retries per request over `ttl`, plus `min_per_sec`.
    pub(crate) fn new(ratio: f64, min_per_sec: u32, ttl: Duration) -> Self {
        RetryBudget {
            ratio,
            reserve: f64::from(min_per_sec) * ttl.as_secs_f64(),
            slot_len: ttl / SLOTS as u32,
            window: Mutex::new(Window {
                slots: [Slot::default(); SLOTS],
                current: 0,
                slot_start: Instant::now(),
            }),
        }
    }

    fn with_window<R>(&self, f: impl FnOnce(&mut Window) -> R) -> Option<R> {
        let mut w = self.window.lock().ok()?;
        let now = Instant::now();
        // Advance past expired slots, clearing them.
        let mut steps = 0;
        while now.duration_since(w.slot_start) >= self.slot_len && steps < SLOTS {
            w.current = (w.current + 1) % SLOTS;
            let c = w.current;
            w.slots[c] = Slot::default();
            w.slot_start += self.slot_len;
            steps += 1;
        }
        if steps == SLOTS {
            w.slot_start = now;
        }
        Some(f(&mut w))
    }

    /// Records an original request.
    /// The budget's settings: retry ratio, minimum retries per second, ttl.
    pub(crate) fn settings(&self) -> (f64, f64, Duration) {
        let ttl = self.slot_len * SLOTS as u32;
        let per_sec = if ttl.is_zero() {
            0.0
        } else {
            self.reserve / ttl.as_secs_f64()
        };
        (self.ratio, per_sec, ttl)
    }

    pub(crate) fn deposit(&self) {
        self.with_window(|w| w.slots[w.current].deposits += 1);
    }

    /// Takes a retry from the budget; `false` when none is left.
    pub(crate) fn try_withdraw(&self) -> bool {
        self.with_window(|w| {
            let (d, r) = w
                .slots
                .iter()
                .fold((0, 0), |(d, r), s| (d + s.deposits, r + s.withdrawals));
            let allowed = d as f64 * self.ratio + self.reserve;
            if (r + 1) as f64 <= allowed {
                let c = w.current;
                w.slots[c].withdrawals += 1;
                true
            } else {
                false
            }
        })
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_plus_reserve() {
        // 20% of requests, no reserve.
        let b = RetryBudget::new(0.2, 0, Duration::from_secs(10));
        for _ in 0..100 {
            b.deposit();
        }
        let granted = (0..100).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 20);
        // A reserve of 1/s over 10 s allows 10 retries without requests.
        let b = RetryBudget::new(0.2, 1, Duration::from_secs(10));
        assert_eq!((0..50).filter(|_| b.try_withdraw()).count(), 10);
    }

    #[test]
    fn invalid_budgets_are_rejected() {
        let ttl = Some(prost_types::Duration {
            seconds: 10,
            nanos: 0,
        });
        assert!(RetryBudget::from_proto(api::RetryBudget {
            retry_ratio: 0.2,
            min_retries_per_second: 10,
            ttl
        })
        .is_some());
        assert!(RetryBudget::from_proto(api::RetryBudget {
            retry_ratio: -1.0,
            min_retries_per_second: 10,
            ttl
        })
        .is_none());
        assert!(RetryBudget::from_proto(api::RetryBudget {
            retry_ratio: 0.2,
            min_retries_per_second: 10,
            ttl: None
        })
        .is_none());
    }
}
