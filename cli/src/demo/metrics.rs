//! Reading the proxies' own `/metrics`: the client proxy's outbound
//! `request_total` per `dst_pod` and per TLS mode, its ServiceProfile route
//! series (`route_request_total`, `route_response_total`,
//! `route_retryable_total`) per `rt_route`, the web proxies' inbound mTLS
//! requests by client identity, and the certificate expiry gauge.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use wisp_common::prometheus::{self, Sample};

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

/// Every `request_total` sample of `text`.
fn request_totals(text: &str) -> impl Iterator<Item = Sample<'_>> {
    prometheus::series(text, "request_total")
}

/// A sample's value as a count.
fn count(sample: &Sample<'_>) -> u64 {
    sample.value as u64
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
    let ours =
        |s: &Sample<'_>| s.label("direction") == Some("outbound") && s.label("dst") == Some(dst);
    let route = |s: &Sample<'_>| s.label("rt_route").unwrap_or_default().to_string();
    for s in prometheus::series(text, "route_request_total").filter(ours) {
        out.entry(route(&s)).or_default().requests += count(&s);
    }
    for s in prometheus::series(text, "route_response_total").filter(ours) {
        let value = count(&s);
        let counts = out.entry(route(&s)).or_default();
        if s.label("classification") == Some("success") {
            counts.success += value;
        } else {
            counts.failure += value;
            let status = s.label("status_code").and_then(|c| c.parse().ok());
            *counts
                .failure_statuses
                .entry(status.unwrap_or(0))
                .or_default() += value;
            if s.label("error") == Some("timeout") {
                counts.timeouts += value;
            }
        }
    }
    for s in prometheus::series(text, "route_retryable_total").filter(ours) {
        let value = count(&s);
        let counts = out.entry(route(&s)).or_default();
        if s.label("skipped").is_some() {
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

/// Sums `request_total{direction="outbound",...}` per `dst_pod` label
/// (series without one are summed under `"(none)"`).
pub fn outbound_requests_by_pod(text: &str) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for s in request_totals(text) {
        if s.label("direction") != Some("outbound") {
            continue;
        }
        let pod = s.label("dst_pod").unwrap_or("(none)").to_string();
        *sums.entry(pod).or_default() += count(&s);
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
    let mut tls = TlsCount::default();
    for s in request_totals(text) {
        if s.label("direction") != Some("outbound") {
            continue;
        }
        tls.total += count(&s);
        if s.label("tls") == Some("true") {
            tls.mtls += count(&s);
        }
    }
    tls
}

/// A server proxy's inbound `request_total`: with `tls="true"` and
/// `client_id=<client_id>`, and all.
pub fn inbound_mtls_from(text: &str, client_id: &str) -> TlsCount {
    let mut tls = TlsCount::default();
    for s in request_totals(text) {
        if s.label("direction") != Some("inbound") {
            continue;
        }
        tls.total += count(&s);
        if s.label("tls") == Some("true") && s.label("client_id") == Some(client_id) {
            tls.mtls += count(&s);
        }
    }
    tls
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
            prometheus::value(&text, "identity_cert_expiration_timestamp_seconds"),
            Some(1_700_000_000.5)
        );
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
