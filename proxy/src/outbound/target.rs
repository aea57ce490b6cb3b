//! What an outbound connection or request is sent to: a logical service
//! with a ServiceProfile, a service's balancer, or one address — found from
//! the connection's original destination (GetProfile for IPs in the profile
//! networks) or, in universal mode, from each request's authority.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::balance::{Balancer, Endpoint, EndpointMeta};
use crate::cache::Cache;
use crate::config::{Config, IpNet};
use crate::control::profiles::Profiles;
use crate::http::errors::ProxyError;
use crate::outbound::backends::Backends;
use crate::outbound::logical::LogicalService;
use crate::outbound::profile::Profile;

/// Most logical services kept.
const MAX_LOGICAL: usize = 10_000;

/// Where an outbound connection's traffic goes.
#[derive(Clone)]
pub(crate) enum Target {
    /// A service without a profile: balance over its endpoints.
    Service(Arc<Balancer>),
    /// One address.
    Address(Arc<Endpoint>),
    /// A service with a ServiceProfile: routes, retries, timeouts, split.
    Logical(Arc<LogicalService>),
    /// Decided per request, by HTTP authority (universal mode).
    PerRequest,
}

/// Which names and addresses are looked up with GetProfile.
pub(crate) struct ProfileLookups {
    networks: Vec<IpNet>,
    suffixes: Vec<String>,
}

impl ProfileLookups {
    /// The configured networks and suffixes.
    pub(crate) fn from_config(config: &Config) -> Self {
        ProfileLookups {
            networks: config.profile_networks.clone(),
            suffixes: config.profile_suffixes.clone(),
        }
    }

    /// Whether a lookup should be made for this name (it ends with one of
    /// the profile suffixes; `.` means every name).
    fn for_name(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.suffixes.iter().any(|s| {
            let s = s.trim_end_matches('.');
            s.is_empty() || host == s || host.ends_with(&format!(".{s}"))
        })
    }

    /// Whether a lookup should be made for this original destination.
    fn for_ip(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }
}

/// Finds targets; owns the profile streams and the logical services.
pub(crate) struct Resolver {
    backends: Arc<Backends>,
    profiles: Profiles<Profile>,
    logicals: Cache<String, LogicalService>,
    lookups: ProfileLookups,
}

impl Resolver {
    /// A resolver over `backends` and `profiles`.
    pub(crate) fn new(
        backends: Arc<Backends>,
        profiles: Profiles<Profile>,
        lookups: ProfileLookups,
        idle: Duration,
    ) -> Self {
        Resolver {
            backends,
            profiles,
            logicals: Cache::new(idle, MAX_LOGICAL),
            lookups,
        }
    }

    /// The backends, for picking endpoints.
    pub(crate) fn backends(&self) -> &Backends {
        &self.backends
    }

    /// The target for a redirected connection to `dst`: the service behind
    /// it if discovery knows one (GetProfile), else `dst` itself; and
    /// whether the profile marks it opaque.
    pub(crate) async fn for_original_dst(
        &self,
        dst: SocketAddr,
    ) -> Result<(Target, bool), ProxyError> {
        if self.lookups.for_ip(dst.ip()) {
            let key = dst.to_string();
            let watch = self.profiles.watch(&key);
            if let Some(p) = watch.initial().await {
                if let Some(fqn) = &p.fqn {
                    let authority = format!("{fqn}:{}", dst.port());
                    let logical = self.logicals.get_or_insert_with(&key, || {
                        Arc::new(LogicalService::new(
                            &self.backends,
                            authority,
                            watch.clone(),
                        ))
                    });
                    return Ok((Target::Logical(logical), p.opaque));
                }
                if let Some((addr, meta)) = &p.endpoint {
                    let ep = self.backends.address(*addr, meta.clone())?;
                    return Ok((Target::Address(ep), p.opaque));
                }
            }
        }
        let ep = self.backends.address(dst, EndpointMeta::default())?;
        Ok((Target::Address(ep), false))
    }

    /// The target for an authority named by a request.
    pub(crate) fn for_authority(&self, authority: &str) -> Result<Target, ProxyError> {
        let (host, port) = split_authority(authority)?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            let ep = self
                .backends
                .address(SocketAddr::new(ip, port), EndpointMeta::default())?;
            return Ok(Target::Address(ep));
        }
        let authority = format!("{host}:{port}");
        if self.lookups.for_name(&host) {
            let logical = self.logicals.get_or_insert_with(&authority, || {
                let watch = self.profiles.watch(&authority);
                Arc::new(LogicalService::new(
                    &self.backends,
                    authority.clone(),
                    watch,
                ))
            });
            return Ok(Target::Logical(logical));
        }
        Ok(Target::Service(self.backends.service(&authority)))
    }

    /// The logical services, most recently used first.
    pub(crate) fn logical_services(&self) -> Vec<Arc<LogicalService>> {
        self.logicals
            .entries()
            .into_iter()
            .map(|(_, l)| l)
            .collect()
    }

    /// Drops what has been unused for the idle timeout.
    pub(crate) fn evict_idle(&self) {
        self.profiles.evict_idle();
        self.logicals.evict_idle();
        self.backends.evict_idle();
    }
}

/// Splits `host:port` (port 80 when absent).
fn split_authority(authority: &str) -> Result<(String, u16), ProxyError> {
    let bad = || ProxyError::BadAuthority(authority.to_string());
    let a: http::uri::Authority = authority.parse().map_err(|_| bad())?;
    let host = a.host().trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, a.port_u16().unwrap_or(80)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(
            split_authority("web.default.svc.cluster.local").ok(),
            Some(("web.default.svc.cluster.local".to_string(), 80))
        );
        assert_eq!(
            split_authority("Web.Default.svc.cluster.local.:8080").ok(),
            Some(("web.default.svc.cluster.local".to_string(), 8080))
        );
        assert_eq!(
            split_authority("[::1]:9000").ok(),
            Some(("::1".to_string(), 9000))
        );
        assert!(split_authority("bad host:x").is_err());
    }

    #[test]
    fn profile_lookups() {
        let l = ProfileLookups {
            networks: vec![],
            suffixes: vec!["svc.cluster.local.".into()],
        };
        assert!(l.for_name("web.ns.svc.cluster.local"));
        assert!(!l.for_name("example.com"));
        let all = ProfileLookups {
            networks: vec![],
            suffixes: vec![".".into()],
        };
        assert!(all.for_name("example.com"));
    }
}
