//! The controller's admin server (HTTP/1.1 and h2c): `GET /live` (200
//! while the process serves), `GET /ready` (200 once every enabled role has
//! its initial state, else 503 naming the roles still waiting) and
//! `GET /metrics` (Prometheus text).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tracing::debug;

use super::State;

/// Serves until `stop` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    debug!(%error, "admin accept failed");
                    // Out of file descriptors and the like: let it pass.
                    tokio::task::yield_now().await;
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, &req)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(state: &State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match req.uri().path() {
        "/live" => text(StatusCode::OK, "live\n".into()),
        "/ready" => {
            let waiting = state.not_ready();
            if waiting.is_empty() {
                text(StatusCode::OK, "ready\n".into())
            } else {
                let names: Vec<&str> = waiting.iter().map(|r| r.name()).collect();
                let mut body = format!("not ready: {}\n", names.join(", "));
                if let Some(error) = state.issuer_error() {
                    body.push_str(&format!("identity issuer: {error}\n"));
                }
                text(StatusCode::SERVICE_UNAVAILABLE, body)
            }
        }
        "/metrics" => {
            let mut response = text(StatusCode::OK, state.render());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
