//! ServiceProfile routes as the proxy uses them: request matching, response
//! classes, timeouts and retryability, converted from a `DestinationProfile`
//! with linkerd2-proxy's rules (summarised in `docs/proxy-api.md`):
//! path regexes are anchored; an invalid match is dropped (and a route whose
//! top-level condition is invalid is dropped); a status range needs both
//! bounds; an empty `all`/`any` response match is invalid.

use std::time::Duration;

use http::{Method, StatusCode};
use linkerd2_proxy_api::destination as api;
// regex-lite: route paths are short, and its matcher keeps no per-regex DFA
// caches (with `regex`, a 20-route profile raised VmHWM by ~1 MiB).
use regex_lite::Regex;

use crate::http::classify::{is_failure_by_default, Classify};

/// A request condition.
#[derive(Clone, Debug)]
pub(crate) enum RequestMatch {
    /// Every child matches.
    All(Vec<RequestMatch>),
    /// Some child matches.
    Any(Vec<RequestMatch>),
    /// The child does not match.
    Not(Box<RequestMatch>),
    /// The path matches this anchored regex.
    Path(Regex),
    /// The method is this one.
    Method(Method),
}

impl RequestMatch {
    /// Converts a proto match; `None` when it is invalid.
    pub(crate) fn from_proto(m: api::RequestMatch) -> Option<Self> {
        use api::request_match::Match;
        Some(match m.r#match? {
            Match::All(seq) => RequestMatch::All(
                seq.matches
                    .into_iter()
                    .filter_map(Self::from_proto)
                    .collect(),
            ),
            Match::Any(seq) => RequestMatch::Any(
                seq.matches
                    .into_iter()
                    .filter_map(Self::from_proto)
                    .collect(),
            ),
            Match::Not(m) => RequestMatch::Not(Box::new(Self::from_proto(*m)?)),
            Match::Path(p) => {
                let re = p.regex.trim();
                let re = match (re.starts_with('^'), re.ends_with('$')) {
                    (true, true) => re.to_string(),
                    (true, false) => format!("{re}$"),
                    (false, true) => format!("^{re}"),
                    (false, false) => format!("^{re}$"),
                };
                RequestMatch::Path(Regex::new(&re).ok()?)
            }
            Match::Method(m) => RequestMatch::Method(Method::try_from(m).ok()?),
        })
    }

    /// Whether a request with `method` and `path` matches.
    pub(crate) fn matches(&self, method: &Method, path: &str) -> bool {
        match self {
            RequestMatch::All(ms) => ms.iter().all(|m| m.matches(method, path)),
            RequestMatch::Any(ms) => ms.iter().any(|m| m.matches(method, path)),
            RequestMatch::Not(m) => !m.matches(method, path),
            RequestMatch::Path(re) => re.is_match(path),
            RequestMatch::Method(m) => m == method,
        }
    }
}

/// A response condition.
#[derive(Clone, Debug)]
pub(crate) enum ResponseMatch {
    /// Every child matches.
    All(Vec<ResponseMatch>),
    /// Some child matches.
    Any(Vec<ResponseMatch>),
    /// The child does not match.
    Not(Box<ResponseMatch>),
    /// The status is within `min..=max`.
    Status(u16, u16),
}

impl ResponseMatch {
    /// Converts a proto match; `None` when it is invalid.
    pub(crate) fn from_proto(m: api::ResponseMatch) -> Option<Self> {
        use api::response_match::Match;
        let seq = |s: api::response_match::Seq| -> Option<Vec<ResponseMatch>> {
            let v: Vec<_> = s.matches.into_iter().filter_map(Self::from_proto).collect();
            (!v.is_empty()).then_some(v)
        };
        Some(match m.r#match? {
            Match::All(s) => ResponseMatch::All(seq(s)?),
            Match::Any(s) => ResponseMatch::Any(seq(s)?),
            Match::Not(m) => ResponseMatch::Not(Box::new(Self::from_proto(*m)?)),
            Match::Status(r) => {
                let code = |v: u32| {
                    StatusCode::from_u16(u16::try_from(v).ok()?)
                        .ok()
                        .map(|s| s.as_u16())
                };
                ResponseMatch::Status(code(r.min)?, code(r.max)?)
            }
        })
    }

    fn matches(&self, status: StatusCode) -> bool {
        match self {
            ResponseMatch::All(ms) => ms.iter().all(|m| m.matches(status)),
            ResponseMatch::Any(ms) => ms.iter().any(|m| m.matches(status)),
            ResponseMatch::Not(m) => !m.matches(status),
            ResponseMatch::Status(min, max) => (*min..=*max).contains(&status.as_u16()),
        }
    }
}

