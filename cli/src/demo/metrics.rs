//! Reading the proxies' own `/metrics`: the client proxy's outbound
//! `request_total` per `dst_pod` and per TLS mode, its ServiceProfile route
//! series (`route_request_total`, `route_response_total`,
//! `route_retryable_total`) per `rt_route`, the web proxies' inbound mTLS
//! requests by client identity, and the certificate expiry gauge.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::http_get::{self, HttpClient};

/// `GET http://ADDR/metrics` (a proxy's admin server), as text.
pub async fn scrape(
    client: &HttpClient,
    admin: SocketAddr,
    timeout: Duration,
) -> anyhow::Result<String> {
    let url = format!("http://{admin}/metrics");
    let reply = http_get::get(client, &url, None, timeout).await?;
    if !reply.status.is_success() {
        anyhow::bail!("GET {url} answered {}", reply.status);
    }
    Ok(String::from_utf8_lossy(&reply.body).into_owned())
}

/// Every series of metric `name` in `text` (labelled ones only): its
/// labels and value.
fn series<'a>(
    text: &'a str,
    name: &'a str,
) -> impl Iterator<Item = (BTreeMap<String, String>, u64)> + 'a {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (labels, value) = split_series(rest)?;
        let value = value.trim().parse::<f64>().ok()?;
        Some((parse_labels(labels), value as u64))
    })
}

/// Every `request_total` series of `text`: its labels and value.
fn request_totals(text: &str) -> impl Iterator<Item = (BTreeMap<String, String>, u64)> + '_ {
    series(text, "request_total")
}

/// What the client proxy counted for one ServiceProfile route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteCounts {
    /// `route_request_total`: requests (once each, however many attempts).
    pub requests: u64,
    /// `route_response_total{classification="success"}`.
    pub success: u64,
    /// `route_response_total{classification="failure"}`.
    pub failure: u64,
    /// Failures by status code.
    pub failure_statuses: BTreeMap<u16, u64>,
    /// Failures the proxy answered itself because the route timed out
    /// (`error="timeout"`).
    pub timeouts: u64,
    /// `route_retryable_total` without `skipped`: retries made.
    pub retries: u64,
    /// `route_retryable_total{skipped="no_budget"}`.
    pub retries_skipped: u64,
}

impl RouteCounts {
    /// Responses counted (success and failure).
    pub fn responses(&self) -> u64 {
        self.success + self.failure
    }

    /// What was counted since `earlier` (a reading of the same series).
    pub fn since(&self, earlier: &RouteCounts) -> RouteCounts {
        let mut failure_statuses = BTreeMap::new();
        for (&status, &n) in &self.failure_statuses {
            let before = earlier.failure_statuses.get(&status).copied().unwrap_or(0);
            if n > before {
                failure_statuses.insert(status, n - before);
            }
        }
        RouteCounts {
            requests: self.requests.saturating_sub(earlier.requests),
            success: self.success.saturating_sub(earlier.success),
            failure: self.failure.saturating_sub(earlier.failure),
            failure_statuses,
            timeouts: self.timeouts.saturating_sub(earlier.timeouts),
            retries: self.retries.saturating_sub(earlier.retries),
            retries_skipped: self.retries_skipped.saturating_sub(earlier.retries_skipped),
        }
    }
}

/// The outbound route series of logical service `dst` (`fqn:port`) by
/// `rt_route` (the default route, which has no `rt_route`, under `""`).
pub fn routes(text: &str, dst: &str) -> BTreeMap<String, RouteCounts> {
    let mut out: BTreeMap<String, RouteCounts> = BTreeMap::new();
    let ours = |labels: &BTreeMap<String, String>| {
        label(labels, "direction") == Some("outbound") && label(labels, "dst") == Some(dst)
    };
    let route = |labels: &BTreeMap<String, String>| {
        label(labels, "rt_route").unwrap_or_default().to_string()
    };
    for (labels, value) in series(text, "route_request_total").filter(|(l, _)| ours(l)) {
        out.entry(route(&labels)).or_default().requests += value;
    }
    for (labels, value) in series(text, "route_response_total").filter(|(l, _)| ours(l)) {
        let counts = out.entry(route(&labels)).or_default();
        if label(&labels, "classification") == Some("success") {
            counts.success += value;
        } else {
            counts.failure += value;
            let status = label(&labels, "status_code").and_then(|s| s.parse().ok());
            *counts
                .failure_statuses
                .entry(status.unwrap_or(0))
                .or_default() += value;
            if label(&labels, "error") == Some("timeout") {
                counts.timeouts += value;
            }
        }
    }
    for (labels, value) in series(text, "route_retryable_total").filter(|(l, _)| ours(l)) {
        let counts = out.entry(route(&labels)).or_default();
        if labels.contains_key("skipped") {
            counts.retries_skipped += value;
        } else {
            counts.retries += value;
        }
    }
    out
}

