//! The admin server (4191): `/metrics`, `/ready`, `/live`, `/shutdown`, and
//! `/config.json`, what the proxy knows right now (identity, listeners,
//! services with their endpoints and load, profiles, address endpoints,
//! the app endpoints). `/shutdown` and `/config.json` answer only loopback
//! clients.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wisp_common::json::ToJson;
use wisp_common::json_object;

use crate::balance::EndpointState;
use crate::drain::Drain;
use crate::http::body::ResponseBody;
use crate::http::request_body::RequestBody;
use crate::http::serve::{self, ServeLimits};
use crate::inbound::Inbound;
use crate::outbound::{Outbound, OutboundState};
use crate::tap::Taps;
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
    /// The taps, whose counters `/metrics` renders too.
    pub(crate) taps: Arc<Taps>,
    /// The certificate store `/ready` waits for; `None` with identity disabled.
    pub(crate) certificate: Option<Arc<CertStore>>,
    /// Whether `POST /shutdown` is allowed.
    pub(crate) shutdown_enabled: bool,
    /// Limits on admin clients.
    pub(crate) limits: ServeLimits,
    /// Where a permitted `/shutdown` is signalled.
    pub(crate) shutdown: mpsc::Sender<()>,
    /// The outbound side, for `/config.json`.
    pub(crate) outbound: Arc<Outbound>,
    /// The inbound side, for `/config.json`.
    pub(crate) inbound: Arc<Inbound>,
    /// This proxy's identity, when enabled.
    pub(crate) identity: Option<String>,
    /// The listeners, by name.
    pub(crate) listeners: Vec<(&'static str, SocketAddr)>,
}

/// The `/config.json` document.
struct Dump {
    identity: Option<IdentityState>,
    ready: bool,
    listeners: BTreeMap<&'static str, String>,
    outbound: OutboundState,
    inbound: Vec<EndpointState>,
    taps: usize,
}

/// The proxy's identity and certificate.
struct IdentityState {
    name: String,
    certificate_expiry_unix: Option<f64>,
}

impl ToJson for Dump {
    fn write_json(&self, out: &mut String) {
        json_object!(out;
            "identity" => &self.identity,
            "ready" => &self.ready,
            "listeners" => &self.listeners,
            "outbound" => &self.outbound,
            "inbound" => &self.inbound,
            "taps" => &self.taps,
        );
    }
}

impl ToJson for IdentityState {
    fn write_json(&self, out: &mut String) {
        json_object!(out;
            "name" => &self.name,
            "certificate_expiry_unix" => &self.certificate_expiry_unix,
        );
    }
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

fn config_json(admin: &Admin) -> Response<ResponseBody> {
    let dump = Dump {
        identity: admin.identity.as_ref().map(|name| IdentityState {
            name: name.clone(),
            certificate_expiry_unix: admin.metrics.identity_expiry(),
        }),
        ready: admin.is_ready(),
        listeners: admin
            .listeners
            .iter()
            .map(|(n, a)| (*n, a.to_string()))
            .collect(),
        outbound: admin.outbound.state(),
        inbound: admin.inbound.state(),
        taps: admin.taps.open(),
    };
    let mut body = String::with_capacity(4096);
    dump.write_json(&mut body);
    let mut r = Response::new(ResponseBody::text(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn respond(admin: &Admin, peer: SocketAddr, req: Request<RequestBody>) -> Response<ResponseBody> {
    match req.uri().path() {
        "/metrics" => {
            let mut text = admin.metrics.render();
            admin.taps.render_metrics(&mut text);
            let mut r = Response::new(ResponseBody::text(text));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        "/ready" if admin.is_ready() => text(StatusCode::OK, "ready\n"),
        "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/live" => text(StatusCode::OK, "live\n"),
        "/config.json" if !peer.ip().to_canonical().is_loopback() => text(
            StatusCode::FORBIDDEN,
            "config.json is only served to localhost\n",
        ),
        "/config.json" => config_json(admin),
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
