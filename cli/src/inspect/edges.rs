//! `wisp edges [TARGET...]`: who talks to whom, and whether over mTLS.
//!
//! An edge is seen from both ends. The client proxy's outbound series
//! (`response_total`, `tcp_open_total` with `peer="dst"`) name the
//! destination (`dst_deployment`, else `dst_pod`, else `authority`, else
//! `target_addr`), its namespace (`dst_namespace`) and the identity the
//! server proved (`server_id`, with `tls="true"`). The server proxy's
//! inbound series carry the identity the client proved (`client_id`). The
//! two are joined, as `linkerd viz edges` does, when the server proxy was
//! scraped too (same pod IP or same workload name) and the client identity
//! is in the client's namespace (and its service account, when known).
//! Inbound mTLS connections from clients that were not scraped become
//! edges whose source is the service-account name of the client identity.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{collect, workload_name, Output, ProxyMetrics, Series, WindowArgs};
use crate::target::{Kind, ProxyTarget, TargetArgs, TargetSpec};

/// `wisp edges` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Proxies to read (`deploy/NAME`, `pod/NAME`, `ns/NAME`, `HOST:PORT`,
    /// or a kind alone: `deploy`, `po` — as `linkerd viz edges deploy`);
    /// default: every meshed pod of the namespace. With `po` or `pod/NAME`
    /// targets both ends are named by pod, else by workload.
    targets: Vec<String>,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    window: WindowArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
}

/// One edge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// The client workload.
    pub src: String,
    /// The server workload.
    pub dst: String,
    /// Namespace of `src`.
    pub src_namespace: String,
    /// Namespace of `dst`.
    pub dst_namespace: String,
    /// The identity the client proved, as the server saw it.
    pub client_id: String,
    /// The identity the server proved, as the client saw it.
    pub server_id: String,
    /// Whether the traffic is mTLS.
    pub secured: bool,
    /// Why not, when it is not (`no_tls_reason`).
    pub no_tls_reason: String,
}

/// The whole answer.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Edges, sorted.
    pub edges: Vec<Edge>,
}

/// Runs `wisp edges`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let specs = if args.targets.is_empty() {
        vec!["deploy".to_string()]
    } else {
        args.targets.clone()
    };
    let level = if specs.iter().any(|s| {
        matches!(
            TargetSpec::parse(s),
            Ok(TargetSpec::Pod(_) | TargetSpec::Every(Kind::Pod))
        )
    }) {
        Level::Pod
    } else {
        Level::Workload
    };
    let targets = args.target.resolve_all(&specs)?;
    let metrics = collect(targets, args.window.window)?;
    let report = Report {
        edges: edges(&metrics, level),
    };
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

/// `sa.ns.serviceaccount.identity...` as `(sa, ns)`.
pub fn identity_parts(id: &str) -> Option<(&str, &str)> {
    let mut parts = id.split('.');
    let sa = parts.next()?;
    let ns = parts.next()?;
    (!sa.is_empty() && !ns.is_empty()).then_some((sa, ns))
}

fn is_edge_series(s: &Series, direction: &str) -> bool {
    s.label("direction") == direction
        && s.value > 0.0
        && match s.name.as_str() {
            "response_total" | "request_total" => true,
            "tcp_open_total" => {
                s.label("peer")
                    == if direction == "outbound" {
                        "dst"
                    } else {
                        "src"
                    }
            }
            _ => false,
        }
}

fn dst_name(s: &Series) -> String {
    for (label, prefix) in [("dst_deployment", "deploy/"), ("dst_pod", "pod/")] {
        let v = s.label(label);
        if !v.is_empty() {
            return format!("{prefix}{v}");
        }
    }
    for label in ["authority", "target_addr"] {
        let v = s.label(label);
        if !v.is_empty() {
            return v.to_string();
        }
    }
    String::new()
}

/// How `wisp edges` names the ends of an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// By workload: `deploy/APP` (`linkerd viz edges deploy`).
    Workload,
    /// By pod: `pod/NAME` (`linkerd viz edges po`).
    Pod,
}

/// A scraped proxy's name at `level` (an address target keeps its address).
fn end_name(level: Level, t: &ProxyTarget) -> String {
    match level {
        Level::Workload => workload_name(t),
        Level::Pod if t.labels.is_empty() => t.name.clone(),
        Level::Pod => format!("pod/{}", t.name),
    }
}

/// The edge's destination: [`dst_name`], except that by pod a `dst_pod`
/// label names it, and by workload a `dst_pod` this command scraped (same
/// pod name and namespace) is named as its workload (`deploy/APP`), as
/// `wisp stat` names it, when the series has no `dst_deployment` (pods
/// without an owning Deployment, e.g. universal mode).
fn dst_of(s: &Series, metrics: &[ProxyMetrics], level: Level) -> String {
    let (pod, ns) = (s.label("dst_pod"), s.label("dst_namespace"));
    if level == Level::Pod && !pod.is_empty() {
        return format!("pod/{pod}");
    }
    if s.label("dst_deployment").is_empty() && !pod.is_empty() {
        let scraped = metrics.iter().find(|m| {
            !m.target.labels.is_empty()
                && m.target.name == pod
                && (ns.is_empty() || ns == m.target.namespace)
        });
        if let Some(m) = scraped {
            return workload_name(&m.target);
        }
    }
    dst_name(s)
}

