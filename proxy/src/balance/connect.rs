//! Opening a connection to an endpoint: TCP with a timeout, mesh TLS when
//! discovery gave the endpoint an identity, and the transport header first
//! when the peer proxy asked for it (`opaque_transport`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::telemetry::metrics::TcpMetrics;
use crate::transport::io::CountingIo;
use crate::transport::tls::TRANSPORT_ALPN;

/// A connection to an endpoint, counted on the wire: plaintext or mesh TLS.
pub(crate) type ClientIo = Either<CountingIo<TcpStream>, Box<TlsStream<CountingIo<TcpStream>>>>;

/// An address to dial, how to secure it, and the transport header to write
/// first, if any.
#[derive(Clone)]
pub(crate) struct ConnectTarget {
    /// Address to dial.
    pub(crate) addr: SocketAddr,
    /// Transport header frame to send before anything else.
    pub(crate) header: Option<Bytes>,
    /// mTLS client config and the identity the server must prove.
    pub(crate) tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl ConnectTarget {
    /// Connects (TCP and TLS each within `timeout`) and writes the
    /// transport header, if any.
    pub(crate) async fn connect(
        &self,
        timeout: Duration,
        metrics: Arc<TcpMetrics>,
    ) -> io::Result<ClientIo> {
        let timed_out = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {} timed out after {timeout:?}", self.addr),
            )
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| timed_out())??;
        stream.set_nodelay(true)?;
        let io = CountingIo::new(stream, metrics);
        let mut io = match &self.tls {
            None => Either::Left(io),
            Some((config, name)) => {
                let connect =
                    tokio_rustls::TlsConnector::from(config.clone()).connect(name.clone(), io);
                let tls = tokio::time::timeout(timeout, connect)
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("TLS handshake with {} failed: {e}", name.to_str()),
                        )
                    })?;
                Either::Right(Box::new(tls))
            }
        };
        if let Some(h) = &self.header {
            // Over TLS the peer must have agreed to the transport protocol.
            let agreed = match &io {
                Either::Left(_) => true,
                Either::Right(t) => t.get_ref().1.alpn_protocol() == Some(TRANSPORT_ALPN),
            };
            if agreed {
                io.write_all(h).await?;
            }
        }
        Ok(io)
    }
}

/// An opaque connection to an endpoint; it counts against the endpoint's
/// connection limit until dropped.
pub(crate) struct OpaqueConn {
    io: ClientIo,
    _permit: OwnedSemaphorePermit,
}

impl OpaqueConn {
    /// Wraps `io`, holding `permit` for its lifetime.
    pub(crate) fn new(io: ClientIo, permit: OwnedSemaphorePermit) -> Self {
        OpaqueConn {
            io,
            _permit: permit,
        }
    }
}

impl AsyncRead for OpaqueConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for OpaqueConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, b)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
