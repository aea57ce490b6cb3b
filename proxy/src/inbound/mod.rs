//! The inbound side: connections to the workload (listener 4143).
//!
//! A redirected connection (iptables) is forwarded to `127.0.0.1:<original
//! port>`. A connection made straight to the listener is a *direct*
//! connection from a peer proxy: it starts with a transport header naming
//! the real port and session protocol, and is forwarded to that port on the
//! address it arrived at.
//!
//! With identity enabled, a TLS ClientHello for our own name is terminated
//! here (the client's certificate, if any, gives the client identity, which
//! reaches the app as `l5d-client-id`); TLS for another name passes through
//! untouched; direct connections must be mutually authenticated. With
//! identity disabled, everything is plaintext.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::body::ProxyBody;
use crate::detect::{self, Detected, Protocol};
use crate::drain::Drain;
use crate::endpoint::{Direction, Endpoint, EndpointMeta};
use crate::http_proxy::{orig_proto_value, ORIG_PROTO};
use crate::io::{CountingIo, PrefixedIo};
use crate::metrics::{HttpMetrics, Labels};
use crate::orig_dst::original_dst;
use crate::reqbody::RequestBody;
use crate::tls::{peer_identity, read_client_hello, Hello, MeshTls, TRANSPORT_ALPN};
use crate::transport_header::{self, Session};
use crate::{http_proxy, tcp, Shared};

/// How an accepted connection is secured, as metrics label it.
#[derive(Clone, Debug)]
enum AcceptTls {
    /// Identity is disabled on this proxy.
    Disabled,
    /// Plaintext from the client.
    NoTls,
    /// Mesh TLS terminated here; the client's identity if it sent a certificate.
    Mesh(Option<String>),
    /// TLS for another server name, passed through.
    Passthrough(String),
}

impl AcceptTls {
    fn labels(&self, labels: Labels) -> Labels {
        match self {
            AcceptTls::Disabled => labels.with("tls", "disabled"),
            AcceptTls::NoTls => labels
                .with("tls", "no_identity")
                .with("no_tls_reason", "no_tls_from_remote"),
            AcceptTls::Mesh(id) => labels
                .with("tls", "true")
                .with("client_id", id.as_deref().unwrap_or_default()),
            AcceptTls::Passthrough(sni) => labels.with("tls", "opaque").with("sni", sni),
        }
    }

    fn client_id(&self) -> Option<&str> {
        match self {
            AcceptTls::Mesh(id) => id.as_deref(),
            _ => None,
        }
    }
}

/// Adds the policy server labels of the default policy (until policies exist).
pub fn server_labels(labels: Labels, port: u16) -> Labels {
    labels
        .with("srv_group", "")
        .with("srv_kind", "default")
        .with("srv_name", "all-unauthenticated")
        .with("srv_port", &port.to_string())
}

fn request_labels(target: SocketAddr, tls: &AcceptTls) -> Labels {
    let labels = tls.labels(
        Labels::new()
            .with("direction", "inbound")
            .with_target(target),
    );
    server_labels(labels, target.port())
        .with("route_group", "")
        .with("route_kind", "default")
        .with("route_name", "default")
        .with("authz_group", "")
        .with("authz_kind", "default")
        .with("authz_name", "all-unauthenticated")
}

/// Accepts inbound connections until the proxy drains.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, drain: Drain) {
    crate::listen::accept_loop(listener, drain, "inbound", |stream, peer, drain| {
        handle(shared.clone(), stream, peer, drain)
    })
    .await;
}

