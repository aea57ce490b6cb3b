//! ServiceProfiles and TrafficSplits end to end: `wisp destination` reads
//! them from its manifest directory, the client proxy splits, retries,
//! times out and labels route metrics accordingly. Pods are meshed (a server
//! proxy in front of each backend), so cancellation and retries cross both
//! proxies as in a cluster.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use wisp_tests::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../profiles/tests/fixtures/linkerd-docs.yaml"
);

/// What to run: services of `ns` on `port` (target port `port + 8000`,
/// unless `port` is 80: then 8080), backed by pods `.11`, `.12`, ... each
/// running a [`ScriptedBackend`] named after the pod.
struct Spec<'a> {
    ns: &'a str,
    port: u16,
    /// Pod (and backend) names, in address order.
    pods: &'a [&'a str],
    /// Services and the indexes of the pods behind them.
    services: &'a [(&'a str, &'a [usize])],
    /// Further manifest files (ServiceProfiles, TrafficSplits).
    files: &'a [(&'a str, &'a str)],
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            ns: "default",
            port: 80,
            pods: &["web-0"],
            services: &[("web", &[0])],
            files: &[],
        }
    }
}

struct Topology {
    _net: Net,
    cp: ControlPlane,
    client: Proxy,
    _servers: Vec<Proxy>,
    backends: Vec<ScriptedBackend>,
    host: String,
}

impl Topology {
    async fn start(spec: Spec<'_>) -> Topology {
        let net = Net::new();
        let cp_addr = net.addr(2, 8086);
        let mut cp = ControlPlane::create(cp_addr);
        let app_port = if spec.port == 80 { 8080 } else { spec.port };
        let ips: Vec<_> = (0..spec.pods.len()).map(|i| net.ip(11 + i as u8)).collect();
        for (name, ip) in spec.pods.iter().zip(&ips) {
            cp.write(&format!("pod-{name}.yaml"), &pod_yaml(name, spec.ns, *ip));
        }
        for (svc, pods) in spec.services {
            let eps: Vec<SliceEndpoint> = pods
                .iter()
                .map(|&i| SliceEndpoint {
                    ip: ips[i],
                    pod: Some(spec.pods[i].to_string()),
                })
                .collect();
            cp.write(
                &format!("svc-{svc}.yaml"),
                &format!(
                    "{}---\n{}",
                    service_yaml(svc, spec.ns, None, spec.port, app_port),
                    endpoint_slice_yaml(&format!("{svc}-1"), spec.ns, svc, app_port, &eps)
                ),
            );
        }
        for (name, text) in spec.files {
            cp.write(name, text);
        }
        cp.restart().await;
        let mut backends = Vec::new();
        let mut servers = Vec::new();
        let dst = cp_addr.to_string();
        for (name, ip) in spec.pods.iter().zip(&ips) {
            backends.push(ScriptedBackend::start(SocketAddr::from((*ip, app_port)), name).await);
            servers.push(Proxy::start(*ip, &dst, &[]).await);
        }
        let client = Proxy::start(net.ip(10), &dst, &[]).await;
        let host = format!(
            "{}.{}.svc.cluster.local{}",
            spec.services[0].0,
            spec.ns,
            if spec.port == 80 {
                String::new()
            } else {
                format!(":{}", spec.port)
            }
        );
        let t = Topology {
            _net: net,
            cp,
            client,
            _servers: servers,
            backends,
            host,
        };
        t.wait_routable().await;
        t
    }

    /// Waits until `GET /` for the first service is answered by a backend.
    async fn wait_routable(&self) {
        let client = http1_client();
        let ok = eventually(Duration::from_secs(10), || {
            let client = client.clone();
            async move {
                let r = self.request(&client, Method::GET, "/").await;
                !r.backend.is_empty()
            }
        })
        .await;
        assert!(ok, "never routable:\n{}", self.client.process.output());
    }

