//! An endpoint's HTTP connections: idle HTTP/1 connections reused last in,
//! first out, and one multiplexed HTTP/2 connection, all counted against
//! the endpoint's connection limit.
//!
//! The pool belongs to the endpoint, so it is keyed by what the proxy
//! chose (address, metadata, protocol), never by anything a client sends:
//! a client changing its `Host` header on every request still shares the
//! endpoint's connections. (hyper-util's pooled client keys connections by
//! the request's authority, which is why wisp does not use it.)
//!
//! When the limit is reached a request waits for a connection to come back
//! or close, for at most the queue timeout, then fails with
//! [`PoolError::Busy`]. Idle HTTP/1 connections are closed after the idle
//! timeout by a reaper task that runs only while some are idle.

use std::io;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::balance::connect::ClientIo;

/// A request body as the pool sends it: any body, boxed, so that the
/// balancer does not depend on the HTTP layer's body types.
pub(crate) type WireBody = http_body_util::combinators::UnsyncBoxBody<
    bytes::Bytes,
    Box<dyn std::error::Error + Send + Sync>,
>;

/// How an endpoint's connections are pooled and bounded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolSettings {
    /// Idle HTTP/1 connections kept at most; 0 also stops HTTP/2
    /// connections from being shared.
    pub(crate) max_idle: usize,
    /// Idle HTTP/1 connections are closed after this long.
    pub(crate) idle_timeout: Duration,
    /// Connections open at once at most (HTTP and opaque together).
    pub(crate) max_connections: usize,
    /// How long a request waits for a connection when all are busy.
    pub(crate) queue_timeout: Duration,
}

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    /// Connecting failed.
    #[error("connect failed")]
    Connect(#[source] io::Error),
    /// The HTTP handshake on a new connection failed.
    #[error("HTTP handshake failed")]
    Handshake(#[source] hyper::Error),
    /// Every connection the endpoint may have is busy.
    #[error("all {0} connections to the endpoint are busy")]
    Busy(usize),
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No connection.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The connection failed during the exchange.
    #[error(transparent)]
    Request(#[from] hyper::Error),
}

struct Idle {
    sender: http1::SendRequest<WireBody>,
    since: Instant,
}

struct Inner {
    settings: PoolSettings,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
    reaper_running: Mutex<bool>,
    h2: Mutex<Option<http2::SendRequest<WireBody>>>,
    h2_connecting: tokio::sync::Mutex<()>,
    /// Signalled when a connection becomes idle or closes.
    freed: Notify,
}

/// One endpoint's connections.
pub(crate) struct Pool(Arc<Inner>);

impl Pool {
    /// An empty pool.
    pub(crate) fn new(settings: PoolSettings) -> Self {
        Pool(Arc::new(Inner {
            permits: Arc::new(Semaphore::new(settings.max_connections)),
            settings,
            idle: Mutex::default(),
            reaper_running: Mutex::new(false),
            h2: Mutex::default(),
            h2_connecting: tokio::sync::Mutex::new(()),
            freed: Notify::new(),
        }))
    }

    /// A slot for one more connection, waiting up to the queue timeout
    /// when all are taken (an HTTP/1 connection coming back idle also ends
    /// the wait: `on_idle` is then asked for it).
    pub(crate) async fn permit(&self) -> Result<OwnedSemaphorePermit, PoolError> {
        if let Ok(p) = self.0.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        let wait = self.0.permits.clone().acquire_owned();
        match tokio::time::timeout(self.0.settings.queue_timeout, wait).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(PoolError::Busy(self.0.settings.max_connections)),
        }
    }

    /// Sends `req` (already in the shape the wire needs) on a pooled
    /// connection, opening one with `connect` if none is free.
    pub(crate) async fn send<C, F>(
        &self,
        req: Request<WireBody>,
        http2: bool,
        connect: C,
    ) -> Result<Response<Incoming>, SendError>
    where
        C: FnOnce() -> F,
        F: std::future::Future<Output = io::Result<ClientIo>>,
    {
        if http2 {
            let mut sender = self.h2_sender(connect).await?;
            return Ok(sender.send_request(req).await?);
        }
        let mut sender = self.h1_sender(connect).await?;
        let rsp = sender.send_request(req).await?;
        // The connection is busy until the response body has been read;
        // it goes back to the pool once hyper says it is ready again.
        let pool = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                if let Some(pool) = pool.upgrade() {
                    Inner::put_idle(&pool, sender);
                }
            }
        });
        Ok(rsp)
    }

    async fn h1_sender<C, F>(&self, connect: C) -> Result<http1::SendRequest<WireBody>, PoolError>
    where
        C: FnOnce() -> F,
        F: std::future::Future<Output = io::Result<ClientIo>>,
    {
        let deadline = Instant::now() + self.0.settings.queue_timeout;
        let permit = loop {
            if let Some(s) = self.0.take_idle() {
                return Ok(s);
            }
            // Register interest before the last check so that a connection
            // freed in between is not missed.
            let freed = self.0.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(s) = self.0.take_idle() {
                return Ok(s);
            }
            if let Ok(p) = self.0.permits.clone().try_acquire_owned() {
                break p;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(PoolError::Busy(self.0.settings.max_connections));
            }
        };
        let io = connect().await.map_err(PoolError::Connect)?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(PoolError::Handshake)?;
        let pool = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "endpoint connection ended with an error");
            }
            drop(permit);
            if let Some(pool) = pool.upgrade() {
                pool.freed.notify_one();
            }
        });
        Ok(sender)
    }

    async fn h2_sender<C, F>(&self, connect: C) -> Result<http2::SendRequest<WireBody>, PoolError>
    where
        C: FnOnce() -> F,
        F: std::future::Future<Output = io::Result<ClientIo>>,
    {
        // With no idle connections allowed, nothing is shared either: each
        // request has its own connection, closed when its stream ends.
        let share = self.0.settings.max_idle > 0;
        if let Some(s) = self.0.h2_current().filter(|_| share) {
            return Ok(s);
        }
        // One shared connect at a time; the others wait and share its result.
        let _connecting = match share {
            true => Some(self.0.h2_connecting.lock().await),
            false => None,
        };
        if let Some(s) = self.0.h2_current().filter(|_| share) {
            return Ok(s);
        }
        let permit = self.permit().await?;
        let io = connect().await.map_err(PoolError::Connect)?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(io))
            .await
            .map_err(PoolError::Handshake)?;
        let pool = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "endpoint HTTP/2 connection ended with an error");
            }
            drop(permit);
            if let Some(pool) = pool.upgrade() {
                pool.freed.notify_one();
            }
        });
        if share {
            if let Ok(mut h2) = self.0.h2.lock() {
                *h2 = Some(sender.clone());
            }
        }
        Ok(sender)
    }

    /// Idle HTTP/1 connections held (for tests).
    #[cfg(test)]
    pub(crate) fn idle_len(&self) -> usize {
        self.0.idle.lock().map(|i| i.len()).unwrap_or_default()
    }
}

