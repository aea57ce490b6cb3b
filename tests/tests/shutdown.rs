//! Graceful shutdown: `POST /shutdown` and SIGTERM drain in-flight requests.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::net::TcpStream;
use wisp_tests::*;

/// Starts a proxy and a backend delaying 500 ms; sends one slow request;
/// once the backend has it, calls `trigger`; checks the request completes
/// with 200, new connections are refused and the proxy exits 0.
async fn drains_in_flight(trigger: impl FnOnce(&Proxy) -> futures_util::future::BoxFuture<'_, ()>) {
    let net = Net::new();
    let backend = HttpBackend::start(net.addr(11, 8080), "slow").await;
    backend.set_delay(Duration::from_millis(500));
    let mut proxy = Proxy::start(
        net.ip(10),
        &net.addr(2, 8086).to_string(),
        &[("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "true")],
    )
    .await;
    let out = proxy.outbound;
    let target = backend.addr.to_string();
    let inflight = tokio::spawn(async move { get_via(&http1_client(), out, &target).await });
    assert!(eventually(Duration::from_secs(5), || async { backend.hits() == 1 }).await);

    trigger(&proxy).await;

    // Listeners close promptly, while the request is still in flight.
    let refused = eventually(Duration::from_millis(300), || async {
        TcpStream::connect(out).await.is_err()
    })
    .await;
    assert!(refused, "outbound listener still accepts after shutdown");
    assert!(!inflight.is_finished(), "in-flight request ended early");

    let (status, name, body) = inflight.await.unwrap().expect("in-flight request failed");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(name, "slow");
    assert_eq!(body, Bytes::from_static(b"slow"));

    let exit = proxy.wait_exit(Duration::from_secs(5)).await;
    let exit = exit.expect("proxy did not exit after draining");
    assert!(exit.success(), "exit status {exit}");
    assert!(TcpStream::connect(proxy.admin).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_endpoint_drains_and_exits_0() {
    drains_in_flight(|proxy| {
        let admin = proxy.admin;
        Box::pin(async move {
            let req = Request::post(format!("http://{admin}/shutdown"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let rsp = http1_client().request(req).await.unwrap();
            assert_eq!(rsp.status(), StatusCode::OK);
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_0() {
    drains_in_flight(|proxy| {
        proxy.terminate();
        Box::pin(async {})
    })
    .await;
}

#[tokio::test]
async fn shutdown_endpoint_disabled_by_default() {
    let net = Net::new();
    let mut proxy = Proxy::start(net.ip(10), &net.addr(2, 8086).to_string(), &[]).await;
    let req = Request::post(format!("http://{}/shutdown", proxy.admin))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let rsp = http1_client().request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::NOT_FOUND);
    // GET is not a shutdown either.
    let (status, _) = http_get(proxy.admin, "/shutdown").await.unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // The proxy is still up.
    assert!(proxy.process.exited().is_none());
    let (status, _) = http_get(proxy.admin, "/ready").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(proxy.wait_exit(Duration::from_millis(50)).await.is_none());
}
