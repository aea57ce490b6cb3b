//! One endpoint the proxy sends traffic to: its address, what discovery said
//! about it, its load, its connection pool and its metrics; and the
//! [`EndpointFactory`] that builds endpoints from the few settings they need.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use rustls_pki_types::ServerName;
use tokio::time::Instant;

use crate::balance::connect::{ConnectTarget, OpaqueConn};
use crate::balance::ewma::{Ewma, DEFAULT_RTT};
pub(crate) use crate::balance::pool::PoolSettings;
use crate::balance::pool::{Pool, PoolError, SendError, WireBody};
use crate::config::Config;
use crate::telemetry::metrics::{HttpMetrics, Labels, Registry, TcpMetrics};
use crate::transport::header::{Header, Session};
use crate::transport::tls::MeshTls;

/// What discovery told us about an endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct EndpointMeta {
    /// Metric labels from discovery (set-level merged with address-level),
    /// exported as `dst_<key>`.
    pub(crate) labels: Vec<(String, String)>,
    /// The endpoint's TLS identity, if meshed.
    pub(crate) identity: Option<String>,
    /// The peer proxy's inbound port: connect there and send a transport header.
    pub(crate) opaque_transport_port: Option<u16>,
    /// The endpoint is a meshed proxy that takes HTTP/1 requests over HTTP/2.
    pub(crate) h2_hint: bool,
}

/// How connections to an endpoint are secured.
#[derive(Clone)]
enum TlsMode {
    /// Identity is disabled on this proxy.
    Disabled,
    /// Discovery gave no identity: plaintext.
    NoIdentity,
    /// mTLS, expecting the server to prove `identity`.
    Mesh {
        /// The expected server identity (also the SNI).
        identity: ServerName<'static>,
        /// The mesh TLS configurations.
        tls: Arc<MeshTls>,
    },
}

impl TlsMode {
    fn for_endpoint(tls: Option<&Arc<MeshTls>>, identity: Option<&str>) -> Self {
        match (tls, identity) {
            (None, _) => TlsMode::Disabled,
            (Some(tls), Some(id)) => match ServerName::try_from(id.to_string()) {
                Ok(identity) => TlsMode::Mesh {
                    identity,
                    tls: tls.clone(),
                },
                Err(_) => TlsMode::NoIdentity,
            },
            (Some(_), None) => TlsMode::NoIdentity,
        }
    }

    /// Appends `tls` (and `server_id` / `no_tls_reason`) connect-side labels.
    fn labels(&self, labels: Labels) -> Labels {
        match self {
            TlsMode::Disabled => labels.with("tls", "disabled"),
            TlsMode::NoIdentity => labels
                .with("tls", "no_identity")
                .with("no_tls_reason", "not_provided_by_service_discovery"),
            TlsMode::Mesh { identity, .. } => labels
                .with("tls", "true")
                .with("server_id", &identity.to_str()),
        }
    }
}

/// Builds endpoints: holds only what an endpoint needs (connect timeouts,
/// pool settings, metrics, mesh TLS), not the whole proxy.
pub(crate) struct EndpointFactory {
    metrics: Arc<Registry>,
    tls: Option<Arc<MeshTls>>,
    outbound_connect_timeout: Duration,
    inbound_connect_timeout: Duration,
    pool: PoolSettings,
}

impl EndpointFactory {
    /// A factory with explicit settings.
    pub(crate) fn new(
        metrics: Arc<Registry>,
        tls: Option<Arc<MeshTls>>,
        outbound_connect_timeout: Duration,
        inbound_connect_timeout: Duration,
        pool: PoolSettings,
    ) -> Self {
        EndpointFactory {
            metrics,
            tls,
            outbound_connect_timeout,
            inbound_connect_timeout,
            pool,
        }
    }

    /// A factory with the proxy's configured settings.
    pub(crate) fn from_config(
        config: &Config,
        metrics: Arc<Registry>,
        tls: Option<Arc<MeshTls>>,
    ) -> Self {
        Self::new(
            metrics,
            tls,
            config.outbound_connect_timeout,
            config.inbound_connect_timeout,
            PoolSettings {
                max_idle: config.max_idle_conns_per_endpoint,
                idle_timeout: config.http1_pool_idle_timeout,
                max_connections: config.max_connections_per_endpoint,
                queue_timeout: config.outbound_failfast_timeout,
            },
        )
    }

