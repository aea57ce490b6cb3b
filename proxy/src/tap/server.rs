//! The control listener (4190), served only when
//! `LINKERD2_PROXY_TAP_SVC_NAME` is set: the Tap API's `Observe`.
//!
//! Who may tap, as linkerd2-proxy decides it: a client that proves the tap
//! service's identity over mesh TLS, or a plaintext client on loopback.
//! Everyone else is served, but `Observe` answers `UNAUTHENTICATED`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use linkerd2_proxy_api::tap::tap_server::{Tap, TapServer};
use linkerd2_proxy_api::tap::{ObserveRequest, TapEvent};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::Stream;
use tower_service::Service;

use crate::drain::Drain;
use crate::tap::queued::Queued;
use crate::tap::registry::Taps;
use crate::transport::io::PrefixedIo;
use crate::transport::listen::{accept_loop, AcceptLimit};
use crate::transport::tls::{accept_mesh, read_client_hello, Hello, MeshTls};

/// Control connections served at once.
const MAX_CONTROL_CONNECTIONS: usize = 100;

/// Bytes of encoded events HTTP/2 buffers per `Observe` stream beyond the
/// client's flow-control window (h2's default is 400 KiB). Past it the
/// stream stops taking events and they wait, small, in the tap's buffer
/// (or are dropped when it is full), so ten lagging taps cost ten times
/// this at most, not 4 MiB.
const SEND_BUFFER: usize = 16 * 1024;

/// How long a client may take to start TLS or send its first bytes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the control listener needs.
pub(crate) struct Control {
    /// The proxy's taps.
    pub(crate) taps: Arc<Taps>,
    /// Mesh TLS, when identity is enabled.
    pub(crate) tls: Option<Arc<MeshTls>>,
    /// The identity a client must prove to tap (`LINKERD2_PROXY_TAP_SVC_NAME`).
    pub(crate) tap_identity: String,
}

/// Whether a connection's requests may tap, decided once per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// The tap service, or a loopback client.
    Allowed,
    /// Anyone else, and why.
    Refused(&'static str),
}

/// Serves the control listener until the proxy drains.
pub(crate) async fn serve(control: Arc<Control>, listener: TcpListener, drain: Drain) {
    let limit = AcceptLimit {
        max_connections: MAX_CONTROL_CONNECTIONS,
        refused: Arc::new(AtomicU64::new(0)),
    };
    accept_loop(listener, drain, "control", limit, |stream, peer, drain| {
        handle(control.clone(), stream, peer, drain)
    })
    .await;
}

/// Who may tap: over mesh TLS, the client whose certificate names the tap
/// service; in plaintext, loopback clients only.
fn access(peer: SocketAddr, mesh_client: Option<Option<&str>>, tap_identity: &str) -> Access {
    match mesh_client {
        Some(Some(id)) if id == tap_identity => Access::Allowed,
        Some(_) => Access::Refused("Unauthorized client"),
        None if peer.ip().to_canonical().is_loopback() => Access::Allowed,
        None => Access::Refused("unauthorized connection: not mutually authenticated"),
    }
}

async fn handle(control: Arc<Control>, mut stream: TcpStream, peer: SocketAddr, drain: Drain) {
    let plaintext = access(peer, None, &control.tap_identity);
    let Some(mesh) = control.tls.clone() else {
        // The same stream type as the other two cases, so the HTTP/2
        // server is compiled once for this listener.
        let io = PrefixedIo::new(bytes::Bytes::new(), stream);
        return serve_grpc(&control, io, plaintext, drain).await;
    };
    let Ok((hello, prefix)) = read_client_hello(&mut stream, HANDSHAKE_TIMEOUT).await else {
        return;
    };
    let io = PrefixedIo::new(prefix, stream);
    match hello {
        Hello::Tls(Some(sni)) if sni == mesh.local_name => {
            let Some(t) = accept_mesh(&mesh, io, HANDSHAKE_TIMEOUT).await else {
                return;
            };
            let access = access(peer, Some(t.client_id.as_deref()), &control.tap_identity);
            serve_grpc(&control, t.stream, access, drain).await;
        }
        Hello::Tls(_) => tracing::info!("refusing TLS for another name on the control port"),
        Hello::NotTls => serve_grpc(&control, io, plaintext, drain).await,
    }
}

/// Serves gRPC (HTTP/2) on `io`, every request carrying the connection's access.
async fn serve_grpc<I>(control: &Control, io: I, access: Access, drain: Drain)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tap = TapServer::new(TapService {
        taps: control.taps.clone(),
    });
    let svc = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(access);
        let mut tap = tap.clone();
        async move { Ok::<_, Infallible>(tap.call(req).await.unwrap_or_else(|e| match e {})) }
    });
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(10)))
        .keep_alive_timeout(Duration::from_secs(3))
        .max_send_buf_size(SEND_BUFFER)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = drain.signaled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %wisp_common::error::chain(&e), "control connection ended with an error");
    }
}

/// The Tap service.
struct TapService {
    taps: Arc<Taps>,
}

#[tonic::async_trait]
impl Tap for TapService {
    type ObserveStream = ObserveStream;

    async fn observe(
        &self,
        req: tonic::Request<ObserveRequest>,
    ) -> Result<tonic::Response<ObserveStream>, tonic::Status> {
        match req.extensions().get::<Access>() {
            Some(Access::Allowed) => {}
            Some(Access::Refused(why)) => return Err(tonic::Status::unauthenticated(*why)),
            None => return Err(tonic::Status::unauthenticated("Unauthorized client")),
        }
        let (base, events) = self.taps.observe(req.into_inner())?;
        Ok(tonic::Response::new(ObserveStream {
            events,
            base,
            taps: self.taps.clone(),
        }))
    }
}

/// The events of one `Observe` call; closes the tap when the client goes.
pub(crate) struct ObserveStream {
    events: mpsc::Receiver<Queued>,
    base: u32,
    taps: Arc<Taps>,
}

impl Stream for ObserveStream {
    type Item = Result<TapEvent, tonic::Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Built here, as the connection takes it to encode.
        self.get_mut()
            .events
            .poll_recv(cx)
            .map(|e| e.map(|q| Ok(q.into_event())))
    }
}

impl Drop for ObserveStream {
    fn drop(&mut self) {
        self.taps.close(self.base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAP: &str = "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local";

    #[test]
    fn only_the_tap_identity_or_loopback_plaintext_may_tap() {
        let lo: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let remote: SocketAddr = "10.1.2.3:5000".parse().expect("addr");
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().expect("addr");
        assert_eq!(access(lo, None, TAP), Access::Allowed);
        assert_eq!(access(mapped, None, TAP), Access::Allowed);
        assert!(matches!(access(remote, None, TAP), Access::Refused(_)));
        assert_eq!(access(remote, Some(Some(TAP)), TAP), Access::Allowed);
        assert_eq!(
            access(
                remote,
                Some(Some(
                    "web.default.serviceaccount.identity.linkerd.cluster.local"
                )),
                TAP
            ),
            Access::Refused("Unauthorized client")
        );
        // mTLS without a client certificate is not the tap service, even on loopback.
        assert_eq!(
            access(lo, Some(None), TAP),
            Access::Refused("Unauthorized client")
        );
    }
}
