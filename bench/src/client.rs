//! HTTP client connections built directly on hyper's low-level `conn` API.

use crate::stats::Outcome;
use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use tokio::net::TcpStream;

/// How long establishing one connection (TCP + HTTP handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Wire protocol of the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 with keep-alive, one request per connection at a time.
    Http1,
    /// HTTP/2 over cleartext with prior knowledge, multiplexed.
    Http2,
}

impl Protocol {
    /// Short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
        }
    }
}

/// Where and what to send: `GET /` with a fixed Host / authority.
#[derive(Debug, Clone)]
pub struct Target {
    /// Socket address connections are made to.
    pub addr: SocketAddr,
    /// Host header value (HTTP/1.1) or `:authority` (HTTP/2).
    pub host: String,
    /// Protocol spoken.
    pub protocol: Protocol,
    host_value: HeaderValue,
    uri: Uri,
}

impl Target {
    /// Validates the address and host and prepares the request template.
    pub fn new(addr: &str, host: &str, protocol: Protocol) -> Result<Self> {
        let addr = resolve(addr)?;
        let host_value =
            HeaderValue::from_str(host).with_context(|| format!("invalid host {host:?}"))?;
        let uri = match protocol {
            Protocol::Http1 => Uri::from_static("/"),
            Protocol::Http2 => format!("http://{host}/")
                .parse()
                .with_context(|| format!("host {host:?} is not a valid authority"))?,
        };
        Ok(Self {
            addr,
            host: host.to_string(),
            protocol,
            host_value,
            uri,
        })
    }

    /// A fresh `GET /` request.
    pub fn request(&self) -> Request<Empty<Bytes>> {
        let mut req = Request::new(Empty::new());
        *req.uri_mut() = self.uri.clone();
        if self.protocol == Protocol::Http1 {
            req.headers_mut().insert(HOST, self.host_value.clone());
        }
        req
    }

    /// Opens one connection (TCP_NODELAY) and spawns its driver task.
    ///
    /// The error is the kind used in reports: `connect`, `connect_timeout`
    /// or `handshake`.
    pub async fn connect(&self) -> Result<Sender, &'static str> {
        let fut = async {
            let tcp = TcpStream::connect(self.addr).await.map_err(|_| "connect")?;
            tcp.set_nodelay(true).map_err(|_| "connect")?;
            let io = TokioIo::new(tcp);
            let inner = match self.protocol {
                Protocol::Http1 => {
                    let (send, conn) = http1::handshake(io).await.map_err(|_| "handshake")?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    Inner::H1(send)
                }
                Protocol::Http2 => {
                    let (send, conn) = http2::Builder::new(TokioExecutor::new())
                        .handshake(io)
                        .await
                        .map_err(|_| "handshake")?;
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    Inner::H2(send)
                }
            };
            Ok(Sender {
                inner,
                broken: false,
            })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .unwrap_or(Err("connect_timeout"))
    }
}

/// Resolves `host:port` (a literal socket address or a name).
fn resolve(addr: &str) -> Result<SocketAddr> {
    if let Ok(sa) = addr.parse() {
        return Ok(sa);
    }
    addr.to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .ok_or_else(|| anyhow!("{addr} resolved to no address"))
}

enum Inner {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

/// The sending half of one client connection.
pub struct Sender {
    inner: Inner,
    broken: bool,
}

impl Sender {
    /// True when the connection can no longer be used and must be replaced.
    pub fn is_closed(&self) -> bool {
        self.broken
            || match &self.inner {
                Inner::H1(s) => s.is_closed(),
                Inner::H2(s) => s.is_closed(),
            }
    }

    /// Another handle on the same HTTP/2 connection (`None` for HTTP/1.1).
    pub fn share(&self) -> Option<Sender> {
        match &self.inner {
            Inner::H1(_) => None,
            Inner::H2(s) => Some(Sender {
                inner: Inner::H2(s.clone()),
                broken: false,
            }),
        }
    }

    /// Sends `req`, reads the whole response body, and classifies the result.
    /// Everything, including waiting for the connection to be ready, is
    /// bounded by `timeout`.
    pub async fn send(&mut self, req: Request<Empty<Bytes>>, timeout: Duration) -> Outcome {
        let fut = async {
            let resp = match &mut self.inner {
                Inner::H1(s) => {
                    if s.ready().await.is_err() {
                        return Outcome::Failed("closed");
                    }
                    s.send_request(req).await
                }
                Inner::H2(s) => {
                    if s.ready().await.is_err() {
                        return Outcome::Failed("closed");
                    }
                    s.send_request(req).await
                }
            };
            let resp = match resp {
                Ok(resp) => resp,
                Err(e) => return Outcome::Failed(classify(&e)),
            };
            let status = resp.status();
            if resp.into_body().collect().await.is_err() {
                return Outcome::Failed("body");
            }
            if status.is_success() {
                Outcome::Ok
            } else {
                Outcome::Status(status.as_u16())
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(outcome) => {
                if matches!(outcome, Outcome::Failed(_)) {
                    self.broken = matches!(self.inner, Inner::H1(_));
                }
                outcome
            }
            Err(_) => {
                // An HTTP/1.1 connection with a request still in flight
                // cannot be reused; an HTTP/2 stream is simply reset.
                self.broken = matches!(self.inner, Inner::H1(_));
                Outcome::Failed("timeout")
            }
        }
    }
}

/// Short kind name for a hyper error.
fn classify(e: &hyper::Error) -> &'static str {
    if e.is_canceled() {
        "canceled"
    } else if e.is_closed() {
        "closed"
    } else if e.is_incomplete_message() {
        "incomplete"
    } else if e.is_parse() {
        "parse"
    } else if e.is_timeout() {
        "timeout"
    } else {
        "protocol"
    }
}
