//! Transparent mode: iptables REDIRECT (like linkerd proxy-init) in two
//! network namespaces joined by a veth pair, proxies running as uid 2102.
//!
//! Needs root, `ip`, `iptables`, `setpriv` and `curl`; otherwise each test
//! fails under `CI=true`, and elsewhere prints why and returns. Only
//! 10.77.<n>.0/24 inside the test's own namespaces is used; the namespaces
//! are deleted at the end.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wisp_tests::netns::{run, Pair, PROXY_UID};
use wisp_tests::*;

/// Whether transparent test `test` can run here: root, `ip`, `iptables`,
/// `setpriv` and `curl`. Without them it fails under `CI=true` and skips
/// with a message otherwise ([`require`]).
fn supported(test: &str) -> bool {
    require(
        test,
        &[
            Need::Root,
            Need::Tool("ip"),
            Need::Tool("iptables"),
            Need::Tool("setpriv"),
            Need::Tool("curl"),
        ],
    )
}

/// Two namespaces `a` (10.77.n.1) and `b` (10.77.n.2), each with
/// proxy-init's rules; deleted on drop.
struct Pods(Pair);

impl std::ops::Deref for Pods {
    type Target = Pair;
    fn deref(&self) -> &Pair {
        &self.0
    }
}

impl Pods {
    fn create() -> Pods {
        let pods = Pods(Pair::create('t', 77));
        let (a, b) = (pods.a.clone(), pods.b.clone());
        pods.proxy_init(&a);
        pods.proxy_init(&b);
        pods
    }

    /// linkerd proxy-init's rules (docs/proxy-runtime.md §4) in namespace `ns`.
    fn proxy_init(&self, ns: &str) {
        let ipt = |rule: &str| {
            let mut args = vec!["ip", "netns", "exec", ns, "iptables", "-w", "-t", "nat"];
            args.extend(rule.split_whitespace());
            run(&args);
        };
        ipt("-A PREROUTING -p tcp -m multiport --dports 4190,4191 -j RETURN");
        ipt("-A PREROUTING -p tcp -j REDIRECT --to-port 4143");
        ipt(&format!(
            "-A OUTPUT -m owner --uid-owner {PROXY_UID} -j RETURN"
        ));
        ipt("-A OUTPUT -o lo -j RETURN");
        ipt("-A OUTPUT -p tcp -j REDIRECT --to-port 4140");
    }

    /// Starts a proxy in `ns` as uid 2102 and waits for `/ready`.
    async fn proxy(ns: &str, env: &[(&str, &str)]) -> Process {
        Pods::proxy_with_identity(ns, None, env).await
    }

