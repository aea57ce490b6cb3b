//! A tap event as the commands use it, read from the Tap API's `TapEvent`,
//! and its renderings: the one-line text of `linkerd viz tap` (plain and
//! `-o wide`) and a JSON object (`-o json`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use linkerd2_proxy_api::http_types::{self, Headers};
use linkerd2_proxy_api::tap::tap_event::{self, http::Event as HttpEvent, ProxyDirection};
use linkerd2_proxy_api::tap::{eos, TapEvent};
use serde_json::{json, Value};

/// Which side of the proxy saw the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Traffic coming into the pod.
    Inbound,
    /// Traffic leaving the pod.
    Outbound,
    /// Not said.
    Unknown,
}

impl Direction {
    /// `in` / `out`, as in `proxy=out`.
    pub fn short(self) -> &'static str {
        match self {
            Direction::Inbound => "in",
            Direction::Outbound => "out",
            Direction::Unknown => "unknown",
        }
    }

    fn json(self) -> &'static str {
        match self {
            Direction::Inbound => "INBOUND",
            Direction::Outbound => "OUTBOUND",
            Direction::Unknown => "UNKNOWN",
        }
    }
}

/// The id of a tapped stream: `base:stream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct StreamId {
    /// The tap's base.
    pub base: u32,
    /// The stream within the tap.
    pub stream: u64,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// The request was sent.
    Request {
        /// `GET`, `POST`, ...
        method: String,
        /// `http` / `https`.
        scheme: String,
        /// The request's authority.
        authority: String,
        /// The request's path.
        path: String,
        /// Headers, when asked for.
        headers: Vec<(String, String)>,
    },
    /// The response head arrived.
    Response {
        /// The HTTP status.
        status: u32,
        /// Since the request was sent.
        latency: Option<Duration>,
        /// Headers, when asked for.
        headers: Vec<(String, String)>,
    },
    /// The response stream ended.
    End {
        /// Since the request was sent.
        since_request: Option<Duration>,
        /// Since the response head arrived.
        since_response: Option<Duration>,
        /// Response body bytes.
        bytes: u64,
        /// The gRPC status, if any.
        grpc_status: Option<u32>,
        /// The HTTP/2 reset code, if the stream was reset.
        reset: Option<u32>,
        /// Trailers, when asked for.
        trailers: Vec<(String, String)>,
    },
}

/// One tap event.
#[derive(Clone, Debug, PartialEq)]
pub struct Tapped {
    /// The stream.
    pub id: StreamId,
    /// Inbound or outbound.
    pub direction: Direction,
    /// The client.
    pub source: Option<SocketAddr>,
    /// The server.
    pub destination: Option<SocketAddr>,
    /// The client's labels (`tls`, `client_id`, ...).
    pub source_labels: BTreeMap<String, String>,
    /// The server's labels (`pod`, `namespace`, `tls`, ...).
    pub destination_labels: BTreeMap<String, String>,
    /// The route's labels (`route`).
    pub route_labels: BTreeMap<String, String>,
    /// What happened.
    pub kind: Kind,
}

fn duration(d: Option<prost_types::Duration>) -> Option<Duration> {
    d.and_then(|d| Duration::try_from(d).ok())
}

