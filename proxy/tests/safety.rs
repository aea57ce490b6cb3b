//! What clients cannot make the proxy do: reach its own ports, pin an
//! application connection with a stalled body, or get an endpoint blamed
//! for their own malformed body.

mod support;

use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use support::*;

/// The proxy's own ports are never a forwarding target:
/// (a) an outbound request whose `l5d-dst-override` names the admin port
///     is answered 508 and the proxy keeps serving;
/// (b) a direct inbound connection whose transport header names the admin
///     port, carrying `POST /shutdown` (shutdown endpoint enabled), is
///     closed unanswered and does not stop the proxy (a positive control
///     then shows the same request sent to the admin port does stop it);
/// (c) transport headers naming the outbound or inbound listener's port
///     are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_ports_are_never_targets() {
    let dst = MockDestination::start().await;
    let mut proxy = Proxy::start(
        dst.addr,
        &[("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "true")],
    )
    .await;
    let backend = Backend::ok().await;

    // (a) Outbound, override to the admin port, however it is spelled
    // (a name goes through discovery, which refuses it, then DNS).
    let port = proxy.admin.port();
    for target in [
        format!("127.0.0.1:{port}"),
        format!("127.0.0.2:{port}"),
        format!("0.0.0.0:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
        format!("localhost:{port}"),
    ] {
        let mut h1 = H1::connect(proxy.outbound).await.expect("connect outbound");
        let req = http::Request::get("/shutdown")
            .header("host", "a.example")
            .header("l5d-dst-override", &target)
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("request");
        let rsp = h1.send(req).await.expect("response");
        assert_eq!(rsp.status, 508, "override {target}: {rsp:?}");
        assert!(rsp.header("l5d-proxy-error").contains("loop"), "{rsp:?}");
    }
    let mut h1 = H1::connect(proxy.outbound).await.expect("connect outbound");
    let rsp = h1
        .send(request(
            "GET",
            "a.example",
            Some(backend.addr),
            Bytes::new(),
        ))
        .await
        .expect("response");
    assert_eq!(rsp.status, 200, "the proxy still forwards after the 508");

    // (b) Inbound direct connection to the admin port with POST /shutdown.
    let mut s = direct_connection(proxy.inbound, proxy.admin.port()).await;
    s.write_all(b"POST /shutdown HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
        .await
        .expect("write the request");
    let answer = tokio::time::timeout(Duration::from_secs(5), read_raw_response(&mut s))
        .await
        .expect("the connection was neither answered nor closed");
    assert!(
        answer.is_none(),
        "the shutdown request through the inbound side was answered: {answer:?}"
    );
    let live = proxy.admin_get("/live").await;
    assert_eq!(
        live.map(|(s, _)| s),
        Some(http::StatusCode::OK),
        "admin /live after the refused direct connection"
    );
    assert!(!proxy.has_stopped(), "run_with returned");

    // (c) Transport headers naming the proxy's other listeners.
    for (name, port) in [
        ("outbound", proxy.outbound.port()),
        ("inbound", proxy.inbound.port()),
    ] {
        let mut s = direct_connection(proxy.inbound, port).await;
        s.write_all(b"GET /live HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write the request");
        let answer = tokio::time::timeout(Duration::from_secs(5), read_raw_response(&mut s))
            .await
            .expect("the connection was neither answered nor closed");
        assert!(
            answer.is_none(),
            "{name} port as target answered: {answer:?}"
        );
    }
    assert!(!proxy.has_stopped(), "run_with returned");

    // Positive control: the same request on the admin port stops the proxy.
    let mut admin = TcpStream::connect(proxy.admin)
        .await
        .expect("connect admin");
    admin
        .write_all(b"POST /shutdown HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
        .await
        .expect("write the request");
    let answer = read_raw_response(&mut admin).await.expect("admin answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    drop(admin);
    let stopped = proxy.stopped(Duration::from_secs(10)).await;
    assert!(
        matches!(stopped, Some(Ok(()))),
        "run_with did not return after POST /shutdown on the admin port: {stopped:?}"
    );
}

/// With `WISP_PROXY_REQUEST_BODY_TIMEOUT=500ms`, an HTTP/1 request that
/// announces `Content-Length: 100`, sends 10 bytes and stalls is answered
/// 408 (or its connection closed) within a couple of seconds; the
/// application connection it pinned is released: with at most one
/// connection per endpoint, the next request to that backend succeeds.
/// Outbound (universal mode), then inbound (direct connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_body_times_out() {
    let dst = MockDestination::start().await;
    let proxy = Proxy::start(
        dst.addr,
        &[
            ("WISP_PROXY_REQUEST_BODY_TIMEOUT", "500ms"),
            ("WISP_PROXY_MAX_CONNECTIONS_PER_ENDPOINT", "1"),
        ],
    )
    .await;
    let backend = Backend::ok().await;

    let mut s = TcpStream::connect(proxy.outbound).await.expect("connect");
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: a.example\r\nl5d-dst-override: {}\r\nContent-Length: 100\r\n\r\n0123456789",
        backend.addr
    );
    let started = Instant::now();
    s.write_all(head.as_bytes()).await.expect("write");
    let answer = tokio::time::timeout(Duration::from_secs(3), read_raw_response(&mut s))
        .await
        .expect("no answer and no close within 3s of a stalled body");
    let elapsed = started.elapsed();
    if let Some(a) = &answer {
        assert_eq!(a.status, 408, "{a:?}");
        assert!(
            !a.header("l5d-proxy-error")
                .contains(&backend.addr.to_string()),
            "a client fault names the endpoint: {a:?}"
        );
    }
    assert!(
        elapsed >= Duration::from_millis(400),
        "answered before the body timeout: {elapsed:?} {answer:?}"
    );
    // The backend saw the request start and its body fail.
    let cut = eventually(Duration::from_secs(2), || async {
        backend
            .seen()
            .iter()
            .any(|s| s.path == "/upload" && !s.body_ok)
    })
    .await;
    assert!(
        cut,
        "the backend's request was not cut off: {:?}",
        backend.seen()
    );

    // The one connection the endpoint may have is free again.
    let mut h1 = H1::connect(proxy.outbound).await.expect("connect");
    let rsp = h1
        .send(request(
            "GET",
            "a.example",
            Some(backend.addr),
            Bytes::new(),
        ))
        .await
        .expect("response");
    assert_eq!(rsp.status, 200, "{}", rsp.header("l5d-proxy-error"));

    // The same on the inbound side (a direct connection to the backend's
    // port), where the pinned connection would be the application's.
    let mut s = direct_connection(proxy.inbound, backend.addr.port()).await;
    let started = Instant::now();
    s.write_all(
        b"POST /upload-in HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await
    .expect("write");
    let answer = tokio::time::timeout(Duration::from_secs(3), read_raw_response(&mut s))
        .await
        .expect("inbound: no answer and no close within 3s of a stalled body");
    if let Some(a) = &answer {
        assert_eq!(a.status, 408, "inbound: {a:?}");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "inbound: {answer:?}"
    );
    let s = direct_connection(proxy.inbound, backend.addr.port()).await;
    let mut h1 = H1::over(s)
        .await
        .expect("HTTP/1 over the direct connection");
    let rsp = h1
        .send(request("GET", "a.example", None, Bytes::new()))
        .await
        .expect("response");
    assert_eq!(
        rsp.status,
        200,
        "inbound: {}",
        rsp.header("l5d-proxy-error")
    );
}

/// A request with `Transfer-Encoding: chunked` and garbage chunk sizes is
/// the client's fault: answered 400, with an `l5d-proxy-error` that does
/// not name the backend, and the endpoint is not penalised: its response
/// series counts no 502 and no `connect`/`unexpected` error, and (with one
/// connection per endpoint) the next request to it succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_chunked_body_is_the_clients_fault() {
    let dst = MockDestination::start().await;
    let proxy = Proxy::start(
        dst.addr,
        &[("WISP_PROXY_MAX_CONNECTIONS_PER_ENDPOINT", "1")],
    )
    .await;
    let backend = Backend::ok().await;

    let mut s = TcpStream::connect(proxy.outbound).await.expect("connect");
    let req = format!(
        "POST /chunks HTTP/1.1\r\nHost: a.example\r\nl5d-dst-override: {}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        backend.addr
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let answer = tokio::time::timeout(Duration::from_secs(5), read_raw_response(&mut s))
        .await
        .expect("no answer within 5s");
    let answer = answer.expect("the connection closed without an answer");
    assert_eq!(answer.status, 400, "{answer:?}");
    let error = answer.header("l5d-proxy-error");
    assert!(
        !error.contains(&backend.addr.to_string()) && !error.contains("127.0.0.1"),
        "a client fault names the endpoint: {error:?}"
    );

    let metrics = proxy.metrics().await;
    let target = format!("target_addr=\"{}\"", backend.addr);
    let series = metric_lines(
        &metrics,
        "response_total",
        &[r#"direction="outbound""#, &target],
    );
    assert!(
        series
            .iter()
            .any(|l| l.contains(r#"status_code="400""#) && l.contains(r#"error="client""#)),
        "the failure is not counted as the client's: {series:?}"
    );
    for line in &series {
        assert!(
            !line.contains(r#"error="connect""#)
                && !line.contains(r#"error="unexpected""#)
                && !line.contains(r#"status_code="502""#)
                && !line.contains(r#"classification="failure""#),
            "the endpoint was blamed: {line}"
        );
    }

    let mut h1 = H1::connect(proxy.outbound).await.expect("connect");
    let rsp = h1
        .send(request(
            "GET",
            "a.example",
            Some(backend.addr),
            Bytes::new(),
        ))
        .await
        .expect("response");
    assert_eq!(rsp.status, 200, "{}", rsp.header("l5d-proxy-error"));
}