    /// [`Pods::proxy`], with identity configured by `identity` (else disabled).
    async fn proxy_with_identity(
        ns: &str,
        identity: Option<&[(String, String)]>,
        env: &[(&str, &str)],
    ) -> Process {
        let mut cmd = Pair::proxy_command(ns);
        match identity {
            None => {
                cmd.env("LINKERD2_PROXY_IDENTITY_DISABLED", "1");
            }
            Some(vars) => {
                for (k, v) in vars {
                    cmd.env(k, v);
                }
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut p = Process::spawn(&format!("wisp-proxy in {ns}"), cmd);
        Pair::wait_ready(ns, &mut p).await;
        p
    }

    /// Starts an HTTP backend named `name` on `addr` inside `ns` (this test
    /// binary, re-run as the `netns_backend` helper).
    async fn backend(ns: &str, addr: &str, name: &str) -> Process {
        let mut cmd = Pair::exec(ns, &std::env::current_exe().unwrap());
        cmd.args(["--exact", "netns_backend", "--ignored", "--nocapture"])
            .env("WISP_NS_BACKEND_ADDR", addr)
            .env("WISP_NS_BACKEND_NAME", name);
        let mut p = Process::spawn(&format!("backend in {ns}"), cmd);
        let port = addr.rsplit_once(':').unwrap().1;
        let url = format!("http://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Pair::curl(ns, &[&url]).0 {
            assert!(p.exited().is_none(), "backend exited:\n{}", p.output());
            assert!(Instant::now() < deadline, "backend in {ns} did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p
    }
}

/// Helper, not a test: serves HTTP on `$WISP_NS_BACKEND_ADDR` until killed.
#[tokio::test]
#[ignore = "helper process for the transparent tests"]
async fn netns_backend() {
    let Ok(addr) = std::env::var("WISP_NS_BACKEND_ADDR") else {
        return;
    };
    let name = std::env::var("WISP_NS_BACKEND_NAME").unwrap_or_default();
    let addr: SocketAddr = addr.parse().unwrap();
    let _b = HttpBackend::start(addr, &name).await;
    std::future::pending::<()>().await;
}

/// Helper, not a test: a server-speaks-first TCP server on
/// `$WISP_NS_GREETER_ADDR`. On accept it writes [`GREETING`] at once, then
/// echoes every line back; it prints `listening` once bound.
#[tokio::test]
#[ignore = "helper process for the transparent tests"]
async fn netns_greeter() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let Ok(addr) = std::env::var("WISP_NS_GREETER_ADDR") else {
        return;
    };
    let listener = tokio::net::TcpListener::bind(addr.as_str()).await.unwrap();
    println!("listening");
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            if stream.write_all(GREETING.as_bytes()).await.is_err() {
                return;
            }
            let (r, mut w) = stream.split();
            let mut lines = tokio::io::BufReader::new(r);
            let mut line = String::new();
            while matches!(lines.read_line(&mut line).await, Ok(n) if n > 0) {
                if w.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
                line.clear();
            }
        });
    }
}

/// What [`netns_greeter`] says first.
const GREETING: &str = "220 wisp-test ready\r\n";

/// Helper, not a test: a client of [`netns_greeter`] at
/// `$WISP_NS_GREETING_FROM` that sends nothing until the greeting's first
/// byte has come, then sends `hello\r\n` and reads the echo. Prints one
/// line `result connect_ms=<ms> first_byte_ms=<ms> greeting=<line:?>
/// echo=<line:?>`, the times measured from before `connect`.
#[tokio::test]
#[ignore = "helper process for the transparent tests"]
async fn netns_greeting_client() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let Ok(addr) = std::env::var("WISP_NS_GREETING_FROM") else {
        return;
    };
    let limit = Duration::from_secs(15);
    let started = Instant::now();
    let mut stream = tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr.as_str()))
        .await
        .expect("connect timed out")
        .unwrap();
    let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(limit, stream.read(&mut first))
        .await
        .expect("no greeting")
        .unwrap();
    let first_byte_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(n, 1, "closed before the greeting");
    let mut lines = tokio::io::BufReader::new(stream);
    let mut greeting = String::from_utf8_lossy(&first).into_owned();
    tokio::time::timeout(limit, lines.read_line(&mut greeting))
        .await
        .expect("greeting incomplete")
        .unwrap();
    lines.get_mut().write_all(b"hello\r\n").await.unwrap();
    let mut echo = String::new();
    tokio::time::timeout(limit, lines.read_line(&mut echo))
        .await
        .expect("no echo")
        .unwrap();
    println!(
        "result connect_ms={connect_ms:.1} first_byte_ms={first_byte_ms:.1} \
         greeting={greeting:?} echo={echo:?}"
    );
}

