//! The operator commands built on the proxy's Tap API and admin dump, run
//! as the real `wisp` binary against a real `wisp-proxy` (tap enabled,
//! control port on its own loopback IP) and `wisp destination`:
//! `wisp tap`, `wisp profile --tap` (checked by `wisp validate`),
//! `wisp proxy-config` and `wisp top` in a pseudo-terminal (`script`).

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use wisp_tests::*;

const TAP_NAME: &str = "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local";

/// A client proxy with tap on (control port `.10:4190`) in front of Service
/// `web` (one unmeshed pod `.11:8080` running an [`HttpBackend`]).
struct Tapped {
    net: Net,
    _cp: ControlPlane,
    proxy: Proxy,
    _backend: HttpBackend,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Tapped {
    async fn start() -> Tapped {
        let net = Net::new();
        let mut cp = ControlPlane::create(net.addr(2, 8086));
        let pod = net.ip(11);
        cp.write("web.yaml", &web_service_yaml(pod));
        cp.restart().await;
        let backend = HttpBackend::start(net.addr(11, 8080), "web-0").await;
        let control = net.addr(10, 4190).to_string();
        let proxy = Proxy::start(
            net.ip(10),
            &cp.addr.to_string(),
            &[
                ("LINKERD2_PROXY_TAP_SVC_NAME", TAP_NAME),
                ("LINKERD2_PROXY_CONTROL_LISTEN_ADDR", &control),
            ],
        )
        .await;
        let t = Tapped {
            net,
            _cp: cp,
            proxy,
            _backend: backend,
            client: http1_client(),
        };
        let routable = eventually(Duration::from_secs(10), || async {
            t.send(Method::GET, "/").await == Some(StatusCode::OK)
        })
        .await;
        assert!(routable, "web never became routable");
        t
    }

    /// `METHOD path` to `web` through the proxy: the status.
    async fn send(&self, method: Method, path: &str) -> Option<StatusCode> {
        request_via(
            &self.client,
            self.proxy.outbound,
            WEB_FQDN,
            &method,
            path,
            Bytes::new(),
        )
        .await
        .status
        .ok()
    }

    /// The admin address as a target.
    fn target(&self) -> String {
        self.proxy.admin.to_string()
    }

    /// Waits until `n` taps are open on the proxy.
    async fn wait_taps(&self, n: usize) {
        let open = self
            .proxy
            .wait_tap_observers(n, Duration::from_secs(10))
            .await;
        assert!(open, "{n} tap(s) never opened");
    }
}

fn wisp(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("wisp"));
    cmd.args(args);
    cmd
}

/// `wisp tap ADMIN -o json --path /tapped --max-events 6`: the two matching
/// requests, each as RequestInit, ResponseInit, ResponseEnd with method,
/// path, authority, status and sizes; the other path is not reported. The
/// default format prints Linkerd's lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_prints_the_matching_events() {
    let t = Tapped::start().await;
    let target = t.target();
    let json = Running::spawn(wisp(&[
        "tap",
        &target,
        "-o",
        "json",
        "--path",
        "/tapped",
        "--max-events",
        "6",
    ]));
    t.wait_taps(1).await;
    assert_eq!(t.send(Method::GET, "/other").await, Some(StatusCode::OK));
    assert_eq!(t.send(Method::GET, "/tapped/1").await, Some(StatusCode::OK));
    assert_eq!(
        t.send(Method::POST, "/tapped/2").await,
        Some(StatusCode::OK)
    );
    let (ok, out, err) = json.finish(Duration::from_secs(10)).await;
    assert!(ok, "{err}");
    let events = json_lines(&out);
    assert_eq!(events.len(), 6, "{out}");
    let mut requests = Vec::new();
    for e in &events {
        assert_eq!(e["proxyDirection"], "OUTBOUND", "{e}");
        assert_eq!(e["destination"]["ip"], t.net.ip(11).to_string(), "{e}");
        assert_eq!(e["destination"]["port"], 8080, "{e}");
        if let Some(r) = e.get("requestInitEvent") {
            assert_eq!(r["authority"], WEB_FQDN, "{e}");
            let headers = r["headers"].as_array().expect("headers were asked for");
            assert!(headers.iter().any(|h| h["name"] == ":method"), "{e}");
            requests.push(format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            ));
        } else if let Some(r) = e.get("responseInitEvent") {
            assert_eq!(r["httpStatus"], 200, "{e}");
        } else {
            let r = &e["responseEndEvent"];
            assert_eq!(
                r["responseBytes"], 5,
                "the backend answers its name, web-0: {e}"
            );
        }
    }
    assert_eq!(requests, ["GET /tapped/1", "POST /tapped/2"]);

    // The default format: Linkerd's `req` / `rsp` / `end` lines.
    let lines = Running::spawn(wisp(&["tap", &target, "--max-events", "3"]));
    t.wait_taps(1).await;
    assert_eq!(t.send(Method::GET, "/books").await, Some(StatusCode::OK));
    let (ok, out, err) = lines.finish(Duration::from_secs(10)).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let dst = format!("dst={}:8080", t.net.ip(11));
    assert!(lines[0].starts_with("req id="), "{out}");
    assert!(lines[0].contains(" proxy=out "), "{out}");
    assert!(lines[0].contains(&dst), "{out}");
    assert!(
        lines[0].ends_with(&format!(":method=GET :authority={WEB_FQDN} :path=/books")),
        "{out}"
    );
    assert!(lines[1].starts_with("rsp id="), "{out}");
    assert!(lines[1].contains(":status=200 latency="), "{out}");
    assert!(lines[2].starts_with("end id="), "{out}");
    assert!(lines[2].ends_with("response-length=5B"), "{out}");
}

