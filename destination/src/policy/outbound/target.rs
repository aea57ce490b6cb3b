//! `TrafficSpec` parsing and resolution against the index.

use std::net::{IpAddr, SocketAddr};

use linkerd2_proxy_api::outbound::{traffic_spec, TrafficSpec};
use tonic::Status;

use crate::index::{ObjectKey, Store};
use crate::policy::networks::any_contains;
use crate::policy::PolicySettings;

/// Port assumed when an authority has none.
pub const DEFAULT_PORT: u16 = 80;

/// What a `TrafficSpec` asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// An original destination `IP:port`.
    Addr(SocketAddr),
    /// A Service named `<name>.<ns>.svc[.<cluster domain>][:port]`.
    Service {
        /// The Service.
        key: ObjectKey,
        /// The port (80 when the authority has none).
        port: u16,
    },
}

/// A lookup resolved against the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A Service port; `by_addr` when found by cluster IP.
    Service {
        /// The Service.
        key: ObjectKey,
        /// The requested port.
        port: u16,
        /// Whether the lookup was by cluster IP.
        by_addr: bool,
    },
    /// An IP outside the cluster networks: `egress-fallback`.
    External(SocketAddr),
    /// Nothing the policy API describes (pod IPs, unknown names): the
    /// proxy falls back to the profile / original destination.
    NotFound(String),
}

/// Validates a `TrafficSpec` like Linkerd's controller: a missing target, a
/// target address without IP or with port 0, or an unparsable authority
/// are `InvalidArgument`; an authority that is not a cluster Service name is
/// `NotFound`. `source_workload` is not needed and not checked.
pub fn parse_traffic_spec(spec: &TrafficSpec, cluster_domain: &str) -> Result<Lookup, Status> {
    match &spec.target {
        None => Err(Status::invalid_argument("target is required")),
        Some(traffic_spec::Target::Addr(addr)) => {
            let port = u16::try_from(addr.port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| Status::invalid_argument("invalid target port"))?;
            let ip = addr
                .ip
                .ok_or_else(|| Status::invalid_argument("traffic target must have an IP"))?;
            let ip = IpAddr::try_from(ip)
                .map_err(|e| Status::invalid_argument(format!("invalid target IP: {e}")))?;
            Ok(Lookup::Addr(SocketAddr::new(ip, port)))
        }
        Some(traffic_spec::Target::Authority(authority)) => {
            parse_authority(authority, cluster_domain)
        }
    }
}

fn parse_authority(authority: &str, cluster_domain: &str) -> Result<Lookup, Status> {
    let parsed = authority
        .parse::<http::uri::Authority>()
        .map_err(|_| Status::invalid_argument(format!("invalid authority {authority:?}")))?;
    let host = parsed.host().trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return Err(Status::invalid_argument("authority must have a host"));
    }
    let not_found = || {
        Status::not_found(format!(
            "authority {authority:?} is not of the form <name>.<namespace>.svc.{cluster_domain}"
        ))
    };
    let cd_suffix = format!(".{}", cluster_domain.trim_matches('.').to_ascii_lowercase());
    let short = host.strip_suffix(cd_suffix.as_str()).unwrap_or(&host);
    let labels: Vec<&str> = short.split('.').collect();
    let [name, namespace, "svc"] = labels.as_slice() else {
        return Err(not_found());
    };
    if name.is_empty() || namespace.is_empty() {
        return Err(not_found());
    }
    let port = match parsed.port_u16() {
        None => DEFAULT_PORT,
        Some(0) => return Err(Status::invalid_argument("invalid authority port")),
        Some(p) => p,
    };
    Ok(Lookup::Service {
        key: ObjectKey::new(*namespace, *name),
        port,
    })
}

/// Resolves a lookup: a cluster IP or a known Service name is that Service;
/// another IP outside the cluster networks is `External`; anything else
/// (a pod IP, an unknown Service) is `NotFound`.
pub fn resolve_lookup(store: &Store, settings: &PolicySettings, lookup: &Lookup) -> Resolved {
    match lookup {
        Lookup::Addr(addr) => {
            if let Some((key, _)) = store.services_by_cluster_ip(addr.ip()).first() {
                return Resolved::Service {
                    key: (*key).clone(),
                    port: addr.port(),
                    by_addr: true,
                };
            }
            if any_contains(&settings.cluster_networks, addr.ip()) {
                Resolved::NotFound(format!("{addr} is not a Service address"))
            } else {
                Resolved::External(*addr)
            }
        }
        Lookup::Service { key, port } => match store.service(key) {
            Some(_) => Resolved::Service {
                key: key.clone(),
                port: *port,
                by_addr: false,
            },
            None => Resolved::NotFound(format!("no Service {}/{}", key.namespace, key.name)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(s: &str) -> Result<Lookup, tonic::Code> {
        let spec = TrafficSpec {
            source_workload: String::new(),
            target: Some(traffic_spec::Target::Authority(s.into())),
        };
        parse_traffic_spec(&spec, "cluster.local").map_err(|s| s.code())
    }

    #[test]
    fn authorities() {
        let web = |port| {
            Ok(Lookup::Service {
                key: ObjectKey::new("emojivoto", "web"),
                port,
            })
        };
        assert_eq!(authority("web.emojivoto.svc.cluster.local:8080"), web(8080));
        assert_eq!(authority("web.emojivoto.svc.cluster.local.:80"), web(80));
        assert_eq!(authority("web.emojivoto.svc"), web(80));
        assert_eq!(authority("web.emojivoto:80"), Err(tonic::Code::NotFound));
        assert_eq!(authority("example.com:443"), Err(tonic::Code::NotFound));
        assert_eq!(authority("10.0.0.1:80"), Err(tonic::Code::NotFound));
        assert_eq!(authority("bad host:80"), Err(tonic::Code::InvalidArgument));
    }
}
