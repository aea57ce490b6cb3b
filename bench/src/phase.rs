//! Description of one load phase and running it on its own (pinned) runtime.

use crate::client::Target;
use crate::sampler::PhaseSampler;
use crate::stats::{LoadResult, PhaseSetup};
use anyhow::{anyhow, Context, Result};
use std::time::Duration;

/// Constant rate or back-to-back.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Open loop: requests at fixed intended times, `rate` per second.
    Open {
        /// Requests per second.
        rate: f64,
    },
    /// Closed loop: every stream sends its next request as soon as the
    /// previous one finished.
    Closed {
        /// Concurrent streams per HTTP/2 connection (ignored for HTTP/1.1).
        streams: usize,
    },
}

/// Everything needed to run one load phase.
#[derive(Debug, Clone)]
pub struct PhaseSpec {
    /// Where to send requests.
    pub target: Target,
    /// Open or closed loop.
    pub mode: Mode,
    /// Number of TCP connections.
    pub connections: usize,
    /// Measured window.
    pub duration: Duration,
    /// Unrecorded warm-up before the window, same load.
    pub warmup: Duration,
    /// Per-request timeout (also bounds the drain after the window).
    pub timeout: Duration,
    /// Runtime threads: 1 = current-thread runtime.
    pub threads: usize,
    /// CPUs to pin the load generator threads to (empty: no pinning).
    pub cpus: Vec<usize>,
    /// Pace with tokio's 1 ms timer instead of a timerfd.
    pub coarse_timer: bool,
}

impl PhaseSpec {
    /// The setup echoed in the phase's result.
    pub fn setup(&self) -> PhaseSetup {
        let (mode, rate, streams) = match self.mode {
            Mode::Open { rate } => ("open", Some(rate), None),
            Mode::Closed { streams } => (
                "closed",
                None,
                (self.target.protocol == crate::client::Protocol::Http2).then_some(streams),
            ),
        };
        PhaseSetup {
            mode,
            protocol: self.target.protocol.name(),
            target: self.target.addr.to_string(),
            host: self.target.host.clone(),
            rate,
            connections: self.connections,
            streams,
            threads: self.threads,
            duration_s: self.duration.as_secs_f64(),
            warmup_s: self.warmup.as_secs_f64(),
        }
    }
}

/// Runs the phase on a fresh runtime in a dedicated thread (pinned to
/// `spec.cpus` if given, so that child processes started by the bench do
/// not inherit the pinning) and returns its result.
pub fn run(spec: PhaseSpec, sampler: PhaseSampler) -> Result<LoadResult> {
    let handle = std::thread::Builder::new()
        .name("loadgen".into())
        .spawn(move || run_on_this_thread(spec, sampler))
        .context("spawning load generator thread")?;
    handle
        .join()
        .map_err(|_| anyhow!("load generator thread panicked"))?
}

fn run_on_this_thread(spec: PhaseSpec, mut sampler: PhaseSampler) -> Result<LoadResult> {
    crate::sys::pin_current_thread(&spec.cpus)?;
    let runtime = if spec.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(spec.threads)
            .enable_all()
            .build()
    }
    .context("building load generator runtime")?;
    runtime.block_on(async {
        match spec.mode {
            Mode::Open { rate } => crate::load::run(&spec, rate, &mut sampler).await,
            Mode::Closed { streams } => crate::closed::run(&spec, streams, &mut sampler).await,
        }
    })
}
