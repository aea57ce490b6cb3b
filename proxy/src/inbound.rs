//! The inbound side: connections to the workload (listener 4143).
//!
//! A redirected connection (iptables) is forwarded to `127.0.0.1:<original
//! port>`. A connection made straight to the listener is a *direct*
//! connection from a peer proxy: it starts with a transport header naming
//! the real port and session protocol, and is forwarded to that port on the
//! address it arrived at. Linkerd accepts direct connections only over mTLS;
//! this build accepts them in plaintext because identity is disabled.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ::http::{Request, Response};
use bytes::Bytes;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::body::ProxyBody;
use crate::detect::{self, Detected, Protocol};
use crate::drain::Drain;
use crate::endpoint::{Direction, Endpoint, EndpointMeta};
use crate::io::{CountingIo, PrefixedIo};
use crate::metrics::Labels;
use crate::orig_dst::original_dst;
use crate::transport_header::{self, Session};
use crate::{http, tcp, Shared};

/// Adds the policy server labels of the default policy (until policies exist).
pub fn server_labels(labels: Labels, port: u16) -> Labels {
    labels
        .with("srv_group", "")
        .with("srv_kind", "default")
        .with("srv_name", "all-unauthenticated")
        .with("srv_port", &port.to_string())
}

/// Accepts inbound connections until the proxy drains.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, drain: Drain) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "inbound accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = drain.signaled() => return,
        };
        let shared = shared.clone();
        let drain = drain.clone();
        tokio::spawn(async move { handle(shared, stream, peer, drain).await });
    }
}

async fn handle(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, drain: Drain) {
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
    let labels = server_labels(
        Labels::new()
            .with("direction", "inbound")
            .with("peer", "src")
            .with_target(dst)
            .with("tls", "disabled"),
        dst.port(),
    );
    let mut io = CountingIo::new(stream, shared.metrics.tcp(labels));

    let Some(orig) = orig else {
        // Direct connection: a transport header says where it goes.
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
        let port = u16::try_from(header.port).unwrap_or_default();
        let target = SocketAddr::new(local.ip(), port);
        let io = PrefixedIo::new(rest, io);
        let proto = match header.session() {
            Session::Http1 => Protocol::Http1,
            Session::Http2 => Protocol::Http2,
            Session::Opaque => Protocol::Opaque,
        };
        return forward(&shared, io, proto, target, drain).await;
    };

    // Redirected connection: forward to the app on loopback.
    let loopback = match orig.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    let target = SocketAddr::new(loopback, orig.port());
    let (proto, prefix) = if cfg.inbound_opaque_ports.contains(orig.port()) {
        (Protocol::Opaque, Bytes::new())
    } else {
        match detect::detect(&mut io, cfg.inbound_detect_timeout).await {
            Ok(Detected::Protocol(p, b)) => (p, b),
            Ok(Detected::Timeout(b)) => (Protocol::Opaque, b),
            Ok(Detected::Closed) | Err(_) => return,
        }
    };
    forward(&shared, PrefixedIo::new(prefix, io), proto, target, drain).await;
}

/// Serves `io` as `proto`, sending everything to the app at `target`.
async fn forward<I>(shared: &Arc<Shared>, io: I, proto: Protocol, target: SocketAddr, drain: Drain)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ep = shared.inbound_targets.get_or_insert_with(&target, || {
        Endpoint::new(
            shared,
            Direction::Inbound,
            target,
            EndpointMeta::default(),
            None,
        )
    });
    match proto {
        Protocol::Http1 | Protocol::Http2 => {
            http::serve(io, proto, &shared.config, drain, move |req| {
                let ep = ep.clone();
                async move { proxy_request(&ep, req).await }
            })
            .await;
        }
        Protocol::Opaque => match ep.connect_opaque().await {
            Ok(server) => tcp::splice(io, server).await,
            Err(e) => tracing::info!(%target, error = %e, "inbound connect failed"),
        },
    }
}

async fn proxy_request(ep: &Arc<Endpoint>, mut req: Request<Incoming>) -> Response<ProxyBody> {
    // Without mTLS there is no client identity: a client-supplied one is a forgery.
    req.headers_mut().remove("l5d-client-id");
    http::forward(ep, req).await
}
