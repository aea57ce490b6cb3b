//! The body of every response the proxy returns: either the upstream body,
//! streamed frame by frame and observed for metrics, or a small local body
//! (proxy-generated errors, admin pages).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::metrics::{Class, HttpMetrics, ResponseKey};
use crate::routes::{grpc_status, Route, GRPC_FAILURES};

/// Records one response in metrics when its stream ends (or is dropped):
/// in the endpoint's series and, for profile routes, the route's series,
/// classified by the route's response classes.
pub struct Recorder {
    sinks: [Option<(Arc<HttpMetrics>, Duration)>; 3],
    status: StatusCode,
    grpc: bool,
    grpc_status: Option<u32>,
    route: Option<Arc<Route>>,
}

impl Recorder {
    /// A recorder for a response with `status`, received after `latency`.
    pub fn new(
        metrics: Arc<HttpMetrics>,
        status: StatusCode,
        latency: Duration,
        grpc: bool,
        headers: &HeaderMap,
    ) -> Self {
        Recorder {
            sinks: [Some((metrics, latency)), None, None],
            status,
            grpc,
            grpc_status: grpc_status(headers),
            route: None,
        }
    }

    /// Also records into `metrics`, with its own `latency`.
    pub fn add_sink(&mut self, metrics: Arc<HttpMetrics>, latency: Duration) {
        if let Some(slot) = self.sinks.iter_mut().find(|s| s.is_none()) {
            *slot = Some((metrics, latency));
        }
    }

    /// Classifies with `route`'s response classes.
    pub fn classify_with(&mut self, route: Arc<Route>) {
        self.route = Some(route);
    }

    fn finish(self, error: &'static str) {
        let grpc_status = if self.grpc { self.grpc_status } else { None };
        let failed = !error.is_empty()
            || match &self.route {
                Some(r) => r.is_failure(self.status, grpc_status),
                None => match grpc_status {
                    Some(code) => GRPC_FAILURES.contains(&code),
                    None => self.status.is_server_error(),
                },
            };
        let class = if failed {
            Class::Failure
        } else {
            Class::Success
        };
        let key = ResponseKey {
            status: self.status.as_u16(),
            grpc_status,
            class,
            error,
        };
        for (metrics, latency) in self.sinks.into_iter().flatten() {
            metrics.response(key, latency);
        }
    }
}

/// A response body.
pub enum ProxyBody {
    /// The upstream response body, recorded when it ends.
    Upstream {
        /// The body.
        inner: Incoming,
        /// Records the response once, at end of stream or drop.
        recorder: Option<Recorder>,
    },
    /// A complete body produced by the proxy.
    Local(Option<Bytes>),
}

impl ProxyBody {
    /// A local body with `text`.
    pub fn text(text: impl Into<Bytes>) -> Self {
        ProxyBody::Local(Some(text.into()))
    }

    /// An empty body.
    pub fn empty() -> Self {
        ProxyBody::Local(None)
    }

    /// The recorder of an upstream response, if it has not finished yet.
    pub fn recorder(&mut self) -> Option<&mut Recorder> {
        match self {
            ProxyBody::Upstream { recorder, .. } => recorder.as_mut(),
            ProxyBody::Local(_) => None,
        }
    }

    /// Records the response now, as complete (a response the proxy discards,
    /// e.g. a failed attempt that is retried).
    pub fn record_now(&mut self) {
        if let Some(r) = self.recorder_take() {
            r.finish("");
        }
    }

    fn recorder_take(&mut self) -> Option<Recorder> {
        match self {
            ProxyBody::Upstream { recorder, .. } => recorder.take(),
            ProxyBody::Local(_) => None,
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        if let ProxyBody::Upstream { recorder, .. } = self {
            if let Some(r) = recorder.take() {
                r.finish("stream closed early");
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Local(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Upstream { inner, recorder } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let (Some(t), Some(r)) = (frame.trailers_ref(), recorder.as_mut()) {
                            if let Some(s) = grpc_status(t) {
                                r.grpc_status = Some(s);
                            }
                        }
                        if inner.is_end_stream() {
                            if let Some(r) = recorder.take() {
                                r.finish("");
                            }
                        }
                    }
                    Poll::Ready(None) => {
                        if let Some(r) = recorder.take() {
                            r.finish("");
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        if let Some(r) = recorder.take() {
                            r.finish("stream error");
                        }
                    }
                    Poll::Pending => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Local(b) => b.is_none(),
            ProxyBody::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Local(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Local(None) => SizeHint::with_exact(0),
            ProxyBody::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}
