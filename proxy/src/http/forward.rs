//! Serving HTTP on an accepted connection, and forwarding one request to an
//! endpoint (used by both directions).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderMap, HeaderName, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::body::{ProxyBody, Recorder};
use crate::config::Config;
use crate::detect::Protocol;
use crate::drain::Drain;
use crate::endpoint::Endpoint;
use crate::errors::{is_grpc, ProxyError};
use crate::metrics::{Class, HttpMetrics, ResponseKey};
use crate::reqbody::RequestBody;
use crate::routes::Route;

/// The route of a request sent as one attempt of a profile route: the
/// per-attempt series and the route's response classes.
pub struct RouteAttempt {
    /// `route_actual_*` series.
    pub actual: Arc<HttpMetrics>,
    /// The route (its response classes classify the response).
    pub route: Arc<Route>,
}

/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves HTTP/1 or HTTP/2 on `io`, answering each request with `handle`,
/// until the client closes or the proxy drains.
pub async fn serve<I, F, Fut>(io: I, proto: Protocol, config: &Config, drain: Drain, handle: F)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let svc = service_fn(move |req| {
        let fut = handle(req);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let io = TokioIo::new(io);
    let result = match proto {
        Protocol::Http2 => {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_header_list_size(config.max_header_bytes as u32)
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
                .max_buf_size(config.max_header_bytes.max(8192))
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
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// Hop-by-hop headers never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "trailer",
    "upgrade",
];

/// Removes hop-by-hop headers; an upgrade keeps `connection` and `upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    if !upgrade {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        if upgrade && (name == "connection" || name == "upgrade") {
            continue;
        }
        headers.remove(name);
    }
    // `te: trailers` is how gRPC clients ask for trailers; keep only that.
    if headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes() != b"trailers")
    {
        headers.remove(header::TE);
    }
}

/// Whether the request asks to switch protocols (WebSocket) or tunnel (CONNECT).
fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() <= Version::HTTP_11
        && (req.method() == Method::CONNECT
            || (req.headers().contains_key(header::UPGRADE)
                && req
                    .headers()
                    .get_all(header::CONNECTION)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| {
                        v.split(',')
                            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
                    })))
}

/// The request's authority: the URI's, else the Host header.
pub fn request_authority<B>(req: &Request<B>) -> Option<String> {
    if let Some(a) = req.uri().authority() {
        return Some(a.as_str().to_string());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Rewrites the URI into absolute form for the pooled client.
fn absolute_uri(uri: &Uri, authority: &str) -> Option<Uri> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
        .ok()
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// The header marking an HTTP/1 request carried over HTTP/2 between proxies.
pub const ORIG_PROTO: &str = "l5d-orig-proto";

/// The `l5d-orig-proto` value for an HTTP/1 version.
pub fn orig_proto_value(version: Version) -> &'static str {
    if version == Version::HTTP_10 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    }
}