#[derive(Default)]
struct Outbound {
    server_ids: BTreeSet<String>,
    secured: bool,
    no_tls_reason: String,
    target_ips: BTreeSet<String>,
}

/// Every edge seen by the proxies of `metrics`, its ends named at `level`.
pub fn edges(metrics: &[ProxyMetrics], level: Level) -> Vec<Edge> {
    // (src proxy index, dst, dst_ns) -> what the client saw.
    let mut outbound: BTreeMap<(usize, String, String), Outbound> = BTreeMap::new();
    // (server proxy index, client_id) of mTLS inbound traffic.
    let mut inbound: BTreeSet<(usize, String)> = BTreeSet::new();
    for (i, m) in metrics.iter().enumerate() {
        for s in &m.series {
            if is_edge_series(s, "outbound") {
                let dst = dst_of(s, metrics, level);
                if dst.is_empty() {
                    continue;
                }
                let o = outbound
                    .entry((i, dst, s.label("dst_namespace").to_string()))
                    .or_default();
                if s.label("tls") == "true" {
                    o.secured = true;
                    if !s.label("server_id").is_empty() {
                        o.server_ids.insert(s.label("server_id").to_string());
                    }
                } else if o.no_tls_reason.is_empty() {
                    o.no_tls_reason = match s.label("no_tls_reason") {
                        "" => s.label("tls").to_string(),
                        r => r.to_string(),
                    };
                }
                if !s.label("target_ip").is_empty() {
                    o.target_ips.insert(s.label("target_ip").to_string());
                }
            } else if is_edge_series(s, "inbound")
                && s.label("tls") == "true"
                && !s.label("client_id").is_empty()
            {
                inbound.insert((i, s.label("client_id").to_string()));
            }
        }
    }
    let mut used: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut out = Vec::new();
    for ((i, dst, dst_ns), o) in outbound {
        let src = &metrics[i].target;
        // The scraped proxies this edge lands on.
        let servers: Vec<usize> = metrics
            .iter()
            .enumerate()
            .filter(|(j, m)| {
                *j != i
                    && (o.target_ips.contains(&m.target.ip().to_string())
                        || (end_name(level, &m.target) == dst
                            && (dst_ns.is_empty() || dst_ns == m.target.namespace)))
            })
            .map(|(j, _)| j)
            .collect();
        let mut client_ids = BTreeSet::new();
        for (j, id) in &inbound {
            if !servers.contains(j) {
                continue;
            }
            let Some((sa, ns)) = identity_parts(id) else {
                continue;
            };
            let sa_ok = src.service_account.as_deref().is_none_or(|want| want == sa);
            if ns == src.namespace && sa_ok {
                client_ids.insert(id.clone());
                used.insert((*j, id.clone()));
            }
        }
        let client_id = client_ids.into_iter().collect::<Vec<_>>().join(",");
        out.push(Edge {
            src: end_name(level, src),
            dst,
            src_namespace: src.namespace.clone(),
            dst_namespace: dst_ns,
            secured: o.secured && (servers.is_empty() || !client_id.is_empty()),
            client_id,
            server_id: o.server_ids.into_iter().collect::<Vec<_>>().join(","),
            no_tls_reason: if o.secured {
                String::new()
            } else {
                o.no_tls_reason
            },
        });
    }
    for (j, id) in inbound {
        if used.contains(&(j, id.clone())) {
            continue;
        }
        let (sa, ns) = identity_parts(&id).unwrap_or((&id, ""));
        let server = &metrics[j].target;
        out.push(Edge {
            src: sa.to_string(),
            dst: end_name(level, server),
            src_namespace: ns.to_string(),
            dst_namespace: server.namespace.clone(),
            client_id: id.clone(),
            server_id: String::new(),
            secured: true,
            no_tls_reason: String::new(),
        });
    }
    out.sort_by(|a, b| {
        (&a.src_namespace, &a.src, &a.dst_namespace, &a.dst).cmp(&(
            &b.src_namespace,
            &b.src,
            &b.dst_namespace,
            &b.dst,
        ))
    });
    out.dedup();
    out
}

