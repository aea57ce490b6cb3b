//! Support for the in-process integration tests: the proxy started with
//! [`wisp_proxy::run_with`] on loopback listeners, a mock Destination
//! service, counting HTTP/1 backends, and small clients.
//!
//! [`MockDestination`] is a tonic server for `io.linkerd.proxy.destination`:
//! - `Get` answers a name the test registered ([`MockDestination::set_endpoints`],
//!   [`MockDestination::set_no_endpoints`]) the way the real controller does:
//!   the current set first, then diffs (`Add`, `Remove`, or `NoEndpoints`
//!   when the set becomes empty) as the test changes it. An unregistered
//!   name is refused with `InvalidArgument` (as for a name outside the
//!   cluster), so the proxy falls back to DNS.
//! - `GetProfile` answers a registered target with its `DestinationProfile`
//!   and every later replacement; an unregistered target is refused with
//!   `InvalidArgument`.
//! - [`MockDestination::stop`] is an outage: open streams fail with
//!   `Unavailable` and the port stops accepting; [`MockDestination::restart`]
//!   serves again on the same port, from the same state.
//!
//! Not exercised: mTLS to the control plane (identity is disabled, so the
//! proxy dials the mock in plaintext), `context_token` contents, address
//! metadata beyond plain addresses (identities, protocol hints, opaque
//! transport, metric labels), the identity service, and `server_speaks_first`
//! detection (needs iptables redirection and original destinations).
#![allow(dead_code)] // Each test file uses part of this module.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use linkerd2_proxy_api::destination::destination_server::{Destination, DestinationServer};
use linkerd2_proxy_api::destination::{
    self as api, update, DestinationProfile, GetDestination, Update,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::Status;

/// Polling with a deadline: the end-to-end suite's helper.
pub use wisp_tests::eventually;

// ---------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------

/// A proxy running in this test's runtime on its own loopback listeners.
pub struct Proxy {
    /// The outbound listener.
    pub outbound: SocketAddr,
    /// The inbound listener.
    pub inbound: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// The control listener (the Tap API, with `LINKERD2_PROXY_TAP_SVC_NAME`).
    pub control: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), wisp_proxy::StartError>>,
}

