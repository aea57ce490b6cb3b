//! `wisp routes TARGET [--to SVC]`: per ServiceProfile route, what the
//! target's proxies sent (the outbound `route_*` families).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{collect, Figures, Golden, Output, ProxyMetrics, WindowArgs};
use crate::target::TargetArgs;

/// The row of requests that matched no route of the profile.
pub const DEFAULT_ROUTE: &str = "[DEFAULT]";

/// `wisp routes` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Target: `deploy/NAME`, `pod/NAME`, `ns/NAME` or a proxy admin
    /// `HOST:PORT`.
    target: String,
    /// Only routes of this service: `svc/NAME`, `NAME` (in `-n`'s
    /// namespace), `FQDN` or `FQDN:PORT`.
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    targets: TargetArgs,
    #[command(flatten)]
    window: WindowArgs,
    /// Output format; `wide` adds effective (per request) and actual (per
    /// attempt, retries included) success and RPS.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
}

/// One route row.
#[derive(Debug, Serialize)]
pub struct RouteRow {
    /// The `rt_route` label, or `[DEFAULT]`.
    pub route: String,
    /// The `dst` label: the service's `fqdn:port`.
    pub service: String,
    /// Effective figures (per request: `route_response_total`,
    /// `route_response_latency_ms`).
    #[serde(flatten)]
    pub figures: Figures,
    /// Attempts (`route_actual_response_total`; retries included).
    pub actual_requests: u64,
    /// Attempts classified `success`.
    pub actual_successes: u64,
    /// `actual_successes / actual_requests`.
    pub actual_success_rate: Option<f64>,
    /// Attempts per second.
    pub actual_rps: f64,
}

/// The whole answer.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Longest window over which a row was measured, seconds.
    pub window_seconds: f64,
    /// Routes, by service then name; `[DEFAULT]` last.
    pub routes: Vec<RouteRow>,
}

/// Runs `wisp routes`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let targets = args
        .targets
        .resolve_all(std::slice::from_ref(&args.target))?;
    let metrics = collect(targets, args.window.window)?;
    let report = report(&metrics, args.to.as_deref(), &args.targets.namespace);
    match args.output {
        Output::Json => super::print_json(&report),
        Output::Wide => {
            print(&report, true);
            Ok(())
        }
        Output::Table => {
            print(&report, false);
            Ok(())
        }
    }
}

/// Whether the `dst` (or `authority`) `fqdn:port` is the service `to`.
pub fn dst_matches(dst: &str, to: &str, namespace: &str) -> bool {
    let to = to
        .strip_prefix("svc/")
        .or_else(|| to.strip_prefix("service/"))
        .unwrap_or(to);
    let (host, port) = dst.rsplit_once(':').unwrap_or((dst, ""));
    let (to_host, to_port) = match to.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (to, None),
    };
    if to_port.is_some_and(|p| p != port) {
        return false;
    }
    let to_host = to_host.trim_end_matches('.');
    host == to_host
        || host.starts_with(&format!("{to_host}.{namespace}."))
        || (to_host.contains('.') && host.starts_with(&format!("{to_host}.")))
}

#[derive(Default)]
struct Acc {
    effective: Golden,
    actual: Golden,
}

