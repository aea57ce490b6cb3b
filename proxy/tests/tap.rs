//! The Tap API on the control port, through the client a Linkerd viz tap
//! service uses: a tonic `TapClient` built from linkerd2-proxy-api calling
//! `Observe`.

mod support;

use std::time::Duration;

use linkerd2_proxy_api::http_types;
use linkerd2_proxy_api::tap::observe_request::{self, r#match as m};
use linkerd2_proxy_api::tap::tap_client::TapClient;
use linkerd2_proxy_api::tap::tap_event::{self, http::Event, ProxyDirection};
use linkerd2_proxy_api::tap::{ObserveRequest, TapEvent};

use support::*;

const TAP_NAME: &str = "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local";

fn path_prefix(prefix: &str) -> observe_request::Match {
    observe_request::Match {
        r#match: Some(m::Match::Http(m::Http {
            r#match: Some(m::http::Match::Path(m::http::StringMatch {
                r#match: Some(m::http::string_match::Match::Prefix(prefix.into())),
            })),
        })),
    }
}

fn headers() -> observe_request::Extract {
    use observe_request::extract;
    observe_request::Extract {
        extract: Some(extract::Extract::Http(extract::Http {
            extract: Some(extract::http::Extract::Headers(extract::http::Headers {})),
        })),
    }
}

fn http_event(e: &TapEvent) -> &Event {
    match e.event.as_ref().and_then(|e| match e {
        tap_event::Event::Http(h) => h.event.as_ref(),
    }) {
        Some(ev) => ev,
        None => panic!("not an HTTP event: {e:?}"),
    }
}

fn header<'a>(h: &'a Option<http_types::Headers>, name: &str) -> Option<&'a [u8]> {
    h.as_ref()?
        .headers
        .iter()
        .find(|x| x.name == name)
        .map(|x| x.value.as_slice())
}

/// A loopback client taps the outbound requests its match selects: two
/// requests (the `limit`), each with RequestInit, ResponseInit and
/// ResponseEnd carrying the method, path, authority, status, body size,
/// addresses, direction and (asked for) headers; then the stream ends.
/// Requests the match does not select are not reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_reports_the_matching_requests_then_ends() {
    let dst = MockDestination::start().await;
    let proxy = Proxy::start(dst.addr, &[("LINKERD2_PROXY_TAP_SVC_NAME", TAP_NAME)]).await;
    let backend = Backend::ok().await;
    let mut client = TapClient::connect(format!("http://{}", proxy.control))
        .await
        .expect("connect to the control port");
    let mut events = client
        .observe(ObserveRequest {
            limit: 2,
            r#match: Some(path_prefix("/tapped")),
            extract: Some(headers()),
        })
        .await
        .expect("observe")
        .into_inner();
    // The tap is registered once the call has been answered.
    let open = eventually(Duration::from_secs(5), || async {
        proxy.metrics().await.contains("tap_observers 1")
    })
    .await;
    assert!(open, "the tap never opened");

    let mut h1 = H1::connect(proxy.outbound).await.expect("connect outbound");
    for path in ["/other", "/tapped/1", "/other", "/tapped/2", "/tapped/3"] {
        let req = http::Request::get(path)
            .header("host", "web.example:80")
            .header("l5d-dst-override", backend.addr.to_string())
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let rsp = h1.send(req).await.expect("response");
        assert_eq!(rsp.status, 200);
    }

    let mut seen = Vec::new();
    let collect = async {
        while let Some(e) = events.message().await.expect("event") {
            seen.push(e);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), collect)
        .await
        .expect("the stream ends once the limit's requests completed");
    assert_eq!(seen.len(), 6, "{seen:#?}");
    let mut paths = Vec::new();
    for e in &seen {
        assert_eq!(e.proxy_direction, ProxyDirection::Outbound as i32);
        let dst = e.destination.expect("destination");
        assert_eq!(dst.port, u32::from(backend.addr.port()));
        match http_event(e) {
            Event::RequestInit(init) => {
                paths.push(init.path.clone());
                assert_eq!(init.authority, "web.example:80");
                assert_eq!(header(&init.headers, ":method"), Some(&b"GET"[..]));
                assert_eq!(header(&init.headers, ":path"), Some(init.path.as_bytes()));
            }
            Event::ResponseInit(rsp) => {
                assert_eq!(rsp.http_status, 200);
                assert_eq!(header(&rsp.headers, ":status"), Some(&b"200"[..]));
            }
            Event::ResponseEnd(end) => {
                assert_eq!(end.response_bytes, 8, "the backend answers \"backend\\n\"");
                assert!(end.since_request_init.is_some());
            }
        }
    }
    assert_eq!(paths, vec!["/tapped/1", "/tapped/2"]);
}

