//! One endpoint the proxy sends traffic to: its address, what discovery said
//! about it, its load, its pooled HTTP clients and its metrics.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::io::CountingIo;
use crate::metrics::{HttpMetrics, Labels, TcpMetrics};
use crate::reqbody::RequestBody;
use crate::tls::{MeshTls, TRANSPORT_ALPN};
use crate::transport_header::{Header, Session};
use crate::Shared;

/// What discovery told us about an endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointMeta {
    /// Metric labels from discovery (set-level merged with address-level),
    /// exported as `dst_<key>`.
    pub labels: Vec<(String, String)>,
    /// The endpoint's TLS identity, if meshed.
    pub identity: Option<String>,
    /// The peer proxy's inbound port: connect there and send a transport header.
    pub opaque_transport_port: Option<u16>,
    /// The endpoint is a meshed proxy that takes HTTP/1 requests over HTTP/2.
    pub h2_hint: bool,
}

/// How connections to an endpoint are secured.
#[derive(Clone)]
pub enum TlsMode {
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

/// Peak-EWMA latency estimate (nanoseconds), decaying toward zero while idle.
struct Ewma {
    cost_ns: f64,
    updated: Instant,
}

/// Linkerd's defaults for the balancer: `default_rtt = 30ms`, `decay = 10s`.
const DEFAULT_RTT: Duration = Duration::from_millis(30);
const DECAY: Duration = Duration::from_secs(10);

impl Ewma {
    fn decayed(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.cost_ns * (-elapsed / DECAY.as_secs_f64()).exp()
    }

    /// Folds in one observed latency: a slower one replaces the estimate
    /// (peak), a faster one is blended in with a weight that grows with the
    /// time since the last observation.
    fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_nanos() as f64;
        self.cost_ns = if rtt > self.cost_ns {
            rtt
        } else {
            let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
            let w = (-elapsed / DECAY.as_secs_f64()).exp();
            self.cost_ns * w + rtt * (1.0 - w)
        };
        self.updated = now;
    }
}

type HttpClient = Client<Connector, RequestBody>;

/// An endpoint with its load, its clients and its metrics.
pub struct Endpoint {
    /// The workload's address (what discovery named).
    pub addr: SocketAddr,
    /// What discovery said about it.
    pub meta: EndpointMeta,
    ewma: Mutex<Ewma>,
    pending: AtomicU32,
    h1: OnceLock<HttpClient>,
    h2: OnceLock<HttpClient>,
    connect_timeout: Duration,
    tls: TlsMode,
    pool_idle: Duration,
    pool_max_idle: usize,
    /// Request/response series of an outbound endpoint (inbound requests
    /// are counted per connection, labelled with the client's identity).
    pub http_metrics: Option<Arc<HttpMetrics>>,
    /// Series of the connections the proxy opens to it.
    pub tcp_metrics: Arc<TcpMetrics>,
}

/// Whether the request path is outbound (to a remote endpoint) or inbound (to the local app).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// App -> world.
    Outbound,
    /// World -> app.
    Inbound,
}

impl Endpoint {
    /// Builds an endpoint; `authority` is the logical name it serves, if any.
    pub fn new(
        shared: &Shared,
        direction: Direction,
        addr: SocketAddr,
        meta: EndpointMeta,
        authority: Option<&str>,
    ) -> Arc<Self> {
        let cfg = &shared.config;
        let tls = match direction {
            Direction::Outbound => {
                TlsMode::for_endpoint(shared.tls.as_ref(), meta.identity.as_deref())
            }
            Direction::Inbound => TlsMode::Disabled,
        };
        let (http_labels, tcp_labels, connect_timeout) = match direction {
            Direction::Outbound => {
                let mut l = Labels::new().with("direction", "outbound");
                if let Some(a) = authority {
                    l = l.with("authority", a);
                }
                let mut l = tls.labels(l.with_target(addr));
                for (k, v) in &meta.labels {
                    l = l.with(&format!("dst_{k}"), v);
                }
                let tcp = Labels::new()
                    .with("direction", "outbound")
                    .with("peer", "dst");
                let tcp = match authority {
                    Some(a) => tcp.with("authority", a),
                    None => tcp,
                };
                let mut tcp = tls.labels(tcp.with_target(addr));
                for (k, v) in &meta.labels {
                    tcp = tcp.with(&format!("dst_{k}"), v);
                }
                (Some(l), tcp, cfg.outbound_connect_timeout)
            }
            Direction::Inbound => (
                None,
                Labels::new()
                    .with("direction", "inbound")
                    .with("peer", "dst")
                    .with_target(addr)
                    .with("tls", "no_identity")
                    .with("no_tls_reason", "loopback"),
                cfg.inbound_connect_timeout,
            ),
        };
        Arc::new(Endpoint {
            addr,
            meta,
            ewma: Mutex::new(Ewma {
                cost_ns: DEFAULT_RTT.as_nanos() as f64,
                updated: Instant::now(),
            }),
            pending: AtomicU32::new(0),
            h1: OnceLock::new(),
            h2: OnceLock::new(),
            connect_timeout,
            tls,
            pool_idle: cfg.http1_pool_idle_timeout,
            pool_max_idle: cfg.max_idle_conns_per_endpoint,
            http_metrics: http_labels.map(|l| shared.metrics.http(l)),
            tcp_metrics: shared.metrics.tcp(tcp_labels),
        })
    }