/// A tap of a proxy without a tap server fails with a clear message.
#[tokio::test]
async fn tap_of_a_proxy_without_tap_fails_clearly() {
    let net = Net::new();
    // Nothing listens at `.10:4191`'s control port.
    let out = wisp(&["tap", &net.addr(10, 4191).to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot connect to the tap server"),
        "{stderr}"
    );
}

/// `wisp profile --tap ADMIN --tap-duration 3s web`: one route per method
/// and path requested (and none for `/`), which `wisp validate` accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_from_tap_has_the_requested_routes_and_validates() {
    let t = Tapped::start().await;
    let target = t.target();
    let profile = Running::spawn(wisp(&[
        "profile",
        "web",
        "--tap",
        &target,
        "--tap-duration",
        "3s",
    ]));
    t.wait_taps(1).await;
    for (m, p) in [
        (Method::GET, "/books"),
        (Method::GET, "/books/7"),
        (Method::GET, "/books"),
        (Method::POST, "/books"),
        (Method::GET, "/"),
        (Method::GET, "/a.b+c"),
    ] {
        assert_eq!(t.send(m, p).await, Some(StatusCode::OK));
    }
    let (ok, yaml, err) = profile.finish(Duration::from_secs(15)).await;
    assert!(ok, "{err}");
    assert!(yaml.contains("apiVersion: linkerd.io/v1alpha2"), "{yaml}");
    assert!(
        yaml.contains("name: web.default.svc.cluster.local"),
        "{yaml}"
    );
    let routes: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- name: "))
        .collect();
    assert_eq!(
        routes,
        ["GET /a.b+c", "GET /books", "GET /books/7", "POST /books"],
        "{yaml}"
    );
    assert!(yaml.contains(r"pathRegex: ^/a\.b\+c$"), "{yaml}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = Command::new(bin("wisp"))
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `wisp proxy-config ADMIN -o json` shows the service the proxy resolved
/// and its endpoint; the text rendering shows them in its sections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_config_shows_the_resolved_service() {
    let t = Tapped::start().await;
    let target = t.target();
    let out = wisp(&["proxy-config", &target, "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let services = doc["outbound"]["services"].as_array().unwrap();
    let web = services
        .iter()
        .find(|s| s["authority"] == WEB_AUTHORITY)
        .unwrap_or_else(|| panic!("no {WEB_AUTHORITY} in {doc:#}"));
    assert_eq!(web["resolution"], "ready");
    let endpoint = format!("{}:8080", t.net.ip(11));
    assert!(
        web["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["addr"] == endpoint.as_str()),
        "{doc:#}"
    );

    let out = wisp(&["proxy-config", &target]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "IDENTITY\n  disabled",
        "LISTENERS",
        &format!("  {WEB_AUTHORITY}  resolution=ready"),
        &format!("    {endpoint}  -"),
        "PROFILES",
        "INBOUND (application endpoints)",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

/// `wisp top ADMIN` in a pseudo-terminal (util-linux `script`): the
/// alternate screen shows the busiest paths first; `q` quits, leaving the
/// alternate screen and showing the cursor again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_in_a_terminal_shows_paths_and_restores_it() {
    if !require_tool("top_in_a_terminal_shows_paths_and_restores_it", "script") {
        return;
    }
    let t = Tapped::start().await;
    let cmd_line = format!("{} top {}", bin("wisp").display(), t.target());
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &cmd_line, "/dev/null"]);
    let mut top = Running::spawn(script);
    t.wait_taps(1).await;
    for _ in 0..3 {
        assert_eq!(t.send(Method::GET, "/top/a").await, Some(StatusCode::OK));
    }
    assert_eq!(t.send(Method::GET, "/top/b").await, Some(StatusCode::OK));
    let drawn = eventually(Duration::from_secs(10), || {
        let out = top.output();
        async move { out.contains("/top/a") && out.contains("/top/b") }
    })
    .await;
    assert!(drawn, "the table never showed the paths:\n{}", top.output());
    // `q` through the terminal.
    let mut stdin = top.take_stdin().unwrap();
    stdin.write_all(b"q").unwrap();
    stdin.flush().unwrap();
    let (ok, out, err) = top.finish(Duration::from_secs(10)).await;
    drop(stdin);
    assert!(ok, "{err}\n{out}");
    let enter = out
        .find("\x1b[?1049h")
        .expect("entered the alternate screen");
    let leave = out.rfind("\x1b[?1049l").expect("left the alternate screen");
    assert!(enter < leave);
    assert!(out[leave..].contains("\x1b[?25h") || out[..leave].contains("\x1b[?25h"));
    let screen = &out[enter..leave];
    assert!(screen.contains("Success Rate"), "{screen}");
    // Busiest first: `/top/a` (3) above `/top/b` (1).
    let a = screen.rfind("/top/a").unwrap();
    let b = screen.rfind("/top/b").unwrap();
    assert!(a < b, "{screen}");
    let row = screen[a..].lines().next().unwrap();
    assert!(row.contains("3") && row.contains("100.00%"), "{row}");
}
