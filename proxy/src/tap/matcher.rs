//! Which requests an `Observe` call asks for: the `Match` tree of the Tap
//! API compiled once, then evaluated against each request while the tap is
//! open.

use std::net::{IpAddr, SocketAddr};

use http::Method;
use linkerd2_proxy_api::http_types;
use linkerd2_proxy_api::tap::observe_request::{self, r#match as proto};

/// The parts of a request a tap can match on.
pub(crate) struct RequestView<'a> {
    /// Where the request came from.
    pub(crate) source: SocketAddr,
    /// The endpoint it goes to.
    pub(crate) destination: SocketAddr,
    /// The endpoint's labels from discovery (`pod`, `namespace`, ...).
    pub(crate) destination_labels: &'a [(String, String)],
    /// The ServiceProfile route's labels (`route`), if any.
    pub(crate) route_labels: &'a [(String, String)],
    /// `http` or `https`.
    pub(crate) scheme: &'a str,
    /// The request's authority.
    pub(crate) authority: &'a str,
    /// The request's method.
    pub(crate) method: &'a Method,
    /// The request's path.
    pub(crate) path: &'a str,
}

/// Why a `Match` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum InvalidMatch {
    /// A match, TCP match or string match with no condition in it.
    #[error("a match has no condition")]
    Empty,
    /// A netmask without a usable IP address.
    #[error("a netmask has no valid IP address")]
    Ip,
    /// A netmask longer than its address.
    #[error("netmask /{0} is longer than the address")]
    Mask(u32),
    /// A port range that is empty or beyond 65535.
    #[error("port range {0}-{1} is not valid")]
    Ports(u32, u32),
    /// A method that is not a valid HTTP method.
    #[error("invalid HTTP method")]
    Method,
    /// A scheme that is not set.
    #[error("invalid scheme")]
    Scheme,
}

/// An address condition.
#[derive(Debug)]
pub(crate) enum Tcp {
    /// The IP is in this network.
    Net(IpAddr, u8),
    /// The port is in this inclusive range.
    Ports(u16, u16),
}

/// A string condition.
#[derive(Debug)]
pub(crate) enum Text {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
}

/// A compiled `Match`.
#[derive(Debug)]
pub(crate) enum Matcher {
    /// Every child holds (also: no condition at all).
    All(Vec<Matcher>),
    /// Some child holds.
    Any(Vec<Matcher>),
    /// The child does not hold.
    Not(Box<Matcher>),
    /// The source address.
    Source(Tcp),
    /// The destination address.
    Destination(Tcp),
    /// A destination label has this value.
    DestinationLabel(String, String),
    /// A route label has this value.
    RouteLabel(String, String),
    /// The scheme (lower case).
    Scheme(String),
    /// The method.
    Method(Method),
    /// The authority.
    Authority(Text),
    /// The path.
    Path(Text),
}

impl Matcher {
    /// Compiles an `ObserveRequest`'s match; none at all matches every request.
    pub(crate) fn from_proto(m: Option<observe_request::Match>) -> Result<Self, InvalidMatch> {
        match m {
            None => Ok(Matcher::All(Vec::new())),
            Some(m) => Self::compile(m),
        }
    }

