//! Latency histograms, outcome counters and the result of one load phase.

use crate::sampler::PhaseCpu;
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Highest latency the histograms can hold, in microseconds (60 s).
const MAX_US: u64 = 60_000_000;

/// A new histogram over 1 µs .. 60 s with 3 significant digits.
pub fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_US, 3).context("creating latency histogram")
}

/// How one request ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A 2xx response whose body was read to the end.
    Ok,
    /// A response with a non-2xx status.
    Status(u16),
    /// A transport or protocol failure, by kind (`connect`, `timeout`, ...).
    Failed(&'static str),
}

/// Accumulates latencies and outcomes of the requests of one phase.
pub struct Recorder {
    latency: Histogram<u64>,
    lag: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Result<Self> {
        Ok(Self {
            latency: new_histogram()?,
            lag: new_histogram()?,
            ok: 0,
            errors: BTreeMap::new(),
        })
    }

    /// Records one finished request: its outcome, its latency and how late
    /// it was sent relative to its intended time (zero in closed loop).
    pub fn record(&mut self, outcome: Outcome, latency: Duration, lag: Duration) {
        self.latency.saturating_record(clamp_us(latency));
        self.lag.saturating_record(clamp_us(lag));
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Status(code) => self.error(format!("status_{code}")),
            Outcome::Failed(kind) => self.error(kind.to_string()),
        }
    }

    /// Counts a request that produced no latency sample (e.g. never sent).
    pub fn record_unsent(&mut self, kind: &str, count: u64) {
        if count > 0 {
            *self.errors.entry(kind.to_string()).or_default() += count;
        }
    }

    fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Adds everything recorded by `other` into `self`.
    pub fn merge(&mut self, other: &Recorder) -> Result<()> {
        self.latency
            .add(&other.latency)
            .context("merging latency histograms")?;
        self.lag.add(&other.lag).context("merging lag histograms")?;
        self.ok += other.ok;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        Ok(())
    }

    /// Turns the counters into a result for a window of `elapsed`.
    pub fn finish(&self, setup: PhaseSetup, elapsed: Duration, cpu: PhaseCpu) -> LoadResult {
        let errors: u64 = self.errors.values().sum();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let completed = self.latency.len();
        let per_request = |cpu: Option<f64>| {
            cpu.filter(|_| completed > 0)
                .map(|s| s * 1e6 / completed as f64)
        };
        LoadResult {
            loadgen_cpu_us_per_request: per_request(cpu.loadgen_cpu_s),
            proxy_cpu_us_per_request: per_request(cpu.proxy_cpu_s),
            server_proxy_cpu_us_per_request: per_request(cpu.server_proxy_cpu_s),
            elapsed_s: secs,
            requests: completed,
            ok: self.ok,
            errors,
            error_kinds: self.errors.clone(),
            achieved_rps: completed as f64 / secs,
            latency_us: Percentiles::of(&self.latency),
            send_lag_us: (setup.mode == "open").then(|| Percentiles::of(&self.lag)),
            cpu,
            setup,
        }
    }
}

fn clamp_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(MAX_US)
        .clamp(1, MAX_US)
}

/// Latency distribution summary, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Percentiles {
    /// Summarises a histogram (all zero if it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: h.value_at_quantile(0.50) as f64,
            p90: h.value_at_quantile(0.90) as f64,
            p99: h.value_at_quantile(0.99) as f64,
            p999: h.value_at_quantile(0.999) as f64,
            max: h.max() as f64,
            mean: h.mean(),
        }
    }
}

/// How a phase was driven, echoed in its result.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSetup {
    /// `open` (constant rate) or `closed` (back-to-back, max throughput).
    pub mode: &'static str,
    /// `http1` or `http2`.
    pub protocol: &'static str,
    /// Address the connections go to.
    pub target: String,
    /// Host header / authority sent.
    pub host: String,
    /// Intended rate in req/s (open loop only).
    pub rate: Option<f64>,
    /// Number of TCP connections.
    pub connections: usize,
    /// Concurrent streams per connection (closed-loop HTTP/2 only).
    pub streams: Option<usize>,
    /// Load generator runtime threads.
    pub threads: usize,
    /// Length of the measured window, seconds.
    pub duration_s: f64,
    /// Unrecorded warm-up before it, seconds.
    pub warmup_s: f64,
}

/// The outcome of one load phase.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// How the phase was driven.
    pub setup: PhaseSetup,
    /// From the start of the measured window until its last request finished, seconds.
    pub elapsed_s: f64,
    /// Requests that finished (ok or error) with a latency sample.
    pub requests: u64,
    /// 2xx responses.
    pub ok: u64,
    /// Everything else, including requests never sent.
    pub errors: u64,
    /// Errors by kind (`status_503`, `connect`, `timeout`, `unsent`, ...).
    pub error_kinds: BTreeMap<String, u64>,
    /// `requests / elapsed_s`.
    pub achieved_rps: f64,
    /// Latency; open loop measures from the intended send time when the
    /// request had to wait for a busy connection.
    pub latency_us: Percentiles,
    /// How late requests were sent compared with their schedule (open loop only).
    pub send_lag_us: Option<Percentiles>,
    /// CPU used during the measured window.
    pub cpu: PhaseCpu,
    /// Load generator CPU per request, µs.
    pub loadgen_cpu_us_per_request: Option<f64>,
    /// Watched proxy CPU per request, µs (the client proxy in mesh modes).
    pub proxy_cpu_us_per_request: Option<f64>,
    /// Server-side proxy CPU per request, µs (mesh modes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_proxy_cpu_us_per_request: Option<f64>,
}