    async fn request(
        &self,
        client: &hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            http_body_util::Full<Bytes>,
        >,
        method: Method,
        path: &str,
    ) -> Reply {
        request_via(
            client,
            self.client.outbound,
            &self.host,
            &method,
            path,
            Bytes::new(),
        )
        .await
    }

    async fn send(&self, method: Method, path: &str, n: usize, concurrency: usize) -> Vec<Reply> {
        send_many(
            self.client.outbound,
            &self.host,
            method,
            path,
            n,
            concurrency,
        )
        .await
    }

    fn backend(&self, name: &str) -> &ScriptedBackend {
        self.backends.iter().find(|b| b.name == name).unwrap()
    }
}

/// A TrafficSplit `web-split` of apex `web` in `default`.
fn split_yaml(weights: &[(&str, u32)]) -> String {
    let mut s = String::from(
        "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {name: web-split, namespace: default}\nspec:\n  service: web\n  backends:\n",
    );
    for (svc, w) in weights {
        s.push_str(&format!("  - service: {svc}\n    weight: {w}\n"));
    }
    s
}

/// A ServiceProfile for `web.default` with `routes` (YAML list items,
/// indented by two) and an optional retry budget.
fn profile_yaml(routes: &str, budget: Option<(f32, u32, &str)>) -> String {
    let mut s = format!(
        "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {{name: {WEB_FQDN}, namespace: default}}\nspec:\n  routes:\n{routes}"
    );
    if let Some((ratio, min, ttl)) = budget {
        s.push_str(&format!(
            "  retryBudget:\n    retryRatio: {ratio}\n    minRetriesPerSecond: {min}\n    ttl: {ttl}\n"
        ));
    }
    s
}

fn ok_share(replies: &[Reply]) -> f64 {
    let ok = replies
        .iter()
        .filter(|r| r.status == Ok(StatusCode::OK))
        .count();
    ok as f64 / replies.len() as f64
}

fn assert_all_ok(replies: &[Reply]) {
    let failed: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status != Ok(StatusCode::OK))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        failed.len(),
        replies.len(),
        &failed[..failed.len().min(3)]
    );
}

fn share_of(replies: &[Reply], backend: &str) -> f64 {
    replies.iter().filter(|r| r.backend == backend).count() as f64 / replies.len() as f64
}

/// `route_*` series of `web` on route `route` (`None`: the default route,
/// which has no `rt_` labels).
fn on_route(route: Option<&str>) -> impl Fn(&[(String, String)]) -> bool + '_ {
    move |labels| {
        let get = |k: &str| {
            labels
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let rt: Vec<&(String, String)> = labels
            .iter()
            .filter(|(k, _)| k.starts_with("rt_"))
            .collect();
        get("direction") == Some("outbound")
            && get("dst") == Some(WEB_AUTHORITY)
            && match route {
                Some(r) => rt.len() == 1 && get("rt_route") == Some(r),
                None => rt.is_empty(),
            }
    }
}

/// Retries made on `route` (`route_retryable_total` without `skipped`).
fn retries(metrics: &str, route: &str) -> f64 {
    let keep = on_route(Some(route));
    metric_sum_by(metrics, "route_retryable_total", |l| {
        keep(l) && !l.iter().any(|(k, _)| k == "skipped")
    })
}