async fn handle(shared: Arc<Shared>, mut stream: TcpStream, peer: SocketAddr, drain: Drain) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let orig = original_dst(&stream);
    let dst = orig.unwrap_or(local);
    let cfg = &shared.config;
    if !cfg.inbound_ips.is_empty() && !cfg.inbound_ips.contains(&dst.ip()) {
        tracing::info!(%peer, %dst, "refusing inbound connection to a foreign IP");
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
    let opaque_port = orig.is_some_and(|o| cfg.inbound_opaque_ports.contains(o.port()));

    // Without identity there is nothing to terminate.
    let Some(mesh) = shared.tls.clone() else {
        let io = accept_io(&shared, stream, Bytes::new(), dst, &AcceptTls::Disabled);
        return serve_plain(
            &shared,
            io,
            peer,
            local,
            app,
            opaque_port,
            AcceptTls::Disabled,
            drain,
        )
        .await;
    };

    let (hello, prefix) = match read_client_hello(&mut stream, cfg.inbound_detect_timeout).await {
        Ok(h) => h,
        Err(_) => return,
    };
    match hello {
        Hello::Tls(Some(sni)) if sni == mesh.local_name => {
            terminate(&shared, &mesh, stream, prefix, peer, local, dst, app, drain).await;
        }
        Hello::Tls(sni) if app.is_some() => {
            // TLS for someone else: pass it through untouched.
            let accept = AcceptTls::Passthrough(sni.unwrap_or_default());
            let io = accept_io(&shared, stream, prefix, dst, &accept);
            forward_opaque(&shared, io, app.unwrap_or(dst)).await;
        }
        _ if app.is_none() => {
            tracing::info!(%peer, "refusing direct connection: direct connections must be mutually authenticated");
        }
        _ => {
            let io = accept_io(&shared, stream, prefix, dst, &AcceptTls::NoTls);
            serve_plain(
                &shared,
                io,
                peer,
                local,
                app,
                opaque_port,
                AcceptTls::NoTls,
                drain,
            )
            .await;
        }
    }
}

/// Wraps the accepted socket for TCP metrics, replaying `prefix`.
fn accept_io(
    shared: &Shared,
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
    let labels = server_labels(labels, dst.port());
    CountingIo::new(PrefixedIo::new(prefix, stream), shared.metrics.tcp(labels))
}

/// Terminates mesh TLS and serves what is inside.
#[allow(clippy::too_many_arguments)]
async fn terminate(
    shared: &Arc<Shared>,
    mesh: &MeshTls,
    stream: TcpStream,
    prefix: Bytes,
    peer: SocketAddr,
    local: SocketAddr,
    dst: SocketAddr,
    app: Option<SocketAddr>,
    drain: Drain,
) {
    let io = accept_io(shared, stream, prefix, dst, &AcceptTls::Mesh(None));
    let accept = tokio_rustls::TlsAcceptor::from(mesh.server.clone()).accept(io);
    let tls = match tokio::time::timeout(shared.config.inbound_detect_timeout, accept).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let (_, conn) = tls.get_ref();
    let client_id = peer_identity(conn.peer_certificates());
    let transport = conn.alpn_protocol() == Some(TRANSPORT_ALPN);
    let accept = AcceptTls::Mesh(client_id.clone());
    match app {
        Some(app) => {
            let opaque = shared.config.inbound_opaque_ports.contains(app.port());
            serve_plain(shared, tls, peer, local, Some(app), opaque, accept, drain).await;
        }
        None if client_id.is_none() => {
            tracing::info!(%peer, "refusing direct connection without a client certificate");
        }
        None if !transport => {
            tracing::info!(%peer, "refusing direct connection that did not negotiate {}", String::from_utf8_lossy(TRANSPORT_ALPN));
        }
        None => serve_plain(shared, tls, peer, local, None, false, accept, drain).await,
    }
}

