//! HTTP/1.1 through the mesh: client proxy -> server proxy -> backend.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use wisp_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_hyper_through_two_proxies_with_metrics() {
    let mesh = Mesh::start(3, 8080, true, &[]).await;
    let backends = mesh.http_backends().await;
    mesh.wait_routable().await;

    let url = format!("http://{}/", mesh.client.outbound);
    let (ok, out, err) = curl(&["-H", &format!("Host: {WEB_FQDN}"), "-D", "-", &url]).await;
    assert!(ok, "curl failed: {err}");
    assert!(out.starts_with("HTTP/1.1 200"), "curl got: {out}");
    assert!(
        out.to_ascii_lowercase().contains("x-backend: pod-"),
        "{out}"
    );

    let client = http1_client();
    for _ in 0..20 {
        let (status, backend, body) = get_via(&client, mesh.client.outbound, WEB_FQDN)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(backend.starts_with("pod-"));
        assert_eq!(body, Bytes::from(backend));
    }
    let total_hits: u64 = backends.iter().map(HttpBackend::hits).sum();
    // 1 (wait_routable) + 1 (curl) + 20.
    assert_eq!(total_hits, 22);

    let m = mesh.client.metrics().await;
    let requests = metric_sum(
        &m,
        "request_total",
        &[("direction", "outbound"), ("authority", WEB_AUTHORITY)],
    );
    assert_eq!(requests, 22.0, "client metrics:\n{m}");
    // Response series are recorded when the body ends; poll for the last one.
    let client_proxy = &mesh.client;
    let ok = eventually(Duration::from_secs(2), || async move {
        let m = client_proxy.metrics().await;
        metric_sum(
            &m,
            "response_total",
            &[
                ("direction", "outbound"),
                ("authority", WEB_AUTHORITY),
                ("status_code", "200"),
                ("classification", "success"),
            ],
        ) == 22.0
    })
    .await;
    assert!(ok, "response_total: {}", mesh.client.metrics().await);

    let mut inbound = 0.0;
    for s in &mesh.servers {
        let m = s.metrics().await;
        inbound += metric_sum(&m, "request_total", &[("direction", "inbound")]);
        assert_eq!(
            metric_sum(&m, "request_total", &[("direction", "outbound")]),
            0.0
        );
    }
    assert_eq!(inbound, 22.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_intact() {
    let mesh = Mesh::start(1, 8080, true, &[]).await;
    let _b = mesh.http_backends().await;
    mesh.wait_routable().await;
    let client = http1_client();

    // 1 MiB up, echoed back.
    let up = pattern(1 << 20, 42);
    let req = Request::post(format!("http://{}/echo", mesh.client.outbound))
        .header("host", WEB_FQDN)
        .body(Full::new(Bytes::from(up.clone())))
        .unwrap();
    let rsp = client.request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), up.len());
    assert_eq!(fnv1a(&body), fnv1a(&up));

    // 1 MiB down.
    let req = Request::get(format!("http://{}/bytes/{}", mesh.client.outbound, 1 << 20))
        .header("host", WEB_FQDN)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let rsp = client.request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(fnv1a(&body), fnv1a(&pattern(1 << 20, 7)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_post_streams_through() {
    let mesh = Mesh::start(1, 8080, true, &[]).await;
    let _b = mesh.http_backends().await;
    mesh.wait_routable().await;

    // A body of unknown length (chunked), sent in pieces with pauses.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let chunks: Vec<Vec<u8>> = (0..8)
        .map(|i| pattern(10_000 + i * 1000, i as u64 + 1))
        .collect();
    let expected: Vec<u8> = chunks.concat();
    tokio::spawn(async move {
        for c in chunks {
            tx.send(Ok(Frame::data(Bytes::from(c)))).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let client: Client<_, StreamBody<_>> = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::post(format!("http://{}/echo", mesh.client.outbound))
        .header("host", WEB_FQDN)
        .body(body)
        .unwrap();
    assert!(!req.headers().contains_key("content-length"));
    let rsp = client.request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    let got = rsp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(fnv1a(&got), fnv1a(&expected));

    // curl with an explicit chunked upload too.
    let url = format!("http://{}/echo", mesh.client.outbound);
    let (ok, out, err) = curl(&[
        "-H",
        &format!("Host: {WEB_FQDN}"),
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        "hello chunked world",
        &url,
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "hello chunked world");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dst_override_routes_instead_of_host() {
    let mesh = Mesh::start(1, 8080, true, &[]).await;
    let backends = mesh.http_backends().await;
    mesh.wait_routable().await;
    let before = backends[0].hits();

    // Host names something that does not exist; the override names web.
    let client = http1_client();
    let req = Request::get(format!("http://{}/", mesh.client.outbound))
        .header("host", "nothing.default.svc.cluster.local")
        .header("l5d-dst-override", WEB_AUTHORITY)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let rsp = client.request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.headers()["x-backend"], "pod-0");
    // The override header is consumed by the proxy, never forwarded.
    assert_eq!(rsp.headers()["x-saw-dst-override"], "no");
    assert_eq!(backends[0].hits(), before + 1);

    let m = mesh.client.metrics().await;
    assert!(
        metric_sum(
            &m,
            "request_total",
            &[("direction", "outbound"), ("authority", WEB_AUTHORITY)]
        ) >= 2.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmeshed_endpoints_are_reached_directly() {
    let mesh = Mesh::start(2, 8080, false, &[]).await;
    let backends = mesh.http_backends().await;
    mesh.wait_routable().await;
    let client = http1_client();
    for _ in 0..10 {
        let (status, backend, _) = get_via(&client, mesh.client.outbound, WEB_FQDN)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(backend.starts_with("pod-"));
    }
    assert_eq!(backends.iter().map(HttpBackend::hits).sum::<u64>(), 11);
    let m = mesh.client.metrics().await;
    // The client proxy talks to the app ports, not to port 4143.
    let direct = metric_sum(
        &m,
        "request_total",
        &[("direction", "outbound"), ("target_port", "8080")],
    );
    assert_eq!(direct, 11.0, "{m}");
}
