//! Mesh TLS: proxies certified by a real `wisp identity` service talk mTLS
//! to each other (transport header inside TLS, HTTP/1 upgraded to HTTP/2),
//! refuse peers with the wrong identity or another trust anchor, rotate
//! certificates under load, and wait for their first certificate before
//! serving. The `openssl` cases need `openssl` on PATH: without it they
//! fail under `CI=true` and skip with a message otherwise ([`require_tool`]).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus as Wire;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use wisp_tests::identity::{cert_expiry, openssl, pem_certs, s_client};
use wisp_tests::*;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One answer: status, version, headers, body.
struct Answer {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: String,
}

/// `GET path` for `web` through the proxy at `proxy`, with extra headers.
async fn get(
    client: &HttpClient,
    proxy: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Answer> {
    let mut req =
        Request::get(format!("http://{proxy}{path}")).header(http::header::HOST, WEB_FQDN);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let rsp = tokio::time::timeout(
        Duration::from_secs(5),
        client.request(req.body(Full::new(Bytes::new()))?),
    )
    .await??;
    let (parts, body) = rsp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Answer {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The values of header `name` in a `/headers` body.
fn header_values<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}: ");
    body.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

fn client_id() -> String {
    identity_name("client", "default")
}

fn web_id() -> String {
    identity_name("web", "default")
}

/// Polls until `proxy`'s metrics satisfy `cond`; panics with them otherwise.
async fn wait_metrics(proxy: &Proxy, what: &str, cond: impl Fn(&str) -> bool) {
    let ok = eventually(Duration::from_secs(3), || async {
        cond(&proxy.metrics().await)
    })
    .await;
    assert!(ok, "{what}:\n{}", proxy.metrics().await);
}

// ---------------------------------------------------------------------------
// 1. mTLS end to end
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_over_mtls_end_to_end() {
    let mesh = Mesh::start_mtls(1, 8080, &MtlsOptions::default()).await;
    let backends = mesh.http_backends().await;
    mesh.wait_routable().await;
    let client = http1_client();
    for _ in 0..5 {
        let a = get(&client, mesh.client.outbound, "/headers", &[])
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.version, Version::HTTP_11);
        // The app got HTTP/1.1, with the verified client identity and
        // without the upgrade marker the proxies exchanged.
        assert_eq!(
            a.headers.get("x-version").unwrap(),
            "HTTP/1.1",
            "{:?}",
            a.headers
        );
        assert_eq!(
            header_values(&a.body, "l5d-client-id"),
            [client_id().as_str()],
            "app saw:\n{}",
            a.body
        );
        assert!(
            header_values(&a.body, "l5d-orig-proto").is_empty(),
            "app saw:\n{}",
            a.body
        );
        assert!(
            a.headers.get("l5d-orig-proto").is_none(),
            "client saw {:?}",
            a.headers
        );
    }
    // 1 (wait_routable) + 5.
    assert_eq!(backends[0].hits(), 6);

    let server_id = web_id();
    wait_metrics(&mesh.client, "client proxy: outbound mTLS series", |m| {
        metric_sum(
            m,
            "request_total",
            &[
                ("direction", "outbound"),
                ("authority", WEB_AUTHORITY),
                ("tls", "true"),
                ("server_id", &server_id),
            ],
        ) == 6.0
    })
    .await;
    let cid = client_id();
    wait_metrics(&mesh.servers[0], "server proxy: inbound mTLS series", |m| {
        metric_sum(
            m,
            "request_total",
            &[
                ("direction", "inbound"),
                ("tls", "true"),
                ("client_id", &cid),
            ],
        ) == 6.0
            && metric_sum(m, "request_total", &[("direction", "inbound")]) == 6.0
    })
    .await;
    // Both proxies report their certificate.
    for p in [&mesh.client, &mesh.servers[0]] {
        let expiry = cert_expiry(&p.metrics().await).expect("expiry metric");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(expiry > now + 3600.0, "expiry {expiry} vs now {now}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_mtls() {
    let mesh = Mesh::start_mtls(1, 9090, &MtlsOptions::default()).await;
    let _backend = GrpcBackend::start(mesh.app_addr(0)).await;
    let channel = Endpoint::from_shared(format!("http://{}", mesh.client.outbound))
        .unwrap()
        .origin(format!("http://{WEB_AUTHORITY}").parse().unwrap())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let client = HealthClient::new(channel);
    let check = |s: &str| HealthCheckRequest {
        service: s.to_string(),
    };
    let ok = eventually(Duration::from_secs(10), || {
        let mut c = client.clone();
        let req = check("web");
        async move { c.check(req).await.is_ok() }
    })
    .await;
    assert!(
        ok,
        "gRPC never succeeded:\n{}",
        mesh.client.process.output()
    );
    let rsp = client
        .clone()
        .check(check("web"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rsp.status(), Wire::Serving);
    let err = client.clone().check(check("nope")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    let server_id = web_id();
    wait_metrics(&mesh.client, "client proxy: gRPC over mTLS", |m| {
        metric_sum(
            m,
            "response_total",
            &[
                ("direction", "outbound"),
                ("tls", "true"),
                ("server_id", &server_id),
                ("grpc_status", "5"),
            ],
        ) == 1.0
    })
    .await;
    let cid = client_id();
    wait_metrics(&mesh.servers[0], "server proxy: gRPC over mTLS", |m| {
        metric_sum(
            m,
            "response_total",
            &[
                ("direction", "inbound"),
                ("tls", "true"),
                ("client_id", &cid),
                ("grpc_status", "0"),
            ],
        ) >= 2.0
    })
    .await;
}

// ---------------------------------------------------------------------------
// 2. The server does not hold the identity discovery named
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_with_wrong_identity_is_refused() {
    // Discovery says the pod is `other.default...`; its proxy is certified
    // as `web.default...`.
    let mesh = Mesh::start_mtls(
        1,
        8080,
        &MtlsOptions {
            manifest_sa: "other",
            ..MtlsOptions::default()
        },
    )
    .await;
    let backends = mesh.http_backends().await;
    let client = http1_client();
    let out = mesh.client.outbound;
    // Poll until discovery has answered and the connection was attempted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = get(&client, out, "/", &[]).await;
        if a.as_ref()
            .is_ok_and(|a| a.status == StatusCode::BAD_GATEWAY)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expected a 502, last answer {:?}",
            a.map(|a| (a.status, a.headers, a.body))
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        let a = get(&client, out, "/", &[]).await.unwrap();
        assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.body);
        let err = a
            .headers
            .get("l5d-proxy-error")
            .expect("l5d-proxy-error")
            .to_str()
            .unwrap()
            .to_string();
        eprintln!("l5d-proxy-error: {err}");
        let other = identity_name("other", "default");
        assert!(
            err.contains("TLS") && err.contains(&other),
            "l5d-proxy-error should name the TLS failure with {other}: {err}"
        );
    }
    assert_eq!(backends[0].hits(), 0, "a request reached the app");
    let m = mesh.servers[0].metrics().await;
    assert_eq!(
        metric_sum(&m, "request_total", &[("direction", "inbound")]),
        0.0,
        "server proxy:\n{m}"
    );
    let m = mesh.client.metrics().await;
    assert!(
        metric_sum(
            &m,
            "request_total",
            &[
                ("direction", "outbound"),
                ("tls", "true"),
                ("server_id", &identity_name("other", "default")),
            ],
        ) >= 3.0,
        "client proxy:\n{m}"
    );
}

// ---------------------------------------------------------------------------
// 3. A client certified under another trust anchor
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_from_another_trust_anchor_is_refused() {
    let mesh = Mesh::start_mtls(1, 8080, &MtlsOptions::default()).await;
    let backends = mesh.http_backends().await;
    mesh.wait_routable().await;
    assert_eq!(backends[0].hits(), 1);
    let real = mesh.identity.as_ref().unwrap();

    // A second `wisp identity init`: a different CA. Its client trusts both
    // anchors (so it accepts the pod's certificate), but its own
    // certificate chains only to the rogue anchor.
    let rogue = IdentityPlane::start(mesh.net.addr(4, 8080)).await;
    let anchors = format!("{}{}", real.ca_pem(), rogue.ca_pem());
    let env = rogue.proxy_env_trusting("client", "default", &anchors);
    let dst = mesh.cp.addr.to_string();
    let rogue_proxy = Proxy::start_with_identity(mesh.net.ip(20), &dst, &env, &[]).await;

    let client = http1_client();
    // Discovery must answer first; then every request fails.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let a = get(&client, rogue_proxy.outbound, "/", &[]).await.unwrap();
        statuses.push((a.status, a.headers.get("l5d-proxy-error").cloned()));
    }
    assert!(
        statuses
            .iter()
            .all(|(s, _)| *s == StatusCode::BAD_GATEWAY || *s == StatusCode::GATEWAY_TIMEOUT),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|(s, _)| *s == StatusCode::BAD_GATEWAY),
        "{statuses:?}"
    );
    eprintln!("rogue client answers: {statuses:?}");
    assert_eq!(backends[0].hits(), 1, "a rogue request reached the app");
    let m = mesh.servers[0].metrics().await;
    assert_eq!(
        metric_sum(&m, "request_total", &[("direction", "inbound")]),
        1.0,
        "server proxy:\n{m}"
    );
    let cid = client_id();
    assert_eq!(
        metric_sum(
            &m,
            "request_total",
            &[("direction", "inbound"), ("client_id", &cid)]
        ),
        1.0,
        "server proxy:\n{m}"
    );
    // The legitimate client still works.
    let a = get(&client, mesh.client.outbound, "/", &[]).await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(backends[0].hits(), 2);

    // A raw TLS client (openssl) on the direct port: with a certificate
    // from the real CA it is served (control), from the rogue CA it is not.
    if !require_tool(
        "the openssl part of client_from_another_trust_anchor_is_refused",
        "openssl",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let raw = identity_name("raw", "default");
    let good = real.openssl_leaf(&raw, tmp.path());
    let bad_dir = tempfile::tempdir().unwrap();
    let bad = rogue.openssl_leaf(&raw, bad_dir.path());
    let mut input = transport_header(mesh.app_port, Session::Http1);
    input.extend_from_slice(b"GET /headers HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n");
    let ca = real.ca_path();
    let web = web_id();
    let run = |cert: &std::path::Path, key: &std::path::Path, chain: std::path::PathBuf| {
        let args = [
            "-cert_chain".to_string(),
            chain.display().to_string(),
            "-servername".into(),
            web.clone(),
            "-alpn".into(),
            "transport.l5d.io/v1".into(),
            "-CAfile".into(),
            ca.display().to_string(),
            "-cert".into(),
            cert.display().to_string(),
            "-key".into(),
            key.display().to_string(),
        ];
        let inbound = mesh.servers[0].inbound;
        let input = input.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            s_client(inbound, &args, &input, Duration::from_secs(5)).await
        }
    };
    let ok = run(&good.0, &good.1, real.issuer_path()).await;
    assert!(
        ok.stdout.contains("HTTP/1.1 200") && ok.stdout.contains(&format!("l5d-client-id: {raw}")),
        "control: the real CA's client was not served: {ok:?}"
    );
    assert_eq!(backends[0].hits(), 3);
    let refused = run(&bad.0, &bad.1, rogue.issuer_path()).await;
    assert!(
        refused.stderr.contains("alert"),
        "the server should have sent a TLS alert: {refused:?}"
    );
    assert!(
        !refused.stdout.contains("HTTP/1.1"),
        "the rogue CA's client was served: {refused:?}"
    );
    assert_eq!(backends[0].hits(), 3, "a rogue raw request reached the app");
}

// ---------------------------------------------------------------------------
// 4. Rotation under load
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_load_without_failures() {
    let refresh = [("LINKERD2_PROXY_IDENTITY_MIN_REFRESH", "1s")];
    let client_env = [
        ("LINKERD2_PROXY_IDENTITY_MIN_REFRESH", "1s"),
        // No pooled connection: every request handshakes anew, so
        // handshakes keep happening across the rotations.
        ("LINKERD2_PROXY_OUTBOUND_MAX_IDLE_CONNS_PER_ENDPOINT", "0"),
    ];
    let mesh = Mesh::start_mtls(
        1,
        8080,
        &MtlsOptions {
            client_env: &client_env,
            server_env: &refresh,
            lifetime: Some(("10s", "1s")),
            ..MtlsOptions::default()
        },
    )
    .await;
    let _backends = mesh.http_backends().await;
    mesh.wait_routable().await;

    let load = LoadGen::start(mesh.client.outbound, WEB_FQDN, 4, Duration::from_millis(25));
    let mut seen: [BTreeSet<u64>; 2] = Default::default();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        for (i, p) in [&mesh.client, &mesh.servers[0]].into_iter().enumerate() {
            // A slow scrape (busy machine) is skipped, not fatal.
            if let Ok((_, body)) = http_get(p.admin, "/metrics").await {
                if let Some(e) = cert_expiry(&String::from_utf8_lossy(&body)) {
                    seen[i].insert(e as u64);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let samples = load.stop().await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut mesh = mesh;
    for p in [&mut mesh.client, &mut mesh.servers[0]] {
        assert!(
            p.process.exited().is_none(),
            "a proxy exited during rotation:\n{}",
            p.process.output()
        );
    }
    assert_no_failures(&samples);
    assert!(
        samples.len() as f64 / elapsed >= 50.0,
        "load too low: {} requests in {elapsed:.1}s",
        samples.len()
    );
    // At least two rotations on each side: three certificates.
    assert!(seen[0].len() >= 3, "client expiries {:?}", seen[0]);
    assert!(seen[1].len() >= 3, "server expiries {:?}", seen[1]);
    // New mTLS connections were made throughout.
    let m = mesh.client.metrics().await;
    let opened = metric_sum(
        &m,
        "tcp_open_total",
        &[("direction", "outbound"), ("tls", "true")],
    );
    assert!(opened >= 100.0, "only {opened} mTLS connections:\n{m}");
    eprintln!(
        "rotation: {} requests in {elapsed:.1}s, {opened} mTLS connections, expiries {:?} / {:?}",
        samples.len(),
        seen[0],
        seen[1]
    );
}

// ---------------------------------------------------------------------------
// 5. Identity service down at start
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_waits_for_the_identity_service() {
    let mut mesh = Mesh::start_mtls(1, 8080, &MtlsOptions::default()).await;
    let backends = mesh.http_backends().await;
    mesh.wait_routable().await;
    let id = mesh.identity.as_mut().unwrap();
    id.stop();

    // A new client proxy while the identity service is down.
    let env = id.proxy_env("client", "default");
    let dst = mesh.cp.addr.to_string();
    let mut proxy = Proxy::spawn(mesh.net.ip(20), &dst, Some(&env), &[]);
    let down_until = Instant::now() + Duration::from_millis(1500);
    let client = http1_client();
    let mut answered_ready = false;
    while Instant::now() < down_until {
        assert!(
            proxy.process.exited().is_none(),
            "proxy exited:\n{}",
            proxy.process.output()
        );
        if let Some(s) = proxy.ready_status().await {
            answered_ready = true;
            assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered_ready, "/ready never answered");
    // The outbound port is bound but not served.
    let r = tokio::time::timeout(
        Duration::from_millis(500),
        get(&client, proxy.outbound, "/", &[]),
    )
    .await;
    assert!(
        !matches!(r, Ok(Ok(_))),
        "outbound served before the certificate"
    );
    assert_eq!(backends[0].hits(), 1);

    let id = mesh.identity.as_mut().unwrap();
    id.restart().await;
    let t = Instant::now();
    proxy.wait_ready(Duration::from_secs(10)).await;
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "ready {took:?} after identity came up"
    );
    let a = get(&http1_client(), proxy.outbound, "/headers", &[])
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        header_values(&a.body, "l5d-client-id"),
        [client_id().as_str()]
    );
    assert!(proxy.process.exited().is_none(), "proxy exited");
    eprintln!("ready {took:?} after the identity service started");
}

// ---------------------------------------------------------------------------
// 6. openssl from outside
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_sees_the_chain_and_direct_needs_a_client_cert() {
    if !require_tool(
        "openssl_sees_the_chain_and_direct_needs_a_client_cert",
        "openssl",
    ) {
        return;
    }
    let mesh = Mesh::start_mtls(1, 8080, &MtlsOptions::default()).await;
    let backends = mesh.http_backends().await;
    let id = mesh.identity.as_ref().unwrap();
    let ca = id.ca_path().display().to_string();
    let web = web_id();
    let inbound = mesh.servers[0].inbound;
    let out = s_client(
        inbound,
        &[
            "-servername",
            &web,
            "-verify_hostname",
            &web,
            "-CAfile",
            &ca,
            "-showcerts",
        ],
        b"",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        out.stdout.contains("Verify return code: 0 (ok)"),
        "s_client: {out:?}"
    );
    assert!(out.stdout.contains("TLSv1.3"), "s_client: {out:?}");
    let certs = pem_certs(&out.stdout);
    assert_eq!(certs.len(), 2, "expected leaf + issuer: {out:?}");
    let tmp = tempfile::tempdir().unwrap();
    let leaf = tmp.path().join("leaf.pem");
    let issuer = tmp.path().join("issuer.pem");
    std::fs::write(&leaf, &certs[0]).unwrap();
    std::fs::write(&issuer, &certs[1]).unwrap();
    let verified = openssl(&[
        "verify",
        "-CAfile",
        &ca,
        "-untrusted",
        issuer.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(verified.trim().ends_with(": OK"), "{verified}");
    let text = openssl(&[
        "x509",
        "-noout",
        "-ext",
        "subjectAltName",
        "-in",
        leaf.to_str().unwrap(),
    ]);
    assert!(text.contains(&format!("DNS:{web}")), "{text}");

    // Direct connections require a client certificate: without one, a
    // request after the handshake gets nothing back (with or without the
    // transport header and its ALPN).
    let mut with_header = transport_header(mesh.app_port, Session::Http1);
    with_header.extend_from_slice(b"GET / HTTP/1.1\r\nhost: web\r\n\r\n");
    let cases: [(&[&str], &[u8]); 2] = [
        (&["-alpn", "transport.l5d.io/v1"], &with_header),
        (&[], b"GET / HTTP/1.1\r\nhost: web\r\n\r\n"),
    ];
    for (extra, input) in cases {
        let mut args = vec!["-servername", web.as_str(), "-CAfile", ca.as_str()];
        args.extend_from_slice(extra);
        let out = s_client(inbound, &args, input, Duration::from_secs(3)).await;
        assert!(
            !out.stdout.contains("HTTP/1."),
            "got application data without a client certificate: {out:?}"
        );
    }
    assert_eq!(backends[0].hits(), 0);
}

// ---------------------------------------------------------------------------
// 7. A forged l5d-client-id never reaches the app
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_client_id_is_stripped_without_identity() {
    let mesh = Mesh::start(1, 8080, true, &[]).await;
    let _backends = mesh.http_backends().await;
    mesh.wait_routable().await;
    let a = get(
        &http1_client(),
        mesh.client.outbound,
        "/headers",
        &[("l5d-client-id", "evil")],
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        header_values(&a.body, "l5d-client-id").is_empty(),
        "app saw:\n{}",
        a.body
    );
    // A plaintext client straight to the pod proxy's direct port.
    let rsp = raw_direct(mesh.servers[0].inbound, mesh.app_port).await;
    assert!(rsp.starts_with("HTTP/1.1 200"), "{rsp}");
    assert!(!rsp.contains("evil"), "app saw the forged id:\n{rsp}");
}

/// A plaintext direct connection to `inbound` (transport header naming
/// `port`) sending `GET /headers` with a forged `l5d-client-id`: what came back.
async fn raw_direct(inbound: SocketAddr, port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(inbound).await.unwrap();
    let mut req = transport_header(port, Session::Http1);
    req.extend_from_slice(
        b"GET /headers HTTP/1.1\r\nhost: web\r\nl5d-client-id: evil\r\nconnection: close\r\n\r\n",
    );
    s.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_client_id_is_replaced_over_mtls() {
    let mesh = Mesh::start_mtls(1, 8080, &MtlsOptions::default()).await;
    let backends = mesh.http_backends().await;
    mesh.wait_routable().await;
    let a = get(
        &http1_client(),
        mesh.client.outbound,
        "/headers",
        &[("l5d-client-id", "evil")],
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        header_values(&a.body, "l5d-client-id"),
        [client_id().as_str()],
        "app saw:\n{}",
        a.body
    );
    // A plaintext direct connection is refused outright with identity on.
    let rsp = raw_direct(mesh.servers[0].inbound, mesh.app_port).await;
    assert!(
        rsp.is_empty(),
        "plaintext direct connection answered: {rsp}"
    );
    assert_eq!(backends[0].hits(), 2);
}

// ---------------------------------------------------------------------------
// 2b. The client checks the name in the server's certificate
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rejects_an_impostor_certificate() {
    if !require_tool("client_rejects_an_impostor_certificate", "openssl") {
        return;
    }
    let mesh = Mesh::start_mtls(1, 8080, &MtlsOptions::default()).await;
    let _backends = mesh.http_backends().await;
    mesh.wait_routable().await;
    let real = mesh.identity.as_ref().unwrap();
    let rogue = IdentityPlane::init(mesh.net.addr(4, 8080));
    let tmp = tempfile::tempdir().unwrap();
    let rogue_tmp = tempfile::tempdir().unwrap();
    // Certificates an impostor might hold: the right CA but another name,
    // and the right name from another CA.
    let wrong_name = real.openssl_leaf(&identity_name("evil", "default"), tmp.path());
    let wrong_ca = rogue.openssl_leaf(&web_id(), rogue_tmp.path());
    // Control: what the real pod holds, which the client must accept.
    let good_dir = tempfile::tempdir().unwrap();
    let good = real.openssl_leaf(&web_id(), good_dir.path());

    // Pod `.13` claims to be `web` (SA web) but its "proxy" is openssl.
    let ip = mesh.net.ip(13);
    mesh.cp.write(
        "pod-impostor.yaml",
        &pod_yaml_with_sa("web-impostor", "default", ip, Some("web")),
    );
    mesh.cp.write(
        "slice.yaml",
        &endpoint_slice_yaml(
            "web-1",
            "default",
            "web",
            mesh.app_port,
            &[SliceEndpoint {
                ip,
                pod: Some("web-impostor".into()),
            }],
        ),
    );
    let inbound = SocketAddr::from((ip, 4143));
    let client = http1_client();
    let impostor = |cert: &std::path::Path, key: &std::path::Path, chain: &std::path::Path| {
        let mut cmd = std::process::Command::new("openssl");
        // `-rev` serves connection after connection, printing
        // "CONNECTION ESTABLISHED" once a client finished its handshake.
        cmd.args(["s_server", "-rev", "-alpn", "transport.l5d.io/v1"])
            .arg("-accept")
            .arg(inbound.to_string())
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .arg("-cert_chain")
            .arg(chain);
        Process::spawn("openssl s_server", cmd)
    };
    for (what, (cert, key), chain, expect) in [
        (
            "right CA, wrong name",
            &wrong_name,
            real.issuer_path(),
            "not valid for name",
        ),
        (
            "wrong CA, right name",
            &wrong_ca,
            rogue.issuer_path(),
            "invalid peer certificate",
        ),
    ] {
        let server = impostor(cert, key, &chain);
        wait_for_port(inbound, Duration::from_secs(5)).await;
        // Poll until discovery moved to the impostor and it was tried.
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = loop {
            let a = get(&client, mesh.client.outbound, "/", &[]).await.unwrap();
            let err = a
                .headers
                .get("l5d-proxy-error")
                .map(|v| v.to_str().unwrap().to_string());
            if let Some(e) = err.filter(|e| e.contains(&ip.to_string())) {
                assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{what}: {e}");
                break e;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never tried the impostor (last {})",
                a.status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        eprintln!("{what}: {err}");
        assert!(
            err.contains("TLS handshake") && err.contains(expect),
            "{what}: {err}"
        );
        assert!(
            !server.output().contains("CONNECTION ESTABLISHED"),
            "{what}: a handshake completed:\n{}",
            server.output()
        );
    }

    // Control: with the certificate the real pod holds, the client
    // accepts the server and completes its handshake (openssl never
    // answers HTTP/2, so the request itself goes nowhere).
    let server = impostor(&good.0, &good.1, &real.issuer_path());
    wait_for_port(inbound, Duration::from_secs(5)).await;
    let out = mesh.client.outbound;
    let pending = tokio::spawn(async move {
        let _ = get(&http1_client(), out, "/", &[]).await;
    });
    let ok = eventually(Duration::from_secs(5), || {
        let seen = server.output().contains("CONNECTION ESTABLISHED");
        async move { seen }
    })
    .await;
    pending.abort();
    assert!(
        ok,
        "control: the client never completed a handshake:\n{}",
        server.output()
    );
}