/// Serves a (decrypted) stream: a direct connection (`app` is `None`: read
/// the transport header) or a redirected one (detect the protocol).
#[allow(clippy::too_many_arguments)]
async fn serve_plain<I>(
    shared: &Arc<Shared>,
    mut io: I,
    peer: SocketAddr,
    local: SocketAddr,
    app: Option<SocketAddr>,
    opaque_port: bool,
    tls: AcceptTls,
    drain: Drain,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &shared.config;
    let Some(app) = app else {
        let read =
            tokio::time::timeout(cfg.inbound_detect_timeout, transport_header::read(&mut io)).await;
        let (header, rest) = match read {
            Ok(Ok(h)) => h,
            Ok(Err((e, _))) => {
                tracing::info!(%peer, error = %e, "refusing direct connection");
                return;
            }
            Err(_) => {
                tracing::info!(%peer, "direct connection sent no transport header in time");
                return;
            }
        };
        let target = SocketAddr::new(local.ip(), u16::try_from(header.port).unwrap_or_default());
        let io = PrefixedIo::new(rest, io);
        let proto = match header.session() {
            Session::Http1 => Protocol::Http1,
            Session::Http2 => Protocol::Http2,
            Session::Opaque => Protocol::Opaque,
        };
        return forward(shared, io, proto, target, tls, drain).await;
    };
    let (proto, prefix) = if opaque_port {
        (Protocol::Opaque, Bytes::new())
    } else {
        match detect::detect(&mut io, cfg.inbound_detect_timeout).await {
            Ok(Detected::Protocol(p, b)) => (p, b),
            Ok(Detected::Timeout(b)) => (Protocol::Opaque, b),
            Ok(Detected::Closed) | Err(_) => return,
        }
    };
    forward(shared, PrefixedIo::new(prefix, io), proto, app, tls, drain).await;
}

fn app_endpoint(shared: &Arc<Shared>, target: SocketAddr) -> Arc<Endpoint> {
    shared.inbound_targets.get_or_insert_with(&target, || {
        Endpoint::new(
            shared,
            Direction::Inbound,
            target,
            EndpointMeta::default(),
            None,
        )
    })
}

async fn forward_opaque<I>(shared: &Arc<Shared>, io: I, target: SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    match app_endpoint(shared, target).connect_opaque().await {
        Ok(server) => tcp::splice(io, server).await,
        Err(e) => tracing::info!(%target, error = %e, "inbound connect failed"),
    }
}

/// Serves `io` as `proto`, sending everything to the app at `target`.
async fn forward<I>(
    shared: &Arc<Shared>,
    io: I,
    proto: Protocol,
    target: SocketAddr,
    tls: AcceptTls,
    drain: Drain,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match proto {
        Protocol::Http1 | Protocol::Http2 => {
            let ep = app_endpoint(shared, target);
            let metrics = shared.metrics.http(request_labels(target, &tls));
            let client_id = tls
                .client_id()
                .and_then(|id| HeaderValue::from_str(id).ok());
            http_proxy::serve(io, proto, &shared.config, drain, move |req| {
                let ep = ep.clone();
                let metrics = metrics.clone();
                let client_id = client_id.clone();
                async move { proxy_request(&ep, &metrics, client_id, req).await }
            })
            .await;
        }
        Protocol::Opaque => forward_opaque(shared, io, target).await,
    }
}

async fn proxy_request(
    ep: &Arc<Endpoint>,
    metrics: &Arc<HttpMetrics>,
    client_id: Option<HeaderValue>,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    // Only a verified mTLS identity may reach the app; anything a client
    // sent itself is a forgery.
    match client_id {
        Some(id) => req.headers_mut().insert("l5d-client-id", id),
        None => req.headers_mut().remove("l5d-client-id"),
    };
    // An HTTP/1 request a peer proxy carried over HTTP/2 goes to the app as HTTP/1.
    let downgraded = match req.headers_mut().remove(ORIG_PROTO) {
        Some(v) if req.version() == Version::HTTP_2 => {
            let v = if v.as_bytes().starts_with(b"HTTP/1.0") {
                Version::HTTP_10
            } else {
                Version::HTTP_11
            };
            *req.version_mut() = v;
            Some(v)
        }
        _ => None,
    };
    let mut rsp = http_proxy::forward(ep, req.map(RequestBody::Streaming), metrics, None).await;
    if let Some(v) = downgraded {
        rsp.headers_mut()
            .insert(ORIG_PROTO, HeaderValue::from_static(orig_proto_value(v)));
        *rsp.version_mut() = Version::HTTP_2;
    }
    rsp
}
