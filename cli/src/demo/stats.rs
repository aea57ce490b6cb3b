//! Per-second statistics of the demo's load: counts, latency histogram and
//! which pod answered, formatted as one line per second.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// How one request ended.
pub enum Outcome {
    /// A response arrived.
    Response {
        /// Its status code.
        status: u16,
        /// The pod that answered (`x-demo-pod`), if it said.
        pod: Option<String>,
    },
    /// No response (connection error or timeout).
    Failed,
}

/// The requests completed during one interval.
pub struct Window {
    latency_us: Option<Histogram<u64>>,
    total: u64,
    ok: u64,
    pods: BTreeMap<String, u64>,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            // 1 µs .. 60 s at 3 significant figures; valid bounds, so this
            // only fails on allocation failure, where we keep no histogram.
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).ok(),
            total: 0,
            ok: 0,
            pods: BTreeMap::new(),
        }
    }
}

impl Window {
    /// Records one completed request.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        self.total += 1;
        if let Some(h) = &mut self.latency_us {
            let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            h.saturating_record(us.max(1));
        }
        if let Outcome::Response { status, pod } = outcome {
            if (200..300).contains(&status) {
                self.ok += 1;
            }
            *self
                .pods
                .entry(pod.unwrap_or_else(|| "(unknown)".into()))
                .or_default() += 1;
        }
    }

    /// Requests completed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Requests answered with 2xx.
    pub fn ok(&self) -> u64 {
        self.ok
    }

    /// One report line: elapsed time, achieved rate, success rate, the
    /// percentage of mTLS requests (`mtls`, from the client proxy's metrics;
    /// `-` if unknown), p50/p99 and each pod's share (`known` pods always
    /// shown, in that order).
    pub fn line(
        &self,
        elapsed: Duration,
        span: Duration,
        mtls: Option<f64>,
        known: &[&str],
    ) -> String {
        let rate = self.total as f64 / span.as_secs_f64().max(1e-3);
        let success = match self.total {
            0 => "     -".to_string(),
            n => format!("{:>5.1}%", 100.0 * self.ok as f64 / n as f64),
        };
        let mtls = match mtls {
            Some(pct) => format!("{pct:>3.0}%"),
            None => "   -".to_string(),
        };
        let (p50, p99) = match &self.latency_us {
            Some(h) if self.total > 0 => (
                format_ms(h.value_at_quantile(0.50)),
                format_ms(h.value_at_quantile(0.99)),
            ),
            _ => ("-".to_string(), "-".to_string()),
        };
        let answered: u64 = self.pods.values().sum();
        let share = |n: u64| match answered {
            0 => 0.0,
            a => 100.0 * n as f64 / a as f64,
        };
        let mut pods = String::new();
        for name in known {
            let n = self.pods.get(*name).copied().unwrap_or(0);
            pods.push_str(&format!("  {name} {:>3.0}%", share(n)));
        }
        for (name, &n) in self
            .pods
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
        {
            pods.push_str(&format!("  {name} {:>3.0}%", share(n)));
        }
        format!(
            "{:>5.0}s  {rate:>6.1} req/s  success {success}  mTLS {mtls}  p50 {p50:>8}  p99 {p99:>8} {pods}",
            elapsed.as_secs_f64()
        )
    }
}

fn format_ms(us: u64) -> String {
    format!("{:.2}ms", us as f64 / 1000.0)
}

/// The window being filled, shared by the load tasks and the reporter.
#[derive(Default)]
pub struct Stats {
    current: Mutex<Window>,
}

impl Stats {
    /// Records one completed request into the current window.
    pub fn record(&self, outcome: Outcome, latency: Duration) {
        if let Ok(mut w) = self.current.lock() {
            w.record(outcome, latency);
        }
    }

    /// Takes the current window and starts a new one.
    pub fn take(&self) -> Window {
        self.current
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(pod: &str) -> Outcome {
        Outcome::Response {
            status: 200,
            pod: Some(pod.into()),
        }
    }

    #[test]
    fn line_shows_rate_success_latency_and_shares() {
        let mut w = Window::default();
        for _ in 0..3 {
            w.record(answered("web-a"), Duration::from_millis(1));
        }
        w.record(answered("web-c"), Duration::from_millis(50));
        let line = w.line(
            Duration::from_secs(2),
            Duration::from_secs(1),
            Some(100.0),
            &["web-a", "web-b", "web-c"],
        );
        assert!(line.contains("   4.0 req/s"), "{line}");
        assert!(line.contains("success 100.0%  mTLS 100%"), "{line}");
        assert!(line.contains("p50   1.00ms"), "{line}");
        assert!(
            line.contains("web-a  75%  web-b   0%  web-c  25%"),
            "{line}"
        );
    }

    #[test]
    fn failures_lower_success() {
        let mut w = Window::default();
        w.record(answered("web-a"), Duration::from_millis(1));
        w.record(Outcome::Failed, Duration::from_millis(1));
        w.record(
            Outcome::Response {
                status: 503,
                pod: None,
            },
            Duration::from_millis(1),
        );
        assert_eq!((w.total(), w.ok()), (3, 1));
        let line = w.line(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Some(0.0),
            &["web-a"],
        );
        assert!(line.contains("success  33.3%  mTLS   0%"), "{line}");
        assert!(line.contains("(unknown)"), "{line}");
    }

    #[test]
    fn empty_window() {
        let line =
            Window::default().line(Duration::from_secs(1), Duration::from_secs(1), None, &[]);
        assert!(line.contains("success      -  mTLS    -"), "{line}");
        assert!(line.contains("p50        -"), "{line}");
    }
}
