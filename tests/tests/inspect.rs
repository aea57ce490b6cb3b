//! `wisp stat`, `wisp routes`, `wisp edges` against real proxies: a client
//! proxy and a server proxy certified by a real `wisp identity`, a
//! scripted backend failing one path with 500 and delaying the other, a
//! ServiceProfile naming both routes. Known numbers of requests are sent
//! while the real `wisp` binary measures its window; its JSON must count
//! them exactly.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use wisp_tests::*;

const OK: usize = 20;
const FAIL: usize = 10;
const DELAY_MS: u64 = 25;
const CLIENT_ID: &str = "client.default.serviceaccount.identity.linkerd.cluster.local";
const SERVER_ID: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";
/// The proxy's latency buckets (docs/metrics.md), without +Inf.
const BOUNDS: [f64; 25] = [
    1., 2., 3., 4., 5., 10., 20., 30., 40., 50., 100., 200., 300., 400., 500., 1000., 2000., 3000.,
    4000., 5000., 10000., 20000., 30000., 40000., 50000.,
];

fn bucket_of(v: f64) -> (f64, f64) {
    let mut lower = 0.0;
    for b in BOUNDS {
        if v <= b {
            return (lower, b);
        }
        lower = b;
    }
    (lower, f64::INFINITY)
}

fn profile() -> String {
    format!(
        "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {{name: {WEB_FQDN}, namespace: default}}\nspec:\n  routes:\n  - name: ok\n    condition: {{method: GET, pathRegex: /ok}}\n  - name: fail\n    condition: {{method: GET, pathRegex: /fail}}\n"
    )
}

/// Starts `wisp ARGS... -o json --window WINDOW`.
fn wisp(args: &[String], window: &str) -> std::process::Child {
    Command::new(bin("wisp"))
        .args(args)
        .args(["-o", "json", "--window", window])
        .env("WISP_LOG", "wisp::inspect=debug,warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `child` logged that its first scrape is taken.
fn first_scrape_taken(mut child: std::process::Child) -> std::process::Child {
    use std::io::BufRead;
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut logged = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("wisp exited before its first scrape:\n{logged}");
        }
        logged.push_str(&line);
        if line.contains("first scrape taken") {
            // Keep draining stderr so the child never blocks on it.
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
            return child;
        }
    }
}

