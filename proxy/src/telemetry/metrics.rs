//! Prometheus metrics with the names, labels and buckets of linkerd2-proxy.
//!
//! Each endpoint or listener holds `Arc`s to its own series, created once with
//! a pre-rendered label string, so the request path only touches atomics and
//! one uncontended lock. The [`Registry`] renders everything on scrape and
//! drops series that nobody holds and that have been idle for the retention
//! period (`LINKERD2_PROXY_METRICS_RETAIN_IDLE`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Latency bucket upper bounds in milliseconds (`linkerd/metrics/src/latency.rs`).
pub(crate) const LATENCY_BUCKETS_MS: [u64; 25] = [
    1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000,
    10000, 20000, 30000, 40000, 50000,
];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a metrics lock leaves plain counters behind;
    // they are still fine to read and update.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds a Prometheus label string such as `direction="outbound",authority="a:80"`.
#[derive(Default, Clone)]
pub(crate) struct Labels(String);

impl Labels {
    /// Starts an empty label set.
    pub(crate) fn new() -> Self {
        Labels(String::new())
    }

    /// Adds `key="value"`, escaping the value.
    pub(crate) fn with(mut self, key: &str, value: &str) -> Self {
        if !self.0.is_empty() {
            self.0.push(',');
        }
        self.0.push_str(key);
        self.0.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => self.0.push_str("\\\\"),
                '"' => self.0.push_str("\\\""),
                '\n' => self.0.push_str("\\n"),
                c => self.0.push(c),
            }
        }
        self.0.push('"');
        self
    }

    /// Adds `target_addr`, `target_ip` and `target_port`.
    pub(crate) fn with_target(self, addr: std::net::SocketAddr) -> Self {
        self.with("target_addr", &addr.to_string())
            .with("target_ip", &addr.ip().to_string())
            .with("target_port", &addr.port().to_string())
    }

    /// The rendered labels.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a response counts as a success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Success.
    Success,
    /// Failure.
    Failure,
}

impl Class {
    fn as_str(self) -> &'static str {
        match self {
            Class::Success => "success",
            Class::Failure => "failure",
        }
    }
}

/// How one response ended, as metrics see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ResponseKey {
    /// HTTP status.
    pub(crate) status: u16,
    /// gRPC status, for gRPC responses.
    pub(crate) grpc_status: Option<u32>,
    /// Success or failure.
    pub(crate) class: Class,
    /// A stream error, e.g. `"stream reset"`; empty when none.
    pub(crate) error: &'static str,
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS_MS.len() + 1],
    sum_ms: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, latency: Duration) {
        let ms = latency.as_secs_f64() * 1000.0;
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b as f64)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.buckets[i] += 1;
        self.sum_ms += ms;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            cumulative += n;
            let le = LATENCY_BUCKETS_MS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_ms);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct Responses {
    totals: Vec<(ResponseKey, u64)>,
    latency: Vec<(u16, Histogram)>,
}

/// The HTTP request/response series of one endpoint (one label set).
pub(crate) struct HttpMetrics {
    family: Family,
    labels: Labels,
    requests: AtomicU64,
    responses: Mutex<Responses>,
    retries: AtomicU64,
    retries_skipped: AtomicU64,
    touched: AtomicU64,
    epoch: Instant,
}

/// Which families a series of requests and responses is exported under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    /// `request_total`, `response_total`, `response_latency_ms` (per endpoint).
    Endpoint,
    /// `route_request_total`, ... (per ServiceProfile route, once per request).
    Route,
    /// `route_actual_request_total`, `route_actual_response_total` (per attempt).
    RouteActual,
}

impl Family {
    const ALL: [Family; 3] = [Family::Endpoint, Family::Route, Family::RouteActual];

    fn prefix(self) -> &'static str {
        match self {
            Family::Endpoint => "",
            Family::Route => "route_",
            Family::RouteActual => "route_actual_",
        }
    }
}

impl HttpMetrics {
    /// Counts a request whose stream started.
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
        self.touch();
    }

    /// Counts a finished response and its latency (time to response headers).
    pub(crate) fn response(&self, key: ResponseKey, latency: Duration) {
        let mut r = lock(&self.responses);
        match r.totals.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => r.totals.push((key, 1)),
        }
        match r.latency.iter_mut().find(|(s, _)| *s == key.status) {
            Some((_, h)) => h.observe(latency),
            None => {
                let mut h = Histogram::default();
                h.observe(latency);
                r.latency.push((key.status, h));
            }
        }
        drop(r);
        self.touch();
    }

    /// Counts a retry (`route_retryable_total`), or one skipped for lack of budget.
    pub(crate) fn retry(&self, skipped: bool) {
        let c = if skipped {
            &self.retries_skipped
        } else {
            &self.retries
        };
        c.fetch_add(1, Relaxed);
        self.touch();
    }

    fn touch(&self) {
        self.touched.store(self.epoch.elapsed().as_secs(), Relaxed);
    }
}

