//! ServiceProfiles from `Destination.GetProfile`: one stream per target
//! (`name:port` or `ip:port`), shared and idle-evicted like discovery; every
//! update replaces the target's [`Profile`] at once (new requests use it,
//! in-flight ones finish with the one they started with).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use linkerd2_proxy_api::destination::{
    destination_client::DestinationClient, DestinationProfile, GetDestination,
};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::budget::RetryBudget;
use crate::cache::Cache;
use crate::control;
use crate::discovery::endpoint_meta;
use crate::endpoint::EndpointMeta;
use crate::metrics::{Family, HttpMetrics, Labels, Registry};
use crate::routes::Route;

/// A route with its metric series (`route_*` and `route_actual_*`).
pub struct ProfileRoute {
    /// Matching, classes, timeout, retryability.
    pub route: Arc<Route>,
    /// `route_request_total` etc., once per request.
    pub metrics: Arc<HttpMetrics>,
    /// `route_actual_*`, once per attempt.
    pub actual: Arc<HttpMetrics>,
}

/// What GetProfile says about a target.
pub struct Profile {
    /// The logical service name (`svc.ns.svc.cluster.local`), if any.
    pub fqn: Option<String>,
    /// The single endpoint the target is (a pod IP), if so.
    pub endpoint: Option<(SocketAddr, EndpointMeta)>,
    /// Connections to the target are opaque TCP.
    pub opaque: bool,
    /// Routes, first match wins.
    pub routes: Vec<ProfileRoute>,
    /// Where requests matching no route are counted.
    pub default_route: ProfileRoute,
    /// The retry budget shared by the routes.
    pub budget: Option<Arc<RetryBudget>>,
    /// Traffic split: `(authority, weight)`, weights > 0.
    pub overrides: Vec<(String, u32)>,
}

impl Profile {
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
            ProfileRoute {
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

    /// Whether the profile changes routing (routes or a split); otherwise
    /// requests go straight to the service's balancer.
    pub fn has_routing(&self) -> bool {
        !self.routes.is_empty() || !self.overrides.is_empty()
    }
}

/// The live profile of one target; dropping it ends the stream.
pub struct ProfileWatch {
    rx: watch::Receiver<Option<Arc<Profile>>>,
    created: std::time::Instant,
    task: tokio::task::AbortHandle,
}

impl Drop for ProfileWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProfileWatch {
    /// The latest profile, if one has arrived.
    pub fn current(&self) -> Option<Arc<Profile>> {
        self.rx.borrow().clone()
    }

    /// The latest profile; while the watch is new, waits for the first one
    /// until [`crate::PROFILE_TIMEOUT`] after the watch started (so requests
    /// to a new service see its routes, and a dead control plane costs each
    /// new target that wait only once).
    pub async fn initial(&self) -> Option<Arc<Profile>> {
        match self.current() {
            Some(p) => Some(p),
            None => {
                let left = crate::PROFILE_TIMEOUT.saturating_sub(self.created.elapsed());
                if left.is_zero() {
                    None
                } else {
                    self.first(left).await
                }
            }
        }
    }

    /// Waits up to `timeout` for the first profile.
    pub async fn first(&self, timeout: Duration) -> Option<Arc<Profile>> {
        let mut rx = self.rx.clone();
        let wait = async {
            let _ = rx.wait_for(Option::is_some).await;
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        self.current()
    }
}

/// Profile streams by target.
pub struct Profiles {
    client: DestinationClient<Channel>,
    context: String,
    metrics: Arc<Registry>,
    cache: Cache<String, ProfileWatch>,
}

impl Profiles {
    /// Lookups through `client`; unused targets are dropped after `idle`.
    pub fn new(
        client: DestinationClient<Channel>,
        context: String,
        metrics: Arc<Registry>,
        idle: Duration,
    ) -> Self {
        Profiles {
            client,
            context,
            metrics,
            cache: Cache::new(idle, 10_000),
        }
    }

    /// The profile watch for `target` (`host:port`), starting its stream if needed.
    pub fn watch(&self, target: &str) -> Arc<ProfileWatch> {
        self.cache.get_or_insert_with(&target.to_string(), || {
            let (tx, rx) = watch::channel(None);
            let task = tokio::spawn(stream(
                self.client.clone(),
                self.context.clone(),
                target.to_string(),
                self.metrics.clone(),
                tx,
            ));
            Arc::new(ProfileWatch {
                rx,
                created: std::time::Instant::now(),
                task: task.abort_handle(),
            })
        })
    }

    /// Drops watches unused for the idle timeout.
    pub fn evict_idle(&self) {
        self.cache.evict_idle();
    }
}

/// Runs GetProfile for `target`, publishing each answer; reconnects with
/// backoff; stops when the name is rejected or the watch is dropped.
async fn stream(
    client: DestinationClient<Channel>,
    context: String,
    target: String,
    metrics: Arc<Registry>,
    tx: watch::Sender<Option<Arc<Profile>>>,
) {
    let open = || {
        let mut client = client.clone();
        let req = GetDestination {
            scheme: String::new(),
            path: target.clone(),
            context_token: context.clone(),
        };
        async move { client.get_profile(req).await }
    };
    let stopped = control::follow(&target, open, |p, _| {
        tx.send_replace(Some(Arc::new(Profile::from_proto(p, &target, &metrics))));
        !tx.is_closed()
    })
    .await;
    if let control::Stopped::Rejected(status) = stopped {
        tracing::debug!(%target, %status, "no profile for this target");
    }
}
