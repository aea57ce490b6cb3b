//! The outbound side: the app's connections to the world (listener 4140).
//!
//! A connection's target is its original destination (iptables redirect)
//! or, when the app dialled the proxy directly (universal mode), the HTTP
//! authority of each request (`l5d-dst-override`, else `:authority`/Host).
//! Named targets go through discovery and the balancer; addresses are
//! forwarded to as they are.
//!
//! Files: `target` finds what a connection or request goes to; `backends`
//! picks endpoints (discovery, DNS fallback, addresses); `logical` serves a
//! service with a ServiceProfile (`profile`, `routes`, `split`, `retry`,
//! `budget`); `attempt` sends one request to one endpoint.

mod attempt;
mod backends;
mod budget;
mod logical;
mod profile;
mod retry;
mod routes;
mod split;
mod state;
mod target;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use linkerd2_proxy_api::tap::tap_event::ProxyDirection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

pub(crate) use backends::Backends;
pub(crate) use profile::Profile;
pub(crate) use state::OutboundState;
pub(crate) use target::{ProfileLookups, Resolver};

use crate::balance::{Endpoint, OpaqueConn};
use crate::config::{Config, PortSet};
use crate::drain::Drain;
use crate::http::body::ResponseBody;
use crate::http::errors::{describe, is_grpc, ProxyError};
use crate::http::headers::request_authority;
use crate::http::request_body::RequestBody;
use crate::http::serve::{self, ServeLimits};
use crate::tap::{Origin, Taps};
use crate::telemetry::metrics::{Labels, Registry};
use crate::transport::detect::{self, Detected, FirstSpeaker, Protocol, CLIENT_QUIET};
use crate::transport::io::{CountingIo, PrefixedIo};
use crate::transport::listen::{accept_loop, AcceptLimit};
use crate::transport::orig_dst::original_dst;
use crate::transport::splice::splice;
use attempt::send_plain;
use target::Target;

/// What the outbound side needs: its resolver, metrics and settings.
pub(crate) struct Outbound {
    resolver: Resolver,
    metrics: Arc<Registry>,
    taps: Arc<Taps>,
    opaque_ports: PortSet,
    detect_timeout: Duration,
    limits: ServeLimits,
}

impl Outbound {
    /// The outbound side over `resolver`.
    pub(crate) fn new(
        resolver: Resolver,
        metrics: Arc<Registry>,
        taps: Arc<Taps>,
        config: &Config,
    ) -> Self {
        Outbound {
            resolver,
            metrics,
            taps,
            opaque_ports: config.outbound_opaque_ports.clone(),
            detect_timeout: config.outbound_detect_timeout,
            limits: ServeLimits::from_config(config),
        }
    }

    /// Drops cached state unused for the idle timeout.
    pub(crate) fn evict_idle(&self) {
        self.resolver.evict_idle();
    }

    /// What the outbound side knows right now.
    pub(crate) fn state(&self) -> OutboundState {
        self.resolver.state()
    }
}

/// Accepts outbound connections until the proxy drains.
pub(crate) async fn serve(
    outbound: Arc<Outbound>,
    listener: TcpListener,
    limit: AcceptLimit,
    drain: Drain,
) {
    accept_loop(listener, drain, "outbound", limit, |stream, peer, drain| {
        handle(outbound.clone(), stream, peer, drain)
    })
    .await;
}

