//! `wisp tap --tls-dir` against real proxies: the operator issues the tap
//! service's identity with `wisp identity issue` and taps over mesh TLS.
//!
//! - On loopback (a `Mesh` with identity): the tap identity sees a request
//!   with `wisp tap` and `wisp profile --tap` (the proxy's identity derived
//!   from the pod's service account); another identity gets `UNAUTHENTICATED` (loopback plaintext would be
//!   allowed, so this shows the identity over TLS is what is checked); a
//!   wrong `--server-id`, a foreign trust anchor and missing files fail
//!   with their explanation, as does an address target without
//!   `--server-id`.
//! - Across two network namespaces (root and `ip` needed): the proxy's
//!   control port on a non-loopback address refuses a plaintext tap from
//!   the other "host" and accepts the mTLS one (`wisp top` of the proxy's
//!   admin address with `--server-id`).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use http::StatusCode;
use wisp_tests::identity::{identity_name, IdentityPlane};
use wisp_tests::netns::Pair;
use wisp_tests::*;

/// The tap service's identity (the proxies' LINKERD2_PROXY_TAP_SVC_NAME).
fn tap_identity() -> String {
    identity_name("tap", "linkerd-viz")
}

fn wisp(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("wisp"));
    cmd.args(args);
    cmd
}

/// Runs `wisp ARGS` to completion (at most 30 s): success, stdout, stderr.
async fn run_wisp(args: &[&str]) -> (bool, String, String) {
    Running::spawn(wisp(args))
        .finish(Duration::from_secs(30))
        .await
}

