//! The body of a request the proxy forwards: streamed from the client, or
//! replayed from a buffer (requests kept for retries).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// A request body.
pub enum RequestBody {
    /// Streamed from the client as it arrives.
    Streaming(Incoming),
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
        rest: Incoming,
    },
}

/// The outcome of trying to buffer a body.
pub enum Buffered {
    /// The whole body, within the limit: can be replayed.
    Complete(Bytes, Option<HeaderMap>),
    /// Too large (or failed): forward it once, as it is.
    Streaming(RequestBody),
}

impl RequestBody {
    /// A copy of a complete body.
    pub fn replay(data: &Bytes, trailers: &Option<HeaderMap>) -> Self {
        RequestBody::Buffered {
            data: Some(data.clone()),
            trailers: trailers.clone(),
        }
    }

    /// Reads `body` into memory if it ends within `limit` bytes.
    pub async fn buffer(mut body: Incoming, limit: usize) -> Buffered {
        if body.is_end_stream() {
            return Buffered::Complete(Bytes::new(), None);
        }
        if body.size_hint().lower() > limit as u64 {
            return Buffered::Streaming(RequestBody::Streaming(body));
        }
        let mut buf = BytesMut::new();
        loop {
            match body.frame().await {
                None => return Buffered::Complete(buf.freeze(), None),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        buf.extend_from_slice(&data);
                        if buf.len() > limit {
                            return Buffered::Streaming(RequestBody::Prefixed {
                                prefix: Some(buf.freeze()),
                                rest: body,
                            });
                        }
                    }
                    Err(frame) => {
                        let trailers = frame.into_trailers().ok();
                        return Buffered::Complete(buf.freeze(), trailers);
                    }
                },
                // The client's body failed: send what we have; the upstream
                // request will fail the same way.
                Some(Err(_)) => {
                    return Buffered::Streaming(RequestBody::Prefixed {
                        prefix: Some(buf.freeze()),
                        rest: body,
                    })
                }
            }
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Streaming(b) => Pin::new(b).poll_frame(cx),
            RequestBody::Buffered { data, trailers } => {
                if let Some(d) = data.take().filter(|d| !d.is_empty()) {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            RequestBody::Prefixed { prefix, rest } => match prefix.take() {
                Some(p) if !p.is_empty() => Poll::Ready(Some(Ok(Frame::data(p)))),
                _ => Pin::new(rest).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Streaming(b) => b.is_end_stream(),
            RequestBody::Buffered { data, trailers } => {
                data.as_ref().is_none_or(|d| d.is_empty()) && trailers.is_none()
            }
            RequestBody::Prefixed { prefix, rest } => {
                prefix.as_ref().is_none_or(|p| p.is_empty()) && rest.is_end_stream()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Streaming(b) => b.size_hint(),
            RequestBody::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            RequestBody::Prefixed { prefix, rest } => {
                let p = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let mut h = SizeHint::new();
                h.set_lower(rest.size_hint().lower() + p);
                if let Some(u) = rest.size_hint().upper() {
                    h.set_upper(u + p);
                }
                h
            }
        }
    }
}
