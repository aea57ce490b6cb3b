//! The side-by-side benchmark: the same load straight at the backend and
//! through the proxy, interleaved, optionally repeated.

use crate::args::CompareArgs;
use crate::client::{Protocol, Target};
use crate::harness::{ChildGuard, TempDir};
use crate::phase::{self, Mode, PhaseSpec};
use crate::procstat::{self, MemSample};
use crate::sampler::PhaseSampler;
use crate::stats::{LoadResult, Percentiles};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Default Host header through the proxy.
pub const DEFAULT_HOST: &str = "bench.default.svc.cluster.local";

/// Settings echoed in the report.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// `http1` or `http2`.
    pub protocol: &'static str,
    /// Host header / authority.
    pub host: String,
    /// Constant rates measured, req/s.
    pub rates: Vec<f64>,
    /// Measured seconds per constant-rate phase.
    pub duration_s: f64,
    /// Warm-up seconds before each phase.
    pub warmup_s: f64,
    /// Connections of constant-rate phases.
    pub connections: usize,
    /// Connections of closed-loop phases (absent with --no-max).
    pub max_connections: Option<usize>,
    /// Seconds per closed-loop phase.
    pub max_duration_s: Option<f64>,
    /// LINKERD2_PROXY_CORES.
    pub proxy_cores: usize,
    /// Repetitions.
    pub runs: usize,
    /// Proxy binary used.
    pub proxy_bin: String,
    /// CPUs online on this machine.
    pub ncpu: usize,
}

/// One direct-vs-proxy pair of phases with the same load.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    /// Straight at the backend.
    pub direct: LoadResult,
    /// Through the proxy's outbound listener.
    pub proxy: LoadResult,
    /// Proxy memory right after its phase.
    pub proxy_mem_after: MemSample,
    /// Proxy minus direct at each percentile, µs.
    pub added_latency_us: Percentiles,
}

/// One repetition of the whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// 1-based run number.
    pub run: usize,
    /// Milliseconds from starting the proxy until /ready answered 200.
    pub proxy_startup_ms: f64,
    /// Proxy memory after --idle-wait of idleness.
    pub proxy_idle: MemSample,
    /// Constant-rate pairs, in --rates order.
    pub rates: Vec<Pair>,
    /// Closed-loop pair (absent with --no-max).
    pub max: Option<Pair>,
}

/// Everything a comparison produced.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// Settings.
    pub params: Params,
    /// Per-run figures.
    pub runs: Vec<RunResult>,
    /// Median of every metric over the runs (see `report::flatten`).
    pub median: std::collections::BTreeMap<String, f64>,
}

/// Runs the comparison described by `args`.
pub fn run(args: &CompareArgs) -> Result<CompareReport> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if args.rates.is_empty() && args.no_max {
        bail!("nothing to measure: no --rates and --no-max");
    }
    let wisp_bin = sibling_binary(args.wisp_bin.as_ref(), "wisp", "--wisp-bin")?;
    let proxy_bin = sibling_binary(args.proxy_bin.as_ref(), "wisp-proxy", "--proxy-bin")?;
    crate::harness::install_signal_handler()?;

    let tmp = TempDir::new("wisp-bench")?;
    let log_dir = match &args.log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir(&manifests).with_context(|| format!("creating {}", manifests.display()))?;
    crate::manifest::write(&manifests, args.backend_addr)?;

    let exe = std::env::current_exe().context("locating wisp-bench executable")?;
    let mut cmd = Command::new(&exe);
    cmd.arg("backend")
        .arg("--addr")
        .arg(args.backend_addr.to_string());
    let mut backend = ChildGuard::spawn("backend", cmd, &log_dir)?;
    backend.wait_listening(args.backend_addr, Duration::from_secs(5))?;

    let mut cmd = Command::new(&wisp_bin);
    cmd.arg("destination")
        .arg("--source")
        .arg(format!("dir:{}", manifests.display()))
        .arg("--addr")
        .arg(args.destination_addr.to_string());
    let mut destination = ChildGuard::spawn("destination", cmd, &log_dir)?;
    destination.wait_listening(args.destination_addr, Duration::from_secs(10))?;

    let mut runs = Vec::with_capacity(args.runs);
    for run in 1..=args.runs {
        progress(&format!("run {run}/{}", args.runs));
        runs.push(run_once(args, run, &proxy_bin, &log_dir, &mut backend)?);
        destination.check_running()?;
    }
    destination.stop();
    backend.stop();

    let median = crate::report::medians(&runs);
    Ok(CompareReport {
        params: params(args, &proxy_bin),
        runs,
        median,
    })
}

/// `explicit`, or NAME next to the current executable.
fn sibling_binary(explicit: Option<&PathBuf>, name: &str, flag: &str) -> Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating wisp-bench executable")?
            .parent()
            .map(|dir| dir.join(name))
            .context("executable has no parent directory")?,
    };
    if !path.is_file() {
        bail!("{} not found (build it, or pass {flag})", path.display());
    }
    Ok(path)
}

fn params(args: &CompareArgs, proxy_bin: &Path) -> Params {
    Params {
        protocol: protocol(args).name(),
        host: host(args),
        rates: args.rates.clone(),
        duration_s: args.opts.duration.as_secs_f64(),
        warmup_s: args.opts.warmup.as_secs_f64(),
        connections: args.opts.connections.unwrap_or(16),
        max_connections: (!args.no_max).then_some(args.opts.max_connections),
        max_duration_s: (!args.no_max).then_some(args.max_duration.as_secs_f64()),
        proxy_cores: args.proxy_cores,
        runs: args.runs,
        proxy_bin: proxy_bin.display().to_string(),
        ncpu: std::thread::available_parallelism().map_or(0, |n| n.get()),
    }
}

