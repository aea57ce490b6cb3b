//! Per-second statistics of the demo's load: counts, latency histogram,
//! which pod (so which version) answered, and the same per route, formatted
//! as lines; the route figures prefer the client proxy's own route metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::metrics::RouteCounts;
use super::profile::ROUTES;
use super::topology::version_of;

/// How one request ended.
pub enum Outcome {
    /// A response arrived.
    Response {
        /// Its status code.
        status: u16,
        /// The pod that answered (`x-demo-pod`), if it said (a response
        /// the proxy made itself, like a 504 on a route timeout, does not).
        pod: Option<String>,
    },
    /// No response (connection error or timeout).
    Failed,
}

/// A latency histogram: 1 µs .. 60 s at 3 significant figures; valid
/// bounds, so this only fails on allocation failure, where we keep none.
fn histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).ok()
}

fn record_latency(h: &mut Option<Histogram<u64>>, latency: Duration) {
    if let Some(h) = h {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        h.saturating_record(us.max(1));
    }
}

fn merge_histogram(into: &mut Option<Histogram<u64>>, from: &Option<Histogram<u64>>) {
    if let (Some(a), Some(b)) = (into.as_mut(), from.as_ref()) {
        // Same bounds on both sides, so this cannot fail.
        let _ = a.add(b);
    }
}

/// The requests of one route (as the load driver chose it) in a window.
pub struct RouteWindow {
    latency_us: Option<Histogram<u64>>,
    /// Requests completed.
    pub total: u64,
    /// Requests answered with 2xx.
    pub ok: u64,
    /// Other answers, by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without an answer.
    pub failed: u64,
}

impl Default for RouteWindow {
    fn default() -> Self {
        RouteWindow {
            latency_us: histogram(),
            total: 0,
            ok: 0,
            statuses: BTreeMap::new(),
            failed: 0,
        }
    }
}

impl RouteWindow {
    /// The latency at quantile `q`, if any request completed.
    pub fn latency(&self, q: f64) -> Option<Duration> {
        match &self.latency_us {
            Some(h) if self.total > 0 => Some(Duration::from_micros(h.value_at_quantile(q))),
            _ => None,
        }
    }

    /// The slowest request, if any completed.
    pub fn max(&self) -> Option<Duration> {
        match &self.latency_us {
            Some(h) if self.total > 0 => Some(Duration::from_micros(h.max())),
            _ => None,
        }
    }

    fn merge(&mut self, other: &RouteWindow) {
        merge_histogram(&mut self.latency_us, &other.latency_us);
        self.total += other.total;
        self.ok += other.ok;
        self.failed += other.failed;
        for (&status, &n) in &other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
    }
}

/// The requests completed during one interval (or, merged, a whole run).
pub struct Window {
    latency_us: Option<Histogram<u64>>,
    total: u64,
    ok: u64,
    pods: BTreeMap<String, u64>,
    routes: Vec<RouteWindow>,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            latency_us: histogram(),
            total: 0,
            ok: 0,
            pods: BTreeMap::new(),
            routes: ROUTES.iter().map(|_| RouteWindow::default()).collect(),
        }
    }
}

impl Window {
    /// Records one completed request of route `route` (an index in
    /// [`ROUTES`]).
    pub fn record(&mut self, route: usize, outcome: Outcome, latency: Duration) {
        self.total += 1;
        record_latency(&mut self.latency_us, latency);
        let mut r = self.routes.get_mut(route);
        if let Some(r) = r.as_mut() {
            r.total += 1;
            record_latency(&mut r.latency_us, latency);
        }
        match outcome {
            Outcome::Response { status, pod } => {
                let ok = (200..300).contains(&status);
                if ok {
                    self.ok += 1;
                }
                if let Some(r) = r {
                    if ok {
                        r.ok += 1;
                    } else {
                        *r.statuses.entry(status).or_default() += 1;
                    }
                }
                if let Some(pod) = pod {
                    *self.pods.entry(pod).or_default() += 1;
                }
            }
            Outcome::Failed => {
                if let Some(r) = r {
                    r.failed += 1;
                }
            }
        }
    }