    fn compile(m: observe_request::Match) -> Result<Self, InvalidMatch> {
        let seq = |s: proto::Seq| -> Result<Vec<Matcher>, InvalidMatch> {
            s.matches.into_iter().map(Self::compile).collect()
        };
        Ok(match m.r#match.ok_or(InvalidMatch::Empty)? {
            proto::Match::All(s) => Matcher::All(seq(s)?),
            proto::Match::Any(s) => Matcher::Any(seq(s)?),
            proto::Match::Not(m) => Matcher::Not(Box::new(Self::compile(*m)?)),
            proto::Match::Source(t) => Matcher::Source(tcp(t)?),
            proto::Match::Destination(t) => Matcher::Destination(tcp(t)?),
            proto::Match::DestinationLabel(l) => Matcher::DestinationLabel(l.key, l.value),
            proto::Match::RouteLabel(l) => Matcher::RouteLabel(l.key, l.value),
            proto::Match::Http(h) => match h.r#match.ok_or(InvalidMatch::Empty)? {
                proto::http::Match::Scheme(s) => Matcher::Scheme(scheme(s)?),
                proto::http::Match::Method(m) => {
                    Matcher::Method(Method::try_from(m).map_err(|_| InvalidMatch::Method)?)
                }
                proto::http::Match::Authority(s) => Matcher::Authority(text(s)?),
                proto::http::Match::Path(s) => Matcher::Path(text(s)?),
            },
        })
    }

    /// Whether the request matches.
    pub(crate) fn matches(&self, r: &RequestView<'_>) -> bool {
        match self {
            Matcher::All(ms) => ms.iter().all(|m| m.matches(r)),
            Matcher::Any(ms) => ms.iter().any(|m| m.matches(r)),
            Matcher::Not(m) => !m.matches(r),
            Matcher::Source(t) => t.matches(r.source),
            Matcher::Destination(t) => t.matches(r.destination),
            Matcher::DestinationLabel(k, v) => has_label(r.destination_labels, k, v),
            Matcher::RouteLabel(k, v) => has_label(r.route_labels, k, v),
            Matcher::Scheme(s) => r.scheme.eq_ignore_ascii_case(s),
            Matcher::Method(m) => r.method == m,
            Matcher::Authority(t) => t.matches(r.authority),
            Matcher::Path(t) => t.matches(r.path),
        }
    }
}

fn has_label(labels: &[(String, String)], key: &str, value: &str) -> bool {
    labels.iter().any(|(k, v)| k == key && v == value)
}

fn tcp(t: proto::Tcp) -> Result<Tcp, InvalidMatch> {
    match t.r#match.ok_or(InvalidMatch::Empty)? {
        proto::tcp::Match::Netmask(n) => {
            let ip =
                n.ip.and_then(|ip| IpAddr::try_from(ip).ok())
                    .ok_or(InvalidMatch::Ip)?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let mask = u8::try_from(n.mask)
                .ok()
                .filter(|m| *m <= max)
                .ok_or(InvalidMatch::Mask(n.mask))?;
            Ok(Tcp::Net(ip, mask))
        }
        proto::tcp::Match::Ports(p) => {
            // One bound given: that exact port.
            let (min, max) = match (p.min, p.max) {
                (0, 0) => return Err(InvalidMatch::Ports(0, 0)),
                (0, m) | (m, 0) => (m, m),
                (a, b) => (a, b),
            };
            match (u16::try_from(min), u16::try_from(max)) {
                (Ok(a), Ok(b)) if a <= b => Ok(Tcp::Ports(a, b)),
                _ => Err(InvalidMatch::Ports(p.min, p.max)),
            }
        }
    }
}

fn text(s: proto::http::StringMatch) -> Result<Text, InvalidMatch> {
    use proto::http::string_match::Match;
    Ok(match s.r#match.ok_or(InvalidMatch::Empty)? {
        Match::Exact(e) => Text::Exact(e),
        Match::Prefix(p) => Text::Prefix(p),
    })
}

fn scheme(s: http_types::Scheme) -> Result<String, InvalidMatch> {
    let t = s.r#type.ok_or(InvalidMatch::Scheme)?;
    let name: std::borrow::Cow<'static, str> = (&t).try_into().map_err(|_| InvalidMatch::Scheme)?;
    Ok(name.to_ascii_lowercase())
}

impl Tcp {
    fn matches(&self, addr: SocketAddr) -> bool {
        match self {
            Tcp::Ports(lo, hi) => (*lo..=*hi).contains(&addr.port()),
            Tcp::Net(net, bits) => match (net, addr.ip().to_canonical()) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                    u32::from(*n) & mask == u32::from(a) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                    u128::from(*n) & mask == u128::from(a) & mask
                }
                _ => false,
            },
        }
    }
}

