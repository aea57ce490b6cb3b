//! The ServiceProfile and TrafficSplit the demo applies after the mesh
//! check: three routes of `web` (one retryable, one with a timeout), a
//! retry budget, and a 90/10 split of `web` between itself (v1) and
//! `web-v2`. They are written to a file and applied with `wisp apply`
//! (validated, then written atomically into the manifest directory), so
//! the destination service serves them to the client proxy.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use super::http_get::{self, HttpClient};
use super::metrics;
use super::topology::{NAMESPACE, SERVICE, SERVICE_HOST, SERVICE_PORT, SERVICE_V2};

/// One route of the demo's ServiceProfile, and the load it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoRoute {
    /// The route name (the proxy's `rt_route` label).
    pub name: &'static str,
    /// Its `pathRegex` (the proxy anchors it).
    pub path_regex: &'static str,
    /// `isRetryable`.
    pub retryable: bool,
    /// `timeout` (a Go duration), if any.
    pub timeout: Option<&'static str>,
}

/// The routes, in the profile's (first match wins) order. The load driver
/// tags each request with its index here.
pub const ROUTES: [DemoRoute; 3] = [
    DemoRoute {
        name: "GET /books/{id}",
        path_regex: "/books/[^/]+",
        retryable: false,
        timeout: None,
    },
    DemoRoute {
        name: "GET /flaky",
        path_regex: "/flaky",
        retryable: true,
        timeout: None,
    },
    DemoRoute {
        name: "GET /slow",
        path_regex: "/slow",
        retryable: false,
        timeout: Some("300ms"),
    },
];

/// Index in [`ROUTES`] of `GET /books/{id}`.
pub const BOOKS: usize = 0;
/// Index in [`ROUTES`] of `GET /flaky`.
pub const FLAKY: usize = 1;
/// Index in [`ROUTES`] of `GET /slow`.
pub const SLOW: usize = 2;

/// How often the backends fail `GET /flaky` with 500, in percent.
pub const FLAKY_PERCENT: u8 = 20;
/// How long the backends take for `GET /slow` (longer than its timeout).
pub const SLOW_PATH: Duration = Duration::from_secs(1);
/// The `GET /slow` route's timeout (as in [`ROUTES`]).
pub const SLOW_TIMEOUT: Duration = Duration::from_millis(300);

/// The retry budget: `(retryRatio, minRetriesPerSecond, ttl)`.
pub const RETRY_BUDGET: (&str, u32, &str) = ("0.2", 10, "10s");

/// The TrafficSplit's name.
pub const SPLIT_NAME: &str = "web-split";
/// Its backends: `(service, weight)` (v1alpha1 quantities, 900m = 0.9).
pub const SPLIT: [(&str, &str); 2] = [(SERVICE, "900m"), (SERVICE_V2, "100m")];

/// The ServiceProfile and the TrafficSplit, as one YAML stream.
pub fn manifests() -> String {
    let mut routes = String::new();
    for r in ROUTES {
        routes.push_str(&format!(
            "  - name: {name}\n    condition:\n      method: GET\n      pathRegex: {regex}\n",
            name = yaml_str(r.name),
            regex = yaml_str(r.path_regex),
        ));
        if r.retryable {
            routes.push_str(
                "    responseClasses:\n    - condition:\n        status: {min: 500, max: 599}\n      isFailure: true\n    isRetryable: true\n",
            );
        }
        if let Some(t) = r.timeout {
            routes.push_str(&format!("    timeout: {t}\n"));
        }
    }
    let (ratio, min_per_s, ttl) = RETRY_BUDGET;
    let mut backends = String::new();
    for (service, weight) in SPLIT {
        backends.push_str(&format!("  - service: {service}\n    weight: {weight}\n"));
    }
    format!(
        "apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata:
  name: {SERVICE_HOST}
  namespace: {NAMESPACE}
spec:
  routes:
{routes}  retryBudget:
    retryRatio: {ratio}
    minRetriesPerSecond: {min_per_s}
    ttl: {ttl}
---
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata:
  name: {SPLIT_NAME}
  namespace: {NAMESPACE}
spec:
  service: {SERVICE}
  backends:
{backends}"
    )
}

/// A double-quoted YAML string (the demo's names need no escapes but `"`).
fn yaml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Writes [`manifests`] to `file` and runs `wisp apply -f FILE --dir
/// MANIFESTS` with the `wisp` at `wisp`; returns what it printed (one line
/// per applied object), or fails with its output.
pub fn apply(wisp: &Path, file: &Path, manifest_dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::write(file, manifests())
        .with_context(|| format!("cannot write {}", file.display()))?;
    let out = Command::new(wisp)
        .arg("apply")
        .arg("-f")
        .arg(file)
        .arg("--dir")
        .arg(manifest_dir)
        .output()
        .context("cannot run wisp apply")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        anyhow::bail!(
            "wisp apply -f {} failed ({}):\n{}{}",
            file.display(),
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout.lines().map(str::to_string).collect())
}

/// `fqn:port` of `web`, the `dst` label of its route series.
pub fn dst() -> String {
    format!("{SERVICE_HOST}:{SERVICE_PORT}")
}

/// Sends `GET /books/0` through the client proxy at `url_base` until the
/// proxy's metrics at `admin` count it under its route, i.e. the client
/// proxy got the profile from the destination service. Returns how long
/// that took, or `None` if it did not happen within `timeout`.
pub async fn wait_in_effect(
    client: &HttpClient,
    url_base: &str,
    admin: std::net::SocketAddr,
    timeout: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let url = format!("{url_base}books/0");
    let dst = dst();
    while start.elapsed() < timeout {
        let _ = http_get::get(client, &url, Some(SERVICE_HOST), Duration::from_secs(1)).await;
        if let Ok(text) = metrics::scrape(client, admin, Duration::from_secs(1)).await {
            let routes = metrics::routes(&text, &dst);
            if routes
                .get(ROUTES[BOOKS].name)
                .is_some_and(|r| r.requests > 0)
            {
                return Some(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_profiles::{parse_documents, DocumentStatus, ValidateOptions};

    #[test]
    fn manifests_validate() {
        let docs = parse_documents(&manifests(), Some("demo"), &ValidateOptions::default())
            .unwrap_or_else(|p| panic!("{p}"));
        assert_eq!(docs.len(), 2);
        for doc in &docs {
            match &doc.status {
                DocumentStatus::Valid(_) => {}
                DocumentStatus::Invalid(problems) => panic!(
                    "{}",
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
                DocumentStatus::Unknown => panic!("unknown kind {}", doc.id.kind),
            }
        }
        let text = manifests();
        assert!(text.contains("name: web.default.svc.cluster.local\n"));
        assert!(text.contains("  - name: \"GET /slow\"\n"));
        assert!(text.contains("    timeout: 300ms\n"));
        assert!(text.contains("    isRetryable: true\n"));
        assert!(text.contains("  service: web\n"));
        assert!(text.contains("  - service: web-v2\n    weight: 100m\n"));
    }

    #[test]
    fn slow_timeout_matches_the_route() {
        assert_eq!(ROUTES[SLOW].timeout, Some("300ms"));
        assert_eq!(SLOW_TIMEOUT, Duration::from_millis(300));
        assert!(SLOW_PATH > SLOW_TIMEOUT);
        assert!(ROUTES[FLAKY].retryable);
    }
}