    /// Adds `other`'s requests to these.
    pub fn merge(&mut self, other: &Window) {
        merge_histogram(&mut self.latency_us, &other.latency_us);
        self.total += other.total;
        self.ok += other.ok;
        for (pod, &n) in &other.pods {
            *self.pods.entry(pod.clone()).or_default() += n;
        }
        for (mine, theirs) in self.routes.iter_mut().zip(&other.routes) {
            mine.merge(theirs);
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

    /// The requests of route `i` (an index in [`ROUTES`]).
    pub fn route(&self, i: usize) -> Option<&RouteWindow> {
        self.routes.get(i)
    }

    /// Answers by version `(v1, v2)`, from the pods that answered.
    pub fn versions(&self) -> (u64, u64) {
        let mut v = (0, 0);
        for (pod, &n) in &self.pods {
            match version_of(pod) {
                Some("v2") => v.1 += n,
                Some(_) => v.0 += n,
                None => {}
            }
        }
        v
    }

    /// One report line: elapsed time, achieved rate, success rate, the
    /// percentage of mTLS requests (`mtls`, from the client proxy's metrics;
    /// `-` if unknown), p50/p99, each pod's share of the answers it gave
    /// (`known` pods always shown, in that order) and the v1/v2 split.
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
                format_us(h.value_at_quantile(0.50)),
                format_us(h.value_at_quantile(0.99)),
            ),
            _ => ("-".to_string(), "-".to_string()),
        };
        let answered: u64 = self.pods.values().sum();
        let share = |n: u64| percent(n, answered);
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
        let (v1, v2) = self.versions();
        let split = format!(
            "split v1 {:>3.0}% v2 {:>3.0}%",
            percent(v1, v1 + v2),
            percent(v2, v1 + v2)
        );
        format!(
            "{:>5.0}s  {rate:>6.1} req/s  success {success}  mTLS {mtls}  p50 {p50:>8}  p99 {p99:>8} {pods}  {split}",
            elapsed.as_secs_f64()
        )
    }

    /// The per-route line under [`Window::line`]: per route, requests per
    /// second, success, retries per second (retryable routes) and failures
    /// by status — from the client proxy's route metrics (`proxy`: what it
    /// counted in the interval) when it has the route, else from the load
    /// driver — and the p99 the load driver measured.
    pub fn route_line(
        &self,
        span: Duration,
        proxy: Option<&BTreeMap<String, RouteCounts>>,
    ) -> String {
        let secs = span.as_secs_f64().max(1e-3);
        let from_proxy = |name: &str| proxy.and_then(|p| p.get(name));
        let source = if ROUTES.iter().any(|r| from_proxy(r.name).is_some()) {
            "routes (client proxy)"
        } else {
            "paths (load driver)"
        };
        let mut parts = Vec::new();
        for (route, mine) in ROUTES.iter().zip(&self.routes) {
            let (count, ok, answered, retries, failures) = match from_proxy(route.name) {
                Some(c) => (
                    c.requests,
                    c.success,
                    c.responses(),
                    route.retryable.then_some(c.retries),
                    c.failure_statuses.clone(),
                ),
                None => (mine.total, mine.ok, mine.total, None, mine.statuses.clone()),
            };
            let success = match answered {
                0 => "     -".to_string(),
                n => format!("{:>5.1}%", 100.0 * ok as f64 / n as f64),
            };
            let retries = match retries {
                Some(n) => format!("  retries {:>4.1}/s", n as f64 / secs),
                None => String::new(),
            };
            let failures: String = failures
                .iter()
                .map(|(status, n)| format!("  {status}\u{d7}{n}"))
                .collect();
            let p99 = mine.latency(0.99).map_or("-".to_string(), format_duration);
            parts.push(format!(
                "{} {:>5.1}/s {success}{retries} p99 {p99:>8}{failures}",
                route.name,
                count as f64 / secs,
            ));
        }
        format!("        {source}: {}", parts.join("  |  "))
    }
}

/// `100 * n / of`, 0 when `of` is 0.
pub fn percent(n: u64, of: u64) -> f64 {
    match of {
        0 => 0.0,
        of => 100.0 * n as f64 / of as f64,
    }
}

fn format_us(us: u64) -> String {
    format!("{:.2}ms", us as f64 / 1000.0)
}

