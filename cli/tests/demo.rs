//! End to end: `wisp demo` starts the destination service, three backends
//! and four proxies, drives traffic through two proxies per request, and
//! stops everything.
//!
//! Needs `wisp-proxy` built next to `wisp`; run with
//! `cargo build -p wisp-proxy && cargo test -p wisp-cli`.

use std::path::Path;
use std::process::Command;

/// Whether process `pid` still exists (and is not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// The pids the banner lists as `wisp-proxy pid N`.
fn proxy_pids(stdout: &str) -> Vec<u32> {
    stdout
        .split("wisp-proxy pid ")
        .skip(1)
        .filter_map(|rest| {
            rest.split_whitespace()
                .next()
                .and_then(|pid| pid.parse().ok())
        })
        .collect()
}

/// The client proxy's `request_total` for `pod`, from the `dst_pod=POD N` summary.
fn counted(stdout: &str, pod: &str) -> Option<u64> {
    let prefix = format!("dst_pod={pod} ");
    stdout.lines().find_map(|line| {
        line.trim()
            .strip_prefix(&prefix)
            .and_then(|n| n.trim().parse().ok())
    })
}

#[test]
fn demo_runs_traffic_through_the_mesh_and_cleans_up() {
    let wisp = env!("CARGO_BIN_EXE_wisp");
    let proxy = Path::new(wisp).with_file_name("wisp-proxy");
    assert!(
        proxy.is_file(),
        "{} is missing: run this test with `cargo build -p wisp-proxy && cargo test -p wisp-cli`",
        proxy.display()
    );

    let out = Command::new(wisp)
        .args(["demo", "--duration", "6s", "--rate", "40"])
        .output()
        .expect("run wisp demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "wisp demo failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" req/s  success "))
        .collect();
    assert!(
        lines.len() >= 5,
        "expected a line per second, got:\n{stdout}"
    );
    for line in &lines {
        assert!(
            line.contains("success 100.0%"),
            "not all 200: {line}\n{stdout}"
        );
    }
    // The client proxy's own counters (printed at the end) show that
    // discovery gave it all three endpoints and each one served requests.
    for pod in ["web-a", "web-b", "web-c"] {
        let count = counted(&stdout, pod);
        assert!(
            count.is_some_and(|n| n > 0),
            "{pod} got no traffic:\n{stdout}"
        );
    }

    let pids = proxy_pids(&stdout);
    assert_eq!(
        pids.len(),
        4,
        "expected four proxies in the banner:\n{stdout}"
    );
    let left: Vec<u32> = pids.into_iter().filter(|&pid| alive(pid)).collect();
    assert!(
        left.is_empty(),
        "wisp-proxy processes left running: {left:?}"
    );
}
