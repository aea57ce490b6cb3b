//! Serving HTTP/1 or HTTP/2 on an accepted (and, inbound, possibly
//! decrypted) stream, handing each request to the direction's handler.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

use crate::drain::Drain;
use crate::http::body::ResponseBody;
use crate::http::request_body::RequestBody;
use crate::transport::detect::Protocol;

/// The bounds a served connection enforces on its clients.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ServeLimits {
    /// Largest request head (HTTP/1 header block, HTTP/2 header list).
    pub(crate) max_header_bytes: usize,
    /// How long an HTTP/1 request body may send nothing.
    pub(crate) request_body_timeout: Duration,
}

impl ServeLimits {
    /// The configured limits.
    pub(crate) fn from_config(config: &crate::config::Config) -> Self {
        ServeLimits {
            max_header_bytes: config.max_header_bytes,
            request_body_timeout: config.request_body_timeout,
        }
    }
}

/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves HTTP/1 or HTTP/2 on `io`, answering each request with `handle`,
/// until the client closes or the proxy drains.
pub(crate) async fn serve<I, F, Fut>(
    io: I,
    proto: Protocol,
    limits: ServeLimits,
    drain: Drain,
    handle: F,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<RequestBody>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    // A stalled HTTP/1 body pins the application connection it is sent on;
    // an HTTP/2 one only pins a stream, bounded by flow control.
    let stall = (proto == Protocol::Http1).then_some(limits.request_body_timeout);
    let svc = service_fn(move |req: Request<Incoming>| {
        // A span per request at debug level: free unless that level is on.
        let span = tracing::debug_span!("req", method = %req.method(), uri = %req.uri());
        let fut = handle(req.map(|b| RequestBody::from_client(b, stall)));
        async move { Ok::<_, Infallible>(fut.await) }.instrument(span)
    });
    let io = TokioIo::new(io);
    let result = match proto {
        Protocol::Http2 => {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_header_list_size(limits.max_header_bytes as u32)
                .keep_alive_interval(Some(Duration::from_secs(10)))
                .keep_alive_timeout(Duration::from_secs(3))
                .serve_connection(io, svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => r,
                _ = drain.signaled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        }
        _ => {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(limits.max_header_bytes.max(8192))
                .serve_connection(io, svc)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => r,
                _ = drain.signaled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %wisp_common::error::chain(&e), "HTTP connection ended with an error");
    }
}