fn header_list(h: Option<Headers>) -> Vec<(String, String)> {
    h.map(|h| {
        h.headers
            .into_iter()
            .map(|h| (h.name, String::from_utf8_lossy(&h.value).into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

fn method_name(m: Option<http_types::HttpMethod>) -> String {
    match m.map(http::Method::try_from) {
        Some(Ok(m)) => m.as_str().to_string(),
        _ => String::new(),
    }
}

fn scheme_name(s: Option<http_types::Scheme>) -> String {
    use http_types::scheme::{Registered, Type};
    match s.and_then(|s| s.r#type) {
        Some(Type::Registered(r)) => match Registered::try_from(r) {
            Ok(Registered::Http) => "http".into(),
            Ok(Registered::Https) => "https".into(),
            Err(_) => String::new(),
        },
        Some(Type::Unregistered(s)) => s,
        None => String::new(),
    }
}

fn id(i: Option<tap_event::http::StreamId>) -> StreamId {
    i.map(|i| StreamId {
        base: i.base,
        stream: i.stream,
    })
    .unwrap_or_default()
}

impl Tapped {
    /// Reads an event of the Tap API; `None` for one that is not HTTP.
    pub fn from_proto(e: TapEvent) -> Option<Tapped> {
        let tap_event::Event::Http(h) = e.event?;
        let (id, kind) = match h.event? {
            HttpEvent::RequestInit(r) => (
                id(r.id),
                Kind::Request {
                    method: method_name(r.method),
                    scheme: scheme_name(r.scheme),
                    authority: r.authority,
                    path: r.path,
                    headers: header_list(r.headers),
                },
            ),
            HttpEvent::ResponseInit(r) => (
                id(r.id),
                Kind::Response {
                    status: r.http_status,
                    latency: duration(r.since_request_init),
                    headers: header_list(r.headers),
                },
            ),
            HttpEvent::ResponseEnd(r) => {
                let (grpc_status, reset) = match r.eos.and_then(|e| e.end) {
                    Some(eos::End::GrpcStatusCode(c)) => (Some(c), None),
                    Some(eos::End::ResetErrorCode(c)) => (None, Some(c)),
                    None => (None, None),
                };
                (
                    id(r.id),
                    Kind::End {
                        since_request: duration(r.since_request_init),
                        since_response: duration(r.since_response_init),
                        bytes: r.response_bytes,
                        grpc_status,
                        reset,
                        trailers: header_list(r.trailers),
                    },
                )
            }
        };
        let labels = |m: Option<tap_event::EndpointMeta>| -> BTreeMap<String, String> {
            m.map(|m| m.labels.into_iter().collect())
                .unwrap_or_default()
        };
        Some(Tapped {
            id,
            direction: match ProxyDirection::try_from(e.proxy_direction) {
                Ok(ProxyDirection::Inbound) => Direction::Inbound,
                Ok(ProxyDirection::Outbound) => Direction::Outbound,
                _ => Direction::Unknown,
            },
            source: e.source.and_then(|a| SocketAddr::try_from(a).ok()),
            destination: e.destination.and_then(|a| SocketAddr::try_from(a).ok()),
            source_labels: labels(e.source_meta),
            destination_labels: labels(e.destination_meta),
            route_labels: e
                .route_meta
                .map(|m| m.labels.into_iter().collect())
                .unwrap_or_default(),
            kind,
        })
    }

    /// Whether the connection was mTLS, as Linkerd shows it: the `tls`
    /// label of the client (inbound) or of the endpoint (outbound).
    pub fn tls(&self) -> &str {
        let labels = match self.direction {
            Direction::Inbound => &self.source_labels,
            _ => &self.destination_labels,
        };
        labels.get("tls").map(String::as_str).unwrap_or("")
    }
}

fn addr(a: Option<SocketAddr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_default()
}

fn micros(d: Option<Duration>) -> u128 {
    d.map(|d| d.as_micros()).unwrap_or(0)
}

/// The name of a gRPC status code, as Go's `codes.Code` prints it.
pub fn grpc_code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(code as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("Code({code})"))
}

/// The line `linkerd viz tap` prints for an event.
pub fn render_line(e: &Tapped) -> String {
    let base = format!(
        "id={}:{} proxy={} src={} dst={} tls={}",
        e.id.base,
        e.id.stream,
        e.direction.short(),
        addr(e.source),
        addr(e.destination),
        e.tls()
    );
    match &e.kind {
        Kind::Request {
            method,
            authority,
            path,
            ..
        } => format!("req {base} :method={method} :authority={authority} :path={path}"),
        Kind::Response {
            status, latency, ..
        } => format!("rsp {base} :status={status} latency={}µs", micros(*latency)),
        Kind::End {
            since_response,
            bytes,
            grpc_status,
            reset,
            ..
        } => {
            let outcome = match (grpc_status, reset) {
                (Some(c), _) => format!(" grpc-status={}", grpc_code_name(*c)),
                (None, Some(r)) => format!(" reset-error={r}"),
                (None, None) => String::new(),
            };
            format!(
                "end {base}{outcome} duration={}µs response-length={bytes}B",
                micros(*since_response)
            )
        }
    }
}

/// `-o wide`: the line plus the resources of both ends, from the labels of
/// `kind` (`pod`, `deployment`, ...), as `src_res=KIND/NAME src_ns=NS`.
pub fn render_wide(e: &Tapped, kind: &str) -> String {
    let mut line = render_line(e);
    for (side, labels) in [("src", &e.source_labels), ("dst", &e.destination_labels)] {
        if let Some(name) = labels.get(kind) {
            line.push_str(&format!(" {side}_res={}/{name}", short_kind(kind)));
        }
        if let Some(ns) = labels.get("namespace") {
            line.push_str(&format!(" {side}_ns={ns}"));
        }
    }
    line
}

fn short_kind(kind: &str) -> &str {
    match kind {
        "deployment" => "deploy",
        "namespace" => "ns",
        other => other,
    }
}

fn json_duration(d: Option<Duration>) -> Value {
    match d {
        Some(d) => json!({"seconds": d.as_secs(), "nanos": d.subsec_nanos()}),
        None => Value::Null,
    }
}

fn json_headers(h: &[(String, String)]) -> Value {
    Value::Array(
        h.iter()
            .map(|(n, v)| json!({"name": n, "valueStr": v}))
            .collect(),
    )
}

fn json_addr(a: Option<SocketAddr>) -> Value {
    match a {
        Some(a) => json!({"ip": a.ip().to_string(), "port": a.port()}),
        None => Value::Null,
    }
}

/// `-o json`: the event in the shape of `linkerd viz tap -o json`
/// (addresses as `{"ip": "10.0.0.1", "port": 80}`); empty fields left out.
pub fn render_json(e: &Tapped) -> Value {
    let id = json!({"base": e.id.base, "stream": e.id.stream});
    let mut obj = serde_json::Map::new();
    obj.insert("source".into(), json_addr(e.source));
    obj.insert("sourceMeta".into(), json!({"labels": e.source_labels}));
    obj.insert("destination".into(), json_addr(e.destination));
    obj.insert(
        "destinationMeta".into(),
        json!({"labels": e.destination_labels}),
    );
    if !e.route_labels.is_empty() {
        obj.insert("routeMeta".into(), json!({"labels": e.route_labels}));
    }
    obj.insert("proxyDirection".into(), json!(e.direction.json()));
    let (key, mut ev) = match &e.kind {
        Kind::Request {
            method,
            scheme,
            authority,
            path,
            headers,
        } => (
            "requestInitEvent",
            json!({"id": id, "method": method, "scheme": scheme, "authority": authority,
                   "path": path, "headers": json_headers(headers)}),
        ),
        Kind::Response {
            status,
            latency,
            headers,
        } => (
            "responseInitEvent",
            json!({"id": id, "sinceRequestInit": json_duration(*latency),
                   "httpStatus": status, "headers": json_headers(headers)}),
        ),
        Kind::End {
            since_request,
            since_response,
            bytes,
            grpc_status,
            reset,
            trailers,
        } => (
            "responseEndEvent",
            json!({"id": id, "sinceRequestInit": json_duration(*since_request),
                   "sinceResponseInit": json_duration(*since_response),
                   "responseBytes": bytes, "trailers": json_headers(trailers),
                   "grpcStatusCode": grpc_status, "resetErrorCode": reset}),
        ),
    };
    if let Value::Object(m) = &mut ev {
        m.retain(|_, v| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty)));
    }
    obj.retain(|_, v| !v.is_null());
    obj.insert(key.into(), ev);
    Value::Object(obj)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use linkerd2_proxy_api::tap::tap_event::http as th;

    fn meta(pairs: &[(&str, &str)]) -> Option<tap_event::EndpointMeta> {
        Some(tap_event::EndpointMeta {
            labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    fn event(ev: th::Event) -> TapEvent {
        TapEvent {
            source: Some("127.0.0.10:51234".parse::<SocketAddr>().unwrap().into()),
            source_meta: meta(&[("tls", "no_identity")]),
            destination: Some("127.0.0.11:8080".parse::<SocketAddr>().unwrap().into()),
            destination_meta: meta(&[("tls", "true"), ("pod", "web-0"), ("namespace", "default")]),
            route_meta: None,
            proxy_direction: ProxyDirection::Outbound as i32,
            event: Some(tap_event::Event::Http(tap_event::Http { event: Some(ev) })),
        }
    }

    fn sid() -> Option<th::StreamId> {
        Some(th::StreamId { base: 0, stream: 1 })
    }

    #[test]
    fn lines_match_linkerd_viz_tap() {
        let req = Tapped::from_proto(event(th::Event::RequestInit(th::RequestInit {
            id: sid(),
            method: Some(http::Method::GET.into()),
            scheme: Some(http_types::Scheme::from("http")),
            authority: "web.default.svc.cluster.local".into(),
            path: "/books".into(),
            headers: None,
        })))
        .unwrap();
        assert_eq!(
            render_line(&req),
            "req id=0:1 proxy=out src=127.0.0.10:51234 dst=127.0.0.11:8080 tls=true \
             :method=GET :authority=web.default.svc.cluster.local :path=/books"
        );
        let rsp = Tapped::from_proto(event(th::Event::ResponseInit(th::ResponseInit {
            id: sid(),
            since_request_init: Some(prost_types::Duration {
                seconds: 0,
                nanos: 1_234_000,
            }),
            http_status: 200,
            headers: None,
        })))
        .unwrap();
        assert_eq!(
            render_line(&rsp),
            "rsp id=0:1 proxy=out src=127.0.0.10:51234 dst=127.0.0.11:8080 tls=true \
             :status=200 latency=1234µs"
        );
        let end = Tapped::from_proto(event(th::Event::ResponseEnd(th::ResponseEnd {
            id: sid(),
            since_request_init: None,
            since_response_init: Some(prost_types::Duration {
                seconds: 0,
                nanos: 56_000,
            }),
            response_bytes: 8,
            eos: None,
            trailers: None,
        })))
        .unwrap();
        assert_eq!(
            render_line(&end),
            "end id=0:1 proxy=out src=127.0.0.10:51234 dst=127.0.0.11:8080 tls=true \
             duration=56µs response-length=8B"
        );
        let mut grpc = end.clone();
        if let Kind::End { grpc_status, .. } = &mut grpc.kind {
            *grpc_status = Some(14);
        }
        assert!(render_line(&grpc).contains(" tls=true grpc-status=Unavailable duration=56µs"));
        assert_eq!(
            render_wide(&req, "pod"),
            format!("{} dst_res=pod/web-0 dst_ns=default", render_line(&req))
        );
        let j = render_json(&rsp);
        assert_eq!(j["proxyDirection"], "OUTBOUND");
        assert_eq!(j["responseInitEvent"]["httpStatus"], 200);
        assert_eq!(j["destination"]["port"], 8080);
        assert!(j["responseInitEvent"].get("headers").is_none());
        let j = render_json(&req);
        assert_eq!(j["requestInitEvent"]["method"], "GET");
        assert_eq!(j["requestInitEvent"]["path"], "/books");
    }

    #[test]
    fn inbound_tls_comes_from_the_client() {
        let mut e = event(th::Event::RequestInit(th::RequestInit::default()));
        e.proxy_direction = ProxyDirection::Inbound as i32;
        let t = Tapped::from_proto(e).unwrap();
        assert_eq!(t.tls(), "no_identity");
        assert_eq!(t.direction.short(), "in");
    }
}
