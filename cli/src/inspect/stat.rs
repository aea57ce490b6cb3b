//! `wisp stat TARGET...`: per workload, what its proxies served (inbound);
//! per authority, what they sent (outbound).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{collect, Figures, Golden, Output, ProxyMetrics, WindowArgs};
use crate::target::{ProxyTarget, TargetArgs, TargetSpec};

/// `wisp stat` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Targets: `deploy/NAME`, `pod/NAME`, `ns/NAME` or a proxy admin
    /// `HOST:PORT`.
    #[arg(required = true)]
    targets: Vec<String>,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    window: WindowArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
}

/// One workload row.
#[derive(Debug, Serialize)]
pub struct WorkloadRow {
    /// `deploy/NAME`, `pod/NAME` or the address given.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Proxies scraped.
    pub meshed: usize,
    /// Proxies resolved.
    pub pods: usize,
    /// Open inbound TCP connections (`tcp_open_connections`, peer="src").
    pub tcp_connections: u64,
    /// Inbound golden figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// One (workload, authority) row.
#[derive(Debug, Serialize)]
pub struct AuthorityRow {
    /// The workload row that sent the requests.
    pub from: String,
    /// Namespace of `from`.
    pub namespace: String,
    /// The `authority` label (or `target_addr` without one).
    pub authority: String,
    /// Open outbound TCP connections to it (peer="dst").
    pub tcp_connections: u64,
    /// Outbound golden figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// The whole answer.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Longest window over which a row was measured, seconds.
    pub window_seconds: f64,
    /// Per workload.
    pub workloads: Vec<WorkloadRow>,
    /// Per workload and authority.
    pub authorities: Vec<AuthorityRow>,
}

/// Runs `wisp stat`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let groups = args.target.resolve_each(&args.targets)?;
    let mut rows: Vec<(String, String, Vec<ProxyTarget>)> = Vec::new();
    for (spec, targets) in groups {
        match TargetSpec::parse(&spec)? {
            TargetSpec::Namespace(_) => {
                for t in targets {
                    let name = super::workload_name(&t);
                    match rows.iter_mut().find(|r| r.0 == name && r.1 == t.namespace) {
                        Some(row) => row.2.push(t),
                        None => rows.push((name, t.namespace.clone(), vec![t])),
                    }
                }
            }
            TargetSpec::Pod(name) => rows.push((
                format!("pod/{name}"),
                args.target.namespace.clone(),
                targets,
            )),
            TargetSpec::Deployment(name) => rows.push((
                format!("deploy/{name}"),
                args.target.namespace.clone(),
                targets,
            )),
            TargetSpec::Address(_) => {
                rows.push((spec.clone(), args.target.namespace.clone(), targets))
            }
        }
    }
    let all: Vec<ProxyTarget> = rows.iter().flat_map(|r| r.2.iter().cloned()).collect();
    let metrics = collect(all, args.window.window)?;
    let report = report(&rows, &metrics);
    match args.output {
        Output::Json => super::print_json(&report),
        _ => {
            print(&report);
            Ok(())
        }
    }
}

/// Builds the report from rows of `(name, namespace, proxies)`.
pub fn report(rows: &[(String, String, Vec<ProxyTarget>)], metrics: &[ProxyMetrics]) -> Report {
    let mut workloads = Vec::new();
    let mut authorities = Vec::new();
    let mut window: f64 = 0.0;
    for (name, namespace, targets) in rows {
        let scraped: Vec<&ProxyMetrics> = metrics
            .iter()
            .filter(|m| targets.iter().any(|t| t.admin == m.target.admin))
            .collect();
        let mut inbound = Golden::default();
        let mut tcp = 0.0;
        let mut by_authority: BTreeMap<String, (Golden, f64)> = BTreeMap::new();
        for m in &scraped {
            window = window.max(m.seconds);
            inbound.window(m.seconds);
            for s in &m.series {
                let direction = s.label("direction");
                let authority = || {
                    let a = s.label("authority");
                    if a.is_empty() {
                        s.label("target_addr").to_string()
                    } else {
                        a.to_string()
                    }
                };
                match (s.name.as_str(), direction) {
                    ("response_total", "inbound") => inbound.add_response(s),
                    ("response_latency_ms_bucket", "inbound") => inbound.add_bucket(s),
                    ("tcp_open_connections", "inbound") if s.label("peer") == "src" => {
                        tcp += s.value
                    }
                    ("response_total", "outbound") => {
                        let e = by_authority.entry(authority()).or_default();
                        e.0.window(m.seconds);
                        e.0.add_response(s);
                    }
                    ("response_latency_ms_bucket", "outbound") => {
                        by_authority.entry(authority()).or_default().0.add_bucket(s)
                    }
                    ("tcp_open_connections", "outbound") if s.label("peer") == "dst" => {
                        by_authority.entry(authority()).or_default().1 += s.value
                    }
                    _ => {}
                }
            }
        }
        workloads.push(WorkloadRow {
            name: name.clone(),
            namespace: namespace.clone(),
            meshed: scraped.len(),
            pods: targets.len(),
            tcp_connections: tcp as u64,
            figures: inbound.figures(),
        });
        for (authority, (golden, tcp)) in by_authority {
            if authority.is_empty() {
                continue;
            }
            authorities.push(AuthorityRow {
                from: name.clone(),
                namespace: namespace.clone(),
                authority,
                tcp_connections: tcp as u64,
                figures: golden.figures(),
            });
        }
    }
    Report {
        window_seconds: window,
        workloads,
        authorities,
    }
}

fn print(report: &Report) {
    use super::{percent, print_table};
    let rows: Vec<Vec<String>> = report
        .workloads
        .iter()
        .map(|w| {
            let mut row = vec![
                w.namespace.clone(),
                w.name.clone(),
                format!("{}/{}", w.meshed, w.pods),
            ];
            row.extend(w.figures.rate_cells());
            row.extend(w.figures.latency_cells());
            row.extend([w.tcp_connections.to_string(), percent(w.figures.mtls_share)]);
            row
        })
        .collect();
    print_table(
        &[
            "NAMESPACE",
            "NAME",
            "MESHED",
            "SUCCESS",
            "RPS",
            "LATENCY_P50",
            "LATENCY_P95",
            "LATENCY_P99",
            "TCP_CONN",
            "MTLS",
        ],
        &rows,
    );
    if report.authorities.is_empty() {
        return;
    }
    println!();
    let rows: Vec<Vec<String>> = report
        .authorities
        .iter()
        .map(|a| {
            let mut row = vec![a.from.clone(), a.authority.clone()];
            row.extend(a.figures.rate_cells());
            row.extend(a.figures.latency_cells());
            row.extend([a.tcp_connections.to_string(), percent(a.figures.mtls_share)]);
            row
        })
        .collect();
    print_table(
        &[
            "FROM",
            "AUTHORITY",
            "SUCCESS",
            "RPS",
            "LATENCY_P50",
            "LATENCY_P95",
            "LATENCY_P99",
            "TCP_CONN",
            "MTLS",
        ],
        &rows,
    );
}
