//! The inbound side: connections to the workload (listener 4143).
//!
//! A redirected connection (iptables) is forwarded to `127.0.0.1:<original
//! port>`. A connection made straight to the listener is a *direct*
//! connection from a peer proxy: it starts with a transport header naming
//! the real port and session protocol, and is forwarded to that port on the
//! address it arrived at (`direct`).
//!
//! With identity enabled, a TLS ClientHello for our own name is terminated
//! here (the client's certificate, if any, gives the client
//! identity, which reaches the app as `l5d-client-id`); TLS for another
//! name passes through untouched; direct connections must be mutually
//! authenticated. With identity disabled, everything is plaintext. `app`
//! forwards what is inside to the application. The proxy's own ports are
//! never a target.

mod app;
mod direct;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::balance::{Endpoint, EndpointFactory, OpaqueConn};
use crate::cache::Cache;
use crate::config::{Config, PortSet};
use crate::drain::Drain;
use crate::http::serve::ServeLimits;
use crate::tap::Taps;
use crate::telemetry::metrics::{Labels, Registry};
use crate::transport::detect::{self, Detected, FirstSpeaker, Protocol, CLIENT_QUIET};
use crate::transport::io::{CountingIo, PrefixedIo};
use crate::transport::listen::{accept_loop, AcceptLimit, OwnAddrs};
use crate::transport::orig_dst::original_dst;
use crate::transport::tls::{accept_mesh, read_client_hello, Hello, MeshTls};
use app::{AcceptTls, App};

/// Most local application targets kept.
const MAX_APPS: usize = 1_000;

/// What the inbound side needs: the app endpoints, TLS, metrics, settings.
pub(crate) struct Inbound {
    apps: Cache<SocketAddr, Endpoint>,
    endpoints: Arc<EndpointFactory>,
    metrics: Arc<Registry>,
    taps: Arc<Taps>,
    tls: Option<Arc<MeshTls>>,
    own: OwnAddrs,
    inbound_ips: Vec<IpAddr>,
    opaque_ports: PortSet,
    detect_timeout: Duration,
    limits: ServeLimits,
}

impl Inbound {
    /// The inbound side.
    pub(crate) fn new(
        config: &Config,
        endpoints: Arc<EndpointFactory>,
        metrics: Arc<Registry>,
        taps: Arc<Taps>,
        tls: Option<Arc<MeshTls>>,
        own: OwnAddrs,
    ) -> Self {
        Inbound {
            apps: Cache::new(config.inbound_discovery_idle_timeout, MAX_APPS),
            endpoints,
            metrics,
            taps,
            tls,
            own,
            inbound_ips: config.inbound_ips.clone(),
            opaque_ports: config.inbound_opaque_ports.clone(),
            detect_timeout: config.inbound_detect_timeout,
            limits: ServeLimits::from_config(config),
        }
    }

    /// Drops app targets unused for the idle timeout.
    pub(crate) fn evict_idle(&self) {
        self.apps.evict_idle();
    }

    /// The application endpoints inbound traffic reaches, right now.
    pub(crate) fn state(&self) -> Vec<crate::balance::EndpointState> {
        let now = tokio::time::Instant::now();
        self.apps
            .entries()
            .iter()
            .map(|(_, e)| e.state(now))
            .collect()
    }

    /// The application at `target`, unless `target` is one of the proxy's
    /// own ports.
    fn app(&self, target: SocketAddr) -> Option<App> {
        if self.own.has_port(target.port()) {
            tracing::info!(%target, "refusing a connection to one of the proxy's own ports");
            return None;
        }
        let ep = self
            .apps
            .get_or_insert_with(&target, || self.endpoints.inbound(target));
        Some(App {
            target,
            ep,
            metrics: self.metrics.clone(),
            limits: self.limits,
            taps: self.taps.clone(),
        })
    }

    /// Wraps the accepted socket for TCP metrics, replaying `prefix`.
    fn accept_io(
        &self,
        stream: TcpStream,
        prefix: Bytes,
        dst: SocketAddr,
        tls: &AcceptTls,
    ) -> CountingIo<PrefixedIo<TcpStream>> {
        let labels = tls.labels(
            Labels::new()
                .with("direction", "inbound")
                .with("peer", "src")
                .with_target(dst),
        );
        let labels = app::server_labels(labels, dst.port());
        CountingIo::new(PrefixedIo::new(prefix, stream), self.metrics.tcp(labels))
    }
}

/// Accepts inbound connections until the proxy drains.
pub(crate) async fn serve(
    inbound: Arc<Inbound>,
    listener: TcpListener,
    limit: AcceptLimit,
    drain: Drain,
) {
    accept_loop(listener, drain, "inbound", limit, |stream, peer, drain| {
        handle(inbound.clone(), stream, peer, drain)
    })
    .await;
}

