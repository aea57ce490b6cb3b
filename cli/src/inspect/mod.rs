//! `wisp stat`, `wisp routes`, `wisp edges`: golden metrics read straight
//! from the proxies' admin servers, as `linkerd viz stat|routes|edges`
//! show them, without Prometheus.
//!
//! Each command resolves its targets ([`crate::target`]), scrapes every
//! proxy's `/metrics` twice, `--window` apart, and works on the
//! differences: counts are the increase of each counter over the window
//! (a counter that went down was reset: its new value is the increase, as
//! Prometheus's `increase` assumes), rates are that increase divided by the
//! window, latency quantiles are Prometheus's `histogram_quantile` over the
//! increase of the `_bucket` counters, and gauges (`tcp_open_connections`)
//! are the last scrape's values. `--window 0` scrapes once and uses the
//! counters since each proxy started, rates over its uptime
//! (`process_uptime_seconds_total`).

pub mod edges;
pub mod quantile;
pub mod routes;
pub mod stat;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use wisp_common::prometheus;

use crate::target::ProxyTarget;
use quantile::{histogram_quantile, Bucket};

/// The default `--window`.
pub const DEFAULT_WINDOW: &str = "5s";
/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Output format (`-o`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table.
    #[default]
    Table,
    /// A table with more columns.
    Wide,
    /// One JSON document on stdout.
    Json,
}

/// Scrape options shared by the commands.
#[derive(clap::Args, Clone, Debug)]
pub struct WindowArgs {
    /// How long to measure: two scrapes this far apart. `0` uses the
    /// counters since each proxy started (rates over its uptime).
    #[arg(long, default_value = DEFAULT_WINDOW, value_parser = wisp_common::duration::parse_flag_duration)]
    pub window: Duration,
}

/// One sample, owned.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

impl Series {
    /// The value of label `key`, or `""`.
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }
}

/// What one proxy counted over the window.
#[derive(Clone, Debug)]
pub struct ProxyMetrics {
    /// The proxy.
    pub target: ProxyTarget,
    /// Counter increases (and last gauge values) over the window.
    pub series: Vec<Series>,
    /// Length of the window, seconds.
    pub seconds: f64,
}

/// Gauges: the last value counts, not the increase.
fn is_gauge(name: &str) -> bool {
    name == "tcp_open_connections" || name.starts_with("process_") && !name.ends_with("_total")
}

fn parse(text: &str) -> Vec<Series> {
    prometheus::samples(text)
        .map(|s| Series {
            name: s.name.to_string(),
            labels: s
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: s.value,
        })
        .collect()
}

/// The increase of every counter from `before` to `after` (gauges keep
/// their `after` value).
pub fn delta(before: &[Series], after: Vec<Series>) -> Vec<Series> {
    let index: HashMap<(&str, &BTreeMap<String, String>), f64> = before
        .iter()
        .map(|s| ((s.name.as_str(), &s.labels), s.value))
        .collect();
    after
        .into_iter()
        .map(|mut s| {
            if !is_gauge(&s.name) {
                if let Some(&old) = index.get(&(s.name.as_str(), &s.labels)) {
                    if s.value >= old {
                        s.value -= old;
                    }
                }
            }
            s
        })
        .collect()
}

/// `GET http://ADMIN/metrics`.
async fn scrape_text(
    client: &Client<HttpConnector, Empty<Bytes>>,
    admin: SocketAddr,
) -> anyhow::Result<String> {
    let url = format!("http://{admin}/metrics");
    let exchange = async {
        let req = http::Request::get(&url).body(Empty::new())?;
        let resp = client.request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("answered {status}");
        }
        anyhow::Ok(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("no answer within {SCRAPE_TIMEOUT:?}"))?
        .with_context(|| format!("GET {url}"))
}

/// Scrapes every target over `window`. A proxy that cannot be scraped is
/// reported on stderr and left out; if none can be, the command fails.
pub fn collect(targets: Vec<ProxyTarget>, window: Duration) -> anyhow::Result<Vec<ProxyMetrics>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(collect_async(targets, window))
}

async fn collect_async(
    targets: Vec<ProxyTarget>,
    window: Duration,
) -> anyhow::Result<Vec<ProxyMetrics>> {
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let scrape_all = |targets: &[ProxyTarget]| {
        let client = client.clone();
        let addrs: Vec<SocketAddr> = targets.iter().map(|t| t.admin).collect();
        async move {
            let mut out = Vec::with_capacity(addrs.len());
            for addr in addrs {
                out.push(scrape_text(&client, addr).await);
            }
            out
        }
    };
    let first = if window.is_zero() {
        None
    } else {
        Some(scrape_all(&targets).await)
    };
    let started = Instant::now();
    if !window.is_zero() {
        tracing::debug!(proxies = targets.len(), ?window, "first scrape taken");
        tokio::time::sleep(window).await;
    }
    let second = scrape_all(&targets).await;
    let elapsed = started.elapsed().as_secs_f64();
    let total = targets.len();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, (target, after)) in targets.into_iter().zip(second).enumerate() {
        let before = match &first {
            None => None,
            Some(first) => match &first[i] {
                Ok(text) => Some(parse(text)),
                Err(e) => {
                    errors.push(describe(&target, e));
                    continue;
                }
            },
        };
        let after = match after {
            Ok(text) => parse(&text),
            Err(e) => {
                errors.push(describe(&target, &e));
                continue;
            }
        };
        let (series, seconds) = match before {
            Some(before) => (delta(&before, after), elapsed),
            None => {
                let uptime = after
                    .iter()
                    .find(|s| s.name == "process_uptime_seconds_total")
                    .map(|s| s.value)
                    .unwrap_or(0.0);
                (after, uptime)
            }
        };
        out.push(ProxyMetrics {
            target,
            series,
            seconds,
        });
    }
    if out.is_empty() && total > 0 {
        bail!("no proxy could be scraped: {}", errors.join("; "));
    }
    for e in &errors {
        eprintln!("wisp: warning: {e}");
    }
    Ok(out)
}