/// `wisp identity issue` of `name` from the CA in `dir` into `out`.
async fn issue(dir: &Path, name: &str, out: &Path) {
    let (ok, stdout, err) = run_wisp(&[
        "identity",
        "issue",
        "--dir",
        dir.to_str().unwrap(),
        "--name",
        name,
        "--out",
        out.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "wisp identity issue failed: {stdout}{err}");
}

/// A Pod manifest for the CLI's `--source dir:`: `web-0` (service account
/// `web`) at `ip`, its proxy's control port on `control`.
fn cli_pod(ip: std::net::Ipv4Addr, control: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n  namespace: default\n  labels: {{app: web}}\nspec:\n  serviceAccountName: web\n  containers:\n  - name: linkerd-proxy\n    image: wisp-proxy\n    env: [{{name: LINKERD2_PROXY_CONTROL_LISTEN_ADDR, value: \"{control}\"}}]\nstatus: {{podIP: {ip}}}\n"
    )
}

/// One mesh with identity, the server proxy tapping only for the tap
/// identity: `wisp identity issue` for it, then `wisp tap --tls-dir` sees a
/// request; then every refusal, explained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_over_mtls_with_the_issued_tap_identity() {
    let tap = tap_identity();
    // The control listener on a free port of every address of the pod.
    let (mesh, port) = Mesh::start_tapped(&tap).await;
    let control_listen = format!("0.0.0.0:{port}");
    let _backends = mesh.http_backends().await;
    mesh.wait_routable().await;
    let ca = mesh.identity.as_ref().unwrap();
    let server = &mesh.servers[0];

    // The CLI's view of the pod: `pod/web-0`, service account `web`.
    let manifests = tempfile::tempdir().unwrap();
    std::fs::write(
        manifests.path().join("web-0.yaml"),
        cli_pod(mesh.pods[0], &control_listen),
    )
    .unwrap();
    let source = format!("dir:{}", manifests.path().display());
    let work = tempfile::tempdir().unwrap();
    let tap_dir = work.path().join("tap");
    issue(ca.dir(), &tap, &tap_dir).await;
    let tls_dir = tap_dir.to_str().unwrap();

    // The tap identity taps; the proxy's identity is derived from the pod
    // (web.default.serviceaccount.identity.linkerd.cluster.local).
    let mut tapping = Running::spawn(wisp(&[
        "tap",
        "pod/web-0",
        "--source",
        &source,
        "--tls-dir",
        tls_dir,
        "-o",
        "json",
        "--path",
        "/tapped",
        "--max-events",
        "3",
    ]));
    let opened = server.wait_tap_observers(1, Duration::from_secs(10)).await;
    assert!(opened, "the tap never opened: {}", tapping.kill());
    let client = http1_client();
    let sent = sent_ok(&client, mesh.client.outbound, "/tapped/1").await;
    assert!(sent, "the tapped request failed");
    let (ok, out, err) = tapping.finish(Duration::from_secs(10)).await;
    assert!(ok, "{err}");
    let events = json_lines(&out);
    assert_eq!(events.len(), 3, "{out}");
    assert_eq!(events[0]["proxyDirection"], "INBOUND", "{out}");
    assert_eq!(events[0]["requestInitEvent"]["path"], "/tapped/1", "{out}");

    // `wisp profile --tap` over the same mTLS: a route from the request
    // (once the first tap is closed, so the count below is the profile's).
    let closed = server.wait_tap_observers(0, Duration::from_secs(10)).await;
    assert!(closed, "the first tap never closed");
    let profile = Running::spawn(wisp(&[
        "profile",
        "--tap",
        "pod/web-0",
        "--source",
        &source,
        "--tls-dir",
        tls_dir,
        "--tap-duration",
        "20s",
        "--tap-route-limit",
        "1",
        "web",
    ]));
    let opened = server.wait_tap_observers(1, Duration::from_secs(10)).await;
    assert!(opened, "the profile tap never opened");
    let sent = sent_ok(&client, mesh.client.outbound, "/books/1").await;
    assert!(sent, "the profiled request failed");
    let (ok, out, err) = profile.finish(Duration::from_secs(15)).await;
    assert!(ok, "{err}");
    assert!(out.contains("name: GET /books/1"), "{out}");

    // `wisp tap pod/web-0 --tls-dir DIR EXTRA...` to the end.
    let tap_with = |dir: &str, extra: &[&str]| {
        let mut args = vec!["tap", "pod/web-0", "--source", &source, "--tls-dir", dir];
        args.extend_from_slice(extra);
        Running::spawn(wisp(&args)).finish(Duration::from_secs(30))
    };

    // Another identity of the same CA: the proxy answers UNAUTHENTICATED.
    let intruder = identity_name("intruder", "default");
    let intruder_dir = work.path().join("intruder");
    issue(ca.dir(), &intruder, &intruder_dir).await;
    let (ok, _, err) = tap_with(intruder_dir.to_str().unwrap(), &[]).await;
    assert!(!ok);
    assert!(err.contains("Unauthorized client"), "{err}");
    assert!(
        err.contains(&format!("does not accept identity {intruder}")),
        "{err}"
    );
    assert!(err.contains(&tap), "{err}");

    // A wrong --server-id: the proxy ends the handshake (its SNI check).
    let wrong = identity_name("client", "default");
    let (ok, _, err) = tap_with(tls_dir, &["--server-id", &wrong]).await;
    assert!(!ok);
    assert!(
        err.contains(&format!("expected proxy identity {wrong}")),
        "{err}"
    );
    assert!(
        err.contains("closed the connection during the TLS handshake"),
        "{err}"
    );

    // A tap certificate of another trust anchor: the proxy's certificate
    // fails verification against that ca.crt.
    let other = IdentityPlane::init(mesh.net.addr(4, 8080));
    let foreign = work.path().join("foreign");
    issue(other.dir(), &tap, &foreign).await;
    let (ok, _, err) = tap_with(foreign.to_str().unwrap(), &[]).await;
    assert!(!ok);
    assert!(err.contains("failed verification"), "{err}");
    // Both anchors are named root.linkerd.cluster.local: a bad signature.
    assert!(err.contains("BadSignature"), "{err}");

    // Missing files and address targets without --server-id.
    let partial = work.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    for f in ["tls.crt", "ca.crt"] {
        std::fs::copy(tap_dir.join(f), partial.join(f)).unwrap();
    }
    let (ok, _, err) = tap_with(partial.to_str().unwrap(), &[]).await;
    assert!(!ok);
    assert!(err.contains("tls.key"), "{err}");
    assert!(err.contains("No such file"), "{err}");
    let (ok, _, err) = run_wisp(&["tap", &server.admin.to_string(), "--tls-dir", tls_dir]).await;
    assert!(!ok);
    assert!(err.contains("give --server-id"), "{err}");
    let (ok, _, err) = run_wisp(&[
        "top",
        "pod/web-0",
        "--source",
        &source,
        "--tls-dir",
        "/nonexistent/tls",
    ])
    .await;
    assert!(!ok);
    assert!(
        err.contains("--tls-dir /nonexistent/tls: not a directory"),
        "{err}"
    );
}

/// `program ARGS` inside namespace `ns`, its output collected by [`Process`].
fn in_ns(ns: &str, program: &Path, args: &[&str]) -> Command {
    let mut cmd = Pair::exec(ns, program);
    cmd.args(args);
    cmd
}

/// The proxy in namespace `b` serves its control port on `b`'s veth
/// address; from namespace `a` (another "host"), a plaintext tap is
/// refused with the hint to use `--tls-dir`, and `wisp top --tls-dir
/// --server-id` of the proxy's admin address taps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_from_another_host_needs_mtls() {
    if !require(
        "tap_from_another_host_needs_mtls",
        &[
            Need::Root,
            Need::Tool("ip"),
            Need::Tool("curl"),
            Need::Tool("setpriv"),
        ],
    ) {
        return;
    }
    let pair = Pair::create('m', 81);
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let host_b = pair.ip(2);
    let tap = tap_identity();
    let server_id = identity_name("web", "default");

    // Identity and destination services inside `b`, on its loopback.
    let ca = IdentityPlane::init("127.0.0.1:8080".parse().unwrap());
    let args: Vec<String> = ca
        .serve_command_args("127.0.0.1:8080".parse().unwrap())
        .into_iter()
        .map(|s| s.into_string().unwrap())
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut identity = Process::spawn("wisp identity in b", in_ns(&b, &bin("wisp"), &args));
    Pair::wait_listening(&b, "127.0.0.1:8080", &mut identity, "wisp identity").await;
    let manifests = tempfile::tempdir().unwrap();
    let source = format!("dir:{}", manifests.path().display());
    let mut destination = Process::spawn(
        "wisp destination in b",
        in_ns(
            &b,
            &bin("wisp"),
            &[
                "destination",
                "--source",
                &source,
                "--addr",
                "127.0.0.1:8086",
            ],
        ),
    );
    Pair::wait_listening(&b, "127.0.0.1:8086", &mut destination, "wisp destination").await;

    // The proxy, certified as web.default, tap for the tap identity only.
    let mut cmd = Pair::proxy_command(&b);
    cmd.env("LINKERD2_PROXY_CONTROL_LISTEN_ADDR", "0.0.0.0:4190")
        .env("LINKERD2_PROXY_TAP_SVC_NAME", &tap);
    for (k, v) in ca.proxy_env("web", "default") {
        cmd.env(k, v);
    }
    let mut proxy = Process::spawn("wisp-proxy in b", cmd);
    Pair::wait_ready(&b, &mut proxy).await;

    let work = tempfile::tempdir().unwrap();
    let tap_dir = work.path().join("tap");
    issue(ca.dir(), &tap, &tap_dir).await;
    let admin = format!("{host_b}:4191");

    // Plaintext from `a`: not loopback, so UNAUTHENTICATED, with the hint.
    let plain = Running::spawn(in_ns(
        &a,
        &bin("wisp"),
        &["tap", &admin, "--max-events", "1"],
    ));
    let (ok, _, err) = plain.finish(Duration::from_secs(30)).await;
    assert!(!ok);
    assert!(err.contains("not mutually authenticated"), "{err}");
    assert!(err.contains("--tls-dir"), "{err}");

    // mTLS from `a` with the tap identity: the proxy counts the open tap
    // while `wisp top` runs, and top ends well after its --duration.
    let mut top = Running::spawn(in_ns(
        &a,
        &bin("wisp"),
        &[
            "top",
            &admin,
            "--tls-dir",
            tap_dir.to_str().unwrap(),
            "--server-id",
            &server_id,
            "--duration",
            "5s",
        ],
    ));
    let opened = eventually(Duration::from_secs(10), || async {
        Pair::curl(&b, &["http://127.0.0.1:4191/metrics"])
            .1
            .contains("tap_observers 1")
    })
    .await;
    assert!(
        opened,
        "the mTLS tap never opened: {}\nproxy:\n{}",
        top.kill(),
        proxy.output()
    );
    let (ok, out, err) = top.finish(Duration::from_secs(15)).await;
    assert!(ok, "wisp top over mTLS failed: {err}");
    assert!(out.contains("Count"), "{out}");
}

/// Sends `GET path` to web through `outbound` until it answers 200 (10 s).
async fn sent_ok(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    outbound: std::net::SocketAddr,
    path: &str,
) -> bool {
    eventually(Duration::from_secs(10), || async {
        let reply = request_via(
            client,
            outbound,
            WEB_FQDN,
            &http::Method::GET,
            path,
            bytes::Bytes::new(),
        )
        .await;
        reply.status.ok() == Some(StatusCode::OK)
    })
    .await
}
