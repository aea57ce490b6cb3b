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

use crate::http::classify::{grpc_status, is_failure_by_default, Classify};
use crate::tap::TapResponse;
use crate::telemetry::metrics::{Class, HttpMetrics, ResponseKey};

/// Records one response in metrics when its stream ends (or is dropped):
/// in the endpoint's series and any other sinks (a route's series), with
/// the classification the caller supplied, else the default one.
pub(crate) struct Recorder {
    sinks: [Option<(Arc<HttpMetrics>, Duration)>; 3],
    status: StatusCode,
    grpc: bool,
    grpc_status: Option<u32>,
    classify: Option<Arc<dyn Classify>>,
}

impl Recorder {
    /// A recorder for a response with `status`, received after `latency`.
    pub(crate) fn new(
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
            classify: None,
        }
    }

    /// Also records into `metrics`, with its own `latency`.
    pub(crate) fn add_sink(&mut self, metrics: Arc<HttpMetrics>, latency: Duration) {
        if let Some(slot) = self.sinks.iter_mut().find(|s| s.is_none()) {
            *slot = Some((metrics, latency));
        }
    }

    /// Classifies with `classify` instead of the default rules.
    pub(crate) fn classify_with(&mut self, classify: Arc<dyn Classify>) {
        self.classify = Some(classify);
    }

    fn finish(self, error: &'static str) {
        let grpc_status = if self.grpc { self.grpc_status } else { None };
        let failed = !error.is_empty()
            || match &self.classify {
                Some(c) => c.is_failure(self.status, grpc_status),
                None => is_failure_by_default(self.status, grpc_status),
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
pub(crate) enum ResponseBody {
    /// The upstream response body, recorded when it ends.
    Upstream {
        /// The body.
        inner: Incoming,
        /// Records the response once, at end of stream or drop.
        recorder: Option<Recorder>,
        /// Tells the taps that chose the request how the response ends.
        tap: Option<TapResponse>,
    },
    /// A complete body produced by the proxy.
    Local(Option<Bytes>),
}

impl ResponseBody {
    /// A local body with `text`.
    pub(crate) fn text(text: impl Into<Bytes>) -> Self {
        ResponseBody::Local(Some(text.into()))
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        ResponseBody::Local(None)
    }

    /// The recorder of an upstream response, if it has not finished yet.
    pub(crate) fn recorder(&mut self) -> Option<&mut Recorder> {
        match self {
            ResponseBody::Upstream { recorder, .. } => recorder.as_mut(),
            ResponseBody::Local(_) => None,
        }
    }

    /// Records the response now, as complete (a response the proxy discards,
    /// e.g. a failed attempt that is retried).
    pub(crate) fn record_now(&mut self) {
        if let Some(r) = self.recorder_take() {
            r.finish("");
        }
    }

    fn recorder_take(&mut self) -> Option<Recorder> {
        match self {
            ResponseBody::Upstream { recorder, .. } => recorder.take(),
            ResponseBody::Local(_) => None,
        }
    }
}

/// The HTTP/2 reset code behind a body error (`INTERNAL_ERROR` when it is
/// not a reset).
fn reset_code(e: &hyper::Error) -> u32 {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(reason) = s.downcast_ref::<h2::Error>().and_then(h2::Error::reason) {
            return reason.into();
        }
        source = s.source();
    }
    h2::Reason::INTERNAL_ERROR.into()
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let ResponseBody::Upstream { recorder, .. } = self {
            if let Some(r) = recorder.take() {
                r.finish("stream closed early");
            }
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ResponseBody::Local(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Upstream {
                inner,
                recorder,
                tap,
            } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        let trailers = frame.trailers_ref();
                        let grpc = trailers.and_then(grpc_status);
                        if let (Some(s), Some(r)) = (grpc, recorder.as_mut()) {
                            r.grpc_status = Some(s);
                        }
                        if let (Some(d), Some(t)) = (frame.data_ref(), tap.as_mut()) {
                            t.data(d.len());
                        }
                        if inner.is_end_stream() || trailers.is_some() {
                            if let Some(t) = tap.take() {
                                t.end(trailers, grpc, None);
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
                        if let Some(t) = tap.take() {
                            t.end(None, None, None);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        if let Some(r) = recorder.take() {
                            r.finish("stream error");
                        }
                        if let Some(t) = tap.take() {
                            t.end(None, None, Some(reset_code(e)));
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
            ResponseBody::Local(b) => b.is_none(),
            ResponseBody::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Local(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ResponseBody::Local(None) => SizeHint::with_exact(0),
            ResponseBody::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}
