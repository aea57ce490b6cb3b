//! Mesh TLS: the rustls configurations, ClientHello sniffing on inbound
//! connections, and peer identities.
//!
//! As in Linkerd: TLS 1.3 only; the client sends SNI = the peer's identity
//! and accepts only a certificate chaining to the trust anchors whose DNS SAN
//! is exactly that identity; the server presents the current certificate and
//! requests (but does not require) a client certificate, which must chain to
//! the same anchors when given.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_rustls::server::TlsStream;

use crate::transport::cert_store::CertStore;

/// ALPN protocol of direct connections carrying a transport header.
pub(crate) const TRANSPORT_ALPN: &[u8] = b"transport.l5d.io/v1";

/// A TLS handshake record is at most this long (16 KiB plus header and slack).
const MAX_HELLO: usize = 16 * 1024 + 5 + 256;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS configurations of a proxy with an identity.
pub(crate) struct MeshTls {
    /// Our identity (TLS server name).
    pub(crate) local_name: String,
    /// Client config for meshed endpoints and the control plane (no ALPN).
    pub(crate) client: Arc<ClientConfig>,
    /// Client config offering the transport-header ALPN (direct connections).
    pub(crate) client_transport: Arc<ClientConfig>,
    /// Client config for gRPC to the control plane (ALPN h2).
    pub(crate) client_h2: Arc<ClientConfig>,
    /// Server config for inbound mTLS.
    pub(crate) server: Arc<ServerConfig>,
}

impl MeshTls {
    /// Builds the configurations for `local_name`, trusting `roots`.
    pub(crate) fn new(
        local_name: String,
        roots: RootCertStore,
        store: Arc<CertStore>,
    ) -> Result<Self, rustls::Error> {
        let roots = Arc::new(roots);
        let verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let client = |alpn: Vec<Vec<u8>>| -> Result<Arc<ClientConfig>, rustls::Error> {
            let mut c = ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .with_webpki_verifier(verifier.clone())
                .with_client_cert_resolver(store.clone());
            c.alpn_protocols = alpn;
            Ok(Arc::new(c))
        };
        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(client_verifier)
            .with_cert_resolver(store.clone());
        server.alpn_protocols = vec![
            TRANSPORT_ALPN.to_vec(),
            b"h2".to_vec(),
            b"http/1.1".to_vec(),
        ];
        Ok(MeshTls {
            local_name,
            client: client(Vec::new())?,
            client_transport: client(vec![TRANSPORT_ALPN.to_vec()])?,
            client_h2: client(vec![b"h2".to_vec()])?,
            server: Arc::new(server),
        })
    }
}

/// What the first bytes of an inbound connection are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Hello {
    /// Not a TLS handshake.
    NotTls,
    /// A TLS ClientHello, with its SNI if any.
    Tls(Option<String>),
}

/// Reads the start of a connection and tells whether it is a TLS
/// ClientHello (and for whom). The bytes read are returned for replay.
pub(crate) async fn read_client_hello<T: AsyncRead + Unpin>(
    io: &mut T,
    timeout: Duration,
) -> io::Result<(Hello, Bytes)> {
    let mut buf = BytesMut::with_capacity(1024);
    let read = async {
        if io.read_buf(&mut buf).await? == 0 {
            return Ok(false);
        }
        if buf[0] != 0x16 {
            return Ok(true);
        }
        // A TLS record: read its header, then the whole record.
        while buf.len() < 5 {
            if io.read_buf(&mut buf).await? == 0 {
                return Ok(true);
            }
        }
        let len = 5 + usize::from(u16::from_be_bytes([buf[3], buf[4]]));
        if len > MAX_HELLO {
            return Ok(true);
        }
        while buf.len() < len {
            if io.read_buf(&mut buf).await? == 0 {
                break;
            }
        }
        Ok::<_, io::Error>(true)
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok((Hello::NotTls, buf.freeze())),
    }
    let bytes = buf.freeze();
    if bytes.first() != Some(&0x16) {
        return Ok((Hello::NotTls, bytes));
    }
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rd: &[u8] = &bytes;
    if acceptor.read_tls(&mut rd).is_err() {
        return Ok((Hello::NotTls, bytes));
    }
    let hello = match acceptor.accept() {
        Ok(Some(accepted)) => Hello::Tls(accepted.client_hello().server_name().map(str::to_string)),
        Ok(None) => Hello::Tls(None),
        Err(_) => Hello::NotTls,
    };
    Ok((hello, bytes))
}

/// The DNS identity in a peer's leaf certificate.
pub(crate) fn peer_identity(certs: Option<&[CertificateDer<'_>]>) -> Option<String> {
    let leaf = certs?.first()?;
    let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
    let name = cert.valid_dns_names().next().map(str::to_string);
    name
}

/// A terminated mesh TLS connection.
pub(crate) struct Terminated<I> {
    /// The decrypted stream.
    pub(crate) stream: TlsStream<I>,
    /// The client's identity, if it presented a certificate.
    pub(crate) client_id: Option<String>,
    /// Whether the client negotiated the transport-header protocol.
    pub(crate) transport: bool,
}

/// Completes the mesh server handshake within `timeout`; `None` (logged)
/// if it fails.
pub(crate) async fn accept_mesh<I>(
    mesh: &MeshTls,
    io: I,
    timeout: Duration,
) -> Option<Terminated<I>>
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
