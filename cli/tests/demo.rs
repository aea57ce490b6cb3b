//! End to end: `wisp demo` starts the destination service, the identity
//! service, four backends (web-a/b/c of `web` = v1, web-v2-a of `web-v2` =
//! v2) and five proxies, applies a ServiceProfile and a 90/10 TrafficSplit
//! (not with `--no-profiles`), drives traffic through two proxies per
//! request — mTLS between them by default, plaintext with `--no-identity` —
//! and stops everything.
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
    wisp_common::procfs::is_running(wisp_common::procfs::Process::Pid(pid))
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

/// The per-second lines, at least `min` of them.
fn per_second_lines(stdout: &str, min: usize) -> Vec<&str> {
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" req/s  success "))
        .collect();
    assert!(
        lines.len() >= min,
        "expected a line per second, got:\n{stdout}"
    );
    lines
}

/// The per-route lines printed under each per-second line.
fn route_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("        routes (") || l.starts_with("        paths ("))
        .collect()
}

/// The number after `word ` in `line` (`word` must occur once).
fn number_after(line: &str, word: &str) -> Option<f64> {
    let rest = line.split_once(word)?.1;
    let token: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    token.parse().ok()
}

/// The line whose trimmed text starts with `prefix`.
fn line_starting<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}:\n{stdout}"))
}

/// The v2 share (percent) of the answers over the whole run.
fn v2_share(stdout: &str) -> f64 {
    let line = line_starting(stdout, "split over the run");
    let v2 = line
        .split_once("v2 (web-v2) ")
        .map(|(_, r)| r)
        .unwrap_or("");
    number_after(v2, "(").unwrap_or_else(|| panic!("no v2 share in {line:?}"))
}

const ALL_PODS: [&str; 4] = ["web-a", "web-b", "web-c", "web-v2-a"];

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
        assert!(line.contains(" web-v2-a "), "no v2 share: {line}\n{stdout}");
        assert!(line.contains("split v1 "), "no split: {line}\n{stdout}");
    }
    assert_profiles_in_effect(&stdout);
    for pod in ALL_PODS {
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
    // 1 destination + 1 identity + 4 apps + 5 proxies.
    assert_cleaned_up(&stdout, 11);
}

/// What the profile and the split must show in a default run: routes read
/// from the client proxy, `GET /books/{id}` always fine, roughly 90/10
/// between v1 and v2, `/flaky` rescued by retries, `/slow` cut at 300 ms.
fn assert_profiles_in_effect(stdout: &str) {
    assert!(
        stdout.contains("in effect: the client proxy counted a request under rt_route="),
        "{stdout}"
    );
    assert!(
        stdout.contains("apex web -> web 900m, web-v2 100m"),
        "{stdout}"
    );
    let routes = route_lines(stdout);
    assert!(!routes.is_empty(), "no route lines:\n{stdout}");
    for line in &routes {
        assert!(
            line.starts_with("        routes (client proxy): "),
            "route figures not from the client proxy: {line}\n{stdout}"
        );
        assert!(
            line.contains("GET /books/{id}") && !line.contains("GET /books/{id}   0.0/s"),
            "{line}\n{stdout}"
        );
        let books = line.split("  |  ").next().unwrap_or_default();
        assert!(books.contains(" 100.0% "), "books failed: {line}\n{stdout}");
    }

    let v2 = v2_share(stdout);
    assert!(
        (3.0..=20.0).contains(&v2),
        "v2 got {v2}% of the answers, expected about 10%:\n{stdout}"
    );

    let flaky = line_starting(stdout, "rt_route=\"GET /flaky\"");
    let success = number_after(flaky, "success").zip(number_after(flaky, "requests"));
    let retries = number_after(flaky, "retries");
    assert!(
        matches!(success, Some((ok, n)) if n > 0.0 && ok / n >= 0.95),
        "GET /flaky under 95% success: {flaky}\n{stdout}"
    );
    assert!(
        retries.is_some_and(|r| r > 0.0),
        "GET /flaky was never retried: {flaky}\n{stdout}"
    );

    // The load driver got 504s for /slow, each within the route's 300 ms
    // timeout (plus slack), never the backends' full second.
    let slow = line_starting(stdout, "GET /slow ");
    assert!(
        number_after(slow, "504\u{d7}").is_some_and(|n| n > 0.0),
        "no 504 for /slow: {slow}\n{stdout}"
    );
    assert!(
        number_after(slow, "2xx").is_some_and(|n| n == 0.0),
        "/slow answered 2xx past its timeout: {slow}\n{stdout}"
    );
    let max_ms = number_after(slow, "max");
    assert!(
        max_ms.is_some_and(|ms| ms < 800.0),
        "/slow took longer than its timeout: {slow}\n{stdout}"
    );
    let slow_proxy = line_starting(stdout, "rt_route=\"GET /slow\"");
    assert!(
        slow_proxy.contains(" 504\u{d7}") && slow_proxy.contains("(timeout "),
        "the client proxy did not count /slow timeouts: {slow_proxy}\n{stdout}"
    );
}

