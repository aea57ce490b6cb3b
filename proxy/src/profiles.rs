//! GetProfile lookups for redirected connections: which service (if any)
//! is behind an original destination `ip:port`.
//!
//! The first answer is cached per target for the discovery idle timeout.
//! Routes, retries and splits from ServiceProfiles arrive in a later change;
//! today only the logical name and the single-endpoint answer are used.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use linkerd2_proxy_api::destination::{destination_client::DestinationClient, GetDestination};
use tonic::transport::Channel;

use crate::cache::Cache;
use crate::discovery::endpoint_meta;
use crate::endpoint::EndpointMeta;

/// What GetProfile said about a target.
#[derive(Debug, Default)]
pub struct ProfileInfo {
    /// The logical service name (`svc.ns.svc.cluster.local`), if any.
    pub fqn: Option<String>,
    /// The single endpoint the target is (a pod IP), if so.
    pub endpoint: Option<(SocketAddr, EndpointMeta)>,
}

/// A cache of profile answers by target address.
pub struct Profiles {
    client: DestinationClient<Channel>,
    context: String,
    cache: Cache<SocketAddr, ProfileInfo>,
    timeout: Duration,
}

impl Profiles {
    /// Lookups through `client`, waiting at most `timeout` for an answer.
    pub fn new(
        client: DestinationClient<Channel>,
        context: String,
        idle: Duration,
        timeout: Duration,
    ) -> Self {
        Profiles {
            client,
            context,
            cache: Cache::new(idle, 10_000),
            timeout,
        }
    }

    /// The profile of `dst`, or `None` when discovery has no answer in time.
    pub async fn lookup(&self, dst: SocketAddr) -> Option<Arc<ProfileInfo>> {
        if let Some(p) = self.cache.get(&dst) {
            return Some(p);
        }
        let mut client = self.client.clone();
        let req = GetDestination {
            scheme: String::new(),
            path: dst.to_string(),
            context_token: self.context.clone(),
        };
        let first = async move { client.get_profile(req).await?.into_inner().message().await };
        let profile = match tokio::time::timeout(self.timeout, first).await {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => return None,
            Ok(Err(status)) => {
                tracing::debug!(%dst, %status, "GetProfile failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(%dst, "GetProfile timed out; forwarding to the original destination");
                return None;
            }
        };
        let info = ProfileInfo {
            fqn: Some(profile.fully_qualified_name).filter(|n| !n.is_empty()),
            endpoint: profile
                .endpoint
                .and_then(|wa| endpoint_meta(&Default::default(), wa)),
        };
        Some(self.cache.get_or_insert_with(&dst, || Arc::new(info)))
    }

    /// Drops answers unused for the idle timeout.
    pub fn evict_idle(&self) {
        self.cache.evict_idle();
    }
}