/// Turns successive [`routes`] readings into what was counted in between.
#[derive(Default)]
pub struct RouteMeter {
    last: Option<BTreeMap<String, RouteCounts>>,
}

impl RouteMeter {
    /// Takes a new reading (`None`: the scrape failed) and returns, per
    /// route, what was counted since the last one (`None` without one).
    pub fn update(
        &mut self,
        now: Option<BTreeMap<String, RouteCounts>>,
    ) -> Option<BTreeMap<String, RouteCounts>> {
        let now = now?;
        let last = self.last.replace(now.clone()).unwrap_or_default();
        Some(
            now.iter()
                .map(|(route, counts)| {
                    let before = last.get(route).cloned().unwrap_or_default();
                    (route.clone(), counts.since(&before))
                })
                .collect(),
        )
    }
}

fn label<'a>(labels: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    labels.get(key).map(String::as_str)
}

/// Sums `request_total{direction="outbound",...}` per `dst_pod` label
/// (series without one are summed under `"(none)"`).
pub fn outbound_requests_by_pod(text: &str) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for (labels, value) in request_totals(text) {
        if label(&labels, "direction") != Some("outbound") {
            continue;
        }
        let pod = label(&labels, "dst_pod").unwrap_or("(none)").to_string();
        *sums.entry(pod).or_default() += value;
    }
    sums
}

/// Requests counted in one direction, and how many of them were mTLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsCount {
    /// Requests with `tls="true"` (and, inbound, the expected `client_id`).
    pub mtls: u64,
    /// All requests in that direction.
    pub total: u64,
}

/// The client proxy's outbound `request_total`: with `tls="true"`, and all.
pub fn outbound_tls(text: &str) -> TlsCount {
    let mut count = TlsCount::default();
    for (labels, value) in request_totals(text) {
        if label(&labels, "direction") != Some("outbound") {
            continue;
        }
        count.total += value;
        if label(&labels, "tls") == Some("true") {
            count.mtls += value;
        }
    }
    count
}

/// A server proxy's inbound `request_total`: with `tls="true"` and
/// `client_id=<client_id>`, and all.
pub fn inbound_mtls_from(text: &str, client_id: &str) -> TlsCount {
    let mut count = TlsCount::default();
    for (labels, value) in request_totals(text) {
        if label(&labels, "direction") != Some("inbound") {
            continue;
        }
        count.total += value;
        if label(&labels, "tls") == Some("true") && label(&labels, "client_id") == Some(client_id) {
            count.mtls += value;
        }
    }
    count
}

/// The value of the unlabelled series `name` (a gauge), if present.
pub fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Turns successive [`outbound_tls`] readings into the mTLS share of the
/// requests counted in between.
#[derive(Default)]
pub struct ShareMeter {
    last: Option<TlsCount>,
}

impl ShareMeter {
    /// Takes a new reading (`None`: the scrape failed) and returns the
    /// percentage of mTLS requests since the last one, if any were counted.
    pub fn update(&mut self, now: Option<TlsCount>) -> Option<f64> {
        let now = now?;
        let last = self.last.replace(now)?;
        let total = now.total.saturating_sub(last.total);
        let mtls = now.mtls.saturating_sub(last.mtls).min(total);
        (total > 0).then(|| 100.0 * mtls as f64 / total as f64)
    }
}

/// Splits `labels} value` at the closing brace (outside quotes).
fn split_series(rest: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some((&rest[..i], &rest[i + 1..])),
            _ => {}
        }
    }
    None
}

