//! Where a request or connection to a service ends up: a service's balancer
//! (from discovery), a name discovery does not know (resolved with DNS), or
//! an address. Owns discovery and the endpoints made for addresses; refuses
//! the proxy's own listeners as targets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::balance::{Balancer, Endpoint, EndpointFactory, EndpointMeta, Resolution};
use crate::cache::Cache;
use crate::control::discovery::Discovery;
use crate::http::errors::ProxyError;
use crate::transport::listen::OwnAddrs;

/// Most address endpoints kept (each has its own connection pool).
const MAX_ADDRESSES: usize = 10_000;

/// Balancers by service, endpoints by address, and the DNS fallback.
pub(crate) struct Backends {
    discovery: Discovery,
    addresses: Cache<(SocketAddr, EndpointMeta), Endpoint>,
    endpoints: Arc<EndpointFactory>,
    own: OwnAddrs,
    failfast: Duration,
}

impl Backends {
    /// Backends found through `discovery`; a request waits at most
    /// `failfast` for a service's first answer.
    pub(crate) fn new(
        discovery: Discovery,
        endpoints: Arc<EndpointFactory>,
        own: OwnAddrs,
        idle: Duration,
        failfast: Duration,
    ) -> Self {
        Backends {
            discovery,
            addresses: Cache::new(idle, MAX_ADDRESSES),
            endpoints,
            own,
            failfast,
        }
    }

    /// The balancer of the service `authority` (`host:port`).
    pub(crate) fn service(&self, authority: &str) -> Arc<Balancer> {
        self.discovery.resolve(authority)
    }

    /// The endpoint for traffic sent to `addr` itself, with what discovery
    /// said about it (if anything); one per address and metadata, so a
    /// changed identity or hint gets its own pool instead of rebuilding one
    /// on every call. The proxy's own listeners are refused.
    pub(crate) fn address(
        &self,
        addr: SocketAddr,
        meta: EndpointMeta,
    ) -> Result<Arc<Endpoint>, ProxyError> {
        if self.own.contains(addr) {
            return Err(ProxyError::Loop(addr));
        }
        let key = (addr, meta);
        Ok(self
            .addresses
            .get_or_insert_with(&key, || self.endpoints.outbound(addr, key.1.clone(), None)))
    }

    /// Picks an endpoint of a service, waiting for discovery's first answer.
    /// A name discovery does not know is resolved with DNS instead.
    pub(crate) async fn pick(&self, b: &Balancer) -> Result<Arc<Endpoint>, ProxyError> {
        match b.resolved(self.failfast).await {
            Resolution::Ready => b
                .pick()
                .ok_or_else(|| ProxyError::NoEndpoints(b.authority().to_string())),
            Resolution::NoEndpoints { exists: true } => {
                Err(ProxyError::NoEndpoints(b.authority().to_string()))
            }
            Resolution::NoEndpoints { exists: false } | Resolution::Rejected(_) => {
                let unresolvable = |source| ProxyError::Unresolvable {
                    authority: b.authority().to_string(),
                    source,
                };
                let addr = tokio::net::lookup_host(b.authority())
                    .await
                    .map_err(unresolvable)?
                    .next()
                    .ok_or_else(|| {
                        unresolvable(std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no addresses",
                        ))
                    })?;
                self.address(addr, EndpointMeta::default())
            }
            Resolution::Pending => Err(ProxyError::Unresolved(b.authority().to_string())),
        }
    }

    /// The services being followed.
    pub(crate) fn services(&self) -> Vec<Arc<Balancer>> {
        self.discovery.balancers()
    }

    /// The services whose last endpoints are remembered.
    pub(crate) fn remembered(&self) -> Vec<String> {
        self.discovery.remembered()
    }

    /// The endpoints made for addresses.
    pub(crate) fn addresses(&self) -> Vec<Arc<Endpoint>> {
        self.addresses
            .entries()
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    /// Drops what has been unused for the idle timeout.
    pub(crate) fn evict_idle(&self) {
        self.discovery.evict_idle();
        self.addresses.evict_idle();
    }
}

#[cfg(test)]
mod tests {
    use linkerd2_proxy_api::destination::destination_client::DestinationClient;

    use super::*;
    use crate::balance::test_factory;

    fn backends() -> Backends {
        // A lazy channel: nothing is dialled unless discovery is used.
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy();
        let factory = Arc::new(test_factory());
        let discovery = Discovery::new(
            DestinationClient::new(channel),
            String::new(),
            factory.clone(),
            Duration::from_secs(5),
        );
        let own = OwnAddrs::new(&["127.0.0.1:4140".parse().expect("addr")], &[]);
        Backends::new(
            discovery,
            factory,
            own,
            Duration::from_secs(5),
            Duration::from_secs(1),
        )
    }

    #[tokio::test]
    async fn an_address_keeps_one_endpoint_per_metadata() {
        let b = backends();
        let addr: SocketAddr = "10.0.0.1:80".parse().expect("addr");
        let meshed = EndpointMeta {
            identity: Some("web.ns.serviceaccount.identity.linkerd.cluster.local".into()),
            ..EndpointMeta::default()
        };
        let plain = b.address(addr, EndpointMeta::default()).expect("endpoint");
        let tls = b.address(addr, meshed.clone()).expect("endpoint");
        assert!(
            !Arc::ptr_eq(&plain, &tls),
            "different metadata, different endpoint"
        );
        // Alternating between the two reuses each (and its pool) instead of
        // rebuilding an endpoint on every call.
        for _ in 0..3 {
            let again = b.address(addr, EndpointMeta::default()).expect("endpoint");
            assert!(Arc::ptr_eq(&plain, &again));
            let again = b.address(addr, meshed.clone()).expect("endpoint");
            assert!(Arc::ptr_eq(&tls, &again));
        }
    }

    #[tokio::test]
    async fn the_proxys_own_listeners_are_refused() {
        let b = backends();
        for own in ["127.0.0.1:4140", "0.0.0.0:4140", "127.0.0.2:4140"] {
            let err = b
                .address(own.parse().expect("addr"), EndpointMeta::default())
                .err();
            assert!(matches!(err, Some(ProxyError::Loop(_))), "{own}");
        }
        assert!(b
            .address(
                "10.0.0.1:4140".parse().expect("addr"),
                EndpointMeta::default()
            )
            .is_ok());
    }
}
