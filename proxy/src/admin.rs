//! The admin server (4191): `/metrics`, `/ready`, `/live`, `/shutdown`.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::drain::Drain;
use crate::http::body::ResponseBody;
use crate::http::request_body::RequestBody;
use crate::http::serve::{self, ServeLimits};
use crate::telemetry::metrics::Registry;
use crate::transport::cert_store::CertStore;
use crate::transport::detect::Protocol;
use crate::transport::listen::{accept_loop, AcceptLimit};

/// Admin connections served at once (scrapers and probes use a few).
const MAX_ADMIN_CONNECTIONS: usize = 1_000;

/// What the admin server reads and may do.
pub(crate) struct Admin {
    /// The series `/metrics` renders.
    pub(crate) metrics: Arc<Registry>,
    /// The certificate store `/ready` waits for; `None` with identity disabled.
    pub(crate) certificate: Option<Arc<CertStore>>,
    /// Whether `POST /shutdown` is allowed.
    pub(crate) shutdown_enabled: bool,
    /// Limits on admin clients.
    pub(crate) limits: ServeLimits,
    /// Where a permitted `/shutdown` is signalled.
    pub(crate) shutdown: mpsc::Sender<()>,
}

impl Admin {
    /// Ready once the identity certificate is in place (at once when
    /// identity is disabled).
    fn is_ready(&self) -> bool {
        self.certificate.as_ref().is_none_or(|c| c.is_ready())
    }
}

/// Serves admin requests until the proxy drains.
pub(crate) async fn serve(admin: Arc<Admin>, listener: TcpListener, drain: Drain) {
    let limit = AcceptLimit {
        max_connections: MAX_ADMIN_CONNECTIONS,
        refused: Arc::new(AtomicU64::new(0)),
    };
    accept_loop(listener, drain, "admin", limit, |stream, peer, drain| {
        let admin = admin.clone();
        async move {
            let limits = admin.limits;
            serve::serve(stream, Protocol::Http1, limits, drain, move |req| {
                let admin = admin.clone();
                async move { respond(&admin, peer, req) }
            })
            .await;
        }
    })
    .await;
}

fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut r = Response::new(ResponseBody::text(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

fn respond(admin: &Admin, peer: SocketAddr, req: Request<RequestBody>) -> Response<ResponseBody> {
    match req.uri().path() {
        "/metrics" => {
            let mut r = Response::new(ResponseBody::text(admin.metrics.render()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        "/ready" if admin.is_ready() => text(StatusCode::OK, "ready\n"),
        "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/live" => text(StatusCode::OK, "live\n"),
        "/shutdown" => {
            if req.method() != Method::POST {
                text(StatusCode::METHOD_NOT_ALLOWED, "shutdown requires POST\n")
            } else if !admin.shutdown_enabled {
                text(StatusCode::NOT_FOUND, "shutdown endpoint is not enabled\n")
            } else if !peer.ip().is_loopback() {
                text(
                    StatusCode::FORBIDDEN,
                    "shutdown is only allowed from localhost\n",
                )
            } else {
                let _ = admin.shutdown.try_send(());
                text(StatusCode::OK, "shutdown\n")
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
