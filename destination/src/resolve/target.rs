//! Parsing of `GetDestination` paths and context tokens.

use std::net::{IpAddr, SocketAddr};

/// Port assumed when a path has none.
pub const DEFAULT_PORT: u16 = 80;

/// Why a path cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// The path is not `host[:port]`.
    #[error("invalid authority {0:?}")]
    Authority(String),
    /// The host is not a name of a cluster Service.
    #[error("{0:?} is not a cluster service name")]
    NotClusterName(String),
    /// A bare service name was given but the client's namespace is unknown.
    #[error("{0:?} is a bare name and the context token names no namespace")]
    NoNamespace(String),
}

/// A host as given in a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// An IP address.
    Ip(IpAddr),
    /// A DNS name (lower-cased, without trailing dot).
    Name(String),
}

/// A Service (or one instance of it) named by a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceName {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// StatefulSet-style instance prefix (`<hostname>.<svc>.<ns>.svc.<cd>`).
    pub hostname: Option<String>,
}

/// What a `GetDestination.path` refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An IP address and port.
    Addr(SocketAddr),
    /// A cluster service name and port.
    Service {
        /// The parsed name.
        name: ServiceName,
        /// The requested port.
        port: u16,
    },
}

/// The parts of a context token wisp uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextToken {
    /// The client's namespace.
    pub ns: Option<String>,
    /// The client's node.
    pub node_name: Option<String>,
    /// The client's pod (logging only).
    pub pod: Option<String>,
}

/// Parses a context token: JSON `{"ns":..,"nodeName":..,"pod":..}` or legacy `ns:<namespace>`.
pub fn parse_context_token(token: &str) -> ContextToken {
    #[derive(serde::Deserialize)]
    struct Json {
        ns: Option<String>,
        #[serde(rename = "nodeName")]
        node_name: Option<String>,
        pod: Option<String>,
    }
    let token = token.trim();
    if token.is_empty() {
        return ContextToken::default();
    }
    if let Ok(json) = serde_json::from_str::<Json>(token) {
        let keep = |s: Option<String>| s.filter(|s| !s.is_empty());
        return ContextToken {
            ns: keep(json.ns),
            node_name: keep(json.node_name),
            pod: keep(json.pod),
        };
    }
    if let Some(ns) = token.strip_prefix("ns:") {
        if !ns.is_empty() {
            return ContextToken {
                ns: Some(ns.to_string()),
                ..Default::default()
            };
        }
    }
    ContextToken::default()
}

/// Splits `host[:port]` (IPv6 in brackets, or bare); a missing port is 80.
pub fn parse_authority(path: &str) -> Result<(Host, u16), TargetError> {
    let bad = || TargetError::Authority(path.to_string());
    let path = path.trim();
    if path.is_empty() {
        return Err(bad());
    }
    if let Ok(ip) = path.parse::<IpAddr>() {
        return Ok((Host::Ip(ip), DEFAULT_PORT));
    }
    let (host, port) = if let Some(rest) = path.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (ip, port)
    } else {
        match path.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (path, None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().map_err(|_| bad())?,
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((Host::Ip(ip), port));
    }
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() || host.contains(':') || host.contains('[') {
        return Err(bad());
    }
    Ok((Host::Name(host), port))
}

/// Resolves a DNS name to a Service the way cluster DNS would.
///
/// Accepts `svc.ns.svc.<cd>`, `host.svc.ns.svc.<cd>`, and the short forms
/// `svc.ns.svc`, `host.svc.ns.svc`, `svc.ns` and bare `svc` (in `context_ns`).
pub fn parse_cluster_name(
    name: &str,
    cluster_domain: &str,
    context_ns: Option<&str>,
) -> Result<ServiceName, TargetError> {
    let not_cluster = || TargetError::NotClusterName(name.to_string());
    let cd = cluster_domain.trim_matches('.').to_ascii_lowercase();
    let full_suffix = format!(".svc.{cd}");
    let labels: Vec<&str> = if let Some(prefix) = name.strip_suffix(full_suffix.as_str()) {
        let labels: Vec<&str> = prefix.split('.').collect();
        if labels.len() != 2 && labels.len() != 3 {
            return Err(not_cluster());
        }
        labels
    } else {
        let labels: Vec<&str> = name.split('.').collect();
        match labels.as_slice() {
            [rest @ .., "svc"] if rest.len() == 2 || rest.len() == 3 => rest.to_vec(),
            [svc] => {
                let ns = context_ns.ok_or_else(|| TargetError::NoNamespace(name.to_string()))?;
                vec![svc, ns]
            }
            [svc, ns] => vec![svc, ns],
            _ => return Err(not_cluster()),
        }
    };
    if labels.iter().any(|l| !is_dns_label(l)) {
        return Err(not_cluster());
    }
    Ok(match labels.as_slice() {
        [svc, ns] => ServiceName {
            namespace: ns.to_string(),
            service: svc.to_string(),
            hostname: None,
        },
        [host, svc, ns] => ServiceName {
            namespace: ns.to_string(),
            service: svc.to_string(),
            hostname: Some(host.to_string()),
        },
        _ => return Err(not_cluster()),
    })
}

/// Parses a full `GetDestination` path into a [`Target`].
pub fn parse_target(
    path: &str,
    context: &ContextToken,
    cluster_domain: &str,
) -> Result<Target, TargetError> {
    let (host, port) = parse_authority(path)?;
    match host {
        Host::Ip(ip) => Ok(Target::Addr(SocketAddr::new(ip, port))),
        Host::Name(name) => {
            let name = parse_cluster_name(&name, cluster_domain, context.ns.as_deref())?;
            Ok(Target::Service { name, port })
        }
    }
}

fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str, ns: Option<&str>) -> Result<ServiceName, TargetError> {
        parse_cluster_name(s, "cluster.local", ns)
    }

    #[test]
    fn names() {
        let web = ServiceName {
            namespace: "default".into(),
            service: "web".into(),
            hostname: None,
        };
        assert_eq!(name("web.default.svc.cluster.local", None), Ok(web.clone()));
        assert_eq!(name("web.default.svc", None), Ok(web.clone()));
        assert_eq!(name("web.default", None), Ok(web.clone()));
        assert_eq!(name("web", Some("default")), Ok(web.clone()));
        assert!(name("web", None).is_err());
        assert!(name("a.b.c.d.example.com", None).is_err());
        assert!(name("web.default.svc.other.local", None).is_err());
        let pod = name("web-0.web.default.svc.cluster.local", None).expect("instance");
        assert_eq!(pod.hostname.as_deref(), Some("web-0"));
    }

    #[test]
    fn authorities() {
        assert_eq!(
            parse_authority("web.default.svc.cluster.local.:8080"),
            Ok((Host::Name("web.default.svc.cluster.local".into()), 8080))
        );
        assert_eq!(parse_authority("web"), Ok((Host::Name("web".into()), 80)));
        assert!(matches!(
            parse_authority("10.0.0.1:80"),
            Ok((Host::Ip(_), 80))
        ));
        assert!(matches!(parse_authority("[::1]:81"), Ok((Host::Ip(_), 81))));
        assert!(parse_authority("web:http").is_err());
    }

    #[test]
    fn tokens() {
        assert_eq!(
            parse_context_token(r#"{"ns":"emojivoto","nodeName":"n1","pod":"p"}"#).ns,
            Some("emojivoto".into())
        );
        assert_eq!(parse_context_token("ns:foo").ns, Some("foo".into()));
        assert_eq!(parse_context_token("garbage").ns, None);
    }
}