#[test]
fn demo_without_identity_runs_plaintext() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let stdout = run_demo(&["--no-identity", "--duration", "3s", "--rate", "40"]);

    assert!(
        stdout.contains("  transport    plaintext (identity disabled)"),
        "{stdout}"
    );
    for line in per_second_lines(&stdout, 3) {
        assert!(
            line.contains("mTLS   0%"),
            "unexpected mTLS: {line}\n{stdout}"
        );
    }
    assert!(
        stdout.contains("in effect: the client proxy counted a request under rt_route="),
        "{stdout}"
    );
    for pod in ["web-a", "web-b", "web-c"] {
        let inbound = summary(&stdout, &format!("{pod} proxy"));
        assert!(
            matches!(inbound.as_deref(), Some(&[0, total]) if total > 0),
            "{pod}'s proxy counted mTLS or nothing:\n{stdout}"
        );
    }
    // 1 destination + 4 apps + 5 proxies.
    assert_cleaned_up(&stdout, 10);
}

#[test]
fn demo_without_profiles_has_no_routes_and_no_split() {
    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let stdout = run_demo(&[
        "--no-profiles",
        "--no-identity",
        "--duration",
        "2s",
        "--rate",
        "40",
    ]);

    assert!(
        stdout.contains("  profiles     none (--no-profiles)"),
        "{stdout}"
    );
    let routes = route_lines(&stdout);
    assert!(!routes.is_empty(), "no route lines:\n{stdout}");
    for line in routes {
        assert!(
            line.starts_with("        paths (load driver): "),
            "route figures without a profile: {line}\n{stdout}"
        );
    }
    assert!(
        stdout.contains(
            "the client proxy counted no ServiceProfile route of web.default.svc.cluster.local:80"
        ),
        "{stdout}"
    );
    // No split: web-v2 only answered the mesh check, never the load.
    assert_eq!(v2_share(&stdout), 0.0, "{stdout}");
    // No timeout: /slow waits for the backends' full second and succeeds.
    let slow = line_starting(&stdout, "GET /slow ");
    assert!(
        number_after(slow, "max").is_some_and(|ms| ms >= 1000.0),
        "/slow was cut short without a profile: {slow}\n{stdout}"
    );
    assert!(!slow.contains("504"), "{slow}\n{stdout}");
    assert_cleaned_up(&stdout, 10);
}

/// The commands the banner prints under "Inspect:" work from another
/// terminal while the demo runs: each one, run as printed (plus an output
/// format and a short window or duration), succeeds and shows the demo's
/// live traffic.
#[test]
fn the_printed_inspect_commands_work_while_the_demo_runs() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let _one = ONE_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    let wisp = env!("CARGO_BIN_EXE_wisp");
    let mut demo = Command::new(wisp)
        .args(["demo", "--duration", "40s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run wisp demo");
    let stdout = demo.stdout.take().expect("stdout");
    // Read the banner up to the first per-second line (the load runs then).
    let mut lines = BufReader::new(stdout).lines();
    let mut source = None;
    let mut commands = Vec::new();
    let mut in_inspect = false;
    for line in lines.by_ref() {
        let line = line.expect("banner line");
        let t = line.trim();
        if t.starts_with("Inspect:") {
            in_inspect = true;
            continue;
        }
        if in_inspect {
            if let Some(s) = t.strip_prefix("export WISP_SOURCE=") {
                source = Some(s.to_string());
                continue;
            }
            if let Some(cmd) = t.strip_prefix(wisp) {
                commands.push(cmd.trim().to_string());
                continue;
            }
            in_inspect = false;
        }
        if t.starts_with("Load:") {
            break;
        }
    }
    // Keep draining the demo's output so it never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.count());
    let source = source.expect("the banner prints `export WISP_SOURCE=...`");
    assert!(commands.len() >= 7, "printed commands: {commands:?}");

    let run = |cmd: &str, extra: &[&str]| -> String {
        let mut args: Vec<&str> = Vec::new();
        let mut words = cmd.split_whitespace();
        while let Some(w) = words.next() {
            // The test asks for its own output format.
            if w == "-o" && extra.contains(&"-o") {
                words.next();
                continue;
            }
            args.push(w);
        }
        args.extend_from_slice(extra);
        let out = Command::new(wisp)
            .args(&args)
            .env("WISP_SOURCE", &source)
            .output()
            .expect("run a printed command");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "`wisp {}` failed: {}\n{text}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    for cmd in &commands {
        let verb = cmd.split_whitespace().next().unwrap_or_default();
        let out = match verb {
            "stat" | "routes" | "edges" => run(cmd, &["-o", "json", "--window", "2s"]),
            "tap" => run(cmd, &["-o", "json"]),
            "top" => run(cmd, &["--duration", "3s"]),
            "proxy-config" => run(cmd, &["-o", "json"]),
            "profile" => run(cmd, &[]),
            other => panic!("unexpected printed command {other}"),
        };
        match verb {
            "stat" => assert!(out.contains("\"deploy/web\""), "stat: {out}"),
            "routes" => assert!(out.contains("GET /books"), "routes: {out}"),
            // Both ends are scraped: the client's pod is in the manifests too.
            "edges" => assert!(
                out.contains("\"src\": \"deploy/client\"")
                    && out.contains("\"server_id\": \"web.default.serviceaccount"),
                "edges: {out}"
            ),
            "tap" => assert!(
                out.lines().filter(|l| l.contains(":path")).count() >= 1,
                "tap: {out}"
            ),
            "top" => assert!(out.contains("/books"), "top: {out}"),
            "proxy-config" => assert!(
                out.contains("web.default.svc.cluster.local"),
                "proxy-config: {out}"
            ),
            "profile" => assert!(
                out.contains("kind: ServiceProfile") && out.contains("GET /books"),
                "profile: {out}"
            ),
            _ => {}
        }
    }
    // Stop the demo as Ctrl-C would: it stops its children and cleans up.
    let _ = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status();
    let _ = demo.wait();
    let _ = drain.join();
}