    /// The balancer's load figure: decayed peak-EWMA latency times (pending + 1).
    pub fn load(&self, now: Instant) -> f64 {
        let cost = self.ewma.lock().map(|e| e.decayed(now)).unwrap_or(f64::MAX);
        cost * f64::from(self.pending.load(Relaxed) + 1)
    }

    /// Marks a request in flight until the returned guard is dropped or completed.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.pending.fetch_add(1, Relaxed);
        InFlight {
            endpoint: self.clone(),
            started: Instant::now(),
            done: false,
        }
    }

    /// The pooled client for HTTP/1 (`http2 == false`) or HTTP/2 requests.
    pub fn client(&self, http2: bool) -> &HttpClient {
        let cell = if http2 { &self.h2 } else { &self.h1 };
        cell.get_or_init(|| {
            let session = if http2 {
                Session::Http2
            } else {
                Session::Http1
            };
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(self.pool_idle)
                .pool_max_idle_per_host(self.pool_max_idle)
                .http2_only(http2)
                .set_host(true);
            b.build(Connector {
                target: self.connect_target(session),
                timeout: self.connect_timeout,
                metrics: self.tcp_metrics.clone(),
            })
        })
    }

    /// Where to connect, how to secure it, and the transport header to send
    /// first, for `session`.
    pub fn connect_target(&self, session: Session) -> ConnectTarget {
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
    /// opaque forwarding.
    pub async fn connect_opaque(&self) -> io::Result<ClientIo> {
        self.connect_target(Session::Opaque)
            .connect(self.connect_timeout, self.tcp_metrics.clone())
            .await
    }
}

/// A request in flight on an endpoint; feeds the latency estimate.
pub struct InFlight {
    endpoint: Arc<Endpoint>,
    started: Instant,
    done: bool,
}

impl InFlight {
    /// Records the time to response headers and ends the request's load.
    pub fn complete(mut self) -> Duration {
        let now = Instant::now();
        let rtt = now - self.started;
        if let Ok(mut e) = self.endpoint.ewma.lock() {
            e.observe(rtt, now);
        }
        self.done = true;
        rtt
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.pending.fetch_sub(1, Relaxed);
        if !self.done {
            // A failed request: count it as slow so the balancer backs off.
            let now = Instant::now();
            if let Ok(mut e) = self.endpoint.ewma.lock() {
                e.observe(DEFAULT_RTT.max(now - self.started), now);
            }
        }
    }
}

/// An address to dial, how to secure it, and the transport header to write
/// first, if any.
#[derive(Clone)]
pub struct ConnectTarget {
    /// Address to dial.
    pub addr: SocketAddr,
    /// Transport header frame to send before anything else.
    pub header: Option<Bytes>,
    /// mTLS client config and the identity the server must prove.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl ConnectTarget {
    async fn connect(&self, timeout: Duration, metrics: Arc<TcpMetrics>) -> io::Result<ClientIo> {
        let timed_out = || {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {} timed out", self.addr),
            )
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| timed_out())??;
        stream.set_nodelay(true)?;
        let io = CountingIo::new(stream, metrics);
        let mut io = match &self.tls {
            None => ClientIo::Plain(io),
            Some((config, name)) => {
                let connect =
                    tokio_rustls::TlsConnector::from(config.clone()).connect(name.clone(), io);
                let tls = tokio::time::timeout(timeout, connect)
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("TLS handshake with {} failed: {e}", name.to_str()),
                        )
                    })?;
                ClientIo::Tls(Box::new(tls))
            }
        };
        if let Some(h) = &self.header {
            // Over TLS the peer must have agreed to the transport protocol.
            let agreed = match &io {
                ClientIo::Plain(_) => true,
                ClientIo::Tls(t) => t.get_ref().1.alpn_protocol() == Some(TRANSPORT_ALPN),
            };
            if agreed {
                io.write_all(h).await?;
            }
        }
        Ok(io)
    }
}

/// A connection to an endpoint: plaintext or mTLS, counted on the wire.
pub enum ClientIo {
    /// Plaintext.
    Plain(CountingIo<TcpStream>),
    /// Mesh TLS.
    Tls(Box<TlsStream<CountingIo<TcpStream>>>),
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_write(cx, b),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            ClientIo::Plain(s) => s.is_write_vectored(),
            ClientIo::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The connector the pooled HTTP clients dial with.
#[derive(Clone)]
pub struct Connector {
    target: ConnectTarget,
    timeout: Duration,
    metrics: Arc<TcpMetrics>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Conn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let io = this.target.connect(this.timeout, this.metrics).await?;
            Ok(Conn(TokioIo::new(io)))
        })
    }
}

/// A pooled client connection.
pub struct Conn(TokioIo<ClientIo>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_ewma_jumps_up_and_decays() {
        let t0 = Instant::now();
        let mut e = Ewma {
            cost_ns: 1e6,
            updated: t0,
        };
        e.observe(Duration::from_millis(50), t0);
        assert!((e.decayed(t0) - 50e6).abs() < 1.0);
        // Ten seconds idle: one decay constant.
        let later = t0 + Duration::from_secs(10);
        assert!((e.decayed(later) - 50e6 / std::f64::consts::E).abs() < 1e3);
        // A fast sample right after barely moves a recent estimate.
        let mut f = Ewma {
            cost_ns: 30e6,
            updated: t0,
        };
        f.observe(Duration::from_millis(1), t0 + Duration::from_millis(1));
        assert!(f.cost_ns > 29e6);
    }
}