/// `1.23ms`.
pub fn format_duration(d: Duration) -> String {
    format_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The window being filled, shared by the load tasks and the reporter.
#[derive(Default)]
pub struct Stats {
    current: Mutex<Window>,
}

impl Stats {
    /// Records one completed request of route `route` into the current window.
    pub fn record(&self, route: usize, outcome: Outcome, latency: Duration) {
        if let Ok(mut w) = self.current.lock() {
            w.record(route, outcome, latency);
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
    use super::super::profile::{BOOKS, FLAKY, SLOW};
    use super::*;

    fn answered(pod: &str) -> Outcome {
        Outcome::Response {
            status: 200,
            pod: Some(pod.into()),
        }
    }

    fn timed_out() -> Outcome {
        Outcome::Response {
            status: 504,
            pod: None,
        }
    }

    #[test]
    fn line_shows_rate_success_latency_shares_and_split() {
        let mut w = Window::default();
        for _ in 0..3 {
            w.record(BOOKS, answered("web-a"), Duration::from_millis(1));
        }
        w.record(BOOKS, answered("web-v2-a"), Duration::from_millis(50));
        let line = w.line(
            Duration::from_secs(2),
            Duration::from_secs(1),
            Some(100.0),
            &["web-a", "web-b", "web-c", "web-v2-a"],
        );
        assert!(line.contains("   4.0 req/s"), "{line}");
        assert!(line.contains("success 100.0%  mTLS 100%"), "{line}");
        assert!(line.contains("p50   1.00ms"), "{line}");
        assert!(
            line.contains("web-a  75%  web-b   0%  web-c   0%  web-v2-a  25%"),
            "{line}"
        );
        assert!(line.contains("split v1  75% v2  25%"), "{line}");
        assert_eq!(w.versions(), (3, 1));
    }

    #[test]
    fn failures_lower_success_and_proxy_answers_name_no_pod() {
        let mut w = Window::default();
        w.record(BOOKS, answered("web-a"), Duration::from_millis(1));
        w.record(FLAKY, Outcome::Failed, Duration::from_millis(1));
        w.record(SLOW, timed_out(), Duration::from_millis(300));
        assert_eq!((w.total(), w.ok()), (3, 1));
        let line = w.line(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Some(0.0),
            &["web-a"],
        );
        assert!(line.contains("success  33.3%  mTLS   0%"), "{line}");
        assert!(line.contains("web-a 100%"), "{line}");
        let slow = w
            .route(SLOW)
            .map(|r| (r.total, r.ok, r.statuses.get(&504).copied()));
        assert_eq!(slow, Some((1, 0, Some(1))));
        assert_eq!(w.route(FLAKY).map(|r| r.failed), Some(1));
    }

    #[test]
    fn route_line_prefers_the_proxy() {
        let mut w = Window::default();
        for _ in 0..4 {
            w.record(FLAKY, answered("web-b"), Duration::from_millis(2));
        }
        w.record(SLOW, timed_out(), Duration::from_millis(301));
        let line = w.route_line(Duration::from_secs(1), None);
        assert!(
            line.contains("paths (load driver): GET /books/{id}   0.0/s      - p99        -"),
            "{line}"
        );
        assert!(
            line.contains("GET /flaky   4.0/s 100.0% p99   2.00ms"),
            "{line}"
        );
        assert!(
            line.contains("GET /slow   1.0/s   0.0% p99 301.06ms  504\u{d7}1"),
            "{line}"
        );

        let mut proxy = BTreeMap::new();
        proxy.insert(
            "GET /flaky".to_string(),
            RouteCounts {
                requests: 5,
                success: 5,
                retries: 2,
                ..RouteCounts::default()
            },
        );
        let line = w.route_line(Duration::from_secs(1), Some(&proxy));
        assert!(
            line.starts_with("        routes (client proxy): "),
            "{line}"
        );
        assert!(
            line.contains("GET /flaky   5.0/s 100.0%  retries  2.0/s p99   2.00ms"),
            "{line}"
        );
    }

    #[test]
    fn merge_adds_up() {
        let mut a = Window::default();
        a.record(BOOKS, answered("web-a"), Duration::from_millis(1));
        let mut b = Window::default();
        b.record(BOOKS, answered("web-v2-a"), Duration::from_millis(3));
        b.record(SLOW, Outcome::Failed, Duration::from_millis(3));
        a.merge(&b);
        assert_eq!((a.total(), a.ok(), a.versions()), (3, 2, (1, 1)));
        assert_eq!(a.route(BOOKS).map(|r| r.total), Some(2));
        assert_eq!(
            a.route(BOOKS).and_then(|r| r.max()).map(|d| d.as_millis()),
            Some(3)
        );
    }

    #[test]
    fn empty_window() {
        let line =
            Window::default().line(Duration::from_secs(1), Duration::from_secs(1), None, &[]);
        assert!(line.contains("success      -  mTLS    -"), "{line}");
        assert!(line.contains("p50        -"), "{line}");
        assert!(line.contains("split v1   0% v2   0%"), "{line}");
    }
}
