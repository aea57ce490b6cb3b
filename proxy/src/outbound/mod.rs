//! The outbound side: the app's connections to the world (listener 4140).
//!
//! A connection's target is its original destination (iptables redirect)
//! or, when the app dialled the proxy directly (universal mode), the HTTP
//! authority of each request (`l5d-dst-override`, else `:authority`/Host).
//! Named targets go through discovery and the balancer; addresses are
//! forwarded to as they are.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::{TcpListener, TcpStream};

use crate::balance::{Balancer, Resolution};
use crate::body::ProxyBody;
use crate::detect::{self, Detected, Protocol};
use crate::drain::Drain;
use crate::endpoint::{Direction, Endpoint, EndpointMeta};
use crate::errors::{is_grpc, ProxyError};
use crate::io::{CountingIo, PrefixedIo};
use crate::logical::Logical;
use crate::metrics::Labels;
use crate::orig_dst::original_dst;
use crate::{http_proxy, tcp, Shared};

/// Accepts outbound connections until the proxy drains.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, drain: Drain) {
    crate::listen::accept_loop(listener, drain, "outbound", |stream, _peer, drain| {
        handle(shared.clone(), stream, drain)
    })
    .await;
}

/// Where an outbound connection's traffic goes.
#[derive(Clone)]
enum Route {
    /// A logical service: balance over its endpoints.
    Balance(Arc<Balancer>),
    /// One address.
    Forward(Arc<Endpoint>),
    /// A logical service with a ServiceProfile: routes, retries, timeouts, split.
    Logical(Arc<Logical>),
    /// Per request, by HTTP authority (universal mode).
    ByAuthority,
}

async fn handle(shared: Arc<Shared>, stream: TcpStream, drain: Drain) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let orig = original_dst(&stream);
    let target = orig.unwrap_or(local);
    let labels = Labels::new()
        .with("direction", "outbound")
        .with("peer", "src")
        .with_target(target)
        .with("tls", "no_identity")
        .with("no_tls_reason", "loopback");
    let mut io = CountingIo::new(stream, shared.metrics.tcp(labels));
    let cfg = &shared.config;

    let (route, opaque_profile) = match orig {
        Some(dst) => route_for_addr(&shared, dst).await,
        None => (Route::ByAuthority, false),
    };

    let opaque_port =
        opaque_profile || orig.is_some_and(|d| cfg.outbound_opaque_ports.contains(d.port()));
    let (proto, prefix) = if opaque_port {
        (Protocol::Opaque, bytes::Bytes::new())
    } else {
        match detect::detect(&mut io, cfg.outbound_detect_timeout).await {
            Ok(Detected::Protocol(p, b)) => (p, b),
            // Outbound, a detection timeout continues as opaque.
            Ok(Detected::Timeout(b)) => (Protocol::Opaque, b),
            Ok(Detected::Closed) | Err(_) => return,
        }
    };
    let io = PrefixedIo::new(prefix, io);

    match proto {
        Protocol::Http1 | Protocol::Http2 => {
            let shared2 = shared.clone();
            http_proxy::serve(io, proto, &shared.config, drain, move |req| {
                let shared = shared2.clone();
                let route = route.clone();
                async move { proxy_request(&shared, route, req).await }
            })
            .await;
        }
        Protocol::Opaque => {
            let ep = match route {
                Route::Forward(ep) => Some(ep),
                Route::Logical(l) => l.endpoint(&shared).await,
                Route::Balance(b) => match b.resolved(cfg.outbound_failfast_timeout).await {
                    Resolution::Ready => b.pick(),
                    _ => None,
                },
                Route::ByAuthority => {
                    tracing::debug!(%local, "opaque connection with no original destination; closing");
                    None
                }
            };
            let Some(ep) = ep else { return };
            match ep.connect_opaque().await {
                Ok(server) => tcp::splice(io, server).await,
                Err(e) => tracing::info!(addr = %ep.addr, error = %e, "opaque connect failed"),
            }
        }
    }
}

/// The route for a redirected connection to `dst`: the service behind it if
/// discovery knows one (GetProfile), else `dst` itself; and whether the
/// profile marks it opaque.
async fn route_for_addr(shared: &Arc<Shared>, dst: SocketAddr) -> (Route, bool) {
    if shared.config.profile_lookup_for(dst.ip()) {
        let target = dst.to_string();
        let watch = shared.profiles.watch(&target);
        if let Some(p) = watch.first(crate::PROFILE_TIMEOUT).await {
            if let Some(fqn) = &p.fqn {
                let authority = format!("{fqn}:{}", dst.port());
                let logical = shared.logicals.get_or_insert_with(&target, || {
                    Arc::new(Logical::new(shared, authority, watch.clone()))
                });
                return (Route::Logical(logical), p.opaque);
            }
            if let Some((addr, meta)) = &p.endpoint {
                return (
                    Route::Forward(forward_endpoint(shared, *addr, meta.clone())),
                    p.opaque,
                );
            }
        }
    }
    (
        Route::Forward(forward_endpoint(shared, dst, EndpointMeta::default())),
        false,
    )
}

