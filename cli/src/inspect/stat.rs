//! `wisp stat TARGET...`: per workload, what its proxies served (inbound);
//! per authority, what they sent (outbound).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{collect, Figures, Golden, Output, ProxyMetrics, WindowArgs};
use crate::target::{Kind, ProxyTarget, TargetArgs, TargetSpec};

/// `wisp stat` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Targets: `deploy/NAME`, `pod/NAME`, `ns/NAME`, a kind alone
    /// (`deploy`, `po`, `ns`: a row per resource) or a proxy admin
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
    /// Bytes per second the proxies read from their clients
    /// (`tcp_read_bytes_total`, inbound, peer="src").
    pub tcp_read_bytes_rate: f64,
    /// Bytes per second written to the clients (`tcp_write_bytes_total`).
    pub tcp_write_bytes_rate: f64,
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
    /// Bytes per second read from it (`tcp_read_bytes_total`, outbound,
    /// peer="dst").
    pub tcp_read_bytes_rate: f64,
    /// Bytes per second written to it (`tcp_write_bytes_total`).
    pub tcp_write_bytes_rate: f64,
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
    let rows = rows(groups, &args.target.namespace)?;
    let all: Vec<ProxyTarget> = rows.iter().flat_map(|r| r.2.iter().cloned()).collect();
    let metrics = collect(all, args.window.window)?;
    let report = report(&rows, &metrics);
    match args.output {
        Output::Json => super::print_json(&report),
        Output::Table => {
            print(&report, false);
            Ok(())
        }
        Output::Wide => {
            print(&report, true);
            Ok(())
        }
    }
}

/// A row to measure: its name, namespace and proxies.
pub type Row = (String, String, Vec<ProxyTarget>);

/// The rows of `wisp stat`, as `linkerd viz stat` makes them: one per named
/// target (`pod/NAME`, `deploy/NAME`, `ns/NAME` — a namespace is one row —
/// or the address given); a kind alone makes one row per resource of that
/// kind among its proxies: `deploy` by workload (`deploy/APP` from the
/// pods' `app` label, else `pod/NAME`), `po` per pod, `ns` per namespace.
/// `namespace` is `-n`.
pub fn rows(groups: Vec<(String, Vec<ProxyTarget>)>, namespace: &str) -> anyhow::Result<Vec<Row>> {
    let mut rows: Vec<Row> = Vec::new();
    let mut add = |name: String, ns: &str, t: ProxyTarget| match rows
        .iter_mut()
        .find(|r| r.0 == name && r.1 == ns)
    {
        Some(row) => row.2.push(t),
        None => rows.push((name, ns.to_string(), vec![t])),
    };
    for (spec, targets) in groups {
        let named = match TargetSpec::parse(&spec)? {
            TargetSpec::Every(kind) => {
                for t in targets {
                    let name = match kind {
                        Kind::Deployment => super::workload_name(&t),
                        Kind::Pod => format!("pod/{}", t.name),
                        Kind::Namespace => format!("ns/{}", t.namespace),
                    };
                    let ns = t.namespace.clone();
                    add(name, &ns, t);
                }
                continue;
            }
            TargetSpec::Namespace(ns) => (format!("ns/{ns}"), ns),
            TargetSpec::Pod(name) => (format!("pod/{name}"), namespace.to_string()),
            TargetSpec::Deployment(name) => (format!("deploy/{name}"), namespace.to_string()),
            TargetSpec::Address(_) => (spec.clone(), namespace.to_string()),
        };
        for t in targets {
            add(named.0.clone(), &named.1, t);
        }
    }
    Ok(rows)
}

/// TCP figures of a row: open connections (a gauge) and byte rates.
#[derive(Clone, Copy, Debug, Default)]
struct Tcp {
    connections: f64,
    read_rate: f64,
    write_rate: f64,
}

impl Tcp {
    /// Adds a `tcp_*` series of a proxy measured over `seconds`.
    fn add(&mut self, s: &super::Series, seconds: f64) {
        let rate = if seconds > 0.0 {
            s.value / seconds
        } else {
            0.0
        };
        match s.name.as_str() {
            "tcp_open_connections" => self.connections += s.value,
            "tcp_read_bytes_total" => self.read_rate += rate,
            "tcp_write_bytes_total" => self.write_rate += rate,
            _ => {}
        }
    }
}

fn is_tcp(name: &str) -> bool {
    matches!(
        name,
        "tcp_open_connections" | "tcp_read_bytes_total" | "tcp_write_bytes_total"
    )
}