/// A control plane in namespace `ns` on 127.0.0.1:8086 (run as root, so
/// its own traffic and the proxy's lookups stay on loopback).
async fn control_plane(ns: &str, dir: &Path) -> Process {
    let mut cmd = Pair::exec(ns, &bin("wisp"));
    cmd.args(["destination", "--source"])
        .arg(format!("dir:{}", dir.display()))
        .args(["--addr", "127.0.0.1:8086"]);
    let mut p = Process::spawn(&format!("wisp destination in {ns}"), cmd);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // An HTTP/1 request to a gRPC server still gets an HTTP answer
        // (or at least a connection), which shows the port is open.
        let (_, _, err) = Pair::curl(ns, &["http://127.0.0.1:8086/"]);
        if !err.contains("Connection refused") && !err.contains("Failed to connect") {
            break;
        }
        assert!(p.exited().is_none(), "destination exited:\n{}", p.output());
        assert!(Instant::now() < deadline, "destination did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p
}

#[tokio::test]
async fn iptables_redirect_through_two_proxies() {
    if !supported("iptables_redirect_through_two_proxies") {
        return;
    }
    let pods = Pods::create();
    let manifests = tempfile::tempdir().unwrap();
    let _cp = control_plane(&pods.a, manifests.path()).await;
    let _backend = Pods::backend(&pods.b, "0.0.0.0:8080", "b").await;
    let _proxy_b = Pods::proxy(&pods.b, &[]).await;
    let _proxy_a = Pods::proxy(&pods.a, &[]).await;

    let target = format!("{}:8080", pods.ip(2));
    let (ok, out, err) = Pair::curl(&pods.a, &["-D", "-", &format!("http://{target}/")]);
    assert!(ok, "curl failed: {err}");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("\r\n\r\nb"), "{out}");

    let ma = Pair::metrics(&pods.a);
    assert_eq!(
        metric_sum(
            &ma,
            "request_total",
            &[("direction", "outbound"), ("target_addr", &target)]
        ),
        1.0,
        "proxy a:\n{ma}"
    );
    let mb = Pair::metrics(&pods.b);
    assert_eq!(
        metric_sum(&mb, "request_total", &[("direction", "inbound")]),
        1.0,
        "proxy b:\n{mb}"
    );
    // b forwarded to the app on loopback.
    assert!(
        metric_sum(
            &mb,
            "request_total",
            &[("direction", "inbound"), ("target_addr", "127.0.0.1:8080")]
        ) == 1.0,
        "proxy b:\n{mb}"
    );
}

#[tokio::test]
async fn iptables_redirect_to_cluster_ip_uses_discovery() {
    if !supported("iptables_redirect_to_cluster_ip_uses_discovery") {
        return;
    }
    let pods = Pods::create();
    let manifests = tempfile::tempdir().unwrap();
    // A virtual cluster IP nothing listens on: only discovery can route it.
    let cluster_ip: std::net::Ipv4Addr = pods.ip(100).parse().unwrap();
    let pod_ip: std::net::Ipv4Addr = pods.ip(2).parse().unwrap();
    std::fs::write(
        manifests.path().join("web.yaml"),
        [
            service_yaml("web", "default", Some(cluster_ip), 8080, 8080),
            endpoint_slice_yaml(
                "web-1",
                "default",
                "web",
                8080,
                &[SliceEndpoint {
                    ip: pod_ip,
                    pod: Some("web-b".into()),
                }],
            ),
            pod_yaml("web-b", "default", pod_ip),
        ]
        .join("---\n"),
    )
    .unwrap();
    let _cp = control_plane(&pods.a, manifests.path()).await;
    let _backend = Pods::backend(&pods.b, "0.0.0.0:8080", "b").await;
    let _proxy_b = Pods::proxy(&pods.b, &[]).await;
    let _proxy_a = Pods::proxy(
        &pods.a,
        &[(
            "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS",
            "10.77.0.0/16",
        )],
    )
    .await;

    for _ in 0..3 {
        let (ok, out, err) = Pair::curl(&pods.a, &[&format!("http://{cluster_ip}:8080/")]);
        assert!(ok, "curl failed: {err}");
        assert_eq!(out, "b");
    }
    let ma = Pair::metrics(&pods.a);
    assert_eq!(
        metric_sum(
            &ma,
            "request_total",
            &[
                ("direction", "outbound"),
                ("authority", "web.default.svc.cluster.local:8080")
            ]
        ),
        3.0,
        "proxy a:\n{ma}"
    );
    let mb = Pair::metrics(&pods.b);
    assert_eq!(
        metric_sum(&mb, "request_total", &[("direction", "inbound")]),
        3.0,
        "proxy b:\n{mb}"
    );
}