fn protocol(args: &CompareArgs) -> Protocol {
    if args.opts.http2 {
        Protocol::Http2
    } else {
        Protocol::Http1
    }
}

fn host(args: &CompareArgs) -> String {
    args.opts
        .host
        .clone()
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

/// Starts a fresh proxy, measures idle memory, then every phase pair.
fn run_once(
    args: &CompareArgs,
    run: usize,
    proxy_bin: &Path,
    log_dir: &Path,
    backend: &mut ChildGuard,
) -> Result<RunResult> {
    let mut cmd = Command::new(proxy_bin);
    cmd.env("LINKERD2_PROXY_IDENTITY_DISABLED", "1")
        .env(
            "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
            args.destination_addr.to_string(),
        )
        .env(
            "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR",
            args.outbound_addr.to_string(),
        )
        .env(
            "LINKERD2_PROXY_INBOUND_LISTEN_ADDR",
            args.inbound_addr.to_string(),
        )
        .env(
            "LINKERD2_PROXY_ADMIN_LISTEN_ADDR",
            args.admin_addr.to_string(),
        )
        .env("LINKERD2_PROXY_CORES", args.proxy_cores.to_string())
        .env("LINKERD2_PROXY_LOG", "warn");
    for (k, v) in &args.proxy_env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut proxy = ChildGuard::spawn(&format!("proxy-run{run}"), cmd, log_dir)?;
    proxy.wait_http_ok(args.admin_addr, "/ready", args.ready_timeout)?;
    let proxy_startup_ms = started.elapsed().as_secs_f64() * 1e3;
    std::thread::sleep(args.idle_wait);
    proxy.check_running()?;
    let proxy_idle = procstat::mem(proxy.pid())?;
    check_route(args, &mut proxy)?;

    let host = host(args);
    let direct = Target::new(&args.backend_addr.to_string(), &host, protocol(args))?;
    let proxied = Target::new(&args.outbound_addr.to_string(), &host, protocol(args))?;
    let base = |target: &Target, mode: Mode| PhaseSpec {
        target: target.clone(),
        mode,
        connections: match mode {
            Mode::Open { .. } => args.opts.connections.unwrap_or(16),
            Mode::Closed { .. } => args.opts.max_connections,
        },
        duration: match mode {
            Mode::Open { .. } => args.opts.duration,
            Mode::Closed { .. } => args.max_duration,
        },
        warmup: args.opts.warmup,
        timeout: args.opts.timeout,
        threads: args.opts.threads.unwrap_or(match mode {
            Mode::Open { .. } => 1,
            Mode::Closed { .. } => 2,
        }),
        cpus: args.opts.loadgen_cpu.clone(),
        coarse_timer: args.opts.coarse_timer,
    };

    let mut modes: Vec<(String, Mode)> = args
        .rates
        .iter()
        .map(|&rate| (format!("{rate} req/s"), Mode::Open { rate }))
        .collect();
    if !args.no_max {
        modes.push((
            "max".to_string(),
            Mode::Closed {
                streams: args.opts.streams,
            },
        ));
    }

    let mut rates = Vec::new();
    let mut max = None;
    for (label, mode) in modes {
        progress(&format!("  direct {label}"));
        let d = phase::run(
            base(&direct, mode),
            PhaseSampler::new(None, Some(backend.pid())),
        )?;
        backend.check_running()?;
        progress(&format!("  proxy  {label}"));
        let p = phase::run(
            base(&proxied, mode),
            PhaseSampler::new(Some(proxy.pid()), Some(backend.pid())),
        )
        .map_err(|e| e.context(format!("proxy output:\n{}", proxy.log_tail(20))))?;
        proxy.check_running()?;
        let pair = Pair {
            proxy_mem_after: procstat::mem(proxy.pid())?,
            added_latency_us: difference(&p.latency_us, &d.latency_us),
            direct: d,
            proxy: p,
        };
        match mode {
            Mode::Open { .. } => rates.push(pair),
            Mode::Closed { .. } => max = Some(pair),
        }
    }
    proxy.stop();
    Ok(RunResult {
        run,
        proxy_startup_ms,
        proxy_idle,
        rates,
        max,
    })
}

/// One request through the proxy must succeed before anything is measured
/// (the proxy may need a moment to resolve the service).
fn check_route(args: &CompareArgs, proxy: &mut ChildGuard) -> Result<()> {
    let host = host(args);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        proxy.check_running()?;
        let last = match crate::probe::get_status(
            args.outbound_addr,
            &host,
            "/",
            Duration::from_secs(2),
        ) {
            Ok(200) => return Ok(()),
            Ok(code) => format!("status {code}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!(
                "GET http://{}/ with Host {host} did not return 200 within 10s (last: {last}); \
                 proxy output:\n{}",
                args.outbound_addr,
                proxy.log_tail(20)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn difference(a: &Percentiles, b: &Percentiles) -> Percentiles {
    Percentiles {
        p50: a.p50 - b.p50,
        p90: a.p90 - b.p90,
        p99: a.p99 - b.p99,
        p999: a.p999 - b.p999,
        max: a.max - b.max,
        mean: a.mean - b.mean,
    }
}

/// Progress goes to stderr so that --json output stays clean.
fn progress(msg: &str) {
    eprintln!("wisp-bench: {msg}");
}