/// The TCP series of one connection label set.
pub(crate) struct TcpMetrics {
    labels: Labels,
    opened: AtomicU64,
    open: AtomicI64,
    read: AtomicU64,
    written: AtomicU64,
    closes: Mutex<Vec<(Option<i32>, u64)>>,
    touched: AtomicU64,
    epoch: Instant,
}

impl TcpMetrics {
    /// Counts an opened connection.
    pub(crate) fn opened(&self) {
        self.opened.fetch_add(1, Relaxed);
        self.open.fetch_add(1, Relaxed);
        self.touch();
    }

    /// Counts a closed connection, with the errno of its failure if any.
    pub(crate) fn closed(&self, errno: Option<i32>) {
        self.open.fetch_sub(1, Relaxed);
        let mut c = lock(&self.closes);
        match c.iter_mut().find(|(e, _)| *e == errno) {
            Some((_, n)) => *n += 1,
            None => c.push((errno, 1)),
        }
        drop(c);
        self.touch();
    }

    /// Counts bytes read from the peer.
    pub(crate) fn read(&self, n: u64) {
        if n > 0 {
            self.read.fetch_add(n, Relaxed);
        }
    }

    /// Counts bytes written to the peer.
    pub(crate) fn wrote(&self, n: u64) {
        self.written.fetch_add(n, Relaxed);
    }

    fn touch(&self) {
        self.touched.store(self.epoch.elapsed().as_secs(), Relaxed);
    }
}

/// Identity certificate gauges and counters.
#[derive(Default)]
struct IdentityMetrics {
    enabled: std::sync::atomic::AtomicBool,
    expiry_bits: AtomicU64,
    refreshed_bits: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
}

/// All metric series of the process.
pub(crate) struct Registry {
    identity: IdentityMetrics,
    epoch: Instant,
    retain_idle: Duration,
    http: Mutex<HashMap<(Family, String), Arc<HttpMetrics>>>,
    tcp: Mutex<HashMap<String, Arc<TcpMetrics>>>,
    refused: Mutex<Vec<(&'static str, Arc<AtomicU64>)>>,
}

impl Registry {
    /// An empty registry that drops unheld series idle for `retain_idle`.
    pub(crate) fn new(retain_idle: Duration) -> Arc<Self> {
        Arc::new(Registry {
            identity: IdentityMetrics::default(),
            epoch: Instant::now(),
            retain_idle,
            http: Mutex::default(),
            tcp: Mutex::default(),
            refused: Mutex::default(),
        })
    }

    /// Records a Certify round: on success, the new certificate's expiry
    /// (UNIX seconds) and the refresh time.
    pub(crate) fn identity_refreshed(&self, ok: bool, expiry_unix: f64) {
        let id = &self.identity;
        id.enabled.store(true, Relaxed);
        if ok {
            id.ok.fetch_add(1, Relaxed);
            id.expiry_bits.store(expiry_unix.to_bits(), Relaxed);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            id.refreshed_bits.store(now.to_bits(), Relaxed);
        } else {
            id.errors.fetch_add(1, Relaxed);
        }
    }

    /// The current certificate's expiry (UNIX seconds), once certified.
    pub(crate) fn identity_expiry(&self) -> Option<f64> {
        let id = &self.identity;
        (id.ok.load(Relaxed) > 0).then(|| f64::from_bits(id.expiry_bits.load(Relaxed)))
    }

    fn render_identity(&self, out: &mut String) {
        let id = &self.identity;
        if !id.enabled.load(Relaxed) {
            return;
        }
        let expiry = f64::from_bits(id.expiry_bits.load(Relaxed));
        let refreshed = f64::from_bits(id.refreshed_bits.load(Relaxed));
        // Both names: the current one and the one older dashboards query.
        for prefix in ["control_identity_", "identity_"] {
            let _ = writeln!(
                out,
                "# HELP {prefix}cert_expiration_timestamp_seconds Time when this proxy's current mTLS identity certificate will expire (in seconds since the UNIX epoch)\n# TYPE {prefix}cert_expiration_timestamp_seconds gauge\n{prefix}cert_expiration_timestamp_seconds {expiry}"
            );
            let _ = writeln!(
                out,
                "# HELP {prefix}cert_refresh_timestamp_seconds Time of the last successful certificate refresh\n# TYPE {prefix}cert_refresh_timestamp_seconds gauge\n{prefix}cert_refresh_timestamp_seconds {refreshed}"
            );
            let _ = writeln!(
                out,
                "# HELP {prefix}cert_refreshes_total Certificate refresh attempts\n# TYPE {prefix}cert_refreshes_total counter\n{prefix}cert_refreshes_total{{result=\"ok\"}} {}\n{prefix}cert_refreshes_total{{result=\"error\"}} {}",
                id.ok.load(Relaxed),
                id.errors.load(Relaxed)
            );
        }
    }