async fn handle(this: Arc<Outbound>, stream: TcpStream, peer: SocketAddr, drain: Drain) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let orig = original_dst(&stream);
    let target_addr = orig.unwrap_or(local);
    tracing::Span::current().record("target", tracing::field::display(target_addr));
    let labels = Labels::new()
        .with("direction", "outbound")
        .with("peer", "src")
        .with_target(target_addr)
        .with("tls", "no_identity")
        .with("no_tls_reason", "loopback");
    let mut io = CountingIo::new(stream, this.metrics.tcp(labels));

    let (target, opaque_profile) = match orig {
        Some(dst) => match this.resolver.for_original_dst(dst).await {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(error = %describe(&e), "refusing connection");
                return;
            }
        },
        None => (Target::PerRequest, false),
    };

    let opaque_port = opaque_profile || orig.is_some_and(|d| this.opaque_ports.contains(d.port()));
    if opaque_port {
        return splice_to(&this, &target, io, None).await;
    }
    let detected = if orig.is_some() {
        let connect = || async { connect_opaque(&this, &target).await.ok() };
        detect::detect_or_server_first(&mut io, this.detect_timeout, CLIENT_QUIET, connect).await
    } else {
        detect::detect(&mut io, this.detect_timeout)
            .await
            .map(|d| FirstSpeaker::Client(d, None))
    };
    let (proto, prefix, server) = match detected {
        Ok(FirstSpeaker::Server(server, from_server)) => {
            tracing::debug!("the server spoke first; forwarding opaque");
            splice(io, PrefixedIo::new(from_server, server)).await;
            return;
        }
        Ok(FirstSpeaker::Client(Detected::Protocol(p, b), server)) => (p, b, server),
        // Outbound, a detection timeout continues as opaque.
        Ok(FirstSpeaker::Client(Detected::Timeout(b), server)) => (Protocol::Opaque, b, server),
        Ok(FirstSpeaker::Client(Detected::Closed, _)) | Err(_) => return,
    };
    let io = PrefixedIo::new(prefix, io);
    match proto {
        Protocol::Http1 | Protocol::Http2 => {
            drop(server);
            let this2 = this.clone();
            let origin = Arc::new(Origin {
                taps: this.taps.clone(),
                direction: ProxyDirection::Outbound,
                source: peer,
                source_labels: vec![("tls".into(), "loopback".into())],
            });
            serve::serve(io, proto, this.limits, drain, move |req| {
                let this = this2.clone();
                let target = target.clone();
                let origin = origin.clone();
                async move { proxy_request(&this, target, &origin, req).await }
            })
            .await;
        }
        Protocol::Opaque => splice_to(&this, &target, io, server).await,
    }
}

/// An endpoint of `target` for opaque traffic.
async fn opaque_endpoint(this: &Outbound, target: &Target) -> Result<Arc<Endpoint>, ProxyError> {
    let backends = this.resolver.backends();
    match target {
        Target::Address(ep) => Ok(ep.clone()),
        Target::Logical(l) => l.endpoint(backends).await,
        Target::Service(b) => backends.pick(b).await,
        Target::PerRequest => Err(ProxyError::NoAuthority),
    }
}

async fn connect_opaque(this: &Outbound, target: &Target) -> Result<OpaqueConn, ProxyError> {
    let ep = opaque_endpoint(this, target).await?;
    ep.connect_opaque()
        .await
        .map_err(|source| ProxyError::Connect {
            addr: ep.addr,
            source,
        })
}

/// Splices `io` to `target` over `server`, or a new connection.
async fn splice_to<I>(this: &Outbound, target: &Target, io: I, server: Option<OpaqueConn>)
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let server = match server {
        Some(s) => s,
        None => match connect_opaque(this, target).await {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(error = %describe(&e), "opaque connection failed");
                return;
            }
        },
    };
    splice(io, server).await;
}

/// Routes and forwards one request.
async fn proxy_request(
    this: &Outbound,
    target: Target,
    origin: &Origin,
    mut req: Request<RequestBody>,
) -> Response<ResponseBody> {
    let grpc = is_grpc(&req);
    let version = req.version();
    // The override header is for this proxy only; never forward it.
    let override_authority = req
        .headers_mut()
        .remove("l5d-dst-override")
        .and_then(|v| v.to_str().ok().map(str::to_string));
    let target = match target {
        Target::PerRequest => {
            let authority = override_authority.or_else(|| request_authority(&req));
            match authority
                .ok_or(ProxyError::NoAuthority)
                .and_then(|a| this.resolver.for_authority(&a))
            {
                Ok(t) => t,
                Err(e) => return e.respond(grpc, version),
            }
        }
        t => t,
    };
    let backends = this.resolver.backends();
    let ep = match target {
        Target::Address(ep) => ep,
        Target::Service(b) => match backends.pick(&b).await {
            Ok(ep) => ep,
            Err(e) => return e.respond(grpc, version),
        },
        Target::Logical(l) => return l.dispatch(backends, req, origin).await,
        Target::PerRequest => return ProxyError::NoAuthority.respond(grpc, version),
    };
    send_plain(&ep, req, origin).await
}
