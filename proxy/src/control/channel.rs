//! gRPC channels to the control plane (destination, identity).
//!
//! As upstream proxies do, a loopback address is dialled in plaintext and
//! any other address with mesh TLS, verifying the server as the `_NAME`
//! identity (which is also the SNI) against the trust anchors.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint};

use crate::config::is_loopback_addr;

/// Why a control-plane channel cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The address is not a usable URI authority.
    #[error("invalid address {addr:?}")]
    Address {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The server name is not a DNS name.
    #[error("invalid server name {name:?}")]
    ServerName {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: rustls_pki_types::InvalidDnsNameError,
    },
}

/// A lazily connecting channel to `addr` (`host:port`): plaintext on
/// loopback or without TLS settings, else TLS to the server named `name`.
pub(crate) fn channel(
    addr: &str,
    name: Option<&str>,
    tls: Option<Arc<ClientConfig>>,
) -> Result<Channel, ChannelError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|source| ChannelError::Address {
            addr: addr.to_string(),
            source,
        })?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(3));
    match (tls, name) {
        (Some(config), Some(name)) if !is_loopback_addr(addr) => {
            let server_name = ServerName::try_from(name.to_string()).map_err(|source| {
                ChannelError::ServerName {
                    name: name.to_string(),
                    source,
                }
            })?;
            Ok(endpoint.connect_with_connector_lazy(TlsConnector {
                addr: addr.to_string(),
                server_name,
                config,
            }))
        }
        _ => Ok(endpoint.connect_lazy()),
    }
}

/// Dials the control plane with TLS.
#[derive(Clone)]
struct TlsConnector {
    addr: String,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(&this.addr).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(this.config)
                .connect(this.server_name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}