impl Inner {
    fn h2_current(&self) -> Option<http2::SendRequest<WireBody>> {
        let h2 = self.h2.lock().ok()?;
        h2.as_ref().filter(|s| !s.is_closed()).cloned()
    }

    /// The most recently used idle connection that is still open and fresh.
    fn take_idle(&self) -> Option<http1::SendRequest<WireBody>> {
        let mut idle = self.idle.lock().ok()?;
        let now = Instant::now();
        while let Some(i) = idle.pop() {
            if i.sender.is_ready()
                && now.saturating_duration_since(i.since) < self.settings.idle_timeout
            {
                return Some(i.sender);
            }
        }
        None
    }

    fn put_idle(this: &Arc<Self>, sender: http1::SendRequest<WireBody>) {
        let Ok(mut idle) = this.idle.lock() else {
            return;
        };
        if idle.len() >= this.settings.max_idle {
            return;
        }
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
        drop(idle);
        this.freed.notify_one();
        Self::start_reaper(this);
    }

    /// Closes idle connections past the idle timeout; runs while any are idle.
    fn start_reaper(this: &Arc<Self>) {
        {
            let Ok(mut running) = this.reaper_running.lock() else {
                return;
            };
            if *running {
                return;
            }
            *running = true;
        }
        let weak: Weak<Inner> = Arc::downgrade(this);
        let idle_timeout = this.settings.idle_timeout;
        tokio::spawn(async move {
            let mut wake = Instant::now() + idle_timeout;
            loop {
                tokio::time::sleep_until(wake).await;
                let Some(pool) = weak.upgrade() else { return };
                let now = Instant::now();
                let Ok(mut idle) = pool.idle.lock() else {
                    return;
                };
                // Oldest first: the vector is in the order they went idle.
                idle.retain(|i| now.saturating_duration_since(i.since) < idle_timeout);
                match idle.first() {
                    Some(oldest) => wake = oldest.since + idle_timeout,
                    None => {
                        // Cleared under the idle lock, so a connection
                        // going idle now starts a new reaper.
                        if let Ok(mut running) = pool.reaper_running.lock() {
                            *running = false;
                        }
                        return;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Empty};
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    use super::*;
    use crate::balance::endpoint::test_factory;

    /// An HTTP/1 server counting the connections it accepts and echoing
    /// the request's Host header.
    async fn backend(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (a, o) = (accepted.clone(), open.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let o = o.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| async move {
                        tokio::time::sleep(delay).await;
                        let host = req
                            .headers()
                            .get("host")
                            .map(|h| h.as_bytes().to_vec())
                            .unwrap_or_default();
                        Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(host),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (addr, accepted, open)
    }

    fn request(host: &str) -> Request<WireBody> {
        Request::builder()
            .uri("/")
            .header("host", host)
            .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
            .expect("request")
    }

    #[tokio::test]
    async fn connections_are_reused_whatever_the_host() {
        let (addr, accepted, _) = backend(Duration::ZERO).await;
        let ep = test_factory().inbound(addr);
        for i in 0..50 {
            let host = format!("host-{i}.example");
            let rsp = ep.send(request(&host), false).await.expect("response");
            let body = rsp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(body, host.as_bytes(), "the Host header reached the backend");
            // Wait for the connection to be back in the pool before the next request.
            let deadline = Instant::now() + Duration::from_secs(2);
            while ep.pool().idle_len() == 0 && Instant::now() < deadline {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_endpoint_connection_limit_holds_under_concurrency() {
        let (addr, accepted, open) = backend(Duration::from_millis(100)).await;
        // test_factory allows 4 connections per endpoint.
        let ep = test_factory().inbound(addr);
        let peak = Arc::new(AtomicUsize::new(0));
        let watcher = {
            let (open, peak) = (open.clone(), peak.clone());
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(open.load(Ordering::SeqCst), Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let sends: Vec<_> = (0..12)
            .map(|i| {
                let ep = ep.clone();
                tokio::spawn(async move {
                    let rsp = ep.send(request(&format!("h{i}")), false).await?;
                    let _ = rsp.into_body().collect().await;
                    Ok::<_, SendError>(())
                })
            })
            .collect();
        let mut results = Vec::new();
        for s in sends {
            results.push(s.await.expect("task"));
        }
        watcher.abort();
        assert!(
            results.iter().all(Result::is_ok),
            "every request got a response"
        );
        assert!(
            peak.load(Ordering::SeqCst) <= 4,
            "peak {}",
            peak.load(Ordering::SeqCst)
        );
        assert!(accepted.load(Ordering::SeqCst) <= 4);
    }
}
