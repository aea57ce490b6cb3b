//! The body of every response the proxy returns: either the upstream body,
//! streamed frame by frame and observed for metrics, or a small local body
//! (proxy-generated errors, admin pages).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::metrics::{Class, HttpMetrics, ResponseKey};

/// gRPC status codes counted as failures by default: UNKNOWN, DEADLINE_EXCEEDED,
/// PERMISSION_DENIED, INTERNAL, UNAVAILABLE, DATA_LOSS.
const GRPC_FAILURES: [u32; 6] = [2, 4, 7, 13, 14, 15];

/// Records one response in metrics when its stream ends (or is dropped).
pub struct Recorder {
    metrics: Arc<HttpMetrics>,
    status: u16,
    latency: Duration,
    grpc: bool,
    grpc_status: Option<u32>,
}

impl Recorder {
    /// A recorder for a response with `status`, received after `latency`.
    pub fn new(
        metrics: Arc<HttpMetrics>,
        status: u16,
        latency: Duration,
        grpc: bool,
        headers: &HeaderMap,
    ) -> Self {
        Recorder {
            metrics,
            status,
            latency,
            grpc,
            grpc_status: grpc_status(headers),
        }
    }

    fn finish(self, error: &'static str) {
        let grpc_status = if self.grpc { self.grpc_status } else { None };
        let failed = !error.is_empty()
            || match grpc_status {
                Some(code) => GRPC_FAILURES.contains(&code),
                None => self.status >= 500,
            };
        let class = if failed {
            Class::Failure
        } else {
            Class::Success
        };
        self.metrics.response(
            ResponseKey {
                status: self.status,
                grpc_status,
                class,
                error,
            },
            self.latency,
        );
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
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
