//! Text and JSON output.

use crate::compare::{CompareReport, Pair, RunResult};
use crate::procstat::MemSample;
use crate::stats::{LoadResult, Percentiles};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Prints `value` as one line of JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string(value).context("serializing report")?;
    println!("{text}");
    Ok(())
}

/// Human-readable report of one load phase.
pub fn load_text(r: &LoadResult, watched: Option<MemSample>) -> String {
    let s = &r.setup;
    let mut out = String::new();
    let shape = match s.rate {
        Some(rate) => format!("open loop {rate} req/s"),
        None => match s.streams {
            Some(n) => format!("closed loop, {n} streams/connection"),
            None => "closed loop".to_string(),
        },
    };
    let _ = writeln!(
        out,
        "target {} (Host {}), {}, {shape}, {} connections, {} thread(s), {:.1} s + {:.1} s warm-up",
        s.target,
        s.host,
        protocol_label(s.protocol),
        s.connections,
        s.threads,
        s.duration_s,
        s.warmup_s
    );
    let _ = writeln!(
        out,
        "requests   {} ok, {} errors{}    achieved {:.1} req/s over {:.2} s",
        r.ok,
        r.errors,
        error_kinds(&r.error_kinds),
        r.achieved_rps,
        r.elapsed_s
    );
    let _ = writeln!(out, "latency    {}", percentiles_ms(&r.latency_us));
    if let Some(lag) = &r.send_lag_us {
        let _ = writeln!(
            out,
            "send lag   p50 {} ms  p99 {} ms  max {} ms",
            ms(lag.p50),
            ms(lag.p99),
            ms(lag.max)
        );
    }
    if let Some(cpu) = r.cpu.loadgen_cpu_s {
        let _ = writeln!(
            out,
            "loadgen    {cpu:.2} CPU s ({:.1}% of one core, {} µs/request)",
            100.0 * cpu / r.elapsed_s,
            opt(r.loadgen_cpu_us_per_request, 1)
        );
    }
    if let Some(cpu) = r.cpu.proxy_cpu_s {
        let _ = writeln!(
            out,
            "watched    {cpu:.2} CPU s ({} µs/request)",
            opt(r.proxy_cpu_us_per_request, 1)
        );
    }
    if let Some(m) = watched {
        let _ = writeln!(
            out,
            "watched    VmRSS {} MiB, VmHWM {} MiB after the phase",
            mib(m.vmrss_kib as f64),
            mib(m.vmhwm_kib as f64)
        );
    }
    if let (Some(busy), Some(steal)) = (r.cpu.machine_busy_pct, r.cpu.steal_pct) {
        let _ = writeln!(out, "machine    {busy:.1}% busy, {steal:.1}% steal");
    }
    out
}

fn protocol_label(p: &str) -> &'static str {
    if p == "http2" {
        "HTTP/2 (h2c)"
    } else {
        "HTTP/1.1"
    }
}

fn error_kinds(kinds: &BTreeMap<String, u64>) -> String {
    if kinds.is_empty() {
        return String::new();
    }
    let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}={n}")).collect();
    format!(" ({})", list.join(", "))
}

fn percentiles_ms(p: &Percentiles) -> String {
    format!(
        "p50 {} ms  p90 {} ms  p99 {} ms  p99.9 {} ms  max {} ms",
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.p999),
        ms(p.max)
    )
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

