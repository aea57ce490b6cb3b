//! End to end: `wisp demo` starts the destination service, the identity
//! service, three backends and four proxies, drives traffic through two
//! proxies per request — mTLS between them by default, plaintext with
//! `--no-identity` — and stops everything.
//!
//! Needs `wisp-proxy` built next to `wisp`; run with
//! `cargo build -p wisp-proxy && cargo test -p wisp-cli`.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// The demos listen on fixed addresses: one at a time.
static ONE_DEMO: Mutex<()> = Mutex::new(());

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

/// The pids the banner lists after `marker` (`wisp-proxy pid N`, ...).
fn pids_after(stdout: &str, marker: &str) -> Vec<u32> {
    stdout
        .split(marker)
        .skip(1)
        .filter_map(|rest| {
            rest.split_whitespace()
                .next()
                .and_then(|pid| pid.parse().ok())
        })
        .collect()
}

/// Every child pid in the banner: proxies, apps and control plane.
fn child_pids(stdout: &str) -> Vec<u32> {
    let mut pids = pids_after(stdout, "wisp-proxy pid ");
    for line in stdout.lines().filter(|l| {
        let l = l.trim_start();
        l.starts_with("destination ") || l.starts_with("identity ") || l.contains(" app ")
    }) {
        pids.extend(pids_after(line, " pid "));
    }
    pids
}

/// The numbers after `label` on the summary line starting with it.
fn summary(stdout: &str, label: &str) -> Option<Vec<u64>> {
    stdout.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(label)?.strip_prefix(' ')?;
        Some(
            rest.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect(),
        )
    })
}

/// Runs `wisp demo ARGS`, asserting it succeeds; returns its stdout.
fn run_demo(args: &[&str]) -> String {
    let wisp = env!("CARGO_BIN_EXE_wisp");
    let proxy = Path::new(wisp).with_file_name("wisp-proxy");
    assert!(
        proxy.is_file(),
        "{} is missing: run this test with `cargo build -p wisp-proxy && cargo test -p wisp-cli`",
        proxy.display()
    );
    let out = Command::new(wisp)
        .arg("demo")
        .args(args)
        .output()
        .expect("run wisp demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "wisp demo failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// The per-second lines, at least `min` of them, all at 100% success.
fn per_second_lines(stdout: &str, min: usize) -> Vec<&str> {
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" req/s  success "))
        .collect();
    assert!(
        lines.len() >= min,
        "expected a line per second, got:\n{stdout}"
    );
    for line in &lines {
        assert!(
            line.contains("success 100.0%"),
            "not all 200: {line}\n{stdout}"
        );
    }
    lines
}

/// No child the banner listed is still running.
fn assert_cleaned_up(stdout: &str, expected: usize) {
    let pids = child_pids(stdout);
    assert_eq!(
        pids.len(),
        expected,
        "expected {expected} child pids in the banner, got {pids:?}:\n{stdout}"
    );
    let left: Vec<u32> = pids.into_iter().filter(|&pid| alive(pid)).collect();
    assert!(left.is_empty(), "child processes left running: {left:?}");
}

#[test]
fn demo_runs_mtls_traffic_through_the_mesh_and_cleans_up() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let stdout = run_demo(&["--duration", "6s", "--rate", "40"]);

    assert!(
        stdout.contains("  transport    mTLS (identity: trust anchor "),
        "{stdout}"
    );
    assert!(
        stdout.contains("identity client.default.serviceaccount.identity.linkerd.cluster.local"),
        "{stdout}"
    );
    for line in per_second_lines(&stdout, 5) {
        assert!(line.contains("mTLS 100%"), "not all mTLS: {line}\n{stdout}");
    }
    for pod in ["web-a", "web-b", "web-c"] {
        // The client proxy's own counters (printed at the end) show that
        // discovery gave it all three endpoints and each one served requests.
        let sent = summary(&stdout, &format!("dst_pod={pod}"));
        assert!(
            sent.is_some_and(|n| n.first().is_some_and(|&n| n > 0)),
            "{pod} got no traffic:\n{stdout}"
        );
        // Each web proxy counted them inbound as mTLS from the client's identity.
        let inbound = summary(&stdout, &format!("{pod} proxy"));
        assert!(
            matches!(inbound.as_deref(), Some(&[mtls, total]) if mtls > 0 && mtls == total),
            "{pod}'s proxy did not count all its requests as mTLS from the client:\n{stdout}"
        );
    }
    // 1 destination + 1 identity + 3 apps + 4 proxies.
    assert_cleaned_up(&stdout, 9);
}

#[test]
fn demo_without_identity_runs_plaintext() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let stdout = run_demo(&["--no-identity", "--duration", "2s", "--rate", "40"]);

    assert!(
        stdout.contains("  transport    plaintext (identity disabled)"),
        "{stdout}"
    );
    for line in per_second_lines(&stdout, 2) {
        assert!(
            line.contains("mTLS   0%"),
            "unexpected mTLS: {line}\n{stdout}"
        );
    }
    for pod in ["web-a", "web-b", "web-c"] {
        let inbound = summary(&stdout, &format!("{pod} proxy"));
        assert!(
            matches!(inbound.as_deref(), Some(&[0, total]) if total > 0),
            "{pod}'s proxy counted mTLS or nothing:\n{stdout}"
        );
    }
    // 1 destination + 3 apps + 4 proxies.
    assert_cleaned_up(&stdout, 8);
}