/// Builds the report from rows of `(name, namespace, proxies)`.
pub fn report(rows: &[Row], metrics: &[ProxyMetrics]) -> Report {
    let mut workloads = Vec::new();
    let mut authorities = Vec::new();
    let mut window: f64 = 0.0;
    for (name, namespace, targets) in rows {
        let scraped: Vec<&ProxyMetrics> = metrics
            .iter()
            .filter(|m| targets.iter().any(|t| t.admin == m.target.admin))
            .collect();
        let mut inbound = Golden::default();
        let mut tcp = Tcp::default();
        let mut by_authority: BTreeMap<String, (Golden, Tcp)> = BTreeMap::new();
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
                    (name, "inbound") if is_tcp(name) && s.label("peer") == "src" => {
                        tcp.add(s, m.seconds)
                    }
                    ("response_total", "outbound") => {
                        let e = by_authority.entry(authority()).or_default();
                        e.0.window(m.seconds);
                        e.0.add_response(s);
                    }
                    ("response_latency_ms_bucket", "outbound") => {
                        by_authority.entry(authority()).or_default().0.add_bucket(s)
                    }
                    (name, "outbound") if is_tcp(name) && s.label("peer") == "dst" => by_authority
                        .entry(authority())
                        .or_default()
                        .1
                        .add(s, m.seconds),
                    _ => {}
                }
            }
        }
        workloads.push(WorkloadRow {
            name: name.clone(),
            namespace: namespace.clone(),
            meshed: scraped.len(),
            pods: targets.len(),
            tcp_connections: tcp.connections as u64,
            tcp_read_bytes_rate: tcp.read_rate,
            tcp_write_bytes_rate: tcp.write_rate,
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
                tcp_connections: tcp.connections as u64,
                tcp_read_bytes_rate: tcp.read_rate,
                tcp_write_bytes_rate: tcp.write_rate,
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

/// `866.3B/s`, as Linkerd prints byte rates.
fn bytes_rate(v: f64) -> String {
    format!("{v:.1}B/s")
}

/// The table (`wide`: plus `READ_BYTES/SEC` and `WRITE_BYTES/SEC`, as
/// `linkerd viz stat -o wide`).
fn print(report: &Report, wide: bool) {
    use super::{percent, print_table};
    let tcp_cells = |read: f64, write: f64| {
        if wide {
            vec![bytes_rate(read), bytes_rate(write)]
        } else {
            Vec::new()
        }
    };
    let header = |first: &[&'static str]| {
        let mut h: Vec<&str> = first.to_vec();
        h.extend([
            "SUCCESS",
            "RPS",
            "LATENCY_P50",
            "LATENCY_P95",
            "LATENCY_P99",
            "TCP_CONN",
            "MTLS",
        ]);
        if wide {
            h.extend(["READ_BYTES/SEC", "WRITE_BYTES/SEC"]);
        }
        h
    };
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
            row.extend(tcp_cells(w.tcp_read_bytes_rate, w.tcp_write_bytes_rate));
            row
        })
        .collect();
    print_table(&header(&["NAMESPACE", "NAME", "MESHED"]), &rows);
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
            row.extend(tcp_cells(a.tcp_read_bytes_rate, a.tcp_write_bytes_rate));
            row
        })
        .collect();
    print_table(&header(&["FROM", "AUTHORITY"]), &rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::address_target;

    fn pod(name: &str, ns: &str, app: &str) -> ProxyTarget {
        let mut t = address_target(name, "127.0.0.1:4191".parse().expect("addr"), ns);
        t.labels.insert("app".into(), app.into());
        t
    }

    fn names(rows: &[Row]) -> Vec<(String, String, usize)> {
        rows.iter()
            .map(|(name, ns, t)| (name.clone(), ns.clone(), t.len()))
            .collect()
    }

    #[test]
    fn rows_as_linkerd_viz_stat_makes_them() {
        let pods = || {
            vec![
                pod("web-1", "default", "web"),
                pod("web-2", "default", "web"),
                pod("api-1", "prod", "api"),
            ]
        };
        let row = |n: &str, ns: &str, k: usize| (n.to_string(), ns.to_string(), k);
        let of = |spec: &str| rows(vec![(spec.to_string(), pods())], "default").expect(spec);
        // A kind alone: a row per resource of that kind.
        assert_eq!(
            names(&of("deploy")),
            [
                row("deploy/web", "default", 2),
                row("deploy/api", "prod", 1)
            ]
        );
        assert_eq!(
            names(&of("po")),
            [
                row("pod/web-1", "default", 1),
                row("pod/web-2", "default", 1),
                row("pod/api-1", "prod", 1)
            ]
        );
        assert_eq!(
            names(&of("ns")),
            [row("ns/default", "default", 2), row("ns/prod", "prod", 1)]
        );
        // A named target: one row, a namespace included.
        assert_eq!(names(&of("ns/default")), [row("ns/default", "default", 3)]);
        assert_eq!(names(&of("deploy/web")), [row("deploy/web", "default", 3)]);
    }
}