fn mib(kib: f64) -> String {
    format!("{:.1}", kib / 1024.0)
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// Key prefix of a constant-rate pair, e.g. `rate_1000`.
pub fn rate_key(rate: f64) -> String {
    if rate.fract() == 0.0 {
        format!("rate_{rate:.0}")
    } else {
        format!("rate_{rate}")
    }
}

/// Every numeric metric of one run, as `(name, value)`.
///
/// Single topology: `idle.*`, `<phase>.proxy.*` carry the proxy's figures.
/// Mesh topologies: `<phase>.proxy.*` is the load through the client proxy
/// (latency, errors, ...), and each proxy's CPU and memory are under
/// `proxy_client.*` / `proxy_server.*` (`proxy_client.startup_ms`,
/// `idle.proxy_client.vmrss_kib`, `rate_2000.proxy_server.cpu_us_per_request`).
pub fn flatten(run: &RunResult) -> Vec<(String, f64)> {
    if let Some(server_idle) = run.server_proxy_idle {
        return flatten_mesh(run, server_idle);
    }
    let mut out = vec![
        ("proxy_startup_ms".to_string(), run.proxy_startup_ms),
        (
            "idle.vmrss_kib".to_string(),
            run.proxy_idle.vmrss_kib as f64,
        ),
        (
            "idle.vmhwm_kib".to_string(),
            run.proxy_idle.vmhwm_kib as f64,
        ),
        ("idle.threads".to_string(), run.proxy_idle.threads as f64),
    ];
    for pair in &run.rates {
        let key = rate_key(pair.direct.setup.rate.unwrap_or(0.0));
        flatten_pair(&key, pair, &mut out);
    }
    if let Some(pair) = &run.max {
        flatten_pair("max", pair, &mut out);
    }
    out
}

fn flatten_mesh(run: &RunResult, server_idle: MemSample) -> Vec<(String, f64)> {
    let mut out = vec![("proxy_client.startup_ms".to_string(), run.proxy_startup_ms)];
    if let Some(ms) = run.server_proxy_startup_ms {
        out.push(("proxy_server.startup_ms".to_string(), ms));
    }
    for (side, m) in [
        ("proxy_client", run.proxy_idle),
        ("proxy_server", server_idle),
    ] {
        out.push((format!("idle.{side}.vmrss_kib"), m.vmrss_kib as f64));
        out.push((format!("idle.{side}.vmhwm_kib"), m.vmhwm_kib as f64));
        out.push((format!("idle.{side}.threads"), m.threads as f64));
    }
    let pairs = run
        .rates
        .iter()
        .map(|pair| (rate_key(pair.direct.setup.rate.unwrap_or(0.0)), pair))
        .chain(run.max.iter().map(|pair| ("max".to_string(), pair)));
    for (key, pair) in pairs {
        flatten_pair(&key, pair, &mut out);
        let p = &pair.proxy;
        let sides = [
            (
                "proxy_client",
                p.cpu.proxy_cpu_s,
                p.proxy_cpu_us_per_request,
                Some(pair.proxy_mem_after),
            ),
            (
                "proxy_server",
                p.cpu.server_proxy_cpu_s,
                p.server_proxy_cpu_us_per_request,
                pair.server_proxy_mem_after,
            ),
        ];
        for (side, cpu_s, per_request, mem) in sides {
            let mut push = |name: &str, v: Option<f64>| {
                if let Some(v) = v {
                    out.push((format!("{key}.{side}.{name}"), v));
                }
            };
            push("cpu_s", cpu_s);
            push("cpu_us_per_request", per_request);
            push("vmrss_kib", mem.map(|m| m.vmrss_kib as f64));
            push("vmhwm_kib", mem.map(|m| m.vmhwm_kib as f64));
        }
    }
    out
}

fn flatten_pair(prefix: &str, pair: &Pair, out: &mut Vec<(String, f64)>) {
    let mesh = pair.server_proxy_mem_after.is_some();
    for (side, r) in [("direct", &pair.direct), ("proxy", &pair.proxy)] {
        let mut push = |name: &str, v: Option<f64>| {
            if let Some(v) = v {
                out.push((format!("{prefix}.{side}.{name}"), v));
            }
        };
        push_percentiles(&mut push, "latency", &r.latency_us);
        push("achieved_rps", Some(r.achieved_rps));
        push("requests", Some(r.requests as f64));
        push("errors", Some(r.errors as f64));
        push("loadgen_cpu_us_per_request", r.loadgen_cpu_us_per_request);
        push("backend_cpu_s", r.cpu.backend_cpu_s);
        push("machine_busy_pct", r.cpu.machine_busy_pct);
        push("steal_pct", r.cpu.steal_pct);
        if side == "proxy" && !mesh {
            push("cpu_s", r.cpu.proxy_cpu_s);
            push("cpu_us_per_request", r.proxy_cpu_us_per_request);
            push("vmrss_kib", Some(pair.proxy_mem_after.vmrss_kib as f64));
            push("vmhwm_kib", Some(pair.proxy_mem_after.vmhwm_kib as f64));
        }
    }
    let mut push = |name: &str, v: Option<f64>| {
        if let Some(v) = v {
            out.push((format!("{prefix}.added.{name}"), v));
        }
    };
    push_percentiles(&mut push, "latency", &pair.added_latency_us);
}

fn push_percentiles(push: &mut impl FnMut(&str, Option<f64>), name: &str, p: &Percentiles) {
    push(&format!("{name}_p50_us"), Some(p.p50));
    push(&format!("{name}_p90_us"), Some(p.p90));
    push(&format!("{name}_p99_us"), Some(p.p99));
    push(&format!("{name}_p999_us"), Some(p.p999));
    push(&format!("{name}_max_us"), Some(p.max));
}

/// Median of every flattened metric over the runs.
pub fn medians(runs: &[RunResult]) -> BTreeMap<String, f64> {
    let mut all: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for run in runs {
        for (k, v) in flatten(run) {
            all.entry(k).or_default().push(v);
        }
    }
    all.into_iter()
        .map(|(k, mut vs)| {
            vs.sort_by(f64::total_cmp);
            let n = vs.len();
            let median = if n % 2 == 1 {
                vs[n / 2]
            } else {
                (vs[n / 2 - 1] + vs[n / 2]) / 2.0
            };
            (k, median)
        })
        .collect()
}

/// Human-readable comparison table built from the medians.
pub fn compare_text(report: &CompareReport) -> String {
    let p = &report.params;
    let m = |k: &str| report.median.get(k).copied();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wisp-bench compare: {}, Host {}, {} connections, {} s per phase (+{} s warm-up), \
         {} run(s){}, {} CPUs",
        protocol_label(p.protocol),
        p.host,
        p.connections,
        p.duration_s,
        p.warmup_s,
        p.runs,
        if p.runs > 1 { ", medians" } else { "" },
        p.ncpu
    );
    let mesh = p.topology != "single";
    if mesh {
        let _ = writeln!(
            out,
            "topology {}: load -> client proxy -> server proxy ({}) -> backend; \
             proxy {} (LINKERD2_PROXY_CORES={})",
            p.topology,
            if p.topology == "mesh" {
                "mTLS"
            } else {
                "plaintext, identity disabled"
            },
            p.proxy_bin,
            p.proxy_cores
        );
        for side in ["client", "server"] {
            let key = |name: &str| m(&format!("idle.proxy_{side}.{name}"));
            let _ = writeln!(
                out,
                "{side} proxy: ready after {} ms; idle VmRSS {} MiB, VmHWM {} MiB, {} threads",
                opt(m(&format!("proxy_{side}.startup_ms")), 0),
                opt(key("vmrss_kib").map(|v| v / 1024.0), 1),
                opt(key("vmhwm_kib").map(|v| v / 1024.0), 1),
                opt(key("threads"), 0)
            );
        }
    } else {
        let _ = writeln!(
            out,
            "proxy {} (LINKERD2_PROXY_CORES={}): ready after {} ms; idle VmRSS {} MiB, VmHWM {} MiB, {} threads",
            p.proxy_bin,
            p.proxy_cores,
            opt(m("proxy_startup_ms"), 0),
            opt(m("idle.vmrss_kib").map(|v| v / 1024.0), 1),
            opt(m("idle.vmhwm_kib").map(|v| v / 1024.0), 1),
            opt(m("idle.threads"), 0)
        );
    }
    if p.profile_routes.is_some() || p.split.is_some() {
        let routes = p
            .profile_routes
            .map(|n| format!("ServiceProfile with {n} route(s), the last matching every request"));
        let split = p
            .split
            .as_ref()
            .map(|s| format!("TrafficSplit bench/bench-v2 {s} (same backend)"));
        let parts: Vec<String> = routes.into_iter().chain(split).collect();
        let _ = writeln!(out, "profile: {} (checked in effect)", parts.join("; "));
    }
    for &rate in &p.rates {
        let key = rate_key(rate);
        let _ = writeln!(out, "\n== {rate} req/s ==");
        pair_table(&mut out, &key, &m, mesh);
    }
    if let (Some(conns), Some(secs)) = (p.max_connections, p.max_duration_s) {
        let _ = writeln!(
            out,
            "\n== closed-loop max throughput: {conns} connections, {secs} s =="
        );
        pair_table(&mut out, "max", &m, mesh);
    }
    out
}