/// `limit: 0` is refused with InvalidArgument, and an invalid match too.
#[tokio::test]
async fn invalid_requests_are_refused() {
    let dst = MockDestination::start().await;
    let proxy = Proxy::start(dst.addr, &[("LINKERD2_PROXY_TAP_SVC_NAME", TAP_NAME)]).await;
    let mut client = TapClient::connect(format!("http://{}", proxy.control))
        .await
        .expect("connect to the control port");
    let err = client
        .observe(ObserveRequest::default())
        .await
        .expect_err("limit 0");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "limit must be positive");
    let err = client
        .observe(ObserveRequest {
            limit: 1,
            r#match: Some(observe_request::Match { r#match: None }),
            extract: None,
        })
        .await
        .expect_err("empty match");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

/// Without `LINKERD2_PROXY_TAP_SVC_NAME` nothing listens on the control port.
#[tokio::test]
async fn no_tap_service_no_control_port() {
    let dst = MockDestination::start().await;
    let proxy = Proxy::start(dst.addr, &[]).await;
    assert!(proxy.admin_get("/live").await.is_some());
    let connected = tokio::net::TcpStream::connect(proxy.control).await;
    assert!(connected.is_err(), "the control port should be closed");
}

/// A consumer that never reads its events does not slow traffic: requests
/// keep flowing while its buffer is full, and the events it loses are
/// counted in `tap_dropped_events_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_consumer_loses_events_not_traffic() {
    let dst = MockDestination::start().await;
    let proxy = Proxy::start(dst.addr, &[("LINKERD2_PROXY_TAP_SVC_NAME", TAP_NAME)]).await;
    let backend = Backend::ok().await;
    let mut client = TapClient::connect(format!("http://{}", proxy.control))
        .await
        .expect("connect to the control port");
    // Open the tap and never read from it.
    let _stalled = client
        .observe(ObserveRequest {
            limit: 100_000,
            r#match: None,
            extract: Some(headers()),
        })
        .await
        .expect("observe");
    let open = eventually(Duration::from_secs(5), || async {
        proxy.metrics().await.contains("tap_observers 1")
    })
    .await;
    assert!(open, "the tap never opened");

    // Each request makes 3 events. The consumer's HTTP/2 window (2 MiB by
    // default) and the proxy's 400-event buffer fill after some thousands;
    // send batches until events are being dropped (bounded), checking
    // that every request is still answered promptly.
    let started = tokio::time::Instant::now();
    let mut h1 = H1::connect(proxy.outbound).await.expect("connect outbound");
    let mut sent = 0;
    let mut dropped = 0.0;
    while dropped == 0.0 && sent < 40_000 {
        for _ in 0..500 {
            let req = http::Request::get(format!("/r{sent}"))
                .header("host", "web.example:80")
                .header("l5d-dst-override", backend.addr.to_string())
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request");
            let rsp = tokio::time::timeout(Duration::from_secs(2), h1.send(req))
                .await
                .expect("traffic is not held up by the stalled tap")
                .expect("response");
            assert_eq!(rsp.status, 200);
            sent += 1;
        }
        dropped = wisp_tests::metric_sum(&proxy.metrics().await, "tap_dropped_events_total", &[]);
    }
    assert!(dropped > 0.0, "no event dropped after {sent} requests");
    eprintln!(
        "{sent} requests in {:?} with a stalled tap; {dropped} events dropped",
        started.elapsed()
    );
}