/// The table, as `linkerd viz edges` prints it: `SRC DST SRC_NS DST_NS
/// SECURED`; `wide` adds `CLIENT_ID` and `SERVER_ID`, shortened to their
/// first two labels (`sa.ns`).
fn print(report: &Report, wide: bool) {
    let short = |id: &str| match identity_parts(id) {
        Some((sa, ns)) => format!("{sa}.{ns}"),
        None => or_dash(id),
    };
    let rows: Vec<Vec<String>> = report
        .edges
        .iter()
        .map(|e| {
            let mut row = vec![
                e.src.clone(),
                e.dst.clone(),
                e.src_namespace.clone(),
                e.dst_namespace.clone(),
            ];
            if wide {
                row.extend([short(&e.client_id), short(&e.server_id)]);
            }
            row.push(if e.secured {
                "√".to_string()
            } else {
                format!("× {}", e.no_tls_reason)
            });
            row
        })
        .collect();
    let mut header = vec!["SRC", "DST", "SRC_NS", "DST_NS"];
    if wide {
        header.extend(["CLIENT_ID", "SERVER_ID"]);
    }
    header.push("SECURED");
    super::print_table(&header, &rows);
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::address_target;

    fn series(name: &str, labels: &[(&str, &str)], value: f64) -> Series {
        Series {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    #[test]
    fn joins_client_and_server_views() {
        let mut client = address_target(
            "127.0.0.1:4191",
            "127.0.0.1:4191".parse().expect("addr"),
            "default",
        );
        client.service_account = Some("client".into());
        let server = address_target(
            "127.0.0.2:4191",
            "127.0.0.2:4191".parse().expect("addr"),
            "default",
        );
        let metrics = vec![
            ProxyMetrics {
                target: client,
                seconds: 1.0,
                series: vec![series(
                    "response_total",
                    &[
                        ("direction", "outbound"),
                        ("dst_pod", "web-1"),
                        ("dst_namespace", "default"),
                        ("target_ip", "127.0.0.2"),
                        ("tls", "true"),
                        (
                            "server_id",
                            "web.default.serviceaccount.identity.linkerd.cluster.local",
                        ),
                    ],
                    3.0,
                )],
            },
            ProxyMetrics {
                target: server,
                seconds: 1.0,
                series: vec![
                    series(
                        "response_total",
                        &[
                            ("direction", "inbound"),
                            ("tls", "true"),
                            (
                                "client_id",
                                "client.default.serviceaccount.identity.linkerd.cluster.local",
                            ),
                        ],
                        3.0,
                    ),
                    series(
                        "tcp_open_total",
                        &[
                            ("direction", "inbound"),
                            ("peer", "src"),
                            ("tls", "true"),
                            (
                                "client_id",
                                "other.prod.serviceaccount.identity.linkerd.cluster.local",
                            ),
                        ],
                        1.0,
                    ),
                ],
            },
        ];
        let edges = edges(&metrics, Level::Workload);
        assert_eq!(
            edges,
            [
                Edge {
                    src: "127.0.0.1:4191".into(),
                    dst: "pod/web-1".into(),
                    src_namespace: "default".into(),
                    dst_namespace: "default".into(),
                    client_id: "client.default.serviceaccount.identity.linkerd.cluster.local"
                        .into(),
                    server_id: "web.default.serviceaccount.identity.linkerd.cluster.local".into(),
                    secured: true,
                    no_tls_reason: String::new(),
                },
                Edge {
                    src: "other".into(),
                    dst: "127.0.0.2:4191".into(),
                    src_namespace: "prod".into(),
                    dst_namespace: "default".into(),
                    client_id: "other.prod.serviceaccount.identity.linkerd.cluster.local".into(),
                    server_id: String::new(),
                    secured: true,
                    no_tls_reason: String::new(),
                },
            ]
        );
    }

    #[test]
    fn a_scraped_destination_pod_is_named_as_its_workload() {
        let mut client =
            address_target("client", "127.0.0.1:4191".parse().expect("addr"), "default");
        client.labels.insert("app".into(), "client".into());
        let mut server =
            address_target("web-1", "127.0.0.2:4191".parse().expect("addr"), "default");
        server.labels.insert("app".into(), "web".into());
        let to = |pod: &str, deployment: &str| {
            series(
                "response_total",
                &[
                    ("direction", "outbound"),
                    ("dst_pod", pod),
                    ("dst_deployment", deployment),
                    ("dst_namespace", "default"),
                    ("tls", "true"),
                ],
                1.0,
            )
        };
        let metrics = [
            ProxyMetrics {
                target: client,
                seconds: 1.0,
                series: vec![to("web-1", ""), to("web-2", ""), to("web-1", "web-deploy")],
            },
            ProxyMetrics {
                target: server,
                seconds: 1.0,
                series: vec![],
            },
        ];
        let dsts: Vec<String> = edges(&metrics, Level::Workload)
            .into_iter()
            .map(|e| e.dst)
            .collect();
        // web-1 was scraped: its workload; web-2 was not: the pod; a
        // dst_deployment label wins.
        assert_eq!(dsts, ["deploy/web", "deploy/web-deploy", "pod/web-2"]);
        // By pod (`edges po`): both ends are pods.
        let by_pod: Vec<(String, String)> = edges(&metrics, Level::Pod)
            .into_iter()
            .map(|e| (e.src, e.dst))
            .collect();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            by_pod,
            [
                pair("pod/client", "pod/web-1"),
                pair("pod/client", "pod/web-2")
            ]
        );
    }
}
