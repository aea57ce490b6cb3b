//! A tap's event while it waits in that tap's buffer ([`Queued`]), and
//! the parts tapped requests share; the `TapEvent` is built from them only
//! when the consumer takes it.

use std::collections::HashMap;
use std::sync::Arc;

use linkerd2_proxy_api::http_types::{self, Headers, Scheme};
use linkerd2_proxy_api::net::TcpAddress;
use linkerd2_proxy_api::tap::tap_event::{self, http as tap_http, ProxyDirection};
use linkerd2_proxy_api::tap::{Eos, TapEvent};

/// What every event of one request repeats.
pub(super) struct Meta {
    pub(super) source: TcpAddress,
    pub(super) source_labels: HashMap<String, String>,
    pub(super) destination: TcpAddress,
    pub(super) destination_labels: HashMap<String, String>,
    pub(super) route_labels: HashMap<String, String>,
    pub(super) direction: ProxyDirection,
}

/// The request head as `RequestInit` reports it, captured once per request
/// and shared by every tap that chose it.
pub(super) struct RequestHead {
    pub(super) method: http_types::HttpMethod,
    pub(super) scheme: Scheme,
    pub(super) authority: String,
    pub(super) path: String,
    /// Only when some tap asked for headers.
    pub(super) headers: Option<Headers>,
}

/// One tap's event as it waits in that tap's buffer: a stream id and
/// shared parts, a few words each. The [`TapEvent`] (with its label maps
/// and headers) is built only when the consumer takes it, so a tap that
/// falls behind holds small entries, and a request tapped by several taps
/// captures its head, headers and labels once.
pub(crate) struct Queued {
    pub(super) meta: Arc<Meta>,
    pub(super) id: tap_http::StreamId,
    /// Whether this tap asked for headers.
    pub(super) headers: bool,
    pub(super) what: What,
}

/// Which event, with what only it carries.
pub(super) enum What {
    RequestInit(Arc<RequestHead>),
    ResponseInit {
        since_request_init: std::time::Duration,
        status: u32,
        headers: Option<Arc<Headers>>,
    },
    ResponseEnd {
        since_request_init: std::time::Duration,
        since_response_init: std::time::Duration,
        bytes: u64,
        eos: Option<Eos>,
        trailers: Option<Arc<Headers>>,
    },
}

impl Queued {
    /// The event to send.
    pub(crate) fn into_event(self) -> TapEvent {
        let id = Some(self.id);
        let keep = |h: Option<Arc<Headers>>| {
            h.filter(|_| self.headers)
                .map(|h| Arc::try_unwrap(h).unwrap_or_else(|h| (*h).clone()))
        };
        let http = match self.what {
            What::RequestInit(head) => tap_http::Event::RequestInit(tap_http::RequestInit {
                id,
                method: Some(head.method.clone()),
                scheme: Some(head.scheme.clone()),
                authority: head.authority.clone(),
                path: head.path.clone(),
                headers: self.headers.then(|| head.headers.clone()).flatten(),
            }),
            What::ResponseInit {
                since_request_init,
                status,
                headers,
            } => tap_http::Event::ResponseInit(tap_http::ResponseInit {
                id,
                since_request_init: duration(since_request_init),
                http_status: status,
                headers: keep(headers),
            }),
            What::ResponseEnd {
                since_request_init,
                since_response_init,
                bytes,
                eos,
                trailers,
            } => tap_http::Event::ResponseEnd(tap_http::ResponseEnd {
                id,
                since_request_init: duration(since_request_init),
                since_response_init: duration(since_response_init),
                response_bytes: bytes,
                eos,
                trailers: keep(trailers),
            }),
        };
        let meta = &self.meta;
        TapEvent {
            source: Some(meta.source),
            source_meta: Some(tap_event::EndpointMeta {
                labels: meta.source_labels.clone(),
            }),
            destination: Some(meta.destination),
            destination_meta: Some(tap_event::EndpointMeta {
                labels: meta.destination_labels.clone(),
            }),
            route_meta: (!meta.route_labels.is_empty()).then(|| tap_event::RouteMeta {
                labels: meta.route_labels.clone(),
            }),
            proxy_direction: meta.direction.into(),
            event: Some(tap_event::Event::Http(tap_event::Http {
                event: Some(http),
            })),
        }
    }
}

fn duration(d: std::time::Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
}