/// Retries skipped for lack of budget on `route`.
fn skipped(metrics: &str, route: &str) -> f64 {
    let keep = on_route(Some(route));
    metric_sum_by(metrics, "route_retryable_total", |l| {
        keep(l) && l.iter().any(|(k, v)| k == "skipped" && v == "no_budget")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_split_weights_and_live_change() {
    let started = Instant::now();
    let t = Topology::start(Spec {
        pods: &["web-v1", "web-v2"],
        services: &[("web", &[0, 1]), ("web-v1", &[0]), ("web-v2", &[1])],
        files: &[("split.yaml", &split_yaml(&[("web-v1", 90), ("web-v2", 10)]))],
        ..Spec::default()
    })
    .await;

    // 90/10 over 10,000 requests.
    let replies = t.send(Method::GET, "/", 10_000, 64).await;
    assert_all_ok(&replies);
    let v2 = share_of(&replies, "web-v2");
    eprintln!("90/10: v2 share {:.2}%", v2 * 100.0);
    assert!((v2 - 0.10).abs() <= 0.03, "v2 share {v2}");
    assert!((share_of(&replies, "web-v1") + v2 - 1.0).abs() < 1e-9);

    // 50/50.
    t.cp.write("split.yaml", &split_yaml(&[("web-v1", 50), ("web-v2", 50)]));
    // Wait until the new weights reached the client proxy: a probe of 200
    // requests gives v2 at least 30% (about 10 standard deviations above
    // 90/10's 10%, about 6 below 50/50's 50%).
    wait_until(Duration::from_secs(10), || async {
        let probe = t.send(Method::GET, "/", 200, 16).await;
        let v2 = share_of(&probe, "web-v2");
        if v2 >= 0.3 {
            Ok(())
        } else {
            Err(format!(
                "50/50 not applied yet: v2 share {v2:.2} in a probe of 200"
            ))
        }
    })
    .await
    .unwrap();
    let replies = t.send(Method::GET, "/", 10_000, 64).await;
    assert_all_ok(&replies);
    let v2 = share_of(&replies, "web-v2");
    eprintln!("50/50: v2 share {:.2}%", v2 * 100.0);
    assert!((v2 - 0.50).abs() <= 0.03, "v2 share {v2}");

    // Live change under load to 0/100: from ~1 s after the write every new
    // request goes to v2, and no request fails, including those in flight.
    let load = LoadGen::start(t.client.outbound, WEB_FQDN, 64, Duration::ZERO);
    // Enough requests answered before the change to see the old split.
    wait_until(Duration::from_secs(10), || async {
        match load.count() {
            n if n >= 200 => Ok(()),
            n => Err(format!("{n} requests answered before the change")),
        }
    })
    .await
    .unwrap();
    let changed = Instant::now();
    t.cp.write("split.yaml", &split_yaml(&[("web-v1", 0), ("web-v2", 100)]));
    // The checks below look at requests started 1 s or more after the
    // write: wait until at least 500 of them were answered.
    let settled = changed + Duration::from_secs(1);
    wait_until(Duration::from_secs(15), || async {
        match load.count_where(|s| s.at >= settled) {
            n if n >= 500 => Ok(()),
            n => Err(format!(
                "{n} requests answered that started 1 s after the change"
            )),
        }
    })
    .await
    .unwrap();
    let samples = load.stop().await;
    assert_no_failures(&samples);
    let before: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at + s.latency < changed)
        .collect();
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= changed + Duration::from_secs(1))
        .collect();
    let v1_before = before.iter().filter(|s| s.backend == "web-v1").count();
    assert!(
        v1_before > before.len() / 4,
        "{v1_before} of {} before",
        before.len()
    );
    assert!(
        after.len() > 100,
        "only {} requests after the change",
        after.len()
    );
    let v1_after = after.iter().filter(|s| s.backend != "web-v2").count();
    assert_eq!(
        v1_after,
        0,
        "{v1_after} of {} still went to v1",
        after.len()
    );
    // When did the last v1 request start?
    let last_v1 = samples
        .iter()
        .filter(|s| s.backend == "web-v1")
        .map(|s| s.at)
        .max()
        .unwrap();
    eprintln!(
        "live change: {} requests, {} in flight at the change, last v1 request started {:?} after the write",
        samples.len(),
        samples.iter().filter(|s| s.at < changed && s.at + s.latency > changed).count(),
        last_v1.saturating_duration_since(changed)
    );
    eprintln!("split test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_recover_a_flaky_route_within_the_budget() {
    let sp = profile_yaml(
        "  - name: GET /flaky\n    condition: {method: GET, pathRegex: /flaky}\n    isRetryable: true\n",
        Some((0.5, 0, "10s")),
    );
    let t = Topology::start(Spec {
        files: &[("sp.yaml", &sp)],
        ..Spec::default()
    })
    .await;
    let backend = t.backend("web-0");
    backend.set("/flaky", Behavior::failing(200));

    let n = 3000;
    let replies = t.send(Method::GET, "/flaky", n, 50).await;
    let ok = ok_share(&replies);
    let metrics = t.client.metrics().await;
    let made = retries(&metrics, "GET /flaky");
    let hits = backend.count("GET", "/flaky");
    eprintln!(
        "20% failures, budget 0.5: success {:.2}%, {made} retries, backend saw {hits} ({} failed)",
        ok * 100.0,
        backend.failed()
    );
    assert!(ok >= 0.99, "success {ok}");
    assert_eq!(
        metric_sum_by(
            &metrics,
            "route_request_total",
            on_route(Some("GET /flaky"))
        ),
        n as f64
    );
    // Every retry is one more request at the backend, and no more.
    assert_eq!(hits as f64, n as f64 + made);
    // ~25% of requests need a retry; the budget (50%) is never the limit.
    assert!(made >= 0.15 * n as f64, "{made} retries");
    assert!(made <= 0.5 * n as f64, "{made} retries");
    assert_eq!(skipped(&metrics, "GET /flaky"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_caps_retries_and_reports_exhaustion() {
    let sp = profile_yaml(
        "  - name: GET /flaky\n    condition: {method: GET, pathRegex: /flaky}\n    isRetryable: true\n  - name: GET /down\n    condition: {method: GET, pathRegex: /down}\n    isRetryable: true\n",
        Some((0.2, 0, "10s")),
    );
    let t = Topology::start(Spec {
        files: &[("sp.yaml", &sp)],
        ..Spec::default()
    })
    .await;
    let backend = t.backend("web-0");
    backend.set("/flaky", Behavior::failing(200));
    backend.set("/down", Behavior::failing(1000));

    // 20% failures with a 20% budget: retries stay within 20% of requests.
    let n = 2000;
    let replies = t.send(Method::GET, "/flaky", n, 50).await;
    let metrics = t.client.metrics().await;
    let made = retries(&metrics, "GET /flaky");
    let ok = ok_share(&replies);
    eprintln!(
        "20% failures, budget 0.2: success {:.2}%, {made} retries, {} skipped",
        ok * 100.0,
        skipped(&metrics, "GET /flaky")
    );
    assert!(made <= 0.2 * n as f64 + 0.01 * n as f64, "{made} retries");
    assert!(made >= 0.1 * n as f64, "{made} retries: retries are made");
    assert!(ok >= 0.9, "success {ok}");
    assert_eq!(backend.count("GET", "/flaky") as f64, n as f64 + made);

    // A route that always fails exhausts the budget: skipped retries are
    // counted and the total stays within 20% of all requests.
    let m = 500;
    let replies = t.send(Method::GET, "/down", m, 20).await;
    assert!(replies
        .iter()
        .all(|r| r.status == Ok(StatusCode::INTERNAL_SERVER_ERROR)));
    let metrics = t.client.metrics().await;
    let made_down = retries(&metrics, "GET /down");
    let skipped_down = skipped(&metrics, "GET /down");
    let made_total = retries(&metrics, "GET /flaky") + made_down;
    eprintln!("100% failures: {made_down} retries, {skipped_down} skipped for lack of budget");
    assert!(skipped_down > 0.0);
    assert!(
        made_total <= 0.2 * (n + m) as f64 + 0.01 * (n + m) as f64,
        "{made_total} retries for {} requests",
        n + m
    );
    assert_eq!(backend.count("GET", "/down") as f64, m as f64 + made_down);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_timeout_answers_504_and_cancels_the_backend_request() {
    let sp = profile_yaml(
        "  - name: GET /slow\n    condition: {method: GET, pathRegex: /slow}\n    timeout: 200ms\n",
        None,
    );
    let t = Topology::start(Spec {
        files: &[("sp.yaml", &sp)],
        ..Spec::default()
    })
    .await;
    let backend = t.backend("web-0");
    backend.set("/slow", Behavior::delayed(Duration::from_secs(2)));
    let cancelled_before = backend.cancelled();

    let sent = Instant::now();
    let replies = t.send(Method::GET, "/slow", 5, 5).await;
    for r in &replies {
        assert_eq!(r.status, Ok(StatusCode::GATEWAY_TIMEOUT), "{r:?}");
        assert!(r.proxy_error.is_some(), "no l5d-proxy-error: {r:?}");
        assert!(
            r.latency >= Duration::from_millis(190) && r.latency < Duration::from_millis(800),
            "answered after {:?}",
            r.latency
        );
    }
    eprintln!(
        "504 after {:?} ({:?})",
        replies.iter().map(|r| r.latency).max().unwrap(),
        replies[0].proxy_error
    );
    // The backend sees all five cancelled long before its 2 s delay ends.
    let cancelled = eventually(Duration::from_millis(1200), || async {
        backend.cancelled() - cancelled_before >= 5
    })
    .await;
    let seen = sent.elapsed();
    assert!(
        cancelled,
        "backend saw {} of 5 requests cancelled within {seen:?} ({} received)",
        backend.cancelled() - cancelled_before,
        backend.count("GET", "/slow")
    );
    assert!(seen < Duration::from_millis(1900));
    assert_eq!(backend.count("GET", "/slow"), 5);
    let metrics = t.client.metrics().await;
    let timeouts = metric_sum_by(&metrics, "route_response_total", |l| {
        on_route(Some("GET /slow"))(l) && l.iter().any(|(k, v)| k == "status_code" && v == "504")
    });
    assert_eq!(timeouts, 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_retryable_post_is_never_duplicated() {
    let sp = profile_yaml(
        "  - name: POST /orders\n    condition: {method: POST, pathRegex: /orders}\n  - name: GET /orders\n    condition: {method: GET, pathRegex: /orders}\n    isRetryable: true\n",
        None,
    );
    let t = Topology::start(Spec {
        files: &[("sp.yaml", &sp)],
        ..Spec::default()
    })
    .await;
    let backend = t.backend("web-0");
    backend.set("/orders", Behavior::failing(1000));

    let client = http1_client();
    let n = 50;
    for i in 0..n {
        let r = request_via(
            &client,
            t.client.outbound,
            &t.host,
            &Method::POST,
            "/orders",
            Bytes::from(format!("order {i}")),
        )
        .await;
        assert_eq!(r.status, Ok(StatusCode::INTERNAL_SERVER_ERROR), "{r:?}");
    }
    assert_eq!(backend.count("POST", "/orders"), n);
    // The same profile retries the retryable GET route (default budget).
    let replies = t.send(Method::GET, "/orders", 10, 5).await;
    assert!(replies
        .iter()
        .all(|r| r.status == Ok(StatusCode::INTERNAL_SERVER_ERROR)));
    let metrics = t.client.metrics().await;
    assert_eq!(retries(&metrics, "POST /orders"), 0.0);
    assert_eq!(skipped(&metrics, "POST /orders"), 0.0);
    assert!(retries(&metrics, "GET /orders") > 0.0);
    assert!(backend.count("GET", "/orders") > 10);
    assert_eq!(backend.count("POST", "/orders"), n);
}

/// The documentation's `webapp` profile, adapted to `web.default`.
fn docs_webapp_profile() -> String {
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    let doc = fixture
        .split("\n---\n")
        .find(|d| d.contains("name: webapp.booksapp.svc.cluster.local"))
        .unwrap()
        .to_string();
    doc.replace("webapp.booksapp.svc.cluster.local", WEB_FQDN)
        .replace("namespace: booksapp", "namespace: default")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_metrics_carry_route_names() {
    let sp = docs_webapp_profile();
    let t = Topology::start(Spec {
        files: &[("sp.yaml", &sp)],
        ..Spec::default()
    })
    .await;
    let before = t.client.metrics().await;
    let plan: [(Method, &str, usize, Option<&str>); 5] = [
        (Method::GET, "/books/12", 7, Some("GET /books/{id}")),
        (Method::GET, "/books", 3, Some("GET /books")),
        (
            Method::POST,
            "/books/12/edit",
            2,
            Some("POST /books/{id}/edit"),
        ),
        (Method::GET, "/authors/1", 4, None),
        (Method::DELETE, "/books", 1, None),
    ];
    for (method, path, n, _) in &plan {
        let replies = t.send(method.clone(), path, *n, 2).await;
        assert_all_ok(&replies);
    }
    let after = t.client.metrics().await;
    let delta = |name: &str, route: Option<&str>| {
        metric_sum_by(&after, name, on_route(route)) - metric_sum_by(&before, name, on_route(route))
    };
    let mut expected: HashMap<Option<&str>, usize> = HashMap::new();
    for (_, _, n, route) in &plan {
        *expected.entry(*route).or_default() += n;
    }
    for (route, n) in expected {
        assert_eq!(delta("route_request_total", route), n as f64, "{route:?}");
        assert_eq!(delta("route_response_total", route), n as f64, "{route:?}");
    }
    // The series are exported as documented.
    assert!(
        after.contains(&format!(
            "route_request_total{{direction=\"outbound\",dst=\"{WEB_AUTHORITY}\",rt_route=\"GET /books/{{id}}\"}} 7"
        )),
        "{after}"
    );
    let ok_responses = metric_sum_by(&after, "route_response_total", |l| {
        on_route(Some("GET /books/{id}"))(l)
            && l.iter().any(|(k, v)| k == "status_code" && v == "200")
            && l.iter()
                .any(|(k, v)| k == "classification" && v == "success")
    });
    assert_eq!(ok_responses, 7.0);
    assert!(
        metric_sum_by(
            &after,
            "route_response_latency_ms_count",
            on_route(Some("GET /books"))
        ) >= 3.0
    );
}

#[tokio::test]
async fn docs_examples_validate_with_wisp_validate() {
    let out = Command::new(bin("wisp"))
        .args(["validate", FIXTURE])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("4 object(s) valid"), "{stderr}");

    // The adaptation used by the route-metrics test too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yaml");
    std::fs::write(&path, docs_webapp_profile()).unwrap();
    let out = Command::new(bin("wisp"))
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // And a broken copy is rejected with the field path.
    std::fs::write(
        &path,
        docs_webapp_profile().replace(
            "pathRegex: /books/[^/]*/edit",
            "pathRegex: /books/([^/]*/edit",
        ),
    )
    .unwrap();
    let out = Command::new(bin("wisp"))
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("ServiceProfile default/web.default.svc.cluster.local: spec.routes[4].condition.pathRegex"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_fault_injection_split_applies_unchanged() {
    // The documentation's manifests, unchanged (booksapp namespace, the
    // books/error-injector split at 900m/100m), next to the Services.
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    let t = Topology::start(Spec {
        ns: "booksapp",
        port: 7002,
        pods: &["books", "error-injector"],
        services: &[("books", &[0]), ("error-injector", &[1])],
        files: &[("linkerd-docs.yaml", &fixture)],
    })
    .await;
    // The docs' error injector answers every request with 500.
    t.backend("error-injector")
        .set("/", Behavior::failing(1000));

    let replies = t.send(Method::GET, "/books.json", 5000, 64).await;
    let errors = replies
        .iter()
        .filter(|r| r.status == Ok(StatusCode::INTERNAL_SERVER_ERROR))
        .count();
    let injected = share_of(&replies, "error-injector");
    eprintln!("fault injection: {:.2}% errors", injected * 100.0);
    assert_eq!(
        errors
            + replies
                .iter()
                .filter(|r| r.status == Ok(StatusCode::OK))
                .count(),
        replies.len()
    );
    assert!(
        (injected - 0.10).abs() <= 0.03,
        "error-injector share {injected}"
    );
    assert_eq!(errors as f64 / replies.len() as f64, injected);
}
