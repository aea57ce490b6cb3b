//! Reading CPU time and memory figures from `/proc`.

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

/// CPU time (user + system, all threads) of a process, in clock ticks.
///
/// `pid` of `None` means the bench process itself.
pub fn cpu_ticks(pid: Option<u32>) -> Result<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat_ticks(&text).with_context(|| format!("parsing {path}"))
}

/// Extracts utime + stime from the text of a `/proc/PID/stat` file.
fn parse_stat_ticks(text: &str) -> Result<u64> {
    // The command name (field 2) may contain spaces and parentheses, so the
    // fields are counted from the last ')'. After it, field 3 (state) is at
    // index 0, utime (field 14) at index 11 and stime (field 15) at index 12.
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| anyhow!("no ')' in stat line"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .ok_or_else(|| anyhow!("stat line too short"))?
            .parse::<u64>()
            .context("non-numeric tick count")
    };
    Ok(field(11)? + field(12)?)
}

/// Resident-memory figures of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MemSample {
    /// Current resident set size, KiB.
    pub vmrss_kib: u64,
    /// Peak resident set size so far, KiB.
    pub vmhwm_kib: u64,
    /// Number of threads.
    pub threads: u64,
}

/// Reads VmRSS, VmHWM and Threads of process `pid`.
pub fn mem(pid: u32) -> Result<MemSample> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(parse_status(&text))
}

/// Extracts the fields of [`MemSample`] from the text of a status file.
fn parse_status(text: &str) -> MemSample {
    let mut sample = MemSample::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        match key {
            "VmRSS:" => sample.vmrss_kib = value,
            "VmHWM:" => sample.vmhwm_kib = value,
            "Threads:" => sample.threads = value,
            _ => {}
        }
    }
    sample
}

/// Machine-wide CPU counters from the first line of `/proc/stat`, in ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemTicks {
    /// Sum of all accounted states (user .. steal).
    pub total: u64,
    /// idle + iowait.
    pub idle: u64,
    /// Time stolen by the hypervisor.
    pub steal: u64,
}

/// Reads the aggregate `cpu` line of `/proc/stat`.
pub fn system_ticks() -> Result<SystemTicks> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("no aggregate cpu line in /proc/stat"))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| values.get(i).copied().unwrap_or(0);
    Ok(SystemTicks {
        total: values.iter().sum(),
        idle: at(3) + at(4),
        steal: at(7),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name() {
        let line = "1234 (we ird) proc) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 1 0";
        assert_eq!(parse_stat_ticks(line).ok(), Some(175));
    }

    #[test]
    fn status_fields() {
        let text = "Name:\twisp\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\nThreads:\t3\n";
        let m = parse_status(text);
        assert_eq!((m.vmrss_kib, m.vmhwm_kib, m.threads), (1024, 2048, 3));
    }
}
