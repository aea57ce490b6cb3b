//! `process_*` metrics read from `/proc/self` at scrape time (through
//! `wisp_common::procfs`, which takes the clock tick rate from the OS).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use wisp_common::procfs;

fn gauge(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// Appends the process families to `out`; whatever `/proc` cannot tell is left out.
pub(crate) fn render(out: &mut String) {
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
    let p = procfs::process_stats(procfs::Process::Current);
    let families: [(&str, &str, &str, Option<f64>); 6] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            p.cpu_seconds,
        ),
        (
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            p.threads.map(|t| t as f64),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            p.virtual_memory_bytes.map(|v| v as f64),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            p.resident_memory_bytes.map(|v| v as f64),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            p.open_fds.map(|v| v as f64),
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            p.max_fds.map(|v| v as f64),
        ),
    ];
    for (name, kind, help, value) in families {
        if let Some(v) = value {
            gauge(out, name, kind, help, v);
        }
    }
    if let Some(start) = p.start_time_seconds {
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
    let _ = writeln!(
        out,
        "# HELP proxy_build_info Proxy build info\n# TYPE proxy_build_info gauge\nproxy_build_info{{version=\"{}\",vendor=\"wisp\",profile=\"{}\",git_sha=\"\",date=\"\"}} 1",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) { "debug" } else { "release" },
    );
}