/// Builds the report: `route_*` series of every proxy, by `dst` and
/// `rt_route`, restricted to `to` if given. With `to` and no route series
/// for it (no profile lookup yet), the endpoint series of that authority
/// make up a `[DEFAULT]` row.
pub fn report(metrics: &[ProxyMetrics], to: Option<&str>, namespace: &str) -> Report {
    let mut acc: BTreeMap<(String, String), Acc> = BTreeMap::new();
    let mut window: f64 = 0.0;
    let keep = |dst: &str| to.is_none_or(|to| dst_matches(dst, to, namespace));
    for m in metrics {
        window = window.max(m.seconds);
        for s in &m.series {
            let route_family = matches!(
                s.name.as_str(),
                "route_request_total"
                    | "route_response_total"
                    | "route_response_latency_ms_bucket"
                    | "route_actual_response_total"
            );
            if !route_family || !keep(s.label("dst")) {
                continue;
            }
            let route = match s.label("rt_route") {
                "" => DEFAULT_ROUTE.to_string(),
                r => r.to_string(),
            };
            let a = acc.entry((s.label("dst").to_string(), route)).or_default();
            a.effective.window(m.seconds);
            a.actual.window(m.seconds);
            match s.name.as_str() {
                "route_response_total" => a.effective.add_response(s),
                "route_response_latency_ms_bucket" => a.effective.add_bucket(s),
                "route_actual_response_total" => a.actual.add_response(s),
                _ => {}
            }
        }
    }
    if acc.is_empty() {
        if let Some(to) = to {
            for m in metrics {
                for s in &m.series {
                    if s.label("direction") != "outbound"
                        || !dst_matches(s.label("authority"), to, namespace)
                    {
                        continue;
                    }
                    let a = acc
                        .entry((s.label("authority").to_string(), DEFAULT_ROUTE.to_string()))
                        .or_default();
                    a.effective.window(m.seconds);
                    a.actual.window(m.seconds);
                    match s.name.as_str() {
                        "response_total" => {
                            a.effective.add_response(s);
                            a.actual.add_response(s);
                        }
                        "response_latency_ms_bucket" => a.effective.add_bucket(s),
                        _ => {}
                    }
                }
            }
        }
    }
    let mut routes: Vec<RouteRow> = acc
        .into_iter()
        .map(|((service, route), a)| {
            let actual = a.actual.figures();
            RouteRow {
                route,
                service,
                figures: a.effective.figures(),
                actual_requests: actual.requests,
                actual_successes: actual.successes,
                actual_success_rate: actual.success_rate,
                actual_rps: actual.rps,
            }
        })
        .collect();
    routes.sort_by(|a, b| {
        (&a.service, a.route == DEFAULT_ROUTE, &a.route).cmp(&(
            &b.service,
            b.route == DEFAULT_ROUTE,
            &b.route,
        ))
    });
    Report {
        window_seconds: window,
        routes,
    }
}

fn print(report: &Report, wide: bool) {
    use super::{percent, print_table, rps};
    let rows: Vec<Vec<String>> = report
        .routes
        .iter()
        .map(|r| {
            let mut row = vec![r.route.clone(), r.service.clone()];
            row.extend(r.figures.rate_cells());
            if wide {
                row.extend([percent(r.actual_success_rate), rps(r.actual_rps)]);
            }
            row.extend(r.figures.latency_cells());
            row
        })
        .collect();
    let header: &[&str] = if wide {
        &[
            "ROUTE",
            "SERVICE",
            "EFFECTIVE_SUCCESS",
            "EFFECTIVE_RPS",
            "ACTUAL_SUCCESS",
            "ACTUAL_RPS",
            "LATENCY_P50",
            "LATENCY_P95",
            "LATENCY_P99",
        ]
    } else {
        &[
            "ROUTE",
            "SERVICE",
            "SUCCESS",
            "RPS",
            "LATENCY_P50",
            "LATENCY_P95",
            "LATENCY_P99",
        ]
    };
    print_table(header, &rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_matches_service_forms() {
        let dst = "web.default.svc.cluster.local:80";
        for to in [
            "web",
            "svc/web",
            "web.default",
            "web.default.svc.cluster.local",
            "web.default.svc.cluster.local:80",
            "web:80",
        ] {
            assert!(dst_matches(dst, to, "default"), "{to}");
        }
        for to in ["api", "web:8080", "svc/we", "web.other"] {
            assert!(!dst_matches(dst, to, "default"), "{to}");
        }
        assert!(!dst_matches(dst, "web", "other"));
    }
}