    /// The endpoint HTTP series for `labels`, created on first use.
    pub(crate) fn http(&self, labels: Labels) -> Arc<HttpMetrics> {
        self.family(Family::Endpoint, labels)
    }

    /// The series of `family` for `labels`, created on first use.
    pub(crate) fn family(&self, family: Family, labels: Labels) -> Arc<HttpMetrics> {
        let mut map = lock(&self.http);
        map.entry((family, labels.0.clone()))
            .or_insert_with(|| {
                Arc::new(HttpMetrics {
                    family,
                    labels,
                    requests: AtomicU64::new(0),
                    responses: Mutex::default(),
                    retries: AtomicU64::new(0),
                    retries_skipped: AtomicU64::new(0),
                    touched: AtomicU64::new(self.epoch.elapsed().as_secs()),
                    epoch: self.epoch,
                })
            })
            .clone()
    }

    /// The TCP series for `labels`, created on first use.
    pub(crate) fn tcp(&self, labels: Labels) -> Arc<TcpMetrics> {
        let mut map = lock(&self.tcp);
        map.entry(labels.0.clone())
            .or_insert_with(|| {
                Arc::new(TcpMetrics {
                    labels,
                    opened: AtomicU64::new(0),
                    open: AtomicI64::new(0),
                    read: AtomicU64::new(0),
                    written: AtomicU64::new(0),
                    closes: Mutex::default(),
                    touched: AtomicU64::new(self.epoch.elapsed().as_secs()),
                    epoch: self.epoch,
                })
            })
            .clone()
    }

    /// The counter of connections `direction`'s listener closed at accept
    /// because it was at its connection limit
    /// (`tcp_accept_refused_total{direction, reason="connection_limit"}`,
    /// a wisp metric).
    pub(crate) fn refused_connections(&self, direction: &'static str) -> Arc<AtomicU64> {
        let mut refused = lock(&self.refused);
        if let Some((_, c)) = refused.iter().find(|(d, _)| *d == direction) {
            return c.clone();
        }
        let c = Arc::new(AtomicU64::new(0));
        refused.push((direction, c.clone()));
        c
    }

    fn render_refused(&self, out: &mut String) {
        let refused = lock(&self.refused);
        if refused.is_empty() {
            return;
        }
        out.push_str("# HELP tcp_accept_refused_total Connections closed at accept because the listener was at its connection limit.\n# TYPE tcp_accept_refused_total counter\n");
        for (direction, c) in refused.iter() {
            let _ = writeln!(
                out,
                "tcp_accept_refused_total{{direction=\"{direction}\",reason=\"connection_limit\"}} {}",
                c.load(Relaxed)
            );
        }
    }

    /// Renders every family in the Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let now = self.epoch.elapsed().as_secs();
        let retain = self.retain_idle.as_secs();
        self.render_http(&mut out, now, retain);
        self.render_tcp(&mut out, now, retain);
        self.render_identity(&mut out);
        self.render_refused(&mut out);
        crate::telemetry::process::render(&mut out);
        out
    }