impl Proxy {
    /// Starts a proxy whose destination service is `dst`, identity
    /// disabled, with `env` added to (or overriding) the defaults.
    pub async fn start(dst: SocketAddr, env: &[(&str, &str)]) -> Proxy {
        let bind = || async {
            TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a proxy listener")
        };
        let (admin, inbound, outbound) = (bind().await, bind().await, bind().await);
        let control = bind().await;
        let addr = |l: &TcpListener| l.local_addr().expect("listener address");
        let (admin_addr, inbound_addr, outbound_addr) =
            (addr(&admin), addr(&inbound), addr(&outbound));
        let control_addr = addr(&control);
        let mut vars: HashMap<String, String> = [
            ("LINKERD2_PROXY_IDENTITY_DISABLED", "1".to_string()),
            ("LINKERD2_PROXY_DESTINATION_SVC_ADDR", dst.to_string()),
            ("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", admin_addr.to_string()),
            (
                "LINKERD2_PROXY_INBOUND_LISTEN_ADDR",
                inbound_addr.to_string(),
            ),
            (
                "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR",
                outbound_addr.to_string(),
            ),
            (
                "LINKERD2_PROXY_CONTROL_LISTEN_ADDR",
                control_addr.to_string(),
            ),
            ("LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", "1s".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in env {
            vars.insert(k.to_string(), v.to_string());
        }
        let config = wisp_proxy::config::Config::from_map(&vars).expect("valid proxy config");
        let listeners = wisp_proxy::Listeners {
            admin,
            inbound,
            outbound: vec![outbound],
            control: Some(control),
        };
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(wisp_proxy::run_with(config, listeners, async move {
            let _ = rx.await;
        }));
        Proxy {
            outbound: outbound_addr,
            inbound: inbound_addr,
            admin: admin_addr,
            control: control_addr,
            shutdown: Some(tx),
            task,
        }
    }

    /// Whether `run_with` has returned.
    pub fn has_stopped(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits (up to `timeout`) for `run_with` to return; its result.
    pub async fn stopped(&mut self, timeout: Duration) -> Option<Result<(), String>> {
        let r = tokio::time::timeout(timeout, &mut self.task).await.ok()?;
        Some(match r {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        })
    }

    /// `GET <path>` on the admin listener, on a new connection.
    pub async fn admin_get(&self, path: &str) -> Option<(StatusCode, String)> {
        let mut c = H1::connect(self.admin).await.ok()?;
        let req = Request::get(path)
            .header("host", "admin")
            .body(Full::new(Bytes::new()))
            .ok()?;
        let r = c.send(req).await.ok()?;
        Some((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    /// The admin `/metrics` text (empty if it cannot be had).
    pub async fn metrics(&self) -> String {
        self.admin_get("/metrics")
            .await
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The lines of `/metrics` for `name` whose labels contain all of `labels`.
pub fn metric_lines<'a>(text: &'a str, name: &str, labels: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.split_once('{')
                .map_or(l.split(' ').next() == Some(name), |(n, _)| n == name)
                && labels.iter().all(|want| l.contains(want))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

/// One request as a backend received it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Method.
    pub method: http::Method,
    /// Path and query.
    pub path: String,
    /// The `Host` header, if any.
    pub host: Option<String>,
    /// All headers.
    pub headers: HeaderMap,
    /// The complete body (empty if the body failed).
    pub body: Bytes,
    /// Whether the body was received completely.
    pub body_ok: bool,
}

/// How a backend answers one request: status, and how long it takes.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Time spent before answering (the backend's own latency).
    pub delay: Duration,
}

impl Reply {
    /// 200 at once.
    pub fn ok() -> Reply {
        Reply {
            status: StatusCode::OK,
            delay: Duration::ZERO,
        }
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

#[derive(Default)]
struct BackendStats {
    accepted: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

/// An HTTP/1 server that reads each request's whole body, records it, and
/// answers as its handler says; it counts connections (accepted, open,
/// most open at once).
pub struct Backend {
    /// Its address.
    pub addr: SocketAddr,
    stats: Arc<BackendStats>,
    task: JoinHandle<()>,
}

impl Backend {
    /// A backend answering 200 to everything.
    pub async fn ok() -> Backend {
        Self::start(|_| Reply::ok()).await
    }

    /// A backend answering with `handler`.
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Backend {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a backend");
        let addr = listener.local_addr().expect("backend address");
        let stats = Arc::new(BackendStats::default());
        let s = stats.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                s.accepted.fetch_add(1, Ordering::SeqCst);
                let open = s.open.fetch_add(1, Ordering::SeqCst) + 1;
                s.max_open.fetch_max(open, Ordering::SeqCst);
                let (s, handler) = (s.clone(), handler.clone());
                tokio::spawn(async move {
                    let s2 = s.clone();
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (s, handler) = (s2.clone(), handler.clone());
                            async move {
                                let (parts, body) = req.into_parts();
                                let (body, body_ok) = match body.collect().await {
                                    Ok(b) => (b.to_bytes(), true),
                                    Err(_) => (Bytes::new(), false),
                                };
                                let seen = Seen {
                                    method: parts.method.clone(),
                                    path: parts.uri.to_string(),
                                    host: parts
                                        .headers
                                        .get("host")
                                        .and_then(|h| h.to_str().ok())
                                        .map(str::to_string),
                                    headers: parts.headers.clone(),
                                    body,
                                    body_ok,
                                };
                                let reply = handler(&seen);
                                s.seen.lock().expect("backend log").push(seen);
                                if !reply.delay.is_zero() {
                                    tokio::time::sleep(reply.delay).await;
                                }
                                let mut rsp =
                                    Response::new(Full::new(Bytes::from_static(b"backend\n")));
                                *rsp.status_mut() = reply.status;
                                Ok::<_, std::convert::Infallible>(rsp)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                    s.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Backend { addr, stats, task }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.stats.open.load(Ordering::SeqCst)
    }

    /// The most connections that were open at once.
    pub fn max_open(&self) -> usize {
        self.stats.max_open.load(Ordering::SeqCst)
    }

    /// The requests received so far (with complete or failed bodies).
    pub fn seen(&self) -> Vec<Seen> {
        self.stats.seen.lock().expect("backend log").clone()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// A response with its body read.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Answer {
    /// A header as a string ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

/// One HTTP/1 client connection (hyper).
pub struct H1 {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl H1 {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> std::io::Result<H1> {
        let stream = TcpStream::connect(addr).await?;
        Self::over(stream).await
    }

    /// Speaks HTTP/1 on an open stream (e.g. after a transport header).
    pub async fn over(stream: TcpStream) -> std::io::Result<H1> {
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(H1 { sender })
    }

    /// Sends a request and reads the whole response.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, hyper::Error> {
        self.sender.ready().await?;
        let rsp = self.sender.send_request(req).await?;
        let (parts, body) = rsp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// A request with `host` and, if given, `l5d-dst-override`.
pub fn request(
    method: &str,
    host: &str,
    dst_override: Option<SocketAddr>,
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri("/")
        .header("host", host);
    if let Some(o) = dst_override {
        b = b.header("l5d-dst-override", o.to_string());
    }
    b.body(Full::new(body)).expect("request")
}

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawAnswer {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body bytes (as far as they were read).
    pub body: Vec<u8>,
}

impl RawAnswer {
    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// Reads one HTTP/1 response from `stream`; `None` if the peer closed (or
/// reset) before a complete head arrived.
pub async fn read_raw_response(stream: &mut TcpStream) -> Option<RawAnswer> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (status, headers, head_len) = loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hs);
        if let Ok(httparse::Status::Complete(n)) = r.parse(&buf) {
            let headers = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect::<Vec<_>>();
            break (r.code?, headers, n);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let mut body = buf.split_off(head_len);
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    loop {
        let done = match len {
            Some(l) => body.len() >= l,
            None => body.ends_with(b"0\r\n\r\n"),
        };
        if done {
            break;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some(RawAnswer {
        status,
        headers,
        body,
    })
}

/// Whether the peer closes `stream` (EOF or reset) within `timeout`
/// without sending anything.
pub async fn closed_without_answer(stream: &mut TcpStream, timeout: Duration) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(timeout, stream.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

// ---------------------------------------------------------------------------
// The transport header (`transport.l5d.io/v1`)
// ---------------------------------------------------------------------------

/// `transport.l5d.io.Header`, as `proxy/src/transport/header.rs` defines it.
#[derive(Clone, PartialEq, prost::Message)]
struct TransportHeader {
    #[prost(int32, tag = "1")]
    port: i32,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, optional, tag = "3")]
    session_protocol: Option<SessionProtocol>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SessionProtocol {
    #[prost(oneof = "SessionKind", tags = "1, 2")]
    kind: Option<SessionKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum SessionKind {
    #[prost(message, tag = "1")]
    Http1(Empty),
    #[prost(message, tag = "2")]
    Http2(Empty),
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
struct Empty {}

/// A transport header frame naming `port`, announcing HTTP/1: the preface,
/// a big-endian u32 length, then the protobuf message.
pub fn transport_header_h1(port: u16) -> Vec<u8> {
    use prost::Message;
    let msg = TransportHeader {
        port: i32::from(port),
        name: String::new(),
        session_protocol: Some(SessionProtocol {
            kind: Some(SessionKind::Http1(Empty {})),
        }),
    }
    .encode_to_vec();
    let mut frame = b"transport.l5d.io/v1\r\n\r\n".to_vec();
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    frame
}

/// A direct connection to the inbound listener `inbound`, its transport
/// header naming `port` (HTTP/1) already written.
pub async fn direct_connection(inbound: SocketAddr, port: u16) -> TcpStream {
    let mut s = TcpStream::connect(inbound)
        .await
        .expect("connect to the inbound listener");
    s.write_all(&transport_header_h1(port))
        .await
        .expect("write the transport header");
    s
}

// ---------------------------------------------------------------------------
// The mock Destination service
// ---------------------------------------------------------------------------

/// What `Get` says about a name.
#[derive(Clone, Debug)]
enum Endpoints {
    Set(Vec<SocketAddr>),
    NoEndpoints { exists: bool },
}

#[derive(Default)]
struct DstState {
    endpoints: Mutex<HashMap<String, watch::Sender<Endpoints>>>,
    profiles: Mutex<HashMap<String, watch::Sender<DestinationProfile>>>,
    /// Get / GetProfile calls by path.
    get_calls: Mutex<HashMap<String, usize>>,
    profile_calls: Mutex<HashMap<String, usize>>,
    /// Get streams open now, by path.
    open_gets: Mutex<HashMap<String, usize>>,
    /// Bumped on every stop: open streams fail.
    outage: Mutex<Option<watch::Sender<u64>>>,
    stopped: std::sync::atomic::AtomicBool,
}

impl DstState {
    fn outage(&self) -> watch::Receiver<u64> {
        self.outage
            .lock()
            .expect("outage")
            .get_or_insert_with(|| watch::Sender::new(0))
            .subscribe()
    }

    fn bump(map: &Mutex<HashMap<String, usize>>, key: &str, by: isize) {
        let mut m = map.lock().expect("counts");
        let n = m.entry(key.to_string()).or_default();
        *n = n.saturating_add_signed(by);
    }
}

#[derive(Clone)]
struct DstService(Arc<DstState>);

fn weighted(addrs: &[SocketAddr]) -> Vec<api::WeightedAddr> {
    addrs
        .iter()
        .map(|a| api::WeightedAddr {
            addr: Some((*a).into()),
            weight: 10_000,
            ..Default::default()
        })
        .collect()
}

/// The messages that take a stream from `sent` to `now`, as the real
/// controller sends them; updates `sent`.
fn diff(sent: &mut Option<Vec<SocketAddr>>, now: &Endpoints) -> Vec<Update> {
    let up = |u| Update { update: Some(u) };
    match now {
        Endpoints::NoEndpoints { exists } => {
            *sent = Some(Vec::new());
            vec![up(update::Update::NoEndpoints(api::NoEndpoints {
                exists: *exists,
            }))]
        }
        Endpoints::Set(new) if new.is_empty() => {
            *sent = Some(Vec::new());
            vec![up(update::Update::NoEndpoints(api::NoEndpoints {
                exists: true,
            }))]
        }
        Endpoints::Set(new) => {
            let old = sent.take().unwrap_or_default();
            let removed: Vec<_> = old.iter().filter(|a| !new.contains(a)).copied().collect();
            let added: Vec<_> = new.iter().filter(|a| !old.contains(a)).copied().collect();
            let mut msgs = Vec::new();
            if !removed.is_empty() {
                msgs.push(up(update::Update::Remove(api::AddrSet {
                    addrs: removed.into_iter().map(Into::into).collect(),
                })));
            }
            if !added.is_empty() {
                msgs.push(up(update::Update::Add(api::WeightedAddrSet {
                    addrs: weighted(&added),
                    metric_labels: HashMap::new(),
                })));
            }
            *sent = Some(new.clone());
            msgs
        }
    }
}

#[tonic::async_trait]
impl Destination for DstService {
    type GetStream = ReceiverStream<Result<Update, Status>>;
    type GetProfileStream = ReceiverStream<Result<DestinationProfile, Status>>;

    async fn get(
        &self,
        req: tonic::Request<GetDestination>,
    ) -> Result<tonic::Response<Self::GetStream>, Status> {
        let path = req.into_inner().path;
        let state = self.0.clone();
        DstState::bump(&state.get_calls, &path, 1);
        if state.stopped.load(Ordering::SeqCst) {
            return Err(Status::unavailable("destination service stopped"));
        }
        let Some(mut rx) = state
            .endpoints
            .lock()
            .expect("endpoints")
            .get(&path)
            .map(watch::Sender::subscribe)
        else {
            return Err(Status::invalid_argument(format!("unknown name {path}")));
        };
        let mut outage = state.outage();
        let (tx, out) = mpsc::channel(16);
        DstState::bump(&state.open_gets, &path, 1);
        tokio::spawn(async move {
            let mut sent = None;
            'stream: loop {
                let now = rx.borrow_and_update().clone();
                for msg in diff(&mut sent, &now) {
                    if tx.send(Ok(msg)).await.is_err() {
                        break 'stream;
                    }
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { break },
                    _ = outage.changed() => {
                        let _ = tx.send(Err(Status::unavailable("destination service stopped"))).await;
                        break;
                    }
                    _ = tx.closed() => break,
                }
            }
            DstState::bump(&state.open_gets, &path, -1);
        });
        Ok(tonic::Response::new(ReceiverStream::new(out)))
    }

    async fn get_profile(
        &self,
        req: tonic::Request<GetDestination>,
    ) -> Result<tonic::Response<Self::GetProfileStream>, Status> {
        let path = req.into_inner().path;
        let state = self.0.clone();
        DstState::bump(&state.profile_calls, &path, 1);
        if state.stopped.load(Ordering::SeqCst) {
            return Err(Status::unavailable("destination service stopped"));
        }
        let Some(mut rx) = state
            .profiles
            .lock()
            .expect("profiles")
            .get(&path)
            .map(watch::Sender::subscribe)
        else {
            return Err(Status::invalid_argument(format!("no profile for {path}")));
        };
        let mut outage = state.outage();
        let (tx, out) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let now = rx.borrow_and_update().clone();
                if tx.send(Ok(now)).await.is_err() {
                    return;
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    _ = outage.changed() => {
                        let _ = tx.send(Err(Status::unavailable("destination service stopped"))).await;
                        return;
                    }
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(tonic::Response::new(ReceiverStream::new(out)))
    }
}

/// A Destination service the test controls; see the module docs.
pub struct MockDestination {
    /// Its address (kept across restarts).
    pub addr: SocketAddr,
    state: Arc<DstState>,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl MockDestination {
    /// Starts serving on a new loopback port.
    pub async fn start() -> MockDestination {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mock destination");
        let addr = listener.local_addr().expect("mock destination address");
        let state = Arc::new(DstState::default());
        let server = Some(Self::serve(listener, state.clone()));
        MockDestination {
            addr,
            state,
            server,
        }
    }

    fn serve(listener: TcpListener, state: Arc<DstState>) -> (oneshot::Sender<()>, JoinHandle<()>) {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(DestinationServer::new(DstService(state)))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    let _ = rx.await;
                })
                .await;
        });
        (tx, task)
    }

    /// `Get(authority)` answers these endpoints (an empty list is
    /// `NoEndpoints{exists: true}`); open streams get the difference.
    pub fn set_endpoints(&self, authority: &str, addrs: &[SocketAddr]) {
        self.set(authority, Endpoints::Set(addrs.to_vec()));
    }

    /// `Get(authority)` answers `NoEndpoints{exists}`.
    pub fn set_no_endpoints(&self, authority: &str, exists: bool) {
        self.set(authority, Endpoints::NoEndpoints { exists });
    }

    fn set(&self, authority: &str, e: Endpoints) {
        let mut m = self.state.endpoints.lock().expect("endpoints");
        match m.get(authority) {
            Some(tx) => {
                tx.send_replace(e);
            }
            None => {
                m.insert(authority.to_string(), watch::Sender::new(e));
            }
        }
    }

    /// `GetProfile(target)` answers `profile`; open streams get it too.
    pub fn set_profile(&self, target: &str, profile: DestinationProfile) {
        let mut m = self.state.profiles.lock().expect("profiles");
        match m.get(target) {
            Some(tx) => {
                tx.send_replace(profile);
            }
            None => {
                m.insert(target.to_string(), watch::Sender::new(profile));
            }
        }
    }

    /// How many `Get` calls named `authority`.
    pub fn get_calls(&self, authority: &str) -> usize {
        let m = self.state.get_calls.lock().expect("counts");
        m.get(authority).copied().unwrap_or_default()
    }

    /// How many `GetProfile` calls named `target`.
    pub fn profile_calls(&self, target: &str) -> usize {
        let m = self.state.profile_calls.lock().expect("counts");
        m.get(target).copied().unwrap_or_default()
    }

    /// How many `Get` streams for `authority` are open now.
    pub fn open_gets(&self, authority: &str) -> usize {
        let m = self.state.open_gets.lock().expect("counts");
        m.get(authority).copied().unwrap_or_default()
    }

    /// An outage: open streams fail with `Unavailable`, the port closes.
    pub async fn stop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        let _ = self.state.outage.lock().expect("outage").as_ref().map(|o| {
            o.send_modify(|g| *g += 1);
        });
        if let Some((tx, mut task)) = self.server.take() {
            let _ = tx.send(());
            // Graceful shutdown ends once the failed streams are gone;
            // a stuck connection is not worth waiting for.
            if tokio::time::timeout(Duration::from_secs(3), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Serves again on the same port, from the same state.
    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind the mock destination");
        self.state.stopped.store(false, Ordering::SeqCst);
        self.server = Some(Self::serve(listener, self.state.clone()));
    }
}

impl Drop for MockDestination {
    fn drop(&mut self) {
        if let Some((tx, task)) = self.server.take() {
            let _ = tx.send(());
            task.abort();
        }
    }
}

/// A retry budget of `ratio` plus `min_per_sec` over `ttl_secs`.
pub fn retry_budget(ratio: f32, min_per_sec: u32, ttl_secs: i64) -> api::RetryBudget {
    api::RetryBudget {
        retry_ratio: ratio,
        min_retries_per_second: min_per_sec,
        ttl: Some(prost_types::Duration {
            seconds: ttl_secs,
            nanos: 0,
        }),
    }
}

/// A route matching `method` and the path regex `path`.
pub fn route(method: http::Method, path: &str, retryable: bool) -> api::Route {
    use api::request_match::Match;
    let m = |m| api::RequestMatch { r#match: Some(m) };
    api::Route {
        condition: Some(m(Match::All(api::request_match::Seq {
            matches: vec![
                m(Match::Method(method.into())),
                m(Match::Path(api::PathMatch { regex: path.into() })),
            ],
        }))),
        metrics_labels: [("route".to_string(), path.to_string())].into(),
        is_retryable: retryable,
        ..Default::default()
    }
}

/// Distinct values of `f` over `items`.
pub fn distinct<T, K: std::hash::Hash + Eq>(items: &[T], f: impl Fn(&T) -> K) -> usize {
    items.iter().map(f).collect::<HashSet<_>>().len()
}
