//! Named targets through the mock Destination service: surviving a control
//! plane outage, and ServiceProfile retries with request bodies.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use linkerd2_proxy_api::destination::DestinationProfile;
use tokio::time::Instant;

use support::*;

/// The service both tests name.
const WEB: &str = "web.ns.svc.cluster.local:8080";

/// One GET to `authority` through the outbound listener (universal mode).
async fn get(proxy: &Proxy, authority: &str) -> Answer {
    let mut h1 = H1::connect(proxy.outbound).await.expect("connect outbound");
    h1.send(request("GET", authority, None, Bytes::new()))
        .await
        .expect("response")
}

/// With `LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT=1s` and no profile
/// lookups for the name (the suffixes do not match, so only `Get` is used):
/// after traffic to `web...:8080`, the destination service goes down.
/// Requests still succeed while the balancer lives; then, with no traffic,
/// the balancer is evicted (observed as its endpoint's metric series
/// disappearing, `LINKERD2_PROXY_METRICS_RETAIN_IDLE=0`), and the next
/// request, with the control plane still down, is served from the
/// remembered endpoints instead of failing with 503/504. A name the proxy
/// never resolved fails meanwhile (the outage is real). When the
/// destination service is back, its answer replaces the remembered ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_known_endpoints_survive_an_outage() {
    let mut dst = MockDestination::start().await;
    let backend = Backend::ok().await;
    dst.set_endpoints(WEB, &[backend.addr]);
    dst.set_endpoints("other.ns.svc.cluster.local:8080", &[backend.addr]);
    let proxy = Proxy::start(
        dst.addr,
        &[
            ("LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT", "1s"),
            ("LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES", "nomatch."),
            ("LINKERD2_PROXY_METRICS_RETAIN_IDLE", "0"),
        ],
    )
    .await;

    for _ in 0..3 {
        let rsp = get(&proxy, WEB).await;
        assert_eq!(rsp.status, 200, "{}", rsp.header("l5d-proxy-error"));
    }
    assert_eq!(dst.get_calls(WEB), 1, "one Get stream for the name");
    assert_eq!(dst.profile_calls(WEB), 0, "no profile lookup for the name");

    dst.stop().await;
    // The live balancer keeps its endpoints through the outage.
    let rsp = get(&proxy, WEB).await;
    assert_eq!(rsp.status, 200, "{}", rsp.header("l5d-proxy-error"));
    let last_traffic = Instant::now();

    // Wait for the balancer's eviction: its endpoint's series goes away.
    let authority = format!("authority=\"{WEB}\"");
    let evicted = eventually(Duration::from_secs(10), || async {
        let m = proxy.metrics().await;
        !m.is_empty() && metric_lines(&m, "request_total", &[&authority]).is_empty()
    })
    .await;
    assert!(evicted, "the idle balancer for {WEB} was never evicted");
    assert!(
        last_traffic.elapsed() >= Duration::from_secs(1),
        "evicted before the idle timeout"
    );

    // Still down: served from the remembered endpoints.
    let before = backend.seen().len();
    let started = Instant::now();
    let rsp = get(&proxy, WEB).await;
    assert_eq!(
        rsp.status,
        200,
        "after eviction, during the outage: {}",
        rsp.header("l5d-proxy-error")
    );
    assert_eq!(backend.seen().len(), before + 1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );

    // Control: a name never resolved has nothing to fall back to.
    let rsp = get(&proxy, "other.ns.svc.cluster.local:8080").await;
    assert!(
        rsp.status.is_server_error(),
        "an unresolved name during the outage: {rsp:?}"
    );

    // The control plane is back with a new endpoint: it replaces the old one.
    let next = Backend::ok().await;
    dst.set_endpoints(WEB, &[next.addr]);
    dst.restart().await;
    let moved = eventually(Duration::from_secs(10), || async {
        get(&proxy, WEB).await.status == 200 && !next.seen().is_empty()
    })
    .await;
    assert!(moved, "the restarted destination's answer was never used");
}

/// A profile route `POST /flaky` is retryable with a budget (ratio 1.0, 100
/// retries/s, ttl 10 s); the backend fails the first attempt of each
/// request (500) and answers later ones 200. A POST with a 1 KiB body
/// succeeds after one retry, the backend receiving the same body twice; a
/// POST with a 100 KiB body (over the 64 KiB retry cutover) is sent once
/// and the client gets the 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_bodies() {
    let dst = MockDestination::start().await;
    let attempted = Arc::new(Mutex::new(HashSet::new()));
    let a = attempted.clone();
    let backend = Backend::start(move |seen| {
        let id = seen
            .headers
            .get("x-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let first = a.lock().expect("attempts").insert(id);
        Reply {
            status: if first {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            },
            delay: Duration::ZERO,
        }
    })
    .await;
    dst.set_endpoints(WEB, &[backend.addr]);
    dst.set_profile(
        WEB,
        DestinationProfile {
            fully_qualified_name: "web.ns.svc.cluster.local".into(),
            routes: vec![route(Method::POST, "/flaky", true)],
            retry_budget: Some(retry_budget(1.0, 100, 10)),
            ..Default::default()
        },
    );
    let proxy = Proxy::start(dst.addr, &[]).await;

    let post = |id: &str, body: Bytes| {
        Request::post("/flaky")
            .header("host", WEB)
            .header("x-id", id)
            .body(Full::new(body))
            .expect("request")
    };
    let with_id = |id: &str| -> Vec<Seen> {
        backend
            .seen()
            .into_iter()
            .filter(|s| s.headers.get("x-id").is_some_and(|v| v == id))
            .collect()
    };

    // Small body: retried.
    let small: Bytes = (0..1024)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let mut h1 = H1::connect(proxy.outbound).await.expect("connect outbound");
    let rsp = h1
        .send(post("small", small.clone()))
        .await
        .expect("response");
    assert_eq!(rsp.status, 200, "{rsp:?}");
    let seen = with_id("small");
    assert_eq!(seen.len(), 2, "attempts of the small request");
    for s in &seen {
        assert!(s.body_ok && s.body == small, "an attempt's body differs");
    }

    // Large body: sent once, not retried.
    let large: Bytes = (0..100 * 1024)
        .map(|i| (i % 253) as u8)
        .collect::<Vec<_>>()
        .into();
    let mut h1 = H1::connect(proxy.outbound).await.expect("connect outbound");
    let rsp = h1
        .send(post("large", large.clone()))
        .await
        .expect("response");
    assert_eq!(rsp.status, 500, "{rsp:?}");
    let seen = with_id("large");
    assert_eq!(seen.len(), 1, "attempts of the large request");
    assert!(
        seen[0].body_ok && seen[0].body == large,
        "the large body arrived altered"
    );
}