    /// An outbound endpoint; `authority` is the logical name it serves, if any.
    pub(crate) fn outbound(
        &self,
        addr: SocketAddr,
        meta: EndpointMeta,
        authority: Option<&str>,
    ) -> Arc<Endpoint> {
        let tls = TlsMode::for_endpoint(self.tls.as_ref(), meta.identity.as_deref());
        let mut http = Labels::new().with("direction", "outbound");
        let mut tcp = Labels::new()
            .with("direction", "outbound")
            .with("peer", "dst");
        if let Some(a) = authority {
            http = http.with("authority", a);
            tcp = tcp.with("authority", a);
        }
        let mut http = tls.labels(http.with_target(addr));
        let mut tcp = tls.labels(tcp.with_target(addr));
        for (k, v) in &meta.labels {
            http = http.with(&format!("dst_{k}"), v);
            tcp = tcp.with(&format!("dst_{k}"), v);
        }
        self.build(
            addr,
            meta,
            tls,
            Some(self.metrics.http(http)),
            tcp,
            self.outbound_connect_timeout,
        )
    }

    /// The local application at `addr`, as inbound traffic reaches it.
    pub(crate) fn inbound(&self, addr: SocketAddr) -> Arc<Endpoint> {
        let tcp = Labels::new()
            .with("direction", "inbound")
            .with("peer", "dst")
            .with_target(addr)
            .with("tls", "no_identity")
            .with("no_tls_reason", "loopback");
        self.build(
            addr,
            EndpointMeta::default(),
            TlsMode::Disabled,
            None,
            tcp,
            self.inbound_connect_timeout,
        )
    }

    fn build(
        &self,
        addr: SocketAddr,
        meta: EndpointMeta,
        tls: TlsMode,
        http_metrics: Option<Arc<HttpMetrics>>,
        tcp: Labels,
        connect_timeout: Duration,
    ) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            addr,
            meta,
            ewma: Mutex::new(Ewma::new(Instant::now())),
            pending: AtomicU32::new(0),
            pool: Pool::new(self.pool),
            connect_timeout,
            tls,
            http_metrics,
            tcp_metrics: self.metrics.tcp(tcp),
        })
    }
}

/// What is known about an endpoint right now (the admin dump).
#[derive(Debug)]
pub(crate) struct EndpointState {
    /// The endpoint's address.
    pub(crate) addr: String,
    /// Its TLS identity, if meshed.
    pub(crate) identity: Option<String>,
    /// Its labels from discovery.
    pub(crate) labels: std::collections::BTreeMap<String, String>,
    /// Whether HTTP/1 travels to it as HTTP/2.
    pub(crate) h2: bool,
    /// The peer proxy's inbound port, for a transport header.
    pub(crate) opaque_transport_port: Option<u16>,
    /// Requests in flight.
    pub(crate) pending: u32,
    /// The peak-EWMA latency estimate now, milliseconds.
    pub(crate) ewma_ms: f64,
}

impl wisp_common::json::ToJson for EndpointState {
    fn write_json(&self, out: &mut String) {
        wisp_common::json_object!(out;
            "addr" => &self.addr,
            "identity" => &self.identity,
            "labels" => &self.labels,
            "h2" => &self.h2,
            "opaque_transport_port" => &self.opaque_transport_port,
            "pending" => &self.pending,
            "ewma_ms" => &self.ewma_ms,
        );
    }
}

/// An endpoint with its load, its connections and its metrics.
pub(crate) struct Endpoint {
    /// The workload's address (what discovery named).
    pub(crate) addr: SocketAddr,
    /// What discovery said about it.
    pub(crate) meta: EndpointMeta,
    ewma: Mutex<Ewma>,
    pending: AtomicU32,
    pool: Pool,
    connect_timeout: Duration,
    tls: TlsMode,
    /// Request/response series of an outbound endpoint (inbound requests
    /// are counted per connection, labelled with the client's identity).
    pub(crate) http_metrics: Option<Arc<HttpMetrics>>,
    /// Series of the connections the proxy opens to it.
    tcp_metrics: Arc<TcpMetrics>,
}

impl Endpoint {
    /// The balancer's load figure: decayed peak-EWMA latency times (pending + 1).
    pub(crate) fn load(&self, now: Instant) -> f64 {
        let cost = self.ewma.lock().map(|e| e.decayed(now)).unwrap_or(f64::MAX);
        cost * f64::from(self.pending.load(Relaxed) + 1)
    }

    /// Marks a request in flight until the returned guard is dropped or completed.
    pub(crate) fn start_request(self: &Arc<Self>) -> InFlight {
        self.pending.fetch_add(1, Relaxed);
        InFlight {
            endpoint: self.clone(),
            started: Instant::now(),
            outcome: Outcome::Failed,
        }
    }

