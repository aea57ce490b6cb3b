//! Proxy-generated errors and robustness against bad clients.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wisp_tests::*;

/// A GET for `host` through `proxy` on a fresh connection: status, `l5d-proxy-error`.
async fn get_error(proxy: SocketAddr, host: &str) -> (StatusCode, Option<String>) {
    let req = Request::get(format!("http://{proxy}/"))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let rsp = tokio::time::timeout(Duration::from_secs(10), http1_client().request(req))
        .await
        .unwrap()
        .unwrap();
    let err = rsp
        .headers()
        .get("l5d-proxy-error")
        .map(|v| v.to_str().unwrap().to_string());
    (rsp.status(), err)
}

#[tokio::test]
async fn no_endpoints_is_503() {
    let mesh = Mesh::start(0, 8080, false, &[]).await;
    let (status, err) = get_error(mesh.client.outbound, WEB_FQDN).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err:?}");
    let err = err.expect("l5d-proxy-error header");
    assert!(err.contains("web.default.svc.cluster.local"), "{err}");
}

#[tokio::test]
async fn refused_endpoint_is_502() {
    // An endpoint nobody listens on.
    let mesh = Mesh::start(1, 8080, false, &[]).await;
    let (status, err) = get_error(mesh.client.outbound, WEB_FQDN).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(err.expect("l5d-proxy-error").contains("connect"));
    // The same for an IP:port target.
    let (status, err) = get_error(mesh.client.outbound, &mesh.app_addr(0).to_string()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(err.is_some());
}

#[tokio::test]
async fn grpc_to_no_endpoints_is_trailers_only_unavailable() {
    let mesh = Mesh::start(0, 9090, false, &[]).await;
    let tcp = TcpStream::connect(mesh.client.outbound).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::post(format!(
        "http://{WEB_AUTHORITY}/grpc.health.v1.Health/Check"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
    .unwrap();
    let rsp = tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.headers()["grpc-status"], "14");
    assert!(rsp.headers().contains_key("grpc-message"));
    assert!(rsp.headers().contains_key("l5d-proxy-error"));
    // Trailers-only: no data and no trailers follow the headers.
    let body = rsp.into_body().collect().await.unwrap();
    assert!(body.trailers().is_none());
    assert!(body.to_bytes().is_empty());

    // A tonic client sees UNAVAILABLE.
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", mesh.client.outbound))
        .unwrap()
        .origin(format!("http://{WEB_AUTHORITY}").parse().unwrap())
        .connect()
        .await
        .unwrap();
    let err = tonic_health::pb::health_client::HealthClient::new(ch)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "web".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
}

/// Writes `junk` to `addr`, then reads until the proxy closes (bounded).
async fn send_garbage(addr: SocketAddr, junk: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(junk).await;
    let _ = s.shutdown().await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_crash_the_proxies() {
    let mesh = Mesh::start(1, 8080, true, &[]).await;
    let _b = mesh.http_backends().await;
    mesh.wait_routable().await;
    let junk: Vec<Vec<u8>> = vec![
        vec![0u8; 3],
        pattern(4096, 9),
        b"GET / HTTP/1.1\r\nHost: \x00\xff\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
        b"transport.l5d.io/v1\r\n\r\n\xff\xff\xff\xff garbage".to_vec(),
        b"transport.l5d.io/v1\r\n\r\n\x00\x00\x00\x05\xff\xff\xff\xff\xff".to_vec(),
    ];
    for j in &junk {
        send_garbage(mesh.client.outbound, j).await;
        send_garbage(mesh.servers[0].inbound, j).await;
        send_garbage(mesh.client.admin, j).await;
    }
    assert!(!mesh.client.process.output().contains("panicked"));
    assert!(!mesh.servers[0].process.output().contains("panicked"));
    let (status, backend, _) = get_via(&http1_client(), mesh.client.outbound, WEB_FQDN)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(backend, "pod-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_header_is_rejected_and_proxy_keeps_serving() {
    let mesh = Mesh::start(1, 8080, false, &[]).await;
    let _b = mesh.http_backends().await;
    mesh.wait_routable().await;

    let mut s = TcpStream::connect(mesh.client.outbound).await.unwrap();
    let big = "a".repeat(70 * 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: {WEB_FQDN}\r\nx-big: {big}\r\n\r\n");
    // The proxy may close while we are still writing.
    let _ = s.write_all(req.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("proxy neither answered nor closed");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        buf.is_empty() || text.starts_with("HTTP/1.1 431"),
        "expected 431 or a closed connection, got: {text}"
    );

    let (status, _, _) = get_via(&http1_client(), mesh.client.outbound, WEB_FQDN)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_does_not_block_others() {
    let mesh = Mesh::start(1, 8080, false, &[]).await;
    let _b = mesh.http_backends().await;
    mesh.wait_routable().await;

    // One header byte every 100 ms for ~2 s.
    let out = mesh.client.outbound;
    let outbound_read = |m: &str| {
        metric_sum(
            m,
            "tcp_read_bytes_total",
            &[("direction", "outbound"), ("peer", "src")],
        )
    };
    let read_before = outbound_read(&mesh.client.metrics().await);
    let slow = tokio::spawn(async move {
        let mut s = TcpStream::connect(out).await.unwrap();
        let req = format!("GET / HTTP/1.1\r\nHost: {WEB_FQDN}\r\nx-slow: ");
        for b in req.bytes().chain(std::iter::repeat_n(b'z', 20)).take(20) {
            if s.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Wait until the proxy is reading the slow client's request.
    wait_until(Duration::from_secs(5), || async {
        let read = outbound_read(&mesh.client.metrics().await);
        if read > read_before {
            Ok(())
        } else {
            Err(format!(
                "the client proxy has read nothing from the slow client ({read} bytes in all)"
            ))
        }
    })
    .await
    .unwrap();
    let client = http1_client();
    let started = Instant::now();
    for _ in 0..20 {
        let t = Instant::now();
        let (status, _, _) = get_via(&client, out, WEB_FQDN).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "a request took {:?}",
            t.elapsed()
        );
    }
    assert!(
        !slow.is_finished(),
        "the slow client should still be trickling"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    slow.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_down_at_start_ip_targets_still_work() {
    let net = Net::new();
    let backend = HttpBackend::start(net.addr(11, 8080), "direct").await;
    // Nothing listens on the destination address.
    let proxy = Proxy::start(net.ip(10), &net.addr(2, 8086).to_string(), &[]).await;
    let client = http1_client();
    for _ in 0..5 {
        let (status, name, _) = get_via(&client, proxy.outbound, &backend.addr.to_string())
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(name, "direct");
    }
    assert_eq!(backend.hits(), 5);
    // A name cannot be resolved without discovery: an error, not a hang.
    let started = Instant::now();
    let (status, err) = get_error(proxy.outbound, WEB_FQDN).await;
    assert!(status.is_server_error(), "{status}");
    assert!(err.is_some());
    assert!(started.elapsed() < Duration::from_secs(8));
}
