//! Connection reuse and connection bounds: per-endpoint pools that clients
//! cannot fragment, the per-listener and per-endpoint connection limits.

mod support;

use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use support::*;
use wisp_tests::metric_sum;

/// Requests in each half of `pool_is_keyed_by_endpoint`.
const REQUESTS: usize = 500;
/// Client connections they are spread over.
const CLIENTS: usize = 4;

/// 500 requests, each with a different `Host`, sent over 4 client
/// connections, reach one backend over a handful of connections (the pool
/// belongs to the endpoint, not to the request's authority), with each
/// `Host` unchanged: first through the outbound side (universal mode,
/// `l5d-dst-override` naming the backend), then through the inbound side
/// (direct connections whose transport header names the backend's port).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pool_is_keyed_by_endpoint() {
    let dst = MockDestination::start().await;
    let proxy = Proxy::start(dst.addr, &[]).await;

    // Outbound.
    let backend = Backend::ok().await;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (outbound, target) = (proxy.outbound, backend.addr);
        clients.push(tokio::spawn(async move {
            let mut h1 = H1::connect(outbound).await.expect("connect outbound");
            for i in (c..REQUESTS).step_by(CLIENTS) {
                let host = format!("h{i}.example:80");
                let rsp = h1
                    .send(request("GET", &host, Some(target), Bytes::new()))
                    .await
                    .expect("response");
                assert_eq!(
                    rsp.status,
                    200,
                    "request {i}: {}",
                    rsp.header("l5d-proxy-error")
                );
            }
        }));
    }
    for c in clients {
        c.await.expect("client task");
    }
    check_hosts(&backend, "outbound");

    // Inbound: direct connections to the backend's port.
    let backend = Backend::ok().await;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (inbound, port) = (proxy.inbound, backend.addr.port());
        clients.push(tokio::spawn(async move {
            let stream = direct_connection(inbound, port).await;
            let mut h1 = H1::over(stream)
                .await
                .expect("HTTP/1 over the direct connection");
            for i in (c..REQUESTS).step_by(CLIENTS) {
                let host = format!("h{i}.example:80");
                let rsp = h1
                    .send(request("GET", &host, None, Bytes::new()))
                    .await
                    .expect("response");
                assert_eq!(
                    rsp.status,
                    200,
                    "request {i}: {}",
                    rsp.header("l5d-proxy-error")
                );
            }
        }));
    }
    for c in clients {
        c.await.expect("client task");
    }
    check_hosts(&backend, "inbound");
}

/// Every request reached the backend with its own `Host`, over at most 8
/// connections.
fn check_hosts(backend: &Backend, side: &str) {
    let seen = backend.seen();
    assert_eq!(seen.len(), REQUESTS, "{side}: requests received");
    let mut hosts: Vec<String> = seen.iter().filter_map(|s| s.host.clone()).collect();
    hosts.sort();
    let mut want: Vec<String> = (0..REQUESTS).map(|i| format!("h{i}.example:80")).collect();
    want.sort();
    assert_eq!(
        hosts, want,
        "{side}: each Host reached the backend unchanged"
    );
    assert!(
        backend.accepted() <= 8,
        "{side}: the backend accepted {} connections for {REQUESTS} requests over {CLIENTS} clients",
        backend.accepted()
    );
}

/// With `WISP_PROXY_MAX_CONNECTIONS_PER_LISTENER=4`, four idle connections
/// fill the outbound listener: a fifth is closed at once and counted in
/// `tcp_accept_refused_total{direction="outbound",reason="connection_limit"}`;
/// once one of the four closes, a new connection is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_connection_limit() {
    let dst = MockDestination::start().await;
    let proxy = Proxy::start(
        dst.addr,
        &[("WISP_PROXY_MAX_CONNECTIONS_PER_LISTENER", "4")],
    )
    .await;
    let backend = Backend::ok().await;

    // Four idle connections (waiting in protocol detection).
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(proxy.outbound).await.expect("connect"));
    }
    // The accept loop takes them in order; the fifth finds no permit.
    let mut fifth = TcpStream::connect(proxy.outbound).await.expect("connect");
    assert!(
        closed_without_answer(&mut fifth, Duration::from_secs(2)).await,
        "the fifth connection was not closed promptly"
    );
    let metrics = proxy.metrics().await;
    let refused = metric_sum(
        &metrics,
        "tcp_accept_refused_total",
        &[("direction", "outbound"), ("reason", "connection_limit")],
    );
    assert!(refused >= 1.0, "refusals counted: {refused}\n{metrics}");

    // Free one slot: a new connection is served (the proxy notices the
    // close asynchronously, so poll).
    let mut one = held.pop().expect("a held connection");
    one.shutdown().await.expect("close one held connection");
    drop(one);
    let served = eventually(Duration::from_secs(5), || async {
        let Ok(mut h1) = H1::connect(proxy.outbound).await else {
            return false;
        };
        matches!(
            h1.send(request("GET", "a.example", Some(backend.addr), Bytes::new())).await,
            Ok(r) if r.status == 200
        )
    })
    .await;
    assert!(
        served,
        "no connection was served after one of the four closed"
    );
    drop(held);
}

/// With `WISP_PROXY_MAX_CONNECTIONS_PER_ENDPOINT=2` and a backend that takes
/// 300 ms per request, six concurrent HTTP/1 requests (each on its own
/// client connection) all succeed, queueing for the endpoint's two
/// connections: the backend never has more than two open at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoint_connection_limit() {
    let dst = MockDestination::start().await;
    let proxy = Proxy::start(
        dst.addr,
        &[("WISP_PROXY_MAX_CONNECTIONS_PER_ENDPOINT", "2")],
    )
    .await;
    let backend = Backend::start(|_| Reply {
        status: http::StatusCode::OK,
        delay: Duration::from_millis(300),
    })
    .await;

    let mut clients = Vec::new();
    for i in 0..6 {
        let (outbound, target) = (proxy.outbound, backend.addr);
        clients.push(tokio::spawn(async move {
            let mut h1 = H1::connect(outbound).await.expect("connect outbound");
            let rsp = h1
                .send(request(
                    "GET",
                    &format!("c{i}.example"),
                    Some(target),
                    Bytes::new(),
                ))
                .await
                .expect("response");
            (rsp.status, rsp.header("l5d-proxy-error"))
        }));
    }
    for c in clients {
        let (status, error) = c.await.expect("client task");
        assert_eq!(status, 200, "{error}");
    }
    assert_eq!(backend.seen().len(), 6);
    assert!(
        backend.max_open() <= 2,
        "the backend had {} connections open at once",
        backend.max_open()
    );
}
