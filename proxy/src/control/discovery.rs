//! Service discovery through the Destination API.
//!
//! One `Destination.Get` stream per authority, shared by every connection and
//! request that targets it. The stream feeds a [`Balancer`]; the balancer is
//! cached and dropped (closing the stream) once unused for the discovery idle
//! timeout. When the stream fails, the last known endpoints keep serving
//! while it reconnects with backoff.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use linkerd2_proxy_api::destination::{
    self as api, destination_client::DestinationClient, update, GetDestination,
};
use tonic::transport::Channel;

use crate::balance::Balancer;
use crate::cache::Cache;
use crate::control;
use crate::endpoint::{Direction, Endpoint, EndpointMeta};
use crate::Shared;

/// A cache of balancers, one per authority, fed by Destination.Get.
pub struct Discovery {
    client: DestinationClient<Channel>,
    cache: Cache<String, Balancer>,
}

/// Most authorities followed at once: each is a stream to the control
/// plane, so a client inventing names must not open them without bound.
const MAX_AUTHORITIES: usize = 10_000;

impl Discovery {
    /// A discovery client over `channel` to the Destination service.
    pub fn new(channel: Channel, idle_timeout: Duration) -> Self {
        Discovery {
            client: DestinationClient::new(channel),
            cache: Cache::new(idle_timeout, MAX_AUTHORITIES),
        }
    }

    /// The client, for other Destination calls (GetProfile).
    pub fn client(&self) -> DestinationClient<Channel> {
        self.client.clone()
    }

    /// The balancer for `authority` (`host:port`), starting discovery if needed.
    pub fn resolve(&self, shared: &Arc<Shared>, authority: &str) -> Arc<Balancer> {
        self.cache.get_or_insert_with(authority, || {
            let balancer = Arc::new(Balancer::new(authority.to_string()));
            let task = tokio::spawn(watch(
                self.client.clone(),
                shared.clone(),
                authority.to_string(),
                Arc::downgrade(&balancer),
            ));
            if let Ok(mut t) = balancer.task.lock() {
                *t = Some(task.abort_handle());
            }
            balancer
        })
    }

    /// Drops balancers unused for the idle timeout.
    pub fn evict_idle(&self) {
        self.cache.evict_idle();
    }
}

/// Runs the Get stream for one authority until the balancer is dropped.
async fn watch(
    client: DestinationClient<Channel>,
    shared: Arc<Shared>,
    authority: String,
    balancer: Weak<Balancer>,
) {
    let open = || {
        let mut client = client.clone();
        let req = GetDestination {
            scheme: String::new(),
            path: authority.clone(),
            context_token: shared.config.destination_context.clone(),
        };
        async move { client.get(req).await }
    };
    let stopped = control::follow(&authority, open, |up, first| match balancer.upgrade() {
        Some(b) => {
            apply(&shared, &b, up, first);
            true
        }
        None => false,
    })
    .await;
    if let (control::Stopped::Rejected(status), Some(b)) = (stopped, balancer.upgrade()) {
        tracing::debug!(%authority, %status, "destination rejected the name");
        b.reject(status.message().to_string());
    }
}

/// Applies one Destination update to the balancer.
fn apply(shared: &Arc<Shared>, b: &Balancer, up: api::Update, first: bool) {
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
                    Endpoint::new(shared, Direction::Outbound, addr, meta, Some(b.authority()))
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

/// Reads an address and its metadata from a `WeightedAddr`.
pub fn endpoint_meta(
    set_labels: &HashMap<String, String>,
    wa: api::WeightedAddr,
) -> Option<(SocketAddr, EndpointMeta)> {
    let addr = SocketAddr::try_from(wa.addr?).ok()?;
    let mut labels: Vec<(String, String)> = set_labels
        .iter()
        .filter(|(k, _)| !wa.metric_labels.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(wa.metric_labels);
    labels.sort();
    let identity = wa.tls_identity.and_then(|t| match t.strategy? {
        api::tls_identity::Strategy::DnsLikeIdentity(d) => Some(d.name),
        api::tls_identity::Strategy::UriLikeIdentity(u) => Some(u.uri),
    });
    let h2_hint = matches!(
        wa.protocol_hint.as_ref().and_then(|h| h.protocol.as_ref()),
        Some(api::protocol_hint::Protocol::H2(_))
    );
    let opaque_transport_port = wa
        .protocol_hint
        .and_then(|h| h.opaque_transport)
        .map(|o| o.inbound_port)
        .filter(|&p| 0 < p && p < 65535)
        .and_then(|p| u16::try_from(p).ok());
    Some((
        addr,
        EndpointMeta {
            labels,
            identity,
            opaque_transport_port,
            h2_hint,
        },
    ))
}
