//! The dual-mode acceptor: one port serving both TLS and plaintext gRPC.
//!
//! Proxies dial a loopback control plane in plaintext and any other address
//! with TLS, so each accepted connection is sniffed: a first byte of `0x16`
//! (a TLS handshake record) is terminated with rustls, anything else is
//! served as plaintext h2c.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;
use x509_parser::prelude::{FromDer, X509Certificate};

/// How long a client may take to send its first byte and finish a handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted connections waiting for tonic.
const QUEUE: usize = 64;
/// Connections being sniffed or handshaking at once.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// The stream of accepted connections, ready for
/// `tonic::transport::Server::serve_with_incoming_shutdown`.
pub type Incoming = ReceiverStream<Result<MeshStream, io::Error>>;

/// Accepts connections from `listener`, terminating TLS with `tls` when the
/// client starts a TLS handshake and passing plaintext through otherwise.
/// Must be called within a Tokio runtime; accepting stops when the returned
/// stream is dropped.
pub fn dual_mode_incoming(listener: TcpListener, tls: Arc<ServerConfig>) -> Incoming {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<Result<MeshStream, io::Error>>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote_addr) = match accepted {
            Ok(conn) => conn,
            Err(error) => {
                // Out of file descriptors and the like: back off, keep serving.
                debug!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = pending.clone().acquire_owned().await else {
            return;
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let stream =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, sniff(tcp, remote_addr, acceptor)).await;
            drop(permit);
            match stream {
                Ok(Ok(stream)) => {
                    let _ = tx.send(Ok(stream)).await;
                }
                Ok(Err(error)) => debug!(%remote_addr, %error, "connection dropped before serving"),
                Err(_) => debug!(%remote_addr, "handshake timed out"),
            }
        });
    }
}

async fn sniff(
    tcp: TcpStream,
    remote_addr: SocketAddr,
    acceptor: TlsAcceptor,
) -> io::Result<MeshStream> {
    let local_addr = tcp.local_addr()?;
    let _ = tcp.set_nodelay(true);
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed before sending anything",
        ));
    }
    let mut info = MeshConnectInfo {
        remote_addr,
        local_addr,
        tls: false,
        sni: None,
        peer_identity: None,
    };
    if first[0] != TLS_HANDSHAKE {
        return Ok(MeshStream {
            inner: Inner::Plain(tcp),
            info,
        });
    }
    let tls = acceptor.accept(tcp).await?;
    let session = tls.get_ref().1;
    info.tls = true;
    info.sni = session.server_name().map(str::to_string);
    info.peer_identity = session
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|leaf| first_dns_san(leaf));
    Ok(MeshStream {
        inner: Inner::Tls(Box::new(tls)),
        info,
    })
}

/// The first DNS SAN of a certificate: a mesh peer's identity.
fn first_dns_san(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
        _ => None,
    })
}

/// What is known about an accepted connection; available to gRPC handlers
/// as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConnectInfo {
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// The local address it connected to.
    pub local_addr: SocketAddr,
    /// True if TLS was terminated.
    pub tls: bool,
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// The client certificate's first DNS SAN (verified against the trust anchors).
    pub peer_identity: Option<String>,
}

/// An accepted connection: plaintext or server-side TLS.
#[derive(Debug)]
pub struct MeshStream {
    inner: Inner,
    info: MeshConnectInfo,
}

#[derive(Debug)]
enum Inner {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl MeshStream {
    /// What is known about the connection.
    pub fn info(&self) -> &MeshConnectInfo {
        &self.info
    }
}

impl tonic::transport::server::Connected for MeshStream {
    type ConnectInfo = MeshConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for MeshStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MeshStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Plain(s) => s.is_write_vectored(),
            Inner::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