fn pair_table(out: &mut String, key: &str, m: &dyn Fn(&str) -> Option<f64>, mesh: bool) {
    let get = |side: &str, name: &str| m(&format!("{key}.{side}.{name}"));
    let _ = writeln!(
        out,
        "{:<26}{:>12}{:>12}{:>12}",
        "",
        "direct",
        if mesh { "2 proxies" } else { "proxy" },
        "added"
    );
    for (label, name) in [
        ("p50 ms", "latency_p50_us"),
        ("p90 ms", "latency_p90_us"),
        ("p99 ms", "latency_p99_us"),
        ("p99.9 ms", "latency_p999_us"),
        ("max ms", "latency_max_us"),
    ] {
        let cell = |side: &str| opt(get(side, name).map(|v| v / 1000.0), 3);
        let added = get("added", name).map_or("-".to_string(), |v| format!("{:+.3}", v / 1000.0));
        let _ = writeln!(
            out,
            "{label:<26}{:>12}{:>12}{added:>12}",
            cell("direct"),
            cell("proxy")
        );
    }
    let row = |out: &mut String, label: &str, name: &str, decimals: usize| {
        let _ = writeln!(
            out,
            "{label:<26}{:>12}{:>12}",
            opt(get("direct", name), decimals),
            opt(get("proxy", name), decimals)
        );
    };
    row(out, "achieved req/s", "achieved_rps", 1);
    row(out, "errors", "errors", 0);
    row(
        out,
        "loadgen CPU µs/request",
        "loadgen_cpu_us_per_request",
        1,
    );
    let sides: &[(&str, &str)] = if mesh {
        &[
            ("proxy_client", "client proxy"),
            ("proxy_server", "server proxy"),
        ]
    } else {
        &[("proxy", "proxy")]
    };
    for &(side, label) in sides {
        let _ = writeln!(
            out,
            "{:<26}{:>12}{:>12}  ({} CPU s)",
            format!("{label} CPU µs/request"),
            "",
            opt(get(side, "cpu_us_per_request"), 1),
            opt(get(side, "cpu_s"), 2)
        );
    }
    for &(side, label) in sides {
        let _ = writeln!(
            out,
            "{:<26}{:>12}{:>12}",
            format!("{label} VmRSS/VmHWM MiB"),
            "",
            format!(
                "{}/{}",
                opt(get(side, "vmrss_kib").map(|v| v / 1024.0), 1),
                opt(get(side, "vmhwm_kib").map(|v| v / 1024.0), 1)
            )
        );
    }
}