    fn render_http(&self, out: &mut String, now: u64, retain: u64) {
        let mut map = lock(&self.http);
        map.retain(|_, m| {
            Arc::strong_count(m) > 1 || now.saturating_sub(m.touched.load(Relaxed)) < retain
        });
        let all: Vec<_> = map.values().cloned().collect();
        drop(map);
        for fam in Family::ALL {
            let series: Vec<_> = all.iter().filter(|m| m.family == fam).collect();
            if series.is_empty() && fam != Family::Endpoint {
                continue;
            }
            let p = fam.prefix();
            family(
                out,
                &format!("{p}request_total"),
                "counter",
                "Total count of HTTP requests.",
            );
            for m in &series {
                let _ = writeln!(
                    out,
                    "{p}request_total{{{}}} {}",
                    m.labels.as_str(),
                    m.requests.load(Relaxed)
                );
            }
            if fam != Family::RouteActual {
                let name = format!("{p}response_latency_ms");
                family(out, &name, "histogram", "Elapsed times between a request's headers being received and its response stream completing");
                for m in &series {
                    let r = lock(&m.responses);
                    for (status, h) in &r.latency {
                        let labels = format!("{},status_code=\"{status}\"", m.labels.as_str());
                        h.render(out, &name, &labels);
                    }
                }
            }
            family(
                out,
                &format!("{p}response_total"),
                "counter",
                "Total count of HTTP responses.",
            );
            for m in &series {
                let r = lock(&m.responses);
                for (k, n) in &r.totals {
                    let grpc = k.grpc_status.map(|s| s.to_string()).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{p}response_total{{{},status_code=\"{}\",classification=\"{}\",grpc_status=\"{grpc}\",error=\"{}\"}} {n}",
                        m.labels.as_str(),
                        k.status,
                        k.class.as_str(),
                        k.error,
                    );
                }
            }
            if fam == Family::Route {
                family(out, "route_retryable_total", "counter", "Total count of retryable HTTP responses: retries made, and those skipped for lack of budget.");
                for m in &series {
                    let l = m.labels.as_str();
                    let _ = writeln!(
                        out,
                        "route_retryable_total{{{l}}} {}",
                        m.retries.load(Relaxed)
                    );
                    let _ = writeln!(
                        out,
                        "route_retryable_total{{{l},skipped=\"no_budget\"}} {}",
                        m.retries_skipped.load(Relaxed)
                    );
                }
            }
        }
    }

    fn render_tcp(&self, out: &mut String, now: u64, retain: u64) {
        let mut map = lock(&self.tcp);
        map.retain(|_, m| {
            Arc::strong_count(m) > 1 || now.saturating_sub(m.touched.load(Relaxed)) < retain
        });
        let series: Vec<_> = map.values().cloned().collect();
        drop(map);
        let simple: [TcpFamily; 4] = [
            (
                "tcp_open_total",
                "counter",
                "Total count of opened connections",
                |m| m.opened.load(Relaxed) as i64,
            ),
            (
                "tcp_open_connections",
                "gauge",
                "Number of currently-open connections",
                |m| m.open.load(Relaxed),
            ),
            (
                "tcp_read_bytes_total",
                "counter",
                "Total count of bytes read from peers",
                |m| m.read.load(Relaxed) as i64,
            ),
            (
                "tcp_write_bytes_total",
                "counter",
                "Total count of bytes written to peers",
                |m| m.written.load(Relaxed) as i64,
            ),
        ];
        for (name, kind, help, get) in simple {
            family(out, name, kind, help);
            for m in &series {
                let _ = writeln!(out, "{name}{{{}}} {}", m.labels.as_str(), get(m));
            }
        }
        family(
            out,
            "tcp_close_total",
            "counter",
            "Total count of closed connections",
        );
        for m in &series {
            for (errno, n) in lock(&m.closes).iter() {
                let errno = errno.map(errno_name).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "tcp_close_total{{{},errno=\"{errno}\"}} {n}",
                    m.labels.as_str()
                );
            }
        }
    }
}

/// A TCP counter family: name, type, help and how to read it.
type TcpFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TcpMetrics) -> i64,
);

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The symbolic name of an errno, as Linkerd labels abnormal closes.
pub(crate) fn errno_name(errno: i32) -> String {
    let name = match errno {
        1 => "EPERM",
        4 => "EINTR",
        5 => "EIO",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        22 => "EINVAL",
        24 => "EMFILE",
        32 => "EPIPE",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        100 => "ENETDOWN",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        107 => "ENOTCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        n => return format!("E{n}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_buckets() {
        let reg = Registry::new(Duration::from_secs(600));
        let m = reg.http(
            Labels::new()
                .with("direction", "outbound")
                .with("authority", "a\"b:80"),
        );
        m.request();
        m.response(
            ResponseKey {
                status: 200,
                grpc_status: None,
                class: Class::Success,
                error: "",
            },
            Duration::from_micros(1500),
        );
        let t = reg.tcp(
            Labels::new()
                .with("direction", "inbound")
                .with("peer", "src"),
        );
        t.opened();
        t.read(10);
        t.closed(Some(104));
        let text = reg.render();
        assert!(
            text.contains(r#"request_total{direction="outbound",authority="a\"b:80"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"response_latency_ms_bucket{direction="outbound",authority="a\"b:80",status_code="200",le="1"} 0"#));
        assert!(text.contains(r#"status_code="200",le="2"} 1"#));
        assert!(text.contains(r#"le="+Inf"} 1"#));
        assert!(text.contains(r#"classification="success",grpc_status="",error=""} 1"#));
        assert!(text
            .contains(r#"tcp_close_total{direction="inbound",peer="src",errno="ECONNRESET"} 1"#));
        assert!(text.contains(r#"tcp_read_bytes_total{direction="inbound",peer="src"} 10"#));
        assert!(text.contains("tcp_open_connections{direction=\"inbound\",peer=\"src\"} 0"));
    }

    #[test]
    fn idle_unheld_series_are_dropped() {
        let reg = Registry::new(Duration::ZERO);
        drop(reg.http(Labels::new().with("direction", "outbound")));
        let held = reg.http(Labels::new().with("direction", "inbound"));
        let text = reg.render();
        assert!(!text.contains("request_total{direction=\"outbound\"}"));
        assert!(text.contains("request_total{direction=\"inbound\"} 0"));
        drop(held);
    }
}