/// A cached endpoint for traffic sent to an address rather than a service.
fn forward_endpoint(shared: &Arc<Shared>, addr: SocketAddr, meta: EndpointMeta) -> Arc<Endpoint> {
    let ep = shared.forwards.get_or_insert_with(&addr, || {
        Endpoint::new(shared, Direction::Outbound, addr, meta.clone(), None)
    });
    if ep.meta == meta {
        ep
    } else {
        Endpoint::new(shared, Direction::Outbound, addr, meta, None)
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

/// Whether `addr` is one of this proxy's own listeners.
fn is_self(shared: &Shared, addr: SocketAddr) -> bool {
    shared.listen_addrs.iter().any(|l| {
        l.port() == addr.port()
            && (l.ip() == addr.ip()
                || (l.ip().is_unspecified()
                    && (addr.ip().is_loopback() || addr.ip().is_unspecified())))
    })
}

/// Routes and forwards one request.
async fn proxy_request(
    shared: &Arc<Shared>,
    route: Route,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let grpc = is_grpc(&req);
    let version = req.version();
    // The override header is for this proxy only; never forward it.
    let override_authority = req
        .headers_mut()
        .remove("l5d-dst-override")
        .and_then(|v| v.to_str().ok().map(str::to_string));
    let route = match route {
        Route::ByAuthority => {
            let authority = override_authority.or_else(|| http_proxy::request_authority(&req));
            match authority
                .ok_or(ProxyError::NoAuthority)
                .and_then(|a: String| route_for_authority(shared, &a))
            {
                Ok(r) => r,
                Err(e) => return e.respond(grpc, version),
            }
        }
        r => r,
    };
    let ep = match route {
        Route::Forward(ep) => ep,
        Route::Balance(b) => match pick(shared, &b).await {
            Ok(ep) => ep,
            Err(e) => return e.respond(grpc, version),
        },
        Route::Logical(l) => return l.dispatch(shared, req).await,
        Route::ByAuthority => return ProxyError::NoAuthority.respond(grpc, version),
    };
    crate::logical::forward_plain(&ep, req).await
}

/// The route for an authority named by a request.
fn route_for_authority(shared: &Arc<Shared>, authority: &str) -> Result<Route, ProxyError> {
    let (host, port) = split_authority(authority)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        let addr = SocketAddr::new(ip, port);
        if is_self(shared, addr) {
            return Err(ProxyError::Loop(addr));
        }
        return Ok(Route::Forward(forward_endpoint(
            shared,
            addr,
            EndpointMeta::default(),
        )));
    }
    let authority = format!("{host}:{port}");
    if shared.config.profile_lookup_for_name(&host) {
        let logical = shared.logicals.get_or_insert_with(&authority, || {
            let watch = shared.profiles.watch(&authority);
            Arc::new(Logical::new(shared, authority.clone(), watch))
        });
        return Ok(Route::Logical(logical));
    }
    Ok(Route::Balance(shared.discovery.resolve(shared, &authority)))
}

/// Picks an endpoint of a service, waiting for discovery's first answer.
/// A name discovery does not know is resolved with DNS instead.
pub(crate) async fn pick(
    shared: &Arc<Shared>,
    b: &Arc<Balancer>,
) -> Result<Arc<Endpoint>, ProxyError> {
    match b.resolved(shared.config.outbound_failfast_timeout).await {
        Resolution::Ready => b
            .pick()
            .ok_or_else(|| ProxyError::NoEndpoints(b.authority().to_string())),
        Resolution::NoEndpoints { exists: true } => {
            Err(ProxyError::NoEndpoints(b.authority().to_string()))
        }
        Resolution::NoEndpoints { exists: false } | Resolution::Rejected(_) => {
            let addr = tokio::net::lookup_host(b.authority())
                .await
                .map_err(|e| ProxyError::Unresolvable(b.authority().to_string(), e.to_string()))?
                .next()
                .ok_or_else(|| {
                    ProxyError::Unresolvable(b.authority().to_string(), "no addresses".into())
                })?;
            if is_self(shared, addr) {
                return Err(ProxyError::Loop(addr));
            }
            Ok(forward_endpoint(shared, addr, EndpointMeta::default()))
        }
        Resolution::Pending => Err(ProxyError::Unresolved(b.authority().to_string())),
    }
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
}
