//! The events of a tapped request: `RequestInit` when it is sent,
//! `ResponseInit` when the response head arrives, `ResponseEnd` when the
//! response stream ends, each sent to every tap that chose the request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use linkerd2_proxy_api::http_types::{self, headers::Header, Headers, Scheme};
use linkerd2_proxy_api::net::TcpAddress;
use linkerd2_proxy_api::tap::tap_event::{self, http as tap_http, ProxyDirection};
use linkerd2_proxy_api::tap::{eos, Eos, TapEvent};
use tokio::time::Instant;

use crate::tap::matcher::RequestView;
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

/// What every event of one request repeats.
struct Meta {
    source: TcpAddress,
    source_labels: HashMap<String, String>,
    destination: TcpAddress,
    destination_labels: HashMap<String, String>,
    route_labels: HashMap<String, String>,
    direction: ProxyDirection,
}

impl Meta {
    fn event(&self, http: tap_http::Event) -> TapEvent {
        TapEvent {
            source: Some(self.source),
            source_meta: Some(tap_event::EndpointMeta {
                labels: self.source_labels.clone(),
            }),
            destination: Some(self.destination),
            destination_meta: Some(tap_event::EndpointMeta {
                labels: self.destination_labels.clone(),
            }),
            route_meta: (!self.route_labels.is_empty()).then(|| tap_event::RouteMeta {
                labels: self.route_labels.clone(),
            }),
            proxy_direction: self.direction.into(),
            event: Some(tap_event::Event::Http(tap_event::Http {
                event: Some(http),
            })),
        }
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

fn duration(d: std::time::Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
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
        let pseudo = [
            (":method", view.method.as_str().to_string()),
            (":scheme", view.scheme.to_string()),
            (":authority", view.authority.to_string()),
            (":path", view.path.to_string()),
        ];
        let method = http_types::HttpMethod::from(view.method.clone());
        let streams: Streams = chosen
            .into_iter()
            .map(|sub| {
                let id = tap_http::StreamId {
                    base: sub.base,
                    stream: sub
                        .next_stream
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                };
                sub.send(
                    meta.event(tap_http::Event::RequestInit(tap_http::RequestInit {
                        id: Some(id),
                        method: Some(method.clone()),
                        scheme: Some(Scheme::from(view.scheme)),
                        authority: view.authority.to_string(),
                        path: view.path.to_string(),
                        headers: sub.headers.then(|| headers(&pseudo, head)),
                    })),
                );
                (sub, id)
            })
            .collect();
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
        for (sub, id) in &self.streams {
            let pseudo = [(":status", status.as_str().to_string())];
            sub.send(
                self.meta
                    .event(tap_http::Event::ResponseInit(tap_http::ResponseInit {
                        id: Some(*id),
                        since_request_init: duration(now - self.started),
                        http_status: u32::from(status.as_u16()),
                        headers: sub.headers.then(|| headers(&pseudo, head)),
                    })),
            );
        }
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
        for (sub, id) in &self.streams {
            sub.send(
                self.meta
                    .event(tap_http::Event::ResponseEnd(tap_http::ResponseEnd {
                        id: Some(*id),
                        since_request_init: duration(now - self.started),
                        since_response_init: duration(now - self.responded),
                        response_bytes: self.bytes,
                        eos,
                        trailers: sub
                            .headers
                            .then(|| trailers.map(|t| headers(&[], t)))
                            .flatten(),
                    })),
            );
        }
    }
}

impl Drop for TapResponse {
    fn drop(&mut self) {
        self.finish(None, None, None);
    }
}