async fn handle(this: Arc<Inbound>, mut stream: TcpStream, peer: SocketAddr, drain: Drain) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let orig = original_dst(&stream);
    let dst = orig.unwrap_or(local);
    tracing::Span::current().record("target", tracing::field::display(dst));
    if !this.inbound_ips.is_empty() && !this.inbound_ips.contains(&dst.ip()) {
        tracing::info!(%dst, "refusing inbound connection to a foreign IP");
        return;
    }
    // The app's address for a redirected connection; direct ones learn the
    // port from the transport header.
    let app = orig.map(|o| {
        let lo = match o.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        SocketAddr::new(lo, o.port())
    });

    // Without identity there is nothing to terminate.
    let Some(mesh) = this.tls.clone() else {
        let io = this.accept_io(stream, Bytes::new(), dst, &AcceptTls::Disabled);
        return serve_stream(&this, io, peer, local, app, AcceptTls::Disabled, drain).await;
    };

    let (hello, prefix) = match read_client_hello(&mut stream, this.detect_timeout).await {
        Ok(h) => h,
        Err(_) => return,
    };
    match hello {
        Hello::Tls(Some(sni)) if sni == mesh.local_name => {
            let io = this.accept_io(stream, prefix, dst, &AcceptTls::Mesh(None));
            let Some(t) = accept_mesh(&mesh, io, this.detect_timeout).await else {
                return;
            };
            let accept = AcceptTls::Mesh(t.client_id.clone());
            match app {
                Some(_) => serve_stream(&this, t.stream, peer, local, app, accept, drain).await,
                None if t.client_id.is_none() => {
                    tracing::info!("refusing direct connection without a client certificate");
                }
                None if !t.transport => {
                    tracing::info!(
                        "refusing direct connection that did not negotiate the transport protocol"
                    );
                }
                None => serve_stream(&this, t.stream, peer, local, None, accept, drain).await,
            }
        }
        Hello::Tls(sni) => match app {
            // TLS for someone else: pass it through untouched.
            Some(app) => {
                let accept = AcceptTls::Passthrough(sni.unwrap_or_default());
                let io = this.accept_io(stream, prefix, dst, &accept);
                if let Some(app) = this.app(app) {
                    app.splice(io, None::<OpaqueConn>).await;
                }
            }
            None => tracing::info!("refusing direct connection: TLS for another name"),
        },
        Hello::NotTls if app.is_none() => {
            tracing::info!(
                "refusing direct connection: direct connections must be mutually authenticated"
            );
        }
        Hello::NotTls => {
            let io = this.accept_io(stream, prefix, dst, &AcceptTls::NoTls);
            serve_stream(&this, io, peer, local, app, AcceptTls::NoTls, drain).await;
        }
    }
}

/// Serves a plaintext or decrypted stream: a direct connection (`app` is
/// `None`: read the transport header) or a redirected one (detect the
/// protocol, without stalling server-speaks-first protocols).
async fn serve_stream<I>(
    this: &Inbound,
    mut io: I,
    peer: SocketAddr,
    local: SocketAddr,
    app: Option<SocketAddr>,
    tls: AcceptTls,
    drain: Drain,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(target) = app else {
        // A direct connection: to the port its transport header names.
        let Some((port, proto, rest)) = direct::read_header(&mut io, this.detect_timeout).await
        else {
            return;
        };
        let Some(app) = this.app(SocketAddr::new(local.ip(), port)) else {
            return;
        };
        return app
            .serve(PrefixedIo::new(rest, io), peer, proto, tls, None, drain)
            .await;
    };
    let Some(app) = this.app(target) else {
        return;
    };
    if this.opaque_ports.contains(target.port()) {
        return app.splice(io, None::<OpaqueConn>).await;
    }
    let connect = || async { app.connect().await };
    let detected =
        detect::detect_or_server_first(&mut io, this.detect_timeout, CLIENT_QUIET, connect).await;
    match detected {
        Ok(FirstSpeaker::Server(server, from_server)) => {
            tracing::debug!("the application spoke first; forwarding opaque");
            app.splice(io, Some(PrefixedIo::new(from_server, server)))
                .await;
        }
        Ok(FirstSpeaker::Client(Detected::Protocol(p, b), server)) => {
            app.serve(PrefixedIo::new(b, io), peer, p, tls, server, drain)
                .await;
        }
        Ok(FirstSpeaker::Client(Detected::Timeout(b), server)) => {
            app.serve(
                PrefixedIo::new(b, io),
                peer,
                Protocol::Opaque,
                tls,
                server,
                drain,
            )
            .await;
        }
        Ok(FirstSpeaker::Client(Detected::Closed, _)) | Err(_) => {}
    }
}
