//! Header and target rules of a proxy: hop-by-hop headers, upgrades, the
//! request's authority, the wire form of its target, and `l5d-orig-proto`
//! (an HTTP/1 request carried over HTTP/2 between two proxies).

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

/// Hop-by-hop headers never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "trailer",
    "upgrade",
];

/// Removes hop-by-hop headers; an upgrade keeps `connection` and `upgrade`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    if !upgrade {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        if upgrade && (name == "connection" || name == "upgrade") {
            continue;
        }
        headers.remove(name);
    }
    // `te: trailers` is how gRPC clients ask for trailers; keep only that.
    if headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes() != b"trailers")
    {
        headers.remove(header::TE);
    }
}

/// Whether the request asks to switch protocols (WebSocket) or tunnel (CONNECT).
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() <= Version::HTTP_11
        && (req.method() == Method::CONNECT
            || (req.headers().contains_key(header::UPGRADE)
                && req
                    .headers()
                    .get_all(header::CONNECTION)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| {
                        v.split(',')
                            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
                    })))
}

/// The request's authority: the URI's, else the Host header.
pub(crate) fn request_authority<B>(req: &Request<B>) -> Option<String> {
    if let Some(a) = req.uri().authority() {
        return Some(a.as_str().to_string());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Puts a request's target into the form the wire needs: HTTP/2 takes an
/// absolute URI (its `:authority`), HTTP/1 an origin-form path plus a
/// `Host` header (kept if the client sent one). `fallback` is the
/// authority when the request has none. A `CONNECT` keeps its
/// authority-form target.
pub(crate) fn shape_for_wire<B>(req: &mut Request<B>, fallback: &str) {
    if req.method() == Method::CONNECT {
        return;
    }
    let authority = request_authority(req).unwrap_or_else(|| fallback.to_string());
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    let uri = if req.version() == Version::HTTP_2 {
        Uri::builder()
            .scheme("http")
            .authority(authority.as_str())
            .path_and_query(path.as_str())
            .build()
    } else {
        if !req.headers().contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(&authority) {
                req.headers_mut().insert(header::HOST, v);
            }
        }
        Uri::builder().path_and_query(path.as_str()).build()
    };
    if let Ok(uri) = uri {
        *req.uri_mut() = uri;
    }
}

/// The header marking an HTTP/1 request carried over HTTP/2 between proxies.
pub(crate) const ORIG_PROTO: &str = "l5d-orig-proto";

/// The `l5d-orig-proto` value for an HTTP/1 version.
pub(crate) fn orig_proto_value(version: Version) -> &'static str {
    if version == Version::HTTP_10 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_but_keeps_grpc_te() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().expect("v"));
        h.insert("x-secret", "1".parse().expect("v"));
        h.insert("keep-alive", "timeout=5".parse().expect("v"));
        h.insert("te", "trailers".parse().expect("v"));
        h.insert("x-app", "1".parse().expect("v"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("x-secret").is_none() && h.get("connection").is_none());
        assert!(h.get("keep-alive").is_none());
        assert_eq!(h.get("te").map(|v| v.as_bytes()), Some(&b"trailers"[..]));
        assert!(h.get("x-app").is_some());
    }

    #[test]
    fn detects_upgrades() {
        let req = Request::builder()
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(())
            .expect("req");
        assert!(is_upgrade(&req));
        let req = Request::builder()
            .header("upgrade", "websocket")
            .body(())
            .expect("req");
        assert!(!is_upgrade(&req));
    }

    #[test]
    fn shapes_targets_for_the_wire() {
        let mut req = Request::builder()
            .uri("http://web.ns.svc:8080/a?b")
            .body(())
            .expect("req");
        shape_for_wire(&mut req, "10.0.0.1:80");
        assert_eq!(req.uri(), "/a?b");
        assert_eq!(req.headers()["host"], "web.ns.svc:8080");
        let mut req = Request::builder()
            .uri("/x")
            .header("host", "a.example")
            .body(())
            .expect("req");
        shape_for_wire(&mut req, "10.0.0.1:80");
        assert_eq!(req.headers()["host"], "a.example");
        let mut req = Request::builder()
            .version(Version::HTTP_2)
            .uri("/x")
            .body(())
            .expect("req");
        shape_for_wire(&mut req, "10.0.0.1:80");
        assert_eq!(req.uri(), "http://10.0.0.1:80/x");
    }
}
