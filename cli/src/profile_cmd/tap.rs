//! `wisp profile --tap TARGET NAME`: a ServiceProfile from live traffic, as
//! `linkerd viz profile --tap` makes it: tap the target for
//! `--tap-duration` (or until `--tap-route-limit` distinct routes were
//! seen), then one route per (method, path) of the requests seen, named
//! `METHOD /path`, matching that method and exactly that path (its regex
//! metacharacters escaped); `/` is skipped; routes sorted by name.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;
use wisp_profiles::generate::{path_regex, profile_with_routes};
use wisp_profiles::types::{RequestMatch, RouteSpec, ServiceProfile};

use crate::tap::event::Kind;
use crate::tap::observe::{observe_request, spawn_taps, FilterArgs, Report};
use crate::tap::{TapTls, TapTlsArgs};
use crate::target::TargetArgs;

/// What `--tap` needs.
pub struct TapProfile<'a> {
    /// The target to tap.
    pub target: &'a str,
    /// Namespace and source of targets.
    pub targets: TargetArgs,
    /// How long to tap.
    pub duration: Duration,
    /// Stop once this many routes were seen.
    pub route_limit: usize,
    /// How proxies' control ports are reached (`--tls-dir`).
    pub tls: TapTlsArgs,
}

/// The route of a request, as Linkerd names and matches it; `None` for `/`.
pub fn route_for(method: &str, path: &str) -> Option<RouteSpec> {
    if path == "/" || path.is_empty() {
        return None;
    }
    Some(RouteSpec {
        name: format!("{method} {path}"),
        condition: RequestMatch {
            method: Some(method.to_string()),
            path_regex: Some(path_regex(&escape_braces(path))),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// `path_regex` reads `{x}` as a template parameter; a tapped path is
/// literal, so its braces are escaped by hand: `{` → `\{`.
fn escape_braces(path: &str) -> String {
    // Replaced by placeholders path_regex leaves alone, then restored.
    path.replace('{', "\u{1}").replace('}', "\u{2}")
}

/// A profile for `service` with the routes of `requests` (method, path),
/// at most `limit` routes (the first seen), sorted by name.
pub fn profile_from_requests<'a>(
    service: &str,
    namespace: &str,
    cluster_domain: &str,
    requests: impl IntoIterator<Item = (&'a str, &'a str)>,
    limit: usize,
) -> ServiceProfile {
    let mut routes = BTreeMap::new();
    for (method, path) in requests {
        if routes.len() >= limit {
            break;
        }
        if let Some(r) = route_for(method, path) {
            routes.entry(r.name.clone()).or_insert(r);
        }
    }
    let routes = routes
        .into_values()
        .map(|mut r| {
            if let Some(re) = &mut r.condition.path_regex {
                *re = re.replace('\u{1}', "\\{").replace('\u{2}', "\\}");
            }
            r
        })
        .collect();
    profile_with_routes(service, namespace, cluster_domain, routes)
}

/// Taps the target and returns the (method, path) of each request seen.
pub fn tap_requests(t: &TapProfile<'_>) -> anyhow::Result<Vec<(String, String)>> {
    let proxies = t.targets.resolve_all(&[t.target.to_string()])?;
    let filter = FilterArgs {
        to: Vec::new(),
        method: None,
        path: None,
        authority: None,
        scheme: None,
        max_rps: 100.0,
    };
    let req = observe_request(&filter, &t.targets, false)?;
    let tls = TapTls::load(&t.tls)?;
    let rt = crate::tap::runtime()?;
    let result = rt.block_on(async {
        let mut signals = wisp_common::signal::ShutdownSignals::new()?;
        let (tx, mut rx) = mpsc::channel(1024);
        let _taps = spawn_taps(&proxies, req, tls.as_ref(), tx)?;
        let deadline = tokio::time::sleep(t.duration);
        tokio::pin!(deadline);
        let mut seen: Vec<(String, String)> = Vec::new();
        let mut distinct = std::collections::BTreeSet::new();
        let mut failed = Vec::new();
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(Report::Event(_, e)) => {
                        if let Kind::Request { method, path, .. } = e.kind {
                            if path != "/" {
                                distinct.insert((method.clone(), path.clone()));
                            }
                            seen.push((method, path));
                            if distinct.len() >= t.route_limit {
                                break;
                            }
                        }
                    }
                    Some(Report::Failed(_, e)) => {
                        failed.push(e);
                        if failed.len() == proxies.len() {
                            break;
                        }
                    }
                    None => break,
                },
                _ = &mut deadline => break,
                _ = signals.recv() => break,
            }
        }
        if failed.len() == proxies.len() && !failed.is_empty() {
            return Err(failed.swap_remove(0));
        }
        for e in failed {
            eprintln!("wisp: {}", wisp_common::error::chain_of(e.chain()));
        }
        Ok(seen)
    });
    rt.shutdown_background();
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_route_per_method_and_path_sorted() {
        let p = profile_from_requests(
            "web",
            "default",
            "cluster.local",
            [
                ("GET", "/books/7"),
                ("POST", "/books"),
                ("GET", "/books/7"),
                ("GET", "/"),
                ("GET", "/a.b+c{x}"),
            ],
            20,
        );
        assert_eq!(p.name(), "web.default.svc.cluster.local");
        assert_eq!(p.api_version, "linkerd.io/v1alpha2");
        let names: Vec<&str> = p.spec.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["GET /a.b+c{x}", "GET /books/7", "POST /books"]);
        let r = &p.spec.routes[0].condition;
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.path_regex.as_deref(), Some(r"^/a\.b\+c\{x\}$"));
        assert_eq!(
            p.spec.routes[1].condition.path_regex.as_deref(),
            Some("^/books/7$")
        );
        let yaml = wisp_profiles::generate::to_yaml(&p).unwrap();
        assert!(yaml.contains("name: GET /books/7"), "{yaml}");
        // The regexes compile and match exactly their path.
        for (route, path) in p
            .spec
            .routes
            .iter()
            .zip(["/a.b+c{x}", "/books/7", "/books"])
        {
            let re = route.condition.path_regex.as_deref().unwrap();
            assert!(regex_lite_match(re, path), "{re} vs {path}");
        }
        let limited = profile_from_requests(
            "web",
            "default",
            "cluster.local",
            [("GET", "/a"), ("GET", "/b")],
            1,
        );
        assert_eq!(limited.spec.routes.len(), 1);
    }

    /// Whether anchored `re` (only escapes, no classes) matches `path`.
    fn regex_lite_match(re: &str, path: &str) -> bool {
        let body = re.trim_start_matches('^').trim_end_matches('$');
        let mut literal = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                literal.extend(chars.next());
            } else {
                literal.push(c);
            }
        }
        literal == path
    }
}