/// Parses `k="v",k2="v2"` (Prometheus text escapes `\\`, `\"`, `\n`).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = chars
            .by_ref()
            .skip_while(|c| *c == ',' || c.is_whitespace())
            .take_while(|c| *c != '=')
            .collect();
        if key.is_empty() || chars.next() != Some('"') {
            return labels;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                c => value.push(c),
            }
        }
        labels.insert(key.trim().to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_outbound_per_pod() {
        let text = r#"# HELP request_total Total count of HTTP requests.
# TYPE request_total counter
request_total{direction="outbound",authority="web.default.svc.cluster.local:80",dst_pod="web-a",tls="disabled"} 10
request_total{direction="outbound",authority="a\"},b",dst_pod="web-a"} 5
request_total{direction="outbound",dst_pod="web-c"} 2
request_total{direction="inbound",dst_pod="web-b"} 7
request_total{direction="outbound"} 1
response_total{direction="outbound",dst_pod="web-a"} 99
"#;
        let sums = outbound_requests_by_pod(text);
        assert_eq!(sums.get("web-a"), Some(&15));
        assert_eq!(sums.get("web-c"), Some(&2));
        assert_eq!(sums.get("web-b"), None);
        assert_eq!(sums.get("(none)"), Some(&1));
    }

    const CLIENT_ID: &str = "client.default.serviceaccount.identity.linkerd.cluster.local";

    #[test]
    fn counts_tls_per_direction() {
        let text = format!(
            r#"request_total{{direction="outbound",dst_pod="web-a",tls="true",server_id="web"}} 8
request_total{{direction="outbound",dst_pod="web-b",tls="no_identity"}} 2
request_total{{direction="inbound",tls="true",client_id="{CLIENT_ID}"}} 5
request_total{{direction="inbound",tls="true",client_id="other"}} 1
request_total{{direction="inbound",tls="disabled"}} 3
identity_cert_expiration_timestamp_seconds 1700000000.5
"#
        );
        assert_eq!(outbound_tls(&text), TlsCount { mtls: 8, total: 10 });
        assert_eq!(
            inbound_mtls_from(&text, CLIENT_ID),
            TlsCount { mtls: 5, total: 9 }
        );
        assert_eq!(
            gauge(&text, "identity_cert_expiration_timestamp_seconds"),
            Some(1_700_000_000.5)
        );
        assert_eq!(gauge(&text, "identity_cert"), None);
    }

    const DST: &str = "web.default.svc.cluster.local:80";

    fn route_text(flaky_ok: u64, retries: u64, slow_504: u64) -> String {
        let l = format!(r#"direction="outbound",dst="{DST}""#);
        format!(
            r#"route_request_total{{{l},rt_route="GET /flaky"}} {flaky_ok}
route_request_total{{{l},rt_route="GET /slow"}} {slow_504}
route_request_total{{{l}}} 3
route_request_total{{direction="outbound",dst="other:80",rt_route="GET /flaky"}} 100
route_actual_request_total{{{l},rt_route="GET /flaky"}} 999
route_response_total{{{l},rt_route="GET /flaky",status_code="200",classification="success",grpc_status="",error=""}} {flaky_ok}
route_response_total{{{l},rt_route="GET /slow",status_code="504",classification="failure",grpc_status="",error="timeout"}} {slow_504}
route_response_total{{{l},status_code="200",classification="success",grpc_status="",error=""}} 3
route_retryable_total{{{l},rt_route="GET /flaky"}} {retries}
route_retryable_total{{{l},rt_route="GET /flaky",skipped="no_budget"}} 1
"#
        )
    }

    #[test]
    fn reads_route_series_of_one_service() {
        let r = routes(&route_text(10, 2, 4), DST);
        let flaky = &r["GET /flaky"];
        assert_eq!(
            (flaky.requests, flaky.success, flaky.failure, flaky.retries),
            (10, 10, 0, 2)
        );
        assert_eq!(flaky.retries_skipped, 1);
        let slow = &r["GET /slow"];
        assert_eq!((slow.requests, slow.failure, slow.timeouts), (4, 4, 4));
        assert_eq!(slow.failure_statuses.get(&504), Some(&4));
        assert_eq!(r[""].requests, 3);
        assert_eq!(r.len(), 3);
        assert!(routes(&route_text(1, 1, 1), "nope:80").is_empty());
    }

    #[test]
    fn route_meter_gives_deltas() {
        let mut meter = RouteMeter::default();
        let first = meter.update(Some(routes(&route_text(10, 2, 4), DST)));
        assert_eq!(first.map(|r| r["GET /flaky"].requests), Some(10));
        let second = meter
            .update(Some(routes(&route_text(15, 3, 4), DST)))
            .unwrap_or_default();
        assert_eq!(second["GET /flaky"].requests, 5);
        assert_eq!(second["GET /flaky"].retries, 1);
        assert_eq!(second["GET /slow"].failure, 0);
        assert!(second["GET /slow"].failure_statuses.is_empty());
        assert_eq!(meter.update(None), None);
    }

    #[test]
    fn share_is_per_interval() {
        let mut meter = ShareMeter::default();
        assert_eq!(meter.update(Some(TlsCount { mtls: 5, total: 5 })), None);
        assert_eq!(
            meter.update(Some(TlsCount {
                mtls: 15,
                total: 15
            })),
            Some(100.0)
        );
        assert_eq!(meter.update(None), None);
        assert_eq!(
            meter.update(Some(TlsCount {
                mtls: 20,
                total: 25
            })),
            Some(50.0)
        );
        assert_eq!(
            meter.update(Some(TlsCount {
                mtls: 20,
                total: 25
            })),
            None
        );
    }
}
