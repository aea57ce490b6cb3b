//! Forwarding inbound traffic to the local application: HTTP with the
//! client's verified identity in `l5d-client-id` (and `l5d-orig-proto`
//! undone), or opaque bytes; and the labels inbound metrics carry.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, Version};
use linkerd2_proxy_api::tap::tap_event::ProxyDirection;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::balance::{Endpoint, OpaqueConn};
use crate::drain::Drain;
use crate::http::body::ResponseBody;
use crate::http::errors::describe;
use crate::http::forward;
use crate::http::headers::{orig_proto_value, ORIG_PROTO};
use crate::http::request_body::RequestBody;
use crate::http::serve::{self, ServeLimits};
use crate::tap::{Origin, Taps};
use crate::telemetry::metrics::{HttpMetrics, Labels, Registry};
use crate::transport::detect::Protocol;
use crate::transport::splice::splice;

/// How an accepted connection is secured, as metrics label it.
#[derive(Clone, Debug)]
pub(super) enum AcceptTls {
    /// Identity is disabled on this proxy.
    Disabled,
    /// Plaintext from the client.
    NoTls,
    /// Mesh TLS terminated here; the client's identity if it sent a certificate.
    Mesh(Option<String>),
    /// TLS for another server name, passed through.
    Passthrough(String),
}

impl AcceptTls {
    /// Appends the `tls` labels.
    pub(super) fn labels(&self, labels: Labels) -> Labels {
        match self {
            AcceptTls::Disabled => labels.with("tls", "disabled"),
            AcceptTls::NoTls => labels
                .with("tls", "no_identity")
                .with("no_tls_reason", "no_tls_from_remote"),
            AcceptTls::Mesh(id) => labels
                .with("tls", "true")
                .with("client_id", id.as_deref().unwrap_or_default()),
            AcceptTls::Passthrough(sni) => labels.with("tls", "opaque").with("sni", sni),
        }
    }

    /// The source labels taps show for a client connected this way.
    fn tap_labels(&self) -> Vec<(String, String)> {
        let tls = |v: &str| ("tls".to_string(), v.to_string());
        match self {
            AcceptTls::Disabled => vec![tls("disabled")],
            AcceptTls::NoTls => vec![tls("no_tls_from_remote")],
            AcceptTls::Mesh(None) => vec![tls("true")],
            AcceptTls::Mesh(Some(id)) => vec![tls("true"), ("client_id".into(), id.clone())],
            AcceptTls::Passthrough(sni) => vec![tls("passthru"), ("sni".into(), sni.clone())],
        }
    }

    fn client_id(&self) -> Option<&str> {
        match self {
            AcceptTls::Mesh(id) => id.as_deref(),
            _ => None,
        }
    }
}

/// Adds the policy server labels of the default policy (until policies exist).
pub(super) fn server_labels(labels: Labels, port: u16) -> Labels {
    labels
        .with("srv_group", "")
        .with("srv_kind", "default")
        .with("srv_name", "all-unauthenticated")
        .with("srv_port", &port.to_string())
}

fn request_labels(target: SocketAddr, tls: &AcceptTls) -> Labels {
    let labels = tls.labels(
        Labels::new()
            .with("direction", "inbound")
            .with_target(target),
    );
    server_labels(labels, target.port())
        .with("route_group", "")
        .with("route_kind", "default")
        .with("route_name", "default")
        .with("authz_group", "")
        .with("authz_kind", "default")
        .with("authz_name", "all-unauthenticated")
}

/// The local application a connection goes to.
pub(super) struct App {
    pub(super) target: SocketAddr,
    pub(super) ep: Arc<Endpoint>,
    pub(super) metrics: Arc<Registry>,
    pub(super) limits: ServeLimits,
    pub(super) taps: Arc<Taps>,
}

impl App {
    /// An opaque connection to the application.
    pub(super) async fn connect(&self) -> Option<OpaqueConn> {
        match self.ep.connect_opaque().await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::info!(target = %self.target, error = %describe(&e), "inbound connect failed");
                None
            }
        }
    }

    /// Splices `io` to the application, over `server` if already connected.
    pub(super) async fn splice<I, S>(&self, io: I, server: Option<S>)
    where
        I: AsyncRead + AsyncWrite + Unpin,
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match server {
            Some(s) => splice(io, s).await,
            None => {
                if let Some(s) = self.connect().await {
                    splice(io, s).await;
                }
            }
        }
    }

    /// Serves `io` as `proto`: HTTP request by request, or opaque bytes
    /// (over `server` if a connection was opened during detection).
    pub(super) async fn serve<I>(
        &self,
        io: I,
        peer: SocketAddr,
        proto: Protocol,
        tls: AcceptTls,
        server: Option<OpaqueConn>,
        drain: Drain,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match proto {
            Protocol::Http1 | Protocol::Http2 => {
                drop(server);
                let ep = self.ep.clone();
                let metrics = self.metrics.http(request_labels(self.target, &tls));
                let client_id = tls
                    .client_id()
                    .and_then(|id| HeaderValue::from_str(id).ok());
                let origin = Arc::new(Origin {
                    taps: self.taps.clone(),
                    direction: ProxyDirection::Inbound,
                    source: peer,
                    source_labels: tls.tap_labels(),
                });
                serve::serve(io, proto, self.limits, drain, move |req| {
                    let ep = ep.clone();
                    let metrics = metrics.clone();
                    let client_id = client_id.clone();
                    let origin = origin.clone();
                    async move { proxy_request(&ep, &metrics, client_id, &origin, req).await }
                })
                .await;
            }
            Protocol::Opaque => self.splice(io, server).await,
        }
    }
}

async fn proxy_request(
    ep: &Arc<Endpoint>,
    metrics: &Arc<HttpMetrics>,
    client_id: Option<HeaderValue>,
    origin: &Origin,
    mut req: Request<RequestBody>,
) -> Response<ResponseBody> {
    // Only a verified mTLS identity may reach the app; anything a client
    // sent itself is a forgery.
    match client_id {
        Some(id) => req.headers_mut().insert("l5d-client-id", id),
        None => req.headers_mut().remove("l5d-client-id"),
    };
    // An HTTP/1 request a peer proxy carried over HTTP/2 goes to the app as HTTP/1.
    let downgraded = match req.headers_mut().remove(ORIG_PROTO) {
        Some(v) if req.version() == Version::HTTP_2 => {
            let v = if v.as_bytes().starts_with(b"HTTP/1.0") {
                Version::HTTP_10
            } else {
                Version::HTTP_11
            };
            *req.version_mut() = v;
            Some(v)
        }
        _ => None,
    };
    let mut rsp = forward::to_endpoint(ep, req, metrics, None, origin).await;
    if let Some(v) = downgraded {
        rsp.headers_mut()
            .insert(ORIG_PROTO, HeaderValue::from_static(orig_proto_value(v)));
        *rsp.version_mut() = Version::HTTP_2;
    }
    rsp
}