fn json_of(child: std::process::Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wisp failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_routes_and_edges_count_what_was_sent() {
    let mesh = Mesh::start_mtls(1, 8080, &MtlsOptions::default()).await;
    let backend = ScriptedBackend::start(SocketAddr::from((mesh.pods[0], 8080)), "web-0").await;
    backend.set("/fail", Behavior::failing(1000));
    backend.set("/ok", Behavior::delayed(Duration::from_millis(DELAY_MS)));
    mesh.cp.write("sp.yaml", &profile());
    // Wait until the client proxy routes by the profile.
    let routed = eventually(Duration::from_secs(15), || async {
        let replies = send_many(mesh.client.outbound, WEB_FQDN, Method::GET, "/ok", 1, 1).await;
        replies[0].status == Ok(StatusCode::OK)
            && mesh.client.metrics().await.contains("rt_route=\"ok\"")
    })
    .await;
    assert!(routed, "never routed:\n{}", mesh.client.process.output());

    let source = format!("dir:{}", mesh.cp.dir().display());
    let client = mesh.client.admin.to_string();
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let window = "4s";
    let stat = wisp(
        &s(&["stat", "deploy/web", &client, "--source", &source]),
        window,
    );
    let routes = wisp(&s(&["routes", &client, "--to", "svc/web"]), window);
    let edges = wisp(
        &s(&["edges", "deploy/web", &client, "--source", &source]),
        window,
    );
    // Every command took its first scrape.
    let (stat, routes, edges) = tokio::task::spawn_blocking(move || {
        (
            first_scrape_taken(stat),
            first_scrape_taken(routes),
            first_scrape_taken(edges),
        )
    })
    .await
    .unwrap();
    let ok = send_many(mesh.client.outbound, WEB_FQDN, Method::GET, "/ok", OK, 4).await;
    let fail = send_many(
        mesh.client.outbound,
        WEB_FQDN,
        Method::GET,
        "/fail",
        FAIL,
        4,
    )
    .await;
    assert!(ok.iter().all(|r| r.status == Ok(StatusCode::OK)));
    assert!(fail
        .iter()
        .all(|r| r.status == Ok(StatusCode::INTERNAL_SERVER_ERROR)));
    let mut client_ms: Vec<f64> = ok
        .iter()
        .map(|r| r.latency.as_secs_f64() * 1000.0)
        .collect();
    client_ms.sort_by(f64::total_cmp);
    let (stat, routes, edges) =
        tokio::task::spawn_blocking(move || (json_of(stat), json_of(routes), json_of(edges)))
            .await
            .unwrap();
    let total = (OK + FAIL) as f64;

    // stat: the server workload's inbound view.
    let workloads = stat["workloads"].as_array().unwrap();
    let web = workloads
        .iter()
        .find(|w| w["name"] == "deploy/web")
        .unwrap();
    assert_eq!(num(web, "requests"), total, "{stat}");
    assert_eq!(num(web, "successes"), OK as f64);
    assert_eq!(num(web, "failures"), FAIL as f64);
    assert_eq!(num(web, "success_rate"), OK as f64 / total);
    assert_eq!(num(web, "mtls_share"), 1.0);
    assert_eq!((num(web, "meshed"), num(web, "pods")), (1.0, 1.0));
    assert!(
        num(web, "rps") > 0.0 && num(web, "rps") <= total / 3.0,
        "{web}"
    );
    // p99: the slow successes, in (20, 30] ms like the client's median.
    let (lo, hi) = bucket_of(client_ms[client_ms.len() / 2]);
    let p99 = num(web, "latency_ms_p99");
    assert!(
        p99 > lo - 10.0 && p99 <= hi,
        "p99 {p99} vs client {client_ms:?}"
    );
    assert!(num(web, "latency_ms_p50") <= p99);
    // stat: the client's outbound view of the web authority.
    let authority = stat["authorities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["from"] == client.as_str() && a["authority"] == WEB_AUTHORITY)
        .unwrap_or_else(|| panic!("{stat}"));
    assert_eq!(num(authority, "requests"), total);
    assert_eq!(num(authority, "success_rate"), OK as f64 / total);
    assert_eq!(num(authority, "mtls_share"), 1.0);
    assert!(num(authority, "tcp_connections") >= 1.0, "{authority}");

    // routes: per route, exactly what was sent; [DEFAULT] saw nothing new.
    let rows = routes["routes"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["route"] == name)
            .unwrap_or_else(|| panic!("no {name} in {routes}"))
    };
    let ok_row = row("ok");
    assert_eq!(ok_row["service"], WEB_AUTHORITY);
    assert_eq!(num(ok_row, "requests"), OK as f64);
    assert_eq!(num(ok_row, "success_rate"), 1.0);
    assert_eq!(num(ok_row, "actual_requests"), OK as f64);
    let p50 = num(ok_row, "latency_ms_p50");
    let (lo, hi) = bucket_of(client_ms[client_ms.len() / 2]);
    assert!(
        p50 > lo - 10.0 && p50 <= hi,
        "p50 {p50} vs client {client_ms:?}"
    );
    assert!(p50 >= DELAY_MS as f64 - 5.0, "{p50}");
    let fail_row = row("fail");
    assert_eq!(num(fail_row, "requests"), FAIL as f64);
    assert_eq!(num(fail_row, "success_rate"), 0.0);
    assert_eq!(num(fail_row, "actual_success_rate"), 0.0);
    assert_eq!(num(row("[DEFAULT]"), "requests"), 0.0);

    // edges: the client's edge to web, with both identities, secured.
    let list = edges["edges"].as_array().unwrap();
    let edge = list
        .iter()
        .find(|e| e["src"] == client.as_str())
        .unwrap_or_else(|| panic!("{edges}"));
    assert_eq!(edge["client_id"], CLIENT_ID, "{edges}");
    assert_eq!(edge["server_id"], SERVER_ID);
    assert_eq!(edge["secured"], true);
    assert_eq!(edge["src_namespace"], "default");
    assert_eq!(edge["dst_namespace"], "default");
    assert!(
        edge["dst"] == "pod/web-0" || edge["dst"] == "deploy/web",
        "{edge}"
    );

    // The tables: `edges` shows identities only with `-o wide`, shortened
    // to `sa.ns` as `linkerd viz edges` prints them.
    let (src, dir) = (client.clone(), source.clone());
    let table = move |output: &str| {
        let out = Command::new(bin("wisp"))
            .args(["edges", "deploy/web", &src, "--source", &dir])
            .args(["--window", "0", "-o", output])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let (plain, wide) = tokio::task::spawn_blocking(move || (table("table"), table("wide")))
        .await
        .unwrap();
    let header = |t: &str| {
        t.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(header(&plain), "SRC DST SRC_NS DST_NS SECURED", "{plain}");
    assert_eq!(
        header(&wide),
        "SRC DST SRC_NS DST_NS CLIENT_ID SERVER_ID SECURED",
        "{wide}"
    );
    let line = wide
        .lines()
        .find(|l| l.starts_with(client.as_str()))
        .unwrap_or_else(|| panic!("{wide}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[4..], ["client.default", "web.default", "√"], "{wide}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_zero_counts_since_start_and_errors_name_the_target() {
    let mesh = Mesh::start(1, 8080, true, &[]).await;
    let _backend = ScriptedBackend::start(SocketAddr::from((mesh.pods[0], 8080)), "web-0").await;
    let replies = send_many(mesh.client.outbound, WEB_FQDN, Method::GET, "/", 5, 1).await;
    assert!(replies.iter().all(|r| r.status == Ok(StatusCode::OK)));
    let source = format!("dir:{}", mesh.cp.dir().display());
    // The pod manifest names the proxy: pod/web-0 is its admin address.
    let stat = json_of(wisp(
        &[
            "stat".into(),
            "pod/web-0".into(),
            "--source".into(),
            source.clone(),
        ],
        "0",
    ));
    let web = &stat["workloads"][0];
    assert_eq!(web["name"], "pod/web-0");
    assert_eq!(num(web, "requests"), 5.0, "{stat}");
    assert_eq!(num(web, "success_rate"), 1.0);
    // Identity is off: nothing is mTLS.
    assert_eq!(num(web, "mtls_share"), 0.0);
    // The proxy read the five requests from its client and wrote the
    // responses back: byte rates, also in the wide table.
    assert!(num(web, "tcp_read_bytes_rate") > 0.0, "{stat}");
    assert!(num(web, "tcp_write_bytes_rate") > 0.0, "{stat}");
    let out = Command::new(bin("wisp"))
        .args(["stat", "pod/web-0", "--source", &source])
        .args(["--window", "0", "-o", "wide"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let wide = String::from_utf8(out.stdout).unwrap();
    let mut lines = wide.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header[header.len() - 2..],
        ["READ_BYTES/SEC", "WRITE_BYTES/SEC"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[1], "pod/web-0", "{wide}");
    for cell in &row[row.len() - 2..] {
        let rate: f64 = cell.strip_suffix("B/s").unwrap().parse().unwrap();
        assert!(rate > 0.0, "{wide}");
    }
    // Rows as linkerd viz stat makes them: `po` a row per pod, `ns/NAME`
    // one row for the namespace.
    for (spec, name) in [("po", "pod/web-0"), ("ns/default", "ns/default")] {
        let stat = json_of(wisp(
            &[
                "stat".into(),
                spec.into(),
                "--source".into(),
                source.clone(),
            ],
            "0",
        ));
        let rows = stat["workloads"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{stat}");
        assert_eq!(rows[0]["name"], name, "{stat}");
        assert_eq!(num(&rows[0], "requests"), 5.0, "{stat}");
    }
    let out = Command::new(bin("wisp"))
        .args(["stat", "pod/nope", "--source", &source])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("target pod/nope: no pod default/nope"),
        "{err}"
    );
}