    /// Sends a request (already shaped for the wire) on one of the
    /// endpoint's pooled connections.
    pub(crate) async fn send(
        &self,
        req: Request<WireBody>,
        http2: bool,
    ) -> Result<Response<Incoming>, SendError> {
        let session = if http2 {
            Session::Http2
        } else {
            Session::Http1
        };
        let target = self.connect_target(session);
        self.pool
            .send(req, http2, || {
                target.connect(self.connect_timeout, self.tcp_metrics.clone())
            })
            .await
    }

    /// Where to connect, how to secure it, and the transport header to send
    /// first, for `session`.
    fn connect_target(&self, session: Session) -> ConnectTarget {
        let (addr, header) = match self.meta.opaque_transport_port {
            Some(port) => (
                SocketAddr::new(self.addr.ip(), port),
                Some(Header::new(self.addr.port(), session).encode_frame()),
            ),
            None => (self.addr, None),
        };
        let tls = match &self.tls {
            TlsMode::Mesh { identity, tls } => Some((
                if header.is_some() {
                    tls.client_transport.clone()
                } else {
                    tls.client.clone()
                },
                identity.clone(),
            )),
            _ => None,
        };
        ConnectTarget { addr, header, tls }
    }

    /// Opens a counted (and, for meshed endpoints, mTLS) connection for
    /// opaque forwarding. It counts against the endpoint's connection limit
    /// until the returned permit is dropped.
    pub(crate) async fn connect_opaque(&self) -> Result<OpaqueConn, PoolError> {
        let permit = self.pool.permit().await?;
        let io = self
            .connect_target(Session::Opaque)
            .connect(self.connect_timeout, self.tcp_metrics.clone())
            .await
            .map_err(PoolError::Connect)?;
        Ok(OpaqueConn::new(io, permit))
    }

    /// What is known about the endpoint at `now`.
    pub(crate) fn state(&self, now: Instant) -> EndpointState {
        EndpointState {
            addr: self.addr.to_string(),
            identity: self.meta.identity.clone(),
            labels: self.meta.labels.iter().cloned().collect(),
            h2: self.meta.h2_hint,
            opaque_transport_port: self.meta.opaque_transport_port,
            pending: self.pending.load(Relaxed),
            ewma_ms: self.ewma.lock().map(|e| e.decayed(now)).unwrap_or_default() / 1e6,
        }
    }

    /// The labels taps show for this endpoint: what discovery said about it
    /// and how it is secured.
    pub(crate) fn tap_labels(&self) -> Vec<(String, String)> {
        let mut labels = self.meta.labels.clone();
        match &self.tls {
            TlsMode::Mesh { identity, .. } => {
                labels.push(("tls".into(), "true".into()));
                labels.push(("server_id".into(), identity.to_str().into_owned()));
            }
            TlsMode::NoIdentity => {
                labels.push(("tls".into(), "not_provided_by_service_discovery".into()))
            }
            TlsMode::Disabled => labels.push(("tls".into(), "disabled".into())),
        }
        labels
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// How a request in flight ended, as far as the balancer is concerned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Response headers arrived.
    Answered,
    /// The endpoint failed (no answer): counted as slow.
    Failed,
    /// The request ended for a reason that is not the endpoint's fault
    /// (the client's body failed): not counted at all.
    NotCharged,
}

/// A request in flight on an endpoint; feeds the latency estimate.
pub(crate) struct InFlight {
    endpoint: Arc<Endpoint>,
    started: Instant,
    outcome: Outcome,
}

impl InFlight {
    /// Records the time to response headers and ends the request's load.
    pub(crate) fn complete(mut self) -> Duration {
        let now = Instant::now();
        let rtt = now - self.started;
        if let Ok(mut e) = self.endpoint.ewma.lock() {
            e.observe(rtt, now);
        }
        self.outcome = Outcome::Answered;
        rtt
    }

    /// Ends the request without charging the endpoint (the client caused the failure).
    pub(crate) fn not_charged(mut self) {
        self.outcome = Outcome::NotCharged;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.pending.fetch_sub(1, Relaxed);
        if self.outcome == Outcome::Failed {
            // A failed request: count it as slow so the balancer backs off.
            let now = Instant::now();
            if let Ok(mut e) = self.endpoint.ewma.lock() {
                e.observe(DEFAULT_RTT.max(now - self.started), now);
            }
        }
    }
}

/// A factory for unit tests: no TLS, short timeouts, small pools.
#[cfg(test)]
pub(crate) fn test_factory() -> EndpointFactory {
    EndpointFactory::new(
        Registry::new(Duration::from_secs(600)),
        None,
        Duration::from_secs(1),
        Duration::from_millis(300),
        PoolSettings {
            max_idle: 10,
            idle_timeout: Duration::from_secs(3),
            max_connections: 4,
            queue_timeout: Duration::from_millis(500),
        },
    )
}