impl Text {
    fn matches(&self, s: &str) -> bool {
        match self {
            Text::Exact(e) => s == e,
            Text::Prefix(p) => s.starts_with(p.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use linkerd2_proxy_api::tap::observe_request::Match as M;

    use super::*;

    fn view<'a>(labels: &'a [(String, String)], route: &'a [(String, String)]) -> RequestView<'a> {
        RequestView {
            source: "10.0.0.5:41000".parse().expect("addr"),
            destination: "10.1.2.3:8080".parse().expect("addr"),
            destination_labels: labels,
            route_labels: route,
            scheme: "http",
            authority: "web.default.svc.cluster.local:80",
            method: &Method::GET,
            path: "/books/7",
        }
    }

    fn m(inner: proto::Match) -> M {
        M {
            r#match: Some(inner),
        }
    }

    fn http(inner: proto::http::Match) -> M {
        m(proto::Match::Http(proto::Http {
            r#match: Some(inner),
        }))
    }

    fn string(prefix: bool, s: &str) -> proto::http::StringMatch {
        use proto::http::string_match::Match;
        proto::http::StringMatch {
            r#match: Some(if prefix {
                Match::Prefix(s.into())
            } else {
                Match::Exact(s.into())
            }),
        }
    }

    fn ports(min: u32, max: u32) -> proto::Tcp {
        proto::Tcp {
            r#match: Some(proto::tcp::Match::Ports(proto::tcp::PortRange { min, max })),
        }
    }

    fn net(ip: &str, mask: u32) -> proto::Tcp {
        let ip: IpAddr = ip.parse().expect("ip");
        proto::Tcp {
            r#match: Some(proto::tcp::Match::Netmask(proto::tcp::Netmask {
                ip: Some(ip.into()),
                mask,
            })),
        }
    }

    fn check(matcher: M) -> bool {
        let labels = vec![("pod".to_string(), "web-0".to_string())];
        let route = vec![("route".to_string(), "GET /books/{id}".to_string())];
        Matcher::from_proto(Some(matcher))
            .expect("valid")
            .matches(&view(&labels, &route))
    }

    #[test]
    fn every_kind_of_match() {
        assert!(check(http(proto::http::Match::Path(string(
            true, "/books"
        )))));
        assert!(!check(http(proto::http::Match::Path(string(
            false, "/books"
        )))));
        assert!(check(http(proto::http::Match::Authority(string(
            false,
            "web.default.svc.cluster.local:80"
        )))));
        assert!(check(http(proto::http::Match::Method(Method::GET.into()))));
        assert!(!check(http(proto::http::Match::Method(
            Method::POST.into()
        ))));
        assert!(check(http(proto::http::Match::Scheme("http".into()))));
        assert!(!check(http(proto::http::Match::Scheme("https".into()))));
        assert!(check(m(proto::Match::Source(net("10.0.0.0", 8)))));
        assert!(!check(m(proto::Match::Source(net("10.1.0.0", 16)))));
        assert!(check(m(proto::Match::Destination(ports(8000, 8080)))));
        assert!(check(m(proto::Match::Destination(ports(8080, 0)))));
        assert!(!check(m(proto::Match::Destination(ports(80, 0)))));
        assert!(check(m(proto::Match::DestinationLabel(proto::Label {
            key: "pod".into(),
            value: "web-0".into()
        }))));
        assert!(check(m(proto::Match::RouteLabel(proto::Label {
            key: "route".into(),
            value: "GET /books/{id}".into()
        }))));
        let get = http(proto::http::Match::Method(Method::GET.into()));
        let post = http(proto::http::Match::Method(Method::POST.into()));
        assert!(check(m(proto::Match::Any(proto::Seq {
            matches: vec![post.clone(), get.clone()]
        }))));
        assert!(!check(m(proto::Match::All(proto::Seq {
            matches: vec![post.clone(), get]
        }))));
        assert!(check(m(proto::Match::Not(Box::new(post)))));
    }

    #[test]
    fn invalid_matches_are_refused() {
        let err = |x: M| Matcher::from_proto(Some(x)).err();
        assert_eq!(err(M { r#match: None }), Some(InvalidMatch::Empty));
        assert_eq!(
            err(m(proto::Match::Source(net("10.0.0.0", 33)))),
            Some(InvalidMatch::Mask(33))
        );
        assert_eq!(
            err(m(proto::Match::Source(ports(0, 0)))),
            Some(InvalidMatch::Ports(0, 0))
        );
        assert_eq!(
            err(m(proto::Match::Source(ports(90, 80)))),
            Some(InvalidMatch::Ports(90, 80))
        );
        assert_eq!(
            err(m(proto::Match::Source(ports(1, 70000)))),
            Some(InvalidMatch::Ports(1, 70000))
        );
        assert!(Matcher::from_proto(None).is_ok());
    }
}