/// One ServiceProfile route.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    /// Metric labels, exported as `rt_<key>`.
    pub(crate) labels: Vec<(String, String)>,
    condition: Option<RequestMatch>,
    classes: Vec<(ResponseMatch, bool)>,
    /// Failed requests on this route may be retried (within the budget).
    pub(crate) retryable: bool,
    /// Deadline for the whole request, retries included.
    pub(crate) timeout: Option<Duration>,
}

impl Route {
    /// The route requests fall into when no profile route matches.
    pub(crate) fn default_route() -> Self {
        Route {
            labels: Vec::new(),
            condition: None,
            classes: Vec::new(),
            retryable: false,
            timeout: None,
        }
    }

    /// Converts a proto route; `None` when its condition is invalid.
    pub(crate) fn from_proto(r: api::Route) -> Option<Self> {
        let condition = RequestMatch::from_proto(r.condition?)?;
        let classes = r
            .response_classes
            .into_iter()
            .filter_map(|c| Some((ResponseMatch::from_proto(c.condition?)?, c.is_failure)))
            .collect();
        let mut labels: Vec<(String, String)> = r.metrics_labels.into_iter().collect();
        labels.sort();
        let timeout = r
            .timeout
            .and_then(|t| Duration::try_from(t).ok())
            .filter(|t| !t.is_zero());
        Some(Route {
            labels,
            condition: Some(condition),
            classes,
            retryable: r.is_retryable,
            timeout,
        })
    }

    /// Whether a request with `method` and `path` is on this route.
    pub(crate) fn matches(&self, method: &Method, path: &str) -> bool {
        self.condition
            .as_ref()
            .is_some_and(|c| c.matches(method, path))
    }

    /// Whether a response is a failure: the first matching response class
    /// decides; otherwise the gRPC status (if any), else 5xx.
    pub(crate) fn is_failure(&self, status: StatusCode, grpc: Option<u32>) -> bool {
        if let Some((_, failure)) = self.classes.iter().find(|(m, _)| m.matches(status)) {
            return *failure;
        }
        is_failure_by_default(status, grpc)
    }
}

impl Classify for Route {
    fn is_failure(&self, status: StatusCode, grpc: Option<u32>) -> bool {
        Route::is_failure(self, status, grpc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::{request_match::Match as Rm, response_match::Match as Sm};

    /// The `route` label of the first route matching, else "".
    fn select(routes: &[Route], method: &Method, path: &str) -> String {
        routes
            .iter()
            .find(|r| r.matches(method, path))
            .and_then(|r| r.labels.iter().find(|(k, _)| k == "route"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn path(re: &str) -> api::RequestMatch {
        api::RequestMatch {
            r#match: Some(Rm::Path(api::PathMatch { regex: re.into() })),
        }
    }

    fn route(name: &str, m: api::RequestMatch) -> api::Route {
        api::Route {
            condition: Some(m),
            metrics_labels: [("route".to_string(), name.to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn first_matching_route_wins_and_paths_are_anchored() {
        let get: api::RequestMatch = api::RequestMatch {
            r#match: Some(Rm::Method(Method::GET.into())),
        };
        let routes: Vec<Route> = [
            route(
                "GET /books/{id}",
                api::RequestMatch {
                    r#match: Some(Rm::All(api::request_match::Seq {
                        matches: vec![get, path("/books/[^/]*")],
                    })),
                },
            ),
            route("books", path("/books.*")),
            route("bad", path("(unclosed")),
        ]
        .into_iter()
        .filter_map(Route::from_proto)
        .collect();
        assert_eq!(routes.len(), 2, "the invalid route is dropped");
        assert_eq!(select(&routes, &Method::GET, "/books/7"), "GET /books/{id}");
        assert_eq!(select(&routes, &Method::POST, "/books/7"), "books");
        assert_eq!(select(&routes, &Method::GET, "/x/books/7"), "", "anchored");
    }

    #[test]
    fn response_classes_then_grpc_then_5xx() {
        let class = |min, max, failure| api::ResponseClass {
            condition: Some(api::ResponseMatch {
                r#match: Some(Sm::Status(api::HttpStatusRange { min, max })),
            }),
            is_failure: failure,
        };
        let mut r = route("r", path("/"));
        r.response_classes = vec![
            class(500, 504, false),
            class(404, 404, true),
            class(0, 400, true),
        ];
        let r = Route::from_proto(r).expect("route");
        assert!(!r.is_failure(StatusCode::INTERNAL_SERVER_ERROR, None));
        assert!(r.is_failure(StatusCode::NOT_FOUND, None));
        assert!(
            r.is_failure(StatusCode::from_u16(599).expect("599"), None),
            "unmatched 5xx fails; the 0-bound class was dropped"
        );
        assert!(!r.is_failure(StatusCode::BAD_REQUEST, None));
        assert!(r.is_failure(StatusCode::OK, Some(14)));
        assert!(!r.is_failure(StatusCode::OK, Some(5)));
    }
}
