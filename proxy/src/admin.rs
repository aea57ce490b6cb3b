//! The admin server (4191): `/metrics`, `/ready`, `/live`, `/shutdown`.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::body::ProxyBody;
use crate::detect::Protocol;
use crate::drain::Drain;
use crate::Shared;

/// Serves admin requests until the proxy drains. A permitted `POST
/// /shutdown` sends on `shutdown`.
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: mpsc::Sender<()>,
    drain: Drain,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = drain.signaled() => return,
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            let cfg = shared.config.clone();
            crate::http_proxy::serve(stream, Protocol::Http1, &cfg, drain, move |req| {
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                async move { respond(&shared, peer, &shutdown, req) }
            })
            .await;
        });
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::text(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

fn respond(
    shared: &Shared,
    peer: SocketAddr,
    shutdown: &mpsc::Sender<()>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    match req.uri().path() {
        "/metrics" => {
            let mut r = Response::new(ProxyBody::text(shared.metrics.render()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        // Ready once the identity certificate is in place (at once when
        // identity is disabled).
        "/ready" if shared.is_ready() => text(StatusCode::OK, "ready\n"),
        "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/live" => text(StatusCode::OK, "live\n"),
        "/shutdown" => {
            if req.method() != Method::POST {
                text(StatusCode::METHOD_NOT_ALLOWED, "shutdown requires POST\n")
            } else if !shared.config.shutdown_endpoint_enabled {
                text(StatusCode::NOT_FOUND, "shutdown endpoint is not enabled\n")
            } else if !peer.ip().is_loopback() {
                text(
                    StatusCode::FORBIDDEN,
                    "shutdown is only allowed from localhost\n",
                )
            } else {
                let _ = shutdown.try_send(());
                text(StatusCode::OK, "shutdown\n")
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