#[tokio::test]
async fn plaintext_accepted_on_redirected_port_with_identity_on() {
    if !supported("plaintext_accepted_on_redirected_port_with_identity_on") {
        return;
    }
    let pods = Pods::create();
    // An identity service in b on b's pod IP: not loopback, so the proxy
    // certifies over TLS, verifying the service as IDENTITY_SVC_NAME.
    let id = IdentityPlane::init(format!("{}:8081", pods.ip(2)).parse().unwrap());
    let mut cmd = Pair::exec(&pods.b, &bin("wisp"));
    cmd.args(id.serve_command_args(id.addr));
    let _identity = Process::spawn(&format!("wisp identity in {}", pods.b), cmd);
    let _backend = Pods::backend(&pods.b, "0.0.0.0:8080", "b").await;
    // b's proxy is certified (waiting for /ready covers the identity
    // service's start); a has no proxy: its client is not meshed.
    let env = id.proxy_env("web", "default");
    let _proxy_b = Pods::proxy_with_identity(&pods.b, Some(&env), &[]).await;

    // A plaintext client in a, as uid 2102 so a's own redirect lets it
    // out untouched, with a forged client identity.
    let url = format!("http://{}:8080/headers", pods.ip(2));
    let out = Command::new("ip")
        .args(["netns", "exec", &pods.a, "setpriv"])
        .args([
            &format!("--reuid={PROXY_UID}"),
            &format!("--regid={PROXY_UID}"),
            "--clear-groups",
        ])
        .args(["curl", "-sS", "--max-time", "10", "-D", "-"])
        .args(["-H", "l5d-client-id: evil", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains("evil"), "the app saw the forged id:\n{text}");
    assert!(!text.contains("l5d-client-id"), "{text}");

    let mb = Pair::metrics(&pods.b);
    assert_eq!(
        metric_sum(
            &mb,
            "request_total",
            &[
                ("direction", "inbound"),
                ("tls", "no_identity"),
                ("no_tls_reason", "no_tls_from_remote")
            ]
        ),
        1.0,
        "proxy b:\n{mb}"
    );
    assert_eq!(
        metric_sum(&mb, "request_total", &[("direction", "inbound")]),
        1.0,
        "proxy b:\n{mb}"
    );
}

/// A server-speaks-first protocol (SMTP-like, on 2525: not in
/// `DEFAULT_OPAQUE_PORTS`) through both proxies is not stalled for the
/// detect timeout (10 s, set explicitly): each proxy waits `CLIENT_QUIET`
/// (300 ms) for the silent client, connects, sees the server speak and
/// splices, so the greeting arrives in about 0.6 s. HTTP clients on an
/// unlisted port speak at once and do not pay that wait.
///
/// The server ([`netns_greeter`]) and the client ([`netns_greeting_client`])
/// are this test binary re-run inside `b` and `a` with `ip netns exec`, as
/// root (not uid 2102), so the client's connection is redirected to a's
/// outbound proxy; the client times the greeting itself, from before its
/// `connect`, so process start-up is not counted.
#[tokio::test]
async fn server_speaks_first_on_an_unlisted_port_is_not_stalled() {
    if !supported("server_speaks_first_on_an_unlisted_port_is_not_stalled") {
        return;
    }
    let pods = Pods::create();
    let manifests = tempfile::tempdir().unwrap();
    let _cp = control_plane(&pods.a, manifests.path()).await;
    let _backend = Pods::backend(&pods.b, "0.0.0.0:8080", "b").await;
    let mut cmd = Pair::exec(&pods.b, &std::env::current_exe().unwrap());
    cmd.args(["--exact", "netns_greeter", "--ignored", "--nocapture"])
        .env("WISP_NS_GREETER_ADDR", "0.0.0.0:2525");
    let mut greeter = Process::spawn(&format!("greeter in {}", pods.b), cmd);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !greeter.output().contains("listening") {
        assert!(
            greeter.exited().is_none(),
            "greeter exited:\n{}",
            greeter.output()
        );
        assert!(
            Instant::now() < deadline,
            "greeter in {} did not start",
            pods.b
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let detect = [
        ("LINKERD2_PROXY_OUTBOUND_DETECT_TIMEOUT", "10s"),
        ("LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT", "10s"),
    ];
    let proxy_b = Pods::proxy(&pods.b, &detect).await;
    let proxy_a = Pods::proxy(&pods.a, &detect).await;
    let logs = || {
        format!(
            "proxy a:\n{}\nproxy b:\n{}",
            proxy_a.output(),
            proxy_b.output()
        )
    };

    let target = format!("{}:2525", pods.ip(2));
    let out = Pair::exec(&pods.a, &std::env::current_exe().unwrap())
        .args([
            "--exact",
            "netns_greeting_client",
            "--ignored",
            "--nocapture",
        ])
        .env("WISP_NS_GREETING_FROM", &target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed:\n{stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    let result = stdout
        .lines()
        .find(|l| l.starts_with("result "))
        .unwrap_or_else(|| panic!("no result:\n{stdout}"));
    println!("server-first through two proxies: {result}");
    let field = |name: &str| -> &str {
        let at = result.find(&format!(" {name}=")).unwrap() + name.len() + 2;
        result[at..].split(' ').next().unwrap()
    };
    let first_byte_ms: f64 = field("first_byte_ms").parse().unwrap();
    assert!(
        result.contains(&format!("greeting={GREETING:?}")),
        "{result}"
    );
    assert!(
        result.ends_with(r#"echo="hello\r\n""#),
        "{result}\n{}",
        logs()
    );
    assert!(
        first_byte_ms < 1500.0,
        "the greeting took {first_byte_ms} ms (detect timeout 10 s):\n{result}\n{}",
        logs()
    );

    // Both proxies carried it: 21 bytes of greeting and 7 of echo to the
    // client, 7 from it.
    let ma = Pair::metrics(&pods.a);
    let src = [
        ("direction", "outbound"),
        ("peer", "src"),
        ("target_addr", target.as_str()),
    ];
    assert_eq!(
        metric_sum(&ma, "tcp_write_bytes_total", &src),
        28.0,
        "proxy a:\n{ma}"
    );
    assert_eq!(
        metric_sum(&ma, "tcp_read_bytes_total", &src),
        7.0,
        "proxy a:\n{ma}"
    );
    let mb = Pair::metrics(&pods.b);
    let app = [
        ("direction", "inbound"),
        ("peer", "dst"),
        ("target_addr", "127.0.0.1:2525"),
    ];
    assert_eq!(
        metric_sum(&mb, "tcp_read_bytes_total", &app),
        28.0,
        "proxy b:\n{mb}"
    );
    // HTTP on an unlisted port: the client speaks at once, no quiet wait.
    for _ in 0..3 {
        let url = format!("http://{}:8080/", pods.ip(2));
        let (ok, out, err) = Pair::curl(&pods.a, &["-w", " %{time_total}", &url]);
        assert!(ok, "curl failed: {err}\n{}", logs());
        let (body, total) = out.rsplit_once(' ').unwrap();
        let total: f64 = total.parse().unwrap();
        println!("HTTP through two proxies: {:.1} ms", total * 1000.0);
        assert_eq!(body, "b");
        assert!(
            total < 0.3,
            "an HTTP request took {total} s: the quiet wait is paid?\n{}",
            logs()
        );
    }
}
