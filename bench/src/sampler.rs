//! CPU accounting over one measured load phase.

use crate::procstat::{self, SystemTicks};
use serde::Serialize;

/// CPU used during a phase by the watched processes and the machine.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PhaseCpu {
    /// CPU seconds of the bench process (the load generator).
    pub loadgen_cpu_s: Option<f64>,
    /// CPU seconds of the watched proxy, if any (the client proxy in mesh modes).
    pub proxy_cpu_s: Option<f64>,
    /// CPU seconds of the server-side proxy (mesh modes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_proxy_cpu_s: Option<f64>,
    /// CPU seconds of the backend child, if any.
    pub backend_cpu_s: Option<f64>,
    /// Share of all CPUs that was busy, percent.
    pub machine_busy_pct: Option<f64>,
    /// Share of all CPUs stolen by the hypervisor, percent.
    pub steal_pct: Option<f64>,
}

/// Which processes to account for; call [`PhaseSampler::begin`] when the
/// measured window opens and [`PhaseSampler::end`] when it closes.
#[derive(Debug, Clone, Default)]
pub struct PhaseSampler {
    proxy: Option<u32>,
    server_proxy: Option<u32>,
    backend: Option<u32>,
    start: Option<Snapshot>,
}

/// Raw counters at one instant (CPU times in seconds).
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    loadgen: Option<f64>,
    proxy: Option<f64>,
    server_proxy: Option<f64>,
    backend: Option<f64>,
    system: Option<SystemTicks>,
}

impl PhaseSampler {
    /// A sampler watching the bench itself plus the optional proxy and backend PIDs.
    pub fn new(proxy: Option<u32>, backend: Option<u32>) -> Self {
        Self {
            proxy,
            server_proxy: None,
            backend,
            start: None,
        }
    }

    /// Also accounts for a second, server-side proxy (mesh modes).
    pub fn with_server_proxy(mut self, pid: Option<u32>) -> Self {
        self.server_proxy = pid;
        self
    }

    /// Records the counters at the start of the measured window.
    pub fn begin(&mut self) {
        self.start = Some(self.snapshot());
    }

    /// Computes the CPU used since [`PhaseSampler::begin`]; all `None` if it was never called.
    pub fn end(&self) -> PhaseCpu {
        let Some(start) = self.start else {
            return PhaseCpu::default();
        };
        let end = self.snapshot();
        let secs = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        let (busy, steal) = match (start.system, end.system) {
            (Some(a), Some(b)) => {
                let total = b.total.saturating_sub(a.total).max(1) as f64;
                let idle = b.idle.saturating_sub(a.idle) as f64;
                let steal = b.steal.saturating_sub(a.steal) as f64;
                (
                    Some(100.0 * (total - idle) / total),
                    Some(100.0 * steal / total),
                )
            }
            _ => (None, None),
        };
        PhaseCpu {
            loadgen_cpu_s: secs(start.loadgen, end.loadgen),
            proxy_cpu_s: secs(start.proxy, end.proxy),
            server_proxy_cpu_s: secs(start.server_proxy, end.server_proxy),
            backend_cpu_s: secs(start.backend, end.backend),
            machine_busy_pct: busy,
            steal_pct: steal,
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            loadgen: procstat::cpu_seconds(None).ok(),
            proxy: self.proxy.and_then(|p| procstat::cpu_seconds(Some(p)).ok()),
            server_proxy: self
                .server_proxy
                .and_then(|p| procstat::cpu_seconds(Some(p)).ok()),
            backend: self
                .backend
                .and_then(|p| procstat::cpu_seconds(Some(p)).ok()),
            system: procstat::system_ticks().ok(),
        }
    }
}
