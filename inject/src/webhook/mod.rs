//! The mutating admission webhook: HTTPS (rustls, certificate re-read when
//! its files change), HTTP/1.1 and HTTP/2, AdmissionReview v1 and v1beta1
//! on any path (the MutatingWebhookConfiguration uses `/`).
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections at once (accepting
//! waits for a free slot), request bodies up to 10 MiB (413 beyond), TLS
//! handshakes that take over 10 s and HTTP/1 headers that take over 30 s
//! are dropped.

mod admission;
mod cluster;
mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

pub use admission::{review, BadReview};
pub use cluster::{Cluster, ClusterError, ClusterFuture};
pub use tls::{load as load_certificate, ReloadingCert, TlsError};

use crate::injector::Injector;

/// Largest AdmissionReview body accepted.
pub const MAX_BODY: usize = 10 * 1024 * 1024;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 512;
/// Deadline for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for a request's headers (HTTP/1).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// How the webhook answered one HTTP request, for the caller's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answered {
    /// Allowed with a patch: the pod (or Service) was injected.
    Injected,
    /// Allowed without a patch: not to be injected, or already injected.
    Skipped,
    /// Refused: `allowed: false` (the injector could not do its job).
    Denied,
    /// Not an AdmissionReview we can answer (HTTP 4xx).
    BadRequest,
}

/// Told of every answer (`serve`'s caller counts them).
pub type Observer = Arc<dyn Fn(Answered) + Send + Sync>;

fn outcome(answer: &serde_json::Value) -> Answered {
    let response = &answer["response"];
    if response["allowed"] != serde_json::Value::Bool(true) {
        Answered::Denied
    } else if response.get("patch").is_some_and(|p| !p.is_null()) {
        Answered::Injected
    } else {
        Answered::Skipped
    }
}

/// The rustls server configuration (ring, TLS 1.2/1.3, ALPN h2 and
/// http/1.1) serving the certificate in `tls_dir`.
pub fn server_config(tls_dir: PathBuf) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ReloadingCert::new(tls_dir)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn reply(status: StatusCode, body: impl Into<Bytes>, json: bool) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if json {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    response
}

async fn handle(
    request: Request<Incoming>,
    injector: Arc<Injector>,
    cluster: Arc<dyn Cluster>,
    observe: Observer,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (result, response) = answer(request, &injector, &cluster).await;
    observe(result);
    Ok(response)
}

async fn answer(
    request: Request<Incoming>,
    injector: &Injector,
    cluster: &Arc<dyn Cluster>,
) -> (Answered, Response<Full<Bytes>>) {
    let bad = Answered::BadRequest;
    if request.method() != Method::POST {
        return (
            bad,
            reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST an AdmissionReview\n",
                false,
            ),
        );
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return (
                    bad,
                    reply(StatusCode::PAYLOAD_TOO_LARGE, "body over 10 MiB\n", false),
                );
            }
            return (
                bad,
                reply(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read body: {error}\n"),
                    false,
                ),
            );
        }
    };
    match admission::review(&body, injector, cluster).await {
        Ok(Some(answer)) => {
            let bytes = serde_json::to_vec(&answer).unwrap_or_default();
            (outcome(&answer), reply(StatusCode::OK, bytes, true))
        }
        Ok(None) => (bad, reply(StatusCode::OK, Bytes::new(), false)),
        Err(error) => {
            tracing::warn!(error = %wisp_common::error::chain(&error), "bad AdmissionReview");
            (
                bad,
                reply(
                    StatusCode::BAD_REQUEST,
                    format!("{}\n", wisp_common::error::chain(&error)),
                    false,
                ),
            )
        }
    }
}

/// Serves the webhook on `listener` until `shutdown` completes, then stops
/// accepting and lets open connections finish their requests; `observe`
/// hears how each request was answered.
pub async fn serve(
    listener: TcpListener,
    tls_dir: PathBuf,
    injector: Arc<Injector>,
    cluster: Arc<dyn Cluster>,
    observe: Observer,
    shutdown: impl Future,
) {
    let config = match server_config(tls_dir) {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(error = %wisp_common::error::chain(&error), "cannot configure TLS; webhook not served");
            return;
        }
    };
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    // Out of descriptors and the like: back off briefly.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Reap finished connections so the set stays bounded.
        while tasks.try_join_next().is_some() {}
        let acceptor = acceptor.clone();
        let injector = injector.clone();
        let cluster = cluster.clone();
        let observe = observe.clone();
        let mut stop = stop_rx.clone();
        let span = tracing::info_span!("webhook_conn", %peer);
        tasks.spawn(
            async move {
                let _permit = permit;
                let tls =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                let service = hyper::service::service_fn(move |req| {
                    handle(req, injector.clone(), cluster.clone(), observe.clone())
                });
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                // A client that never finishes its headers gives its slot back.
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                let conn = builder.serve_connection(TokioIo::new(tls), service);
                tokio::pin!(conn);
                let stopping = tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                        false
                    }
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => true,
                };
                if stopping {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            .instrument(span),
        );
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}
