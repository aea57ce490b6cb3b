//! HTTP/2 (h2c prior knowledge) through the mesh.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use wisp_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_on_one_connection() {
    let mesh = Mesh::start(2, 8080, true, &[]).await;
    let backends = mesh.http_backends().await;
    mesh.wait_routable().await;
    for b in &backends {
        b.set_delay(Duration::from_millis(200));
    }

    // Exactly one TCP connection to the client proxy.
    let tcp = tokio::net::TcpStream::connect(mesh.client.outbound)
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);

    const STREAMS: usize = 64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..STREAMS {
        let mut send = send.clone();
        tasks.push(tokio::spawn(async move {
            let body = pattern(1000 + i, i as u64 + 1);
            let req = Request::post(format!("http://{WEB_FQDN}/echo"))
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap();
            let rsp = send.send_request(req).await.unwrap();
            assert_eq!(rsp.status(), StatusCode::OK);
            assert_eq!(rsp.version(), http::Version::HTTP_2);
            assert_eq!(rsp.headers()["x-version"], "HTTP/2.0");
            let got = rsp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(got, Bytes::from(body));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Sequentially this would take 64 * 200 ms; concurrently about 200 ms.
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "streams were serialized: {elapsed:?}"
    );
    assert_eq!(
        backends.iter().map(HttpBackend::hits).sum::<u64>(),
        STREAMS as u64 + 1
    );
    let m = mesh.client.metrics().await;
    assert_eq!(
        metric_sum(
            &m,
            "request_total",
            &[("direction", "outbound"), ("authority", WEB_AUTHORITY)]
        ),
        STREAMS as f64 + 1.0,
        "{m}"
    );
}

#[tokio::test]
async fn curl_http2_prior_knowledge() {
    let mesh = Mesh::start(1, 8080, true, &[]).await;
    let _b = mesh.http_backends().await;
    mesh.wait_routable().await;
    let url = format!("http://{}/", mesh.client.outbound);
    let (ok, out, err) = curl(&[
        "--http2-prior-knowledge",
        "-H",
        &format!("Host: {WEB_FQDN}"),
        "-D",
        "-",
        &url,
    ])
    .await;
    assert!(ok, "curl: {err}");
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(out.contains("x-version: HTTP/2.0"), "{out}");
    assert!(out.ends_with("pod-0"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authority_naming_the_proxy_itself_is_a_loop() {
    // With HTTP/2 the :authority (here the proxy's own address) wins over a
    // Host header, so the proxy must refuse to forward to itself.
    let mesh = Mesh::start(1, 8080, false, &[]).await;
    let _b = mesh.http_backends().await;
    let client = h2c_client();
    let (status, backend, body) = get_via(&client, mesh.client.outbound, WEB_FQDN)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::LOOP_DETECTED, "{body:?}");
    assert!(backend.is_empty());
    // And the proxy still serves a proper h2 request afterwards.
    let tcp = tokio::net::TcpStream::connect(mesh.client.outbound)
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let rsp = send
        .send_request(
            Request::get(format!("http://{WEB_FQDN}/"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.headers()["x-backend"], "pod-0");
}
