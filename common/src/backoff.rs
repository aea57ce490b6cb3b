//! Jittered exponential backoff between retries of a failing operation
//! (reconnecting a control-plane stream, asking for a certificate again).
//!
//! ```
//! # use std::time::Duration;
//! # use wisp_common::backoff::Backoff;
//! let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(60), 0.1);
//! let first = backoff.next(); // 100 ms plus up to 10 ms of jitter
//! assert!(first >= Duration::from_millis(100) && first < Duration::from_millis(110));
//! let second = backoff.next(); // 200 ms plus up to 20 ms
//! assert!(second >= Duration::from_millis(200));
//! backoff.reset(); // after a success
//! ```

use std::time::Duration;

/// Delays that start at `min`, double after every use up to `max`, each
/// lengthened by a random share of up to `jitter` of itself so that many
/// clients failing together do not retry together.
///
/// A delay is `base + base × jitter × U[0, 1)`, so it lies in
/// `[base, base × (1 + jitter))` and never exceeds `max × (1 + jitter)`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
    base: Duration,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A backoff from `min` to `max` (raised to `min` if smaller) with
    /// jitter fraction `jitter` (0.1 = up to 10 % longer; negative or NaN
    /// means none).
    pub fn new(min: Duration, max: Duration, jitter: f64) -> Self {
        let jitter = if jitter.is_finite() && jitter > 0.0 {
            jitter
        } else {
            0.0
        };
        Self {
            min,
            max: max.max(min),
            jitter,
            base: min,
            rng: fastrand::Rng::new(),
        }
    }

    /// The same backoff with a seeded random generator, for reproducible
    /// delays in tests.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = fastrand::Rng::with_seed(seed);
        self
    }

    /// The delay to wait before the next attempt; the following one will
    /// be twice as long (up to `max`) before jitter.
    #[allow(clippy::should_implement_trait)] // not an iterator: it never ends
    pub fn next(&mut self) -> Duration {
        let delay = self.base + self.base.mul_f64(self.rng.f64() * self.jitter);
        self.base = self.base.saturating_mul(2).min(self.max);
        delay
    }

    /// Starts again from `min` (after a success).
    pub fn reset(&mut self) {
        self.base = self.min;
    }

    /// The delay [`next`](Self::next) will return, before jitter.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// Waits for [`next`](Self::next)'s delay (on Tokio's clock).
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_max_within_jitter_bounds() {
        let mut b = Backoff::new(100 * MS, 60_000 * MS, 0.1).with_seed(7);
        let mut base = 100 * MS;
        for _ in 0..20 {
            let d = b.next();
            assert!(d >= base && d < base.mul_f64(1.1), "{d:?} vs {base:?}");
            base = (base * 2).min(60_000 * MS);
        }
        assert_eq!(b.base(), 60_000 * MS);
        let d = b.next();
        assert!(d >= 60_000 * MS && d < 66_000 * MS);
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(250 * MS, 10_000 * MS, 0.5);
        b.next();
        b.next();
        assert_eq!(b.base(), 1_000 * MS);
        b.reset();
        assert_eq!(b.base(), 250 * MS);
        let d = b.next();
        assert!(d >= 250 * MS && d < 375 * MS);
    }

    #[test]
    fn no_jitter_is_exact_and_max_below_min_is_min() {
        let mut b = Backoff::new(250 * MS, 100 * MS, 0.0);
        assert_eq!(b.next(), 250 * MS);
        assert_eq!(b.next(), 250 * MS);
        let mut b = Backoff::new(MS, 3 * MS, f64::NAN);
        let delays: Vec<Duration> = (0..4).map(|_| b.next()).collect();
        assert_eq!(delays, [MS, 2 * MS, 3 * MS, 3 * MS]);
        let mut b = Backoff::new(MS, 3 * MS, -1.0);
        assert_eq!(b.next(), MS);
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut b = Backoff::new(1_000 * MS, 1_000 * MS, 0.5).with_seed(1);
        let delays: Vec<Duration> = (0..50).map(|_| b.next()).collect();
        assert!(delays.iter().any(|d| *d > 1_250 * MS));
        assert!(delays.iter().any(|d| *d < 1_250 * MS));
        assert!(delays.iter().all(|d| *d >= 1_000 * MS && *d < 1_500 * MS));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_sleeps_the_delay() {
        let mut b = Backoff::new(100 * MS, 400 * MS, 0.0);
        let start = tokio::time::Instant::now();
        b.wait().await;
        b.wait().await;
        assert_eq!(start.elapsed(), 300 * MS);
    }
}
