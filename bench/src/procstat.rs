//! The bench's view of `/proc` figures, read with [`wisp_common::procfs`]:
//! CPU time of the processes it watches and their resident memory, in the
//! units its reports use.

use anyhow::{Context, Result};
use serde::Serialize;
use wisp_common::procfs::{self, Process};

pub use wisp_common::procfs::SystemTicks;

/// CPU time (user + system, all threads) of a process, in seconds.
///
/// `pid` of `None` means the bench process itself.
pub fn cpu_seconds(pid: Option<u32>) -> Result<f64> {
    let process = pid.map_or(Process::Current, Process::Pid);
    Ok(procfs::stat(process)
        .with_context(|| format!("reading the CPU time of {process:?}"))?
        .cpu_seconds())
}

/// Resident-memory figures of a process, as reported.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MemSample {
    /// Current resident set size, KiB.
    pub vmrss_kib: u64,
    /// Peak resident set size so far, KiB.
    pub vmhwm_kib: u64,
    /// Number of threads.
    pub threads: u64,
}

/// Reads VmRSS, VmHWM and Threads of process `pid` (0 where the kernel
/// reports none).
pub fn mem(pid: u32) -> Result<MemSample> {
    let status = procfs::status(Process::Pid(pid))
        .with_context(|| format!("reading the memory of process {pid}"))?;
    Ok(MemSample {
        vmrss_kib: status.vm_rss_kib.unwrap_or(0),
        vmhwm_kib: status.vm_hwm_kib.unwrap_or(0),
        threads: status.threads.unwrap_or(0),
    })
}

/// Reads the machine-wide CPU counters (the `cpu` line of `/proc/stat`).
pub fn system_ticks() -> Result<SystemTicks> {
    procfs::system_ticks().context("reading /proc/stat")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_itself() {
        assert!(cpu_seconds(None).is_ok_and(|s| s >= 0.0));
        let me = std::process::id();
        assert!(cpu_seconds(Some(me)).is_ok());
        assert!(mem(me).is_ok_and(|m| m.vmrss_kib > 0 && m.threads >= 1));
        assert!(system_ticks().is_ok_and(|t| t.total > 0));
    }
}
