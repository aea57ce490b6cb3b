//! The body of a request the proxy forwards: streamed from the client, or
//! replayed from a buffer (requests kept for retries).
//!
//! A client's body can fail on its own: bytes that are not valid chunked
//! encoding, a connection that closes mid-body, or (HTTP/1) a body that
//! stalls for longer than the body timeout, which would otherwise pin an
//! application connection forever. Such a failure is the client's fault:
//! it is recorded in a [`ClientFaults`] handle so that the forwarder can
//! answer 400/408 without blaming (or naming) the endpoint.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// The error type of a forwarded body.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a client's request body failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientFault {
    /// The client sent nothing for the body timeout.
    #[error("request body stalled for {0:?}")]
    Stalled(Duration),
    /// The body was malformed or cut short.
    #[error("invalid request body")]
    Invalid(#[source] hyper::Error),
}

/// Where a client body records its failure, for whoever sent the request.
#[derive(Clone, Default)]
pub(crate) struct ClientFaults(Arc<Mutex<Option<ClientFault>>>);

impl ClientFaults {
    /// The failure, if the client's body failed.
    pub(crate) fn take(&self) -> Option<ClientFault> {
        self.0.lock().ok()?.take()
    }

    fn record(&self, fault: ClientFault) {
        if let Ok(mut f) = self.0.lock() {
            f.get_or_insert(fault);
        }
    }
}

/// A body as the client sends it, with its stall timeout.
pub(crate) struct ClientBody {
    inner: Incoming,
    stall: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    faults: ClientFaults,
}

impl ClientBody {
    fn poll_client(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(t), Some(stall)) = (self.timer.as_mut(), self.stall) {
                    t.as_mut().reset(Instant::now() + stall);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let msg = e.to_string();
                self.faults.record(ClientFault::Invalid(e));
                Poll::Ready(Some(Err(msg.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let Some(stall) = self.stall else {
                    return Poll::Pending;
                };
                // The timer is made only when the body first waits.
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.faults.record(ClientFault::Stalled(stall));
                        Poll::Ready(Some(Err(ClientFault::Stalled(stall).into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

/// A request body.
pub(crate) enum RequestBody {
    /// Streamed from the client as it arrives.
    Streaming(ClientBody),
    /// A complete body kept in memory (replayable by cloning).
    Buffered {
        /// The data, until sent.
        data: Option<Bytes>,
        /// The trailers, until sent.
        trailers: Option<HeaderMap>,
    },
    /// What was buffered before the body turned out too large, then the rest.
    Prefixed {
        /// The data read so far, until sent.
        prefix: Option<Bytes>,
        /// The rest of the client's body.
        rest: ClientBody,
    },
}

/// The outcome of trying to buffer a body.
pub(crate) enum Buffered {
    /// The whole body, within the limit: can be replayed.
    Complete(Bytes, Option<HeaderMap>),
    /// Too large (or failed): forward it once, as it is.
    Streaming(RequestBody),
}

impl RequestBody {
    /// The client's body; `stall` bounds how long it may send nothing.
    pub(crate) fn from_client(inner: Incoming, stall: Option<Duration>) -> Self {
        RequestBody::Streaming(ClientBody {
            inner,
            stall,
            timer: None,
            faults: ClientFaults::default(),
        })
    }

    /// A copy of a complete body.
    pub(crate) fn replay(data: &Bytes, trailers: &Option<HeaderMap>) -> Self {
        RequestBody::Buffered {
            data: Some(data.clone()),
            trailers: trailers.clone(),
        }
    }

    /// Where a failure of the client's body is recorded (none for a
    /// buffered body, which cannot fail).
    pub(crate) fn client_faults(&self) -> Option<ClientFaults> {
        match self {
            RequestBody::Streaming(c) | RequestBody::Prefixed { rest: c, .. } => {
                Some(c.faults.clone())
            }
            RequestBody::Buffered { .. } => None,
        }
    }

    /// Reads the body into memory if it ends within `limit` bytes.
    pub(crate) async fn buffer(self, limit: usize) -> Buffered {
        let RequestBody::Streaming(mut client) = self else {
            return Buffered::Streaming(self);
        };
        if client.inner.is_end_stream() {
            return Buffered::Complete(Bytes::new(), None);
        }
        if client.inner.size_hint().lower() > limit as u64 {
            return Buffered::Streaming(RequestBody::Streaming(client));
        }
        let mut buf = BytesMut::new();
        loop {
            match std::future::poll_fn(|cx| client.poll_client(cx)).await {
                None => return Buffered::Complete(buf.freeze(), None),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        buf.extend_from_slice(&data);
                        if buf.len() > limit {
                            return Buffered::Streaming(RequestBody::Prefixed {
                                prefix: Some(buf.freeze()),
                                rest: client,
                            });
                        }
                    }
                    Err(frame) => {
                        let trailers = frame.into_trailers().ok();
                        return Buffered::Complete(buf.freeze(), trailers);
                    }
                },
                // The client's body failed (recorded in its faults): send
                // what we have; the upstream request fails the same way.
                Some(Err(_)) => {
                    return Buffered::Streaming(RequestBody::Prefixed {
                        prefix: Some(buf.freeze()),
                        rest: client,
                    })
                }
            }
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Streaming(b) => b.poll_client(cx),
            RequestBody::Buffered { data, trailers } => {
                if let Some(d) = data.take().filter(|d| !d.is_empty()) {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            RequestBody::Prefixed { prefix, rest } => match prefix.take() {
                Some(p) if !p.is_empty() => Poll::Ready(Some(Ok(Frame::data(p)))),
                _ => rest.poll_client(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Streaming(b) => b.inner.is_end_stream(),
            RequestBody::Buffered { data, trailers } => {
                data.as_ref().is_none_or(|d| d.is_empty()) && trailers.is_none()
            }
            RequestBody::Prefixed { prefix, rest } => {
                prefix.as_ref().is_none_or(|p| p.is_empty()) && rest.inner.is_end_stream()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Streaming(b) => b.inner.size_hint(),
            RequestBody::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            RequestBody::Prefixed { prefix, rest } => {
                let p = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let mut h = SizeHint::new();
                h.set_lower(rest.inner.size_hint().lower() + p);
                if let Some(u) = rest.inner.size_hint().upper() {
                    h.set_upper(u + p);
                }
                h
            }
        }
    }
}
