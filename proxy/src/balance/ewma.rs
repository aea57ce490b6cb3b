//! Peak-EWMA: an endpoint's latency estimate, which jumps up to any slower
//! observation at once and decays toward faster ones (and toward zero while
//! idle) with a ten-second time constant, as Linkerd's balancer does.

use tokio::time::{Duration, Instant};

/// Peak-EWMA latency estimate (nanoseconds), decaying toward zero while idle.
pub(crate) struct Ewma {
    cost_ns: f64,
    updated: Instant,
}

/// Linkerd's defaults for the balancer: `default_rtt = 30ms`, `decay = 10s`.
pub(crate) const DEFAULT_RTT: Duration = Duration::from_millis(30);
const DECAY: Duration = Duration::from_secs(10);

impl Ewma {
    /// A new estimate: the default RTT, as of `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Ewma {
            cost_ns: DEFAULT_RTT.as_nanos() as f64,
            updated: now,
        }
    }

    /// The estimate at `now` (nanoseconds), decayed since the last observation.
    pub(crate) fn decayed(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.cost_ns * (-elapsed / DECAY.as_secs_f64()).exp()
    }

    /// Folds in one observed latency: a slower one replaces the estimate
    /// (peak), a faster one is blended in with a weight that grows with the
    /// time since the last observation.
    pub(crate) fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_nanos() as f64;
        self.cost_ns = if rtt > self.cost_ns {
            rtt
        } else {
            let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
            let w = (-elapsed / DECAY.as_secs_f64()).exp();
            self.cost_ns * w + rtt * (1.0 - w)
        };
        self.updated = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_ewma_jumps_up_and_decays() {
        let t0 = Instant::now();
        let mut e = Ewma {
            cost_ns: 1e6,
            updated: t0,
        };
        e.observe(Duration::from_millis(50), t0);
        assert!((e.decayed(t0) - 50e6).abs() < 1.0);
        // Ten seconds idle: one decay constant.
        let later = t0 + Duration::from_secs(10);
        assert!((e.decayed(later) - 50e6 / std::f64::consts::E).abs() < 1e3);
        // A fast sample right after barely moves a recent estimate.
        let mut f = Ewma {
            cost_ns: 30e6,
            updated: t0,
        };
        f.observe(Duration::from_millis(1), t0 + Duration::from_millis(1));
        assert!(f.cost_ns > 29e6);
    }
}
