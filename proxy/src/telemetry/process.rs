//! `process_*` metrics read from `/proc/self` at scrape time.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Clock ticks per second; Linux reports 100 on every supported platform.
const CLK_TCK: f64 = 100.0;

fn gauge(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// Appends the process families to `out`; whatever `/proc` cannot tell is left out.
pub fn render(out: &mut String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    gauge(
        out,
        "process_clock_time_seconds",
        "gauge",
        "System clock time.",
        now,
    );
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name; utime is field 14.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        if let (Some(u), Some(s)) = (field(14), field(15)) {
            gauge(
                out,
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                (u + s) / CLK_TCK,
            );
        }
        if let Some(t) = field(20) {
            gauge(
                out,
                "process_threads",
                "gauge",
                "Number of OS threads in the process.",
                t,
            );
        }
        if let Some(v) = field(23) {
            gauge(
                out,
                "process_virtual_memory_bytes",
                "gauge",
                "Virtual memory size in bytes.",
                v,
            );
        }
        if let Some(start_ticks) = field(22) {
            let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            });
            if let Some(boot) = boot {
                let start = boot + start_ticks / CLK_TCK;
                gauge(
                    out,
                    "process_start_time_seconds",
                    "gauge",
                    "Start time of the process since unix epoch in seconds.",
                    start,
                );
                gauge(
                    out,
                    "process_uptime_seconds_total",
                    "counter",
                    "Total time since the process started (in seconds)",
                    (now - start).max(0.0),
                );
            }
        }
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        if let Some(rss) = kib("VmRSS:") {
            gauge(
                out,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                rss * 1024.0,
            );
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            dir.count() as f64,
        );
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        let max = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(max) = max {
            gauge(
                out,
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                max,
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP proxy_build_info Proxy build info\n# TYPE proxy_build_info gauge\nproxy_build_info{{version=\"{}\",vendor=\"wisp\",profile=\"{}\",git_sha=\"\",date=\"\"}} 1",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) { "debug" } else { "release" },
    );
}
