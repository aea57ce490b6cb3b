//! Errors the proxy answers itself, as HTTP or gRPC responses carrying an
//! `l5d-proxy-error` header (`shared/reference/proxy-runtime.md` §9).

use http::{header, HeaderValue, Response, StatusCode, Version};

use crate::body::ProxyBody;

/// Why the proxy could not forward a request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request names no target.
    #[error("request has no authority")]
    NoAuthority,
    /// The target's authority is malformed.
    #[error("invalid authority {0:?}")]
    BadAuthority(String),
    /// The service exists but has no endpoints.
    #[error("service {0} has no endpoints")]
    NoEndpoints(String),
    /// Discovery gave no answer in time and there is nothing to fall back to.
    #[error("no endpoints known for {0}: destination service unavailable")]
    Unresolved(String),
    /// The name is not known to discovery or DNS.
    #[error("{0} could not be resolved: {1}")]
    Unresolvable(String, String),
    /// Connecting to the endpoint failed.
    #[error("connect to {0} failed: {1}")]
    Connect(std::net::SocketAddr, String),
    /// The endpoint failed while handling the request.
    #[error("request to {0} failed: {1}")]
    Upstream(std::net::SocketAddr, String),
    /// The route's timeout expired before the response.
    #[error("route timeout after {0:?}")]
    RouteTimeout(std::time::Duration),
    /// The request would be sent back to this proxy.
    #[error("forwarding loop detected: {0} is this proxy")]
    Loop(std::net::SocketAddr),
}

impl ProxyError {
    /// The HTTP status and gRPC code this error is answered with.
    fn codes(&self) -> (StatusCode, u32) {
        match self {
            ProxyError::NoAuthority | ProxyError::BadAuthority(_) => (StatusCode::BAD_REQUEST, 3),
            ProxyError::NoEndpoints(_) => (StatusCode::SERVICE_UNAVAILABLE, 14),
            ProxyError::Unresolved(_) | ProxyError::RouteTimeout(_) => {
                (StatusCode::GATEWAY_TIMEOUT, 4)
            }
            ProxyError::Unresolvable(..) | ProxyError::Connect(..) | ProxyError::Upstream(..) => {
                (StatusCode::BAD_GATEWAY, 14)
            }
            ProxyError::Loop(_) => (StatusCode::LOOP_DETECTED, 10),
        }
    }

    /// The response for this error: a gRPC trailers-only response for gRPC
    /// requests, otherwise the HTTP status with the reason in the body.
    pub fn respond(&self, grpc: bool, version: Version) -> Response<ProxyBody> {
        let (status, code) = self.codes();
        let msg = self.to_string();
        let value = HeaderValue::from_str(&msg).unwrap_or(HeaderValue::from_static("proxy error"));
        let mut rsp = if grpc {
            let mut r = Response::new(ProxyBody::empty());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            r.headers_mut()
                .insert("grpc-status", HeaderValue::from(code));
            r.headers_mut().insert("grpc-message", value.clone());
            r
        } else {
            let mut r = Response::new(ProxyBody::text(format!("{msg}\n")));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        };
        rsp.headers_mut().insert("l5d-proxy-error", value);
        if version < Version::HTTP_2 && status.is_server_error() {
            rsp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        rsp
    }
}

/// Whether a request is gRPC (content-type `application/grpc...`).
pub fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}
