//! Terminating mesh TLS on an inbound connection: the handshake, and what
//! it tells about the client (its identity, whether it asked for the
//! transport protocol of direct connections).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use crate::transport::tls::{peer_identity, MeshTls, TRANSPORT_ALPN};

/// A terminated mesh TLS connection.
pub(super) struct Terminated<I> {
    /// The decrypted stream.
    pub(super) stream: TlsStream<I>,
    /// The client's identity, if it presented a certificate.
    pub(super) client_id: Option<String>,
    /// Whether the client negotiated the transport-header protocol.
    pub(super) transport: bool,
}

/// Completes the server handshake within `timeout`; `None` (logged) if it fails.
pub(super) async fn terminate<I>(mesh: &MeshTls, io: I, timeout: Duration) -> Option<Terminated<I>>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let accept = tokio_rustls::TlsAcceptor::from(mesh.server.clone()).accept(io);
    let stream = match tokio::time::timeout(timeout, accept).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::info!("TLS handshake timed out");
            return None;
        }
    };
    let (_, conn) = stream.get_ref();
    let client_id = peer_identity(conn.peer_certificates());
    let transport = conn.alpn_protocol() == Some(TRANSPORT_ALPN);
    Some(Terminated {
        stream,
        client_id,
        transport,
    })
}
