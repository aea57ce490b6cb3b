//! The events of a tapped request: `RequestInit` when it is sent,
//! `ResponseInit` when the response head arrives, `ResponseEnd` when the
//! response stream ends, each sent to every tap that chose the request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use linkerd2_proxy_api::http_types::{self, headers::Header, Headers, Scheme};
use linkerd2_proxy_api::tap::tap_event::{http as tap_http, ProxyDirection};
use linkerd2_proxy_api::tap::{eos, Eos};
use tokio::time::Instant;

use crate::tap::matcher::RequestView;
use crate::tap::queued::{Meta, Queued, RequestHead, What};
use crate::tap::registry::{Subscription, Taps};

/// Where a connection's requests come from, as taps describe it; made once
/// per connection.
pub(crate) struct Origin {
    /// The proxy's taps.
    pub(crate) taps: Arc<Taps>,
    /// Inbound or outbound.
    pub(crate) direction: ProxyDirection,
    /// The client's address.
    pub(crate) source: SocketAddr,
    /// `tls` and, with mTLS, `client_id`; or the reason there is no TLS.
    pub(crate) source_labels: Vec<(String, String)>,
}

impl Origin {
    /// Asks the open taps whether they want this request; those that do
    /// get its `RequestInit`. `None` when none does.
    pub(crate) fn tap(&self, view: &RequestView<'_>, head: &HeaderMap) -> Option<TapRequest> {
        let chosen = self.taps.select(view);
        (!chosen.is_empty()).then(|| TapRequest::start(self, view, head, chosen))
    }
}

/// The taps that chose a request, and their stream ids.
type Streams = Vec<(Arc<Subscription>, tap_http::StreamId)>;

/// A tapped request whose response has not arrived yet.
pub(crate) struct TapRequest {
    streams: Streams,
    meta: Arc<Meta>,
    started: Instant,
}

fn labels(pairs: &[(String, String)]) -> HashMap<String, String> {
    pairs.iter().cloned().collect()
}

fn headers(pseudo: &[(&str, String)], real: &HeaderMap) -> Headers {
    let mut headers: Vec<Header> = pseudo
        .iter()
        .map(|(n, v)| Header {
            name: (*n).to_string(),
            value: v.as_bytes().to_vec(),
        })
        .collect();
    headers.extend(real.iter().map(|(n, v)| Header {
        name: n.as_str().to_string(),
        value: v.as_bytes().to_vec(),
    }));
    Headers { headers }
}

/// Sends one event to every tap of `streams`.
fn send_all(streams: &Streams, meta: &Arc<Meta>, what: impl Fn() -> What) {
    for (sub, id) in streams {
        sub.send(Queued {
            meta: meta.clone(),
            id: *id,
            headers: sub.headers,
            what: what(),
        });
    }
}

/// Whether any tap of `streams` asked for headers.
fn any_headers(streams: &Streams) -> bool {
    streams.iter().any(|(sub, _)| sub.headers)
}

impl TapRequest {
    /// Sends `RequestInit` to every tap in `chosen`.
    fn start(
        origin: &Origin,
        view: &RequestView<'_>,
        head: &HeaderMap,
        chosen: Vec<Arc<Subscription>>,
    ) -> Self {
        let meta = Arc::new(Meta {
            source: origin.source.into(),
            source_labels: labels(&origin.source_labels),
            destination: view.destination.into(),
            destination_labels: labels(view.destination_labels),
            route_labels: labels(view.route_labels),
            direction: origin.direction,
        });
        let streams: Streams = chosen
            .into_iter()
            .map(|sub| {
                let id = tap_http::StreamId {
                    base: sub.base,
                    stream: sub
                        .next_stream
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                };
                (sub, id)
            })
            .collect();
        let request = Arc::new(RequestHead {
            method: http_types::HttpMethod::from(view.method.clone()),
            scheme: Scheme::from(view.scheme),
            authority: view.authority.to_string(),
            path: view.path.to_string(),
            headers: any_headers(&streams).then(|| {
                let pseudo = [
                    (":method", view.method.as_str().to_string()),
                    (":scheme", view.scheme.to_string()),
                    (":authority", view.authority.to_string()),
                    (":path", view.path.to_string()),
                ];
                headers(&pseudo, head)
            }),
        });
        send_all(&streams, &meta, || What::RequestInit(request.clone()));
        TapRequest {
            streams,
            meta,
            started: Instant::now(),
        }
    }

    /// Sends `ResponseInit`: the response head arrived (or the proxy
    /// answered itself); `grpc_status` is the head's, if any.
    pub(crate) fn respond(
        self,
        status: StatusCode,
        head: &HeaderMap,
        grpc_status: Option<u32>,
    ) -> TapResponse {
        let now = Instant::now();
        let shared = any_headers(&self.streams)
            .then(|| Arc::new(headers(&[(":status", status.as_str().to_string())], head)));
        send_all(&self.streams, &self.meta, || What::ResponseInit {
            since_request_init: now - self.started,
            status: u32::from(status.as_u16()),
            headers: shared.clone(),
        });
        TapResponse {
            streams: self.streams,
            meta: self.meta,
            started: self.started,
            responded: now,
            bytes: 0,
            grpc_status,
            ended: false,
        }
    }
}

/// A tapped response whose stream has not ended yet; sends `ResponseEnd`
/// when it does (or when it is dropped early).
pub(crate) struct TapResponse {
    streams: Streams,
    meta: Arc<Meta>,
    started: Instant,
    responded: Instant,
    bytes: u64,
    grpc_status: Option<u32>,
    ended: bool,
}

impl TapResponse {
    /// Counts `n` bytes of response body.
    pub(crate) fn data(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    /// Sends `ResponseEnd`: with the trailers and their `grpc-status`, or
    /// the HTTP/2 reset code the stream ended with.
    pub(crate) fn end(
        mut self,
        trailers: Option<&HeaderMap>,
        grpc_status: Option<u32>,
        reset: Option<u32>,
    ) {
        self.finish(trailers, grpc_status, reset);
    }

    fn finish(
        &mut self,
        trailers: Option<&HeaderMap>,
        grpc_status: Option<u32>,
        reset: Option<u32>,
    ) {
        if self.ended {
            return;
        }
        self.ended = true;
        let grpc = grpc_status.or(self.grpc_status);
        let eos = match (reset, grpc) {
            (Some(code), _) => Some(Eos {
                end: Some(eos::End::ResetErrorCode(code)),
            }),
            (None, Some(code)) => Some(Eos::from_grpc_status(code)),
            (None, None) => None,
        };
        let now = Instant::now();
        let shared = trailers
            .filter(|_| any_headers(&self.streams))
            .map(|t| Arc::new(headers(&[], t)));
        send_all(&self.streams, &self.meta, || What::ResponseEnd {
            since_request_init: now - self.started,
            since_response_init: now - self.responded,
            bytes: self.bytes,
            eos,
            trailers: shared.clone(),
        });
    }
}

impl Drop for TapResponse {
    fn drop(&mut self) {
        self.finish(None, None, None);
    }
}
