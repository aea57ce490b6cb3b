//! Service discovery through the Destination API.
//!
//! One `Destination.Get` stream per authority, shared by every connection and
//! request that targets it. The stream feeds a [`Balancer`]; the balancer is
//! cached and dropped (closing the stream) once unused for the discovery idle
//! timeout. When the stream fails, the last known endpoints keep serving
//! while it reconnects with backoff.
//!
//! Better than Linkerd here: when a balancer is evicted for idleness, its
//! last endpoints are remembered (at most [`MAX_REMEMBERED`] authorities).
//! If the target is used again while the destination service is
//! unreachable, the new balancer starts from them, marked stale, instead of
//! failing every request until the control plane is back. The first real
//! answer replaces them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use linkerd2_proxy_api::destination::{
    self as api, destination_client::DestinationClient, update, GetDestination,
};
use lru::LruCache;
use tonic::transport::Channel;

use crate::balance::{Balancer, EndpointFactory, EndpointMeta};
use crate::cache::Cache;
use crate::control::endpoint_meta::endpoint_meta;
use crate::control::follow::{follow, Event, Stopped};

/// Most authorities followed at once: each is a stream to the control
/// plane, so a client inventing names must not open them without bound.
const MAX_AUTHORITIES: usize = 10_000;

/// Most evicted authorities whose last endpoints are remembered.
pub(crate) const MAX_REMEMBERED: usize = 1_000;

/// Endpoints as discovery last described them.
type LastKnown = Vec<(SocketAddr, EndpointMeta)>;

/// A cache of balancers, one per authority, fed by Destination.Get.
pub(crate) struct Discovery {
    client: DestinationClient<Channel>,
    context: String,
    endpoints: Arc<EndpointFactory>,
    cache: Cache<String, Balancer>,
    remembered: Mutex<LruCache<String, LastKnown>>,
}

impl Discovery {
    /// Discovery over `client`; `context` is sent as every request's
    /// context token; `endpoints` builds the endpoints it learns of.
    pub(crate) fn new(
        client: DestinationClient<Channel>,
        context: String,
        endpoints: Arc<EndpointFactory>,
        idle_timeout: Duration,
    ) -> Self {
        Discovery {
            client,
            context,
            endpoints,
            cache: Cache::new(idle_timeout, MAX_AUTHORITIES),
            remembered: Mutex::new(LruCache::unbounded()),
        }
    }

    /// The balancer for `authority` (`host:port`), starting discovery if needed.
    pub(crate) fn resolve(&self, authority: &str) -> Arc<Balancer> {
        self.cache.get_or_insert_with(authority, || {
            let last_known = self
                .remembered
                .lock()
                .ok()
                .and_then(|mut r| r.pop(authority));
            let balancer = Arc::new(Balancer::new(authority.to_string()));
            let task = tokio::spawn(watch(
                self.client.clone(),
                self.context.clone(),
                self.endpoints.clone(),
                authority.to_string(),
                Arc::downgrade(&balancer),
                last_known,
            ));
            balancer.stop_on_drop(task.abort_handle());
            balancer
        })
    }

    /// The balancers being followed, most recently used first.
    pub(crate) fn balancers(&self) -> Vec<Arc<Balancer>> {
        self.cache.entries().into_iter().map(|(_, b)| b).collect()
    }

    /// The services whose last endpoints are remembered for an outage.
    pub(crate) fn remembered(&self) -> Vec<String> {
        self.remembered
            .lock()
            .map(|r| r.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    }

    /// Drops balancers unused for the idle timeout, remembering their
    /// endpoints for a later outage.
    pub(crate) fn evict_idle(&self) {
        let evicted = self.cache.evict_idle();
        if evicted.is_empty() {
            return;
        }
        if let Ok(mut remembered) = self.remembered.lock() {
            for (authority, balancer) in evicted {
                let endpoints = balancer.snapshot();
                if !endpoints.is_empty() {
                    if remembered.len() >= MAX_REMEMBERED && !remembered.contains(&authority) {
                        remembered.pop_lru();
                    }
                    remembered.put(authority, endpoints);
                }
            }
        }
    }
}

/// Runs the Get stream for one authority until the balancer is dropped.
async fn watch(
    client: DestinationClient<Channel>,
    context: String,
    endpoints: Arc<EndpointFactory>,
    authority: String,
    balancer: Weak<Balancer>,
    mut last_known: Option<LastKnown>,
) {
    let open = || {
        let mut client = client.clone();
        let req = GetDestination {
            scheme: String::new(),
            path: authority.clone(),
            context_token: context.clone(),
        };
        async move { client.get(req).await }
    };
    let stopped = follow(&authority, open, |event| {
        let Some(b) = balancer.upgrade() else {
            return false;
        };
        match event {
            Event::Message { msg, first } => {
                last_known = None;
                apply(&endpoints, &b, msg, first);
            }
            Event::Unavailable => {
                if let Some(eps) = last_known.take().filter(|_| b.is_pending()) {
                    tracing::info!(%authority, endpoints = eps.len(), "destination service unreachable; using the last known endpoints (stale)");
                    b.use_stale(eps, |addr, meta| {
                        endpoints.outbound(addr, meta, Some(&authority))
                    });
                }
            }
        }
        true
    })
    .await;
    if let (Stopped::Rejected(status), Some(b)) = (stopped, balancer.upgrade()) {
        tracing::debug!(%authority, %status, "destination rejected the name");
        b.reject(status.message().to_string());
    }
}

/// Applies one Destination update to the balancer.
fn apply(endpoints: &EndpointFactory, b: &Balancer, up: api::Update, first: bool) {
    match up.update {
        Some(update::Update::Add(set)) => {
            let new: Vec<_> = set
                .addrs
                .into_iter()
                .filter_map(|wa| endpoint_meta(&set.metric_labels, wa))
                .collect();
            // An add with no usable address is a no-op.
            if !new.is_empty() {
                b.add(new, first, |addr, meta| {
                    endpoints.outbound(addr, meta, Some(b.authority()))
                });
            }
        }
        Some(update::Update::Remove(set)) => {
            let addrs: Vec<SocketAddr> = set
                .addrs
                .into_iter()
                .filter_map(|a| SocketAddr::try_from(a).ok())
                .collect();
            b.remove(&addrs);
        }
        Some(update::Update::NoEndpoints(ne)) => b.no_endpoints(ne.exists),
        None => {}
    }
}
