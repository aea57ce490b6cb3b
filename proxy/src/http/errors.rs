//! Errors the proxy answers itself, as HTTP or gRPC responses carrying an
//! `l5d-proxy-error` header (statuses and gRPC codes as linkerd2-proxy
//! uses them; the table is in `docs/proxy-runtime.md`).
//!
//! Each error says whose fault it was: the client's (400, 408), the
//! target's or the mesh's (502, 503, 504), or a loop (508). The causes are
//! kept as `#[source]` chains and spelled out in the header and the log,
//! except for client faults, whose answer never names an internal address.

use std::net::SocketAddr;
use std::time::Duration;

use http::{header, HeaderValue, Response, StatusCode, Version};

use crate::balance::PoolError;
use crate::http::body::ResponseBody;
use crate::http::request_body::ClientFault;

/// Why the proxy could not forward a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
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
    #[error("{authority} could not be resolved")]
    Unresolvable {
        /// The name.
        authority: String,
        /// Why DNS failed.
        #[source]
        source: std::io::Error,
    },
    /// No connection to the endpoint could be had.
    #[error("connect to {addr} failed")]
    Connect {
        /// The endpoint.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: PoolError,
    },
    /// The endpoint failed while handling the request.
    #[error("request to {addr} failed")]
    Upstream {
        /// The endpoint.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// The client's request body failed: the client's fault.
    #[error("the client's request failed")]
    ClientBody(#[source] ClientFault),
    /// The route's timeout expired before the response.
    #[error("route timeout after {0:?}")]
    RouteTimeout(Duration),
    /// The request would be sent back to this proxy.
    #[error("forwarding loop detected: {0} is this proxy")]
    Loop(SocketAddr),
}

impl ProxyError {
    /// The HTTP status and gRPC code this error is answered with.
    fn codes(&self) -> (StatusCode, u32) {
        match self {
            ProxyError::NoAuthority | ProxyError::BadAuthority(_) => (StatusCode::BAD_REQUEST, 3),
            ProxyError::ClientBody(ClientFault::Stalled(_)) => (StatusCode::REQUEST_TIMEOUT, 4),
            ProxyError::ClientBody(ClientFault::Invalid(_)) => (StatusCode::BAD_REQUEST, 3),
            ProxyError::NoEndpoints(_)
            | ProxyError::Connect {
                source: PoolError::Busy(_),
                ..
            } => (StatusCode::SERVICE_UNAVAILABLE, 14),
            ProxyError::Unresolved(_) | ProxyError::RouteTimeout(_) => {
                (StatusCode::GATEWAY_TIMEOUT, 4)
            }
            ProxyError::Unresolvable { .. }
            | ProxyError::Connect { .. }
            | ProxyError::Upstream { .. } => (StatusCode::BAD_GATEWAY, 14),
            ProxyError::Loop(_) => (StatusCode::LOOP_DETECTED, 10),
        }
    }

    /// Whether the client caused this error.
    pub(crate) fn is_client_fault(&self) -> bool {
        self.codes().0.is_client_error()
    }

    /// The response for this error: a gRPC trailers-only response for gRPC
    /// requests, otherwise the HTTP status with the reason in the body.
    pub(crate) fn respond(&self, grpc: bool, version: Version) -> Response<ResponseBody> {
        let (status, code) = self.codes();
        let msg = describe(self);
        let value = HeaderValue::from_str(&msg).unwrap_or(HeaderValue::from_static("proxy error"));
        let mut rsp = if grpc {
            let mut r = Response::new(ResponseBody::empty());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            r.headers_mut()
                .insert("grpc-status", HeaderValue::from(code));
            r.headers_mut().insert("grpc-message", value.clone());
            r
        } else {
            let mut r = Response::new(ResponseBody::text(format!("{msg}\n")));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        };
        rsp.headers_mut().insert("l5d-proxy-error", value);
        if version < Version::HTTP_2
            && (status.is_server_error() || matches!(self, ProxyError::ClientBody(_)))
        {
            rsp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        rsp
    }
}

/// An error and its causes on one line (`wisp_common::error::chain`).
pub(crate) use wisp_common::error::chain as describe;

/// Whether a request is gRPC (content-type `application/grpc...`).
pub(crate) fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_faults_do_not_name_the_endpoint() {
        let e = ProxyError::ClientBody(ClientFault::Stalled(Duration::from_secs(30)));
        let rsp = e.respond(false, Version::HTTP_11);
        assert_eq!(rsp.status(), StatusCode::REQUEST_TIMEOUT);
        let header = rsp
            .headers()
            .get("l5d-proxy-error")
            .map(|v| v.as_bytes().to_vec());
        assert_eq!(
            header.as_deref(),
            Some(&b"the client's request failed: request body stalled for 30s"[..])
        );
        assert!(e.is_client_fault());
    }

    #[test]
    fn causes_are_spelled_out() {
        let e = ProxyError::Connect {
            addr: "10.1.2.3:80".parse().expect("addr"),
            source: PoolError::Connect(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            )),
        };
        assert_eq!(
            describe(&e),
            "connect to 10.1.2.3:80 failed: connect failed: connection refused"
        );
        let rsp = e.respond(true, Version::HTTP_2);
        assert_eq!(
            rsp.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"14"[..])
        );
    }
}
