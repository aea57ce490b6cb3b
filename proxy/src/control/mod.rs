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

/// Reconnect backoff bounds for control-plane streams (Linkerd's outbound defaults).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Why [`follow`] stopped.
pub enum Stopped {
    /// The server refused the request (InvalidArgument / FailedPrecondition):
    /// it will never succeed, so it is not retried.
    Rejected(tonic::Status),
    /// `on_message` asked to stop (nobody needs the answers any more).
    Unneeded,
}

/// Follows a server-streaming call forever: `open` starts it, `on_message`
/// gets every message with whether it is the first of a new stream (and
/// returns `false` to stop). When the stream ends or fails it is reopened
/// with jittered exponential backoff; whatever the caller built from earlier
/// messages stays in use meanwhile.
pub async fn follow<T, F, Fut>(
    what: &str,
    mut open: F,
    mut on_message: impl FnMut(T, bool) -> bool,
) -> Stopped
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>>,
{
    let mut backoff = BACKOFF_MIN;
    loop {
        match open().await {
            Ok(rsp) => {
                let mut stream = rsp.into_inner();
                let mut first = true;
                loop {
                    match stream.message().await {
                        Ok(Some(msg)) => {
                            if !on_message(msg, first) {
                                return Stopped::Unneeded;
                            }
                            first = false;
                            backoff = BACKOFF_MIN;
                        }
                        Ok(None) => {
                            tracing::debug!(%what, "control-plane stream ended");
                            break;
                        }
                        Err(status) => {
                            tracing::info!(%what, %status, "control-plane stream failed; keeping the last answer");
                            break;
                        }
                    }
                }
            }
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
                ) =>
            {
                return Stopped::Rejected(status);
            }
            Err(status) => tracing::info!(%what, %status, "control plane unavailable; retrying"),
        }
        let jitter = backoff.mul_f64(fastrand::f64() * 0.1);
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// A lazily connecting channel to `addr` (`host:port`): plaintext on
/// loopback or without TLS settings, else TLS to the server named `name`.
pub fn channel(
    addr: &str,
    name: Option<&str>,
    tls: Option<Arc<ClientConfig>>,
) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("invalid address {addr:?}: {e}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(3));
    match (tls, name) {
        (Some(config), Some(name)) if !is_loopback_addr(addr) => {
            let server_name = ServerName::try_from(name.to_string())
                .map_err(|e| format!("invalid server name {name:?}: {e}"))?;
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
