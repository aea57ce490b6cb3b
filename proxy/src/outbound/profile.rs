//! A target's ServiceProfile as the outbound side uses it: routes with their
//! metric series, the retry budget, the traffic split, and whether the
//! target is one endpoint or opaque. Built once per GetProfile answer.

use std::net::SocketAddr;
use std::sync::Arc;

use linkerd2_proxy_api::destination::DestinationProfile;

use crate::balance::EndpointMeta;
use crate::control::endpoint_meta::endpoint_meta;
use crate::control::profiles::Convert;
use crate::outbound::budget::RetryBudget;
use crate::outbound::routes::Route;
use crate::telemetry::metrics::{Family, HttpMetrics, Labels, Registry};

/// A route with its metric series (`route_*` and `route_actual_*`).
pub(crate) struct MeteredRoute {
    /// Matching, classes, timeout, retryability.
    pub(crate) route: Arc<Route>,
    /// `route_request_total` etc., once per request.
    pub(crate) metrics: Arc<HttpMetrics>,
    /// `route_actual_*`, once per attempt.
    pub(crate) actual: Arc<HttpMetrics>,
}

/// What GetProfile says about a target.
pub(crate) struct Profile {
    /// The logical service name (`svc.ns.svc.cluster.local`), if any.
    pub(crate) fqn: Option<String>,
    /// The single endpoint the target is (a pod IP), if so.
    pub(crate) endpoint: Option<(SocketAddr, EndpointMeta)>,
    /// Connections to the target are opaque TCP.
    pub(crate) opaque: bool,
    /// Routes, first match wins.
    pub(crate) routes: Vec<MeteredRoute>,
    /// Where requests matching no route are counted.
    pub(crate) default_route: MeteredRoute,
    /// The retry budget shared by the routes.
    pub(crate) budget: Option<Arc<RetryBudget>>,
    /// Traffic split: `(authority, weight)`, weights > 0.
    pub(crate) overrides: Vec<(String, u32)>,
}

impl Profile {
    /// The conversion the profile streams use, with series in `metrics`.
    pub(crate) fn converter(metrics: Arc<Registry>) -> Convert<Profile> {
        Arc::new(move |p, target| Profile::from_proto(p, target, &metrics))
    }

    fn from_proto(p: DestinationProfile, target: &str, metrics: &Registry) -> Self {
        let fqn = Some(p.fully_qualified_name).filter(|n| !n.is_empty());
        let port = target.rsplit_once(':').map_or("80", |(_, p)| p);
        let dst = fqn
            .as_ref()
            .map_or_else(|| target.to_string(), |f| format!("{f}:{port}"));
        let series = |route: Route| {
            let mut labels = Labels::new()
                .with("direction", "outbound")
                .with("dst", &dst);
            for (k, v) in &route.labels {
                labels = labels.with(&format!("rt_{k}"), v);
            }
            MeteredRoute {
                metrics: metrics.family(Family::Route, labels.clone()),
                actual: metrics.family(Family::RouteActual, labels),
                route: Arc::new(route),
            }
        };
        Profile {
            endpoint: p
                .endpoint
                .and_then(|wa| endpoint_meta(&Default::default(), wa)),
            opaque: p.opaque_protocol,
            routes: p
                .routes
                .into_iter()
                .filter_map(Route::from_proto)
                .map(series)
                .collect(),
            default_route: series(Route::default_route()),
            budget: p
                .retry_budget
                .and_then(RetryBudget::from_proto)
                .map(Arc::new),
            overrides: p
                .dst_overrides
                .into_iter()
                .filter(|d| d.weight > 0 && d.authority.parse::<http::uri::Authority>().is_ok())
                .map(|d| (d.authority, d.weight))
                .collect(),
            fqn,
        }
    }

    /// The first route matching a request, else the default route.
    pub(crate) fn route_for<B>(&self, req: &http::Request<B>) -> &MeteredRoute {
        let (method, path) = (req.method(), req.uri().path());
        self.routes
            .iter()
            .find(|r| r.route.matches(method, path))
            .unwrap_or(&self.default_route)
    }
}