/// Forwards `req` to `ep` and returns its response, streaming both bodies.
/// Request and response are counted in `metrics`.
///
/// An HTTP/1 request to a meshed endpoint that accepts HTTP/2 (`h2` hint)
/// travels as HTTP/2 with `l5d-orig-proto`, so all requests to that
/// endpoint share one multiplexed connection; the peer proxy turns it back
/// into HTTP/1.
pub async fn forward(
    ep: &Arc<Endpoint>,
    mut req: Request<RequestBody>,
    metrics: &Arc<HttpMetrics>,
    attempt: Option<&RouteAttempt>,
) -> Response<ProxyBody> {
    let grpc = is_grpc(&req);
    let version = req.version();
    let connect = req.method() == Method::CONNECT;
    let upgrade = is_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    strip_hop_by_hop(req.headers_mut(), upgrade.is_some());
    let orig_proto = version < Version::HTTP_2 && upgrade.is_none() && ep.meta.h2_hint;
    if orig_proto {
        req.headers_mut().insert(
            ORIG_PROTO,
            http::HeaderValue::from_static(orig_proto_value(version)),
        );
        *req.version_mut() = Version::HTTP_2;
    }
    let http2 = req.version() == Version::HTTP_2;
    if !connect {
        let authority = request_authority(&req).unwrap_or_else(|| ep.addr.to_string());
        let uri = absolute_uri(req.uri(), &authority)
            .or_else(|| absolute_uri(req.uri(), &ep.addr.to_string()));
        if let Some(uri) = uri {
            *req.uri_mut() = uri;
        }
    }
    metrics.request();
    if let Some(a) = attempt {
        a.actual.request();
    }
    let inflight = ep.start_request();
    match ep.client(http2).request(req).await {
        Ok(mut rsp) => {
            let latency = inflight.complete();
            let switched = rsp.status() == StatusCode::SWITCHING_PROTOCOLS
                || (connect && rsp.status().is_success());
            match upgrade {
                Some(client_side) if switched => {
                    let server_side = hyper::upgrade::on(&mut rsp);
                    tokio::spawn(splice_upgrades(client_side, server_side));
                }
                _ => strip_hop_by_hop(rsp.headers_mut(), false),
            }
            if orig_proto {
                rsp.headers_mut().remove(ORIG_PROTO);
                *rsp.version_mut() = version;
            }
            let mut recorder =
                Recorder::new(metrics.clone(), rsp.status(), latency, grpc, rsp.headers());
            if let Some(a) = attempt {
                recorder.add_sink(a.actual.clone(), latency);
                recorder.classify_with(a.route.clone());
            }
            rsp.map(|inner| ProxyBody::Upstream {
                inner,
                recorder: Some(recorder),
            })
        }
        Err(e) => {
            drop(inflight);
            let err = if e.is_connect() {
                ProxyError::Connect(ep.addr, error_chain(&e))
            } else {
                ProxyError::Upstream(ep.addr, error_chain(&e))
            };
            tracing::info!(error = %err, "request failed");
            let failed = ResponseKey {
                status: 502,
                grpc_status: grpc.then_some(14),
                class: Class::Failure,
                error: if e.is_connect() {
                    "connect"
                } else {
                    "unexpected"
                },
            };
            if let Some(a) = attempt {
                a.actual.response(failed, Duration::ZERO);
            }
            metrics.response(
                ResponseKey {
                    status: 502,
                    grpc_status: grpc.then_some(14),
                    class: Class::Failure,
                    error: if e.is_connect() {
                        "connect"
                    } else {
                        "unexpected"
                    },
                },
                Duration::ZERO,
            );
            err.respond(grpc, version)
        }
    }
}

/// Copies bytes both ways between the two halves of an upgraded connection.
async fn splice_upgrades(client: hyper::upgrade::OnUpgrade, server: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(client, server) {
        Ok((c, s)) => {
            let mut c = TokioIo::new(c);
            let mut s = TokioIo::new(s);
            if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut s).await {
                tracing::debug!(error = %e, "upgraded connection ended");
            }
        }
        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_but_keeps_grpc_te() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().expect("v"));
        h.insert("x-secret", "1".parse().expect("v"));
        h.insert("keep-alive", "timeout=5".parse().expect("v"));
        h.insert("te", "trailers".parse().expect("v"));
        h.insert("x-app", "1".parse().expect("v"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("x-secret").is_none() && h.get("connection").is_none());
        assert!(h.get("keep-alive").is_none());
        assert_eq!(h.get("te").map(|v| v.as_bytes()), Some(&b"trailers"[..]));
        assert!(h.get("x-app").is_some());
    }

    #[test]
    fn detects_upgrades() {
        let req = Request::builder()
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(())
            .expect("req");
        assert!(is_upgrade(&req));
        let req = Request::builder()
            .header("upgrade", "websocket")
            .body(())
            .expect("req");
        assert!(!is_upgrade(&req));
    }
}