fn describe(target: &ProxyTarget, error: &anyhow::Error) -> String {
    format!(
        "cannot scrape {}/{} ({}): {error:#}",
        target.namespace, target.name, target.admin
    )
}

/// Golden metrics of a set of series.
#[derive(Clone, Debug, Default)]
pub struct Golden {
    /// Responses classified `success`.
    pub success: f64,
    /// Responses classified `failure`.
    pub failure: f64,
    /// Responses on mTLS connections (`tls="true"`).
    pub tls: f64,
    /// Cumulative latency buckets, by `le`.
    pub buckets: Vec<Bucket>,
    /// Window, seconds (the longest of the proxies added).
    pub seconds: f64,
}

impl Golden {
    /// Adds a `*response_total` series.
    pub fn add_response(&mut self, s: &Series) {
        match s.label("classification") {
            "success" => self.success += s.value,
            _ => self.failure += s.value,
        }
        if s.label("tls") == "true" {
            self.tls += s.value;
        }
    }

    /// Adds a `*_bucket` series.
    pub fn add_bucket(&mut self, s: &Series) {
        let le = match s.label("le") {
            "+Inf" => f64::INFINITY,
            le => match le.parse() {
                Ok(v) => v,
                Err(_) => return,
            },
        };
        self.buckets.push(Bucket {
            upper_bound: le,
            count: s.value,
        });
    }

    /// Notes the window of a proxy that contributed.
    pub fn window(&mut self, seconds: f64) {
        self.seconds = self.seconds.max(seconds);
    }

    /// Every response.
    pub fn responses(&self) -> f64 {
        self.success + self.failure
    }

    /// The figures.
    pub fn figures(&self) -> Figures {
        let responses = self.responses();
        let ratio = |n: f64| (responses > 0.0).then(|| n / responses);
        let q = |q: f64| {
            let v = histogram_quantile(q, &self.buckets);
            v.is_finite().then_some(v)
        };
        Figures {
            requests: responses as u64,
            successes: self.success as u64,
            failures: self.failure as u64,
            success_rate: ratio(self.success),
            rps: if self.seconds > 0.0 {
                responses / self.seconds
            } else {
                0.0
            },
            latency_ms_p50: q(0.5),
            latency_ms_p95: q(0.95),
            latency_ms_p99: q(0.99),
            tls_requests: self.tls as u64,
            mtls_share: ratio(self.tls),
        }
    }
}

/// The golden figures of one row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Responses over the window.
    pub requests: u64,
    /// Of which classified `success`.
    pub successes: u64,
    /// Of which classified `failure`.
    pub failures: u64,
    /// `successes / requests`; null without requests.
    pub success_rate: Option<f64>,
    /// `requests / window seconds`.
    pub rps: f64,
    /// Latency quantiles, milliseconds; null without requests.
    pub latency_ms_p50: Option<f64>,
    /// 95th percentile.
    pub latency_ms_p95: Option<f64>,
    /// 99th percentile.
    pub latency_ms_p99: Option<f64>,
    /// Responses on mTLS connections.
    pub tls_requests: u64,
    /// `tls_requests / requests`; null without requests.
    pub mtls_share: Option<f64>,
}

impl Figures {
    /// The table cells success rate and RPS.
    pub fn rate_cells(&self) -> [String; 2] {
        [percent(self.success_rate), rps(self.rps)]
    }

    /// The table cells p50, p95, p99.
    pub fn latency_cells(&self) -> [String; 3] {
        [
            millis(self.latency_ms_p50),
            millis(self.latency_ms_p95),
            millis(self.latency_ms_p99),
        ]
    }
}

/// `98.50%`, or `-`.
pub fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{:.2}%", v * 100.0))
}

/// `12ms`, or `-`.
pub fn millis(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{}ms", trim(v)))
}

/// `1.5rps`.
pub fn rps(v: f64) -> String {
    format!("{v:.1}rps")
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Prints rows as left-aligned columns.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("cannot encode JSON")?
    );
    Ok(())
}

/// The workload row name of a proxy: `deploy/APP` for a pod with an
/// `app` label, else `pod/NAME`, else the address given.
pub fn workload_name(t: &ProxyTarget) -> String {
    if t.labels.is_empty() {
        return t.name.clone();
    }
    match t
        .labels
        .get("app")
        .or_else(|| t.labels.get("linkerd.io/proxy-deployment"))
    {
        Some(app) => format!("deploy/{app}"),
        None => format!("pod/{}", t.name),
    }
}
