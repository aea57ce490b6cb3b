//! Proxy configuration, read only from `LINKERD2_PROXY_*` environment variables.
//!
//! Names, meanings and defaults follow linkerd2-proxy (the table is in
//! `docs/proxy-runtime.md`); the few `WISP_PROXY_*` variables are wisp's own
//! resource bounds, which linkerd2-proxy does not have. An invalid value
//! stops startup with an error that names the variable. This module reads
//! and checks values only; it imports nothing else from the proxy.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable has a value we cannot parse.
    #[error("{name}={value:?}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        #[source]
        reason: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A required variable is missing.
    #[error("{0} must be set")]
    Missing(&'static str),
}

/// Everything the proxy reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    /// Outbound listener(s) (4140).
    pub outbound_addrs: Vec<SocketAddr>,
    /// Inbound listener (4143).
    pub inbound_addr: SocketAddr,
    /// Admin listener (4191).
    pub admin_addr: SocketAddr,
    /// Control listener (4190, tap): never bound yet, but its port is one
    /// of the proxy's own and so never a forwarding target.
    pub control_addr: SocketAddr,
    /// The tap service's identity: with it set, the control listener
    /// serves the Tap API (`LINKERD2_PROXY_TAP_SVC_NAME`).
    pub tap_svc_name: Option<String>,
    /// Connections each listener serves at once; more are closed at accept
    /// and counted (`WISP_PROXY_MAX_CONNECTIONS_PER_LISTENER`).
    pub max_connections_per_listener: usize,
    /// Connections the proxy opens to one endpoint at once
    /// (`WISP_PROXY_MAX_CONNECTIONS_PER_ENDPOINT`).
    pub max_connections_per_endpoint: usize,
    /// An HTTP/1 request body that sends nothing for this long is abandoned
    /// (`WISP_PROXY_REQUEST_BODY_TIMEOUT`).
    pub request_body_timeout: Duration,
    /// Destination service `host:port`.
    pub destination_addr: String,
    /// The destination service's identity (required unless its address is loopback).
    pub destination_name: Option<String>,
    /// Sent verbatim as `context_token` on every discovery request.
    pub destination_context: String,
    /// Identity and mTLS settings; `None` when `LINKERD2_PROXY_IDENTITY_DISABLED` is set.
    pub identity: Option<IdentityConfig>,
    /// Networks whose IPs are looked up with GetProfile (transparent mode).
    pub profile_networks: Vec<IpNet>,
    /// Name suffixes eligible for GetProfile lookups.
    pub profile_suffixes: Vec<String>,
    /// Inbound ports that skip protocol detection (opaque).
    pub inbound_opaque_ports: PortSet,
    /// Outbound ports that skip protocol detection (opaque).
    pub outbound_opaque_ports: PortSet,
    /// Inbound connections to other IPs are refused (empty = any).
    pub inbound_ips: Vec<IpAddr>,
    /// How long protocol detection may wait for the first bytes, inbound.
    pub inbound_detect_timeout: Duration,
    /// How long protocol detection may wait for the first bytes, outbound.
    pub outbound_detect_timeout: Duration,
    /// Proxy -> local application connect timeout.
    pub inbound_connect_timeout: Duration,
    /// Proxy -> remote endpoint connect timeout.
    pub outbound_connect_timeout: Duration,
    /// Unused discovery results are dropped after this long, outbound.
    pub outbound_discovery_idle_timeout: Duration,
    /// Unused inbound targets are dropped after this long.
    pub inbound_discovery_idle_timeout: Duration,
    /// How long a request waits for a backend with no endpoints before failing.
    pub outbound_failfast_timeout: Duration,
    /// Idle HTTP/1 connections kept per endpoint.
    pub max_idle_conns_per_endpoint: usize,
    /// Idle HTTP/1 pooled connections are closed after this long.
    pub http1_pool_idle_timeout: Duration,
    /// Largest request head (HTTP/1 header block, HTTP/2 header list) accepted.
    pub max_header_bytes: usize,
    /// Worker threads (1 = single-threaded runtime).
    pub cores: usize,
    /// Whether `POST /shutdown` on the admin port is enabled.
    pub shutdown_endpoint_enabled: bool,
    /// Drain deadline after a shutdown request.
    pub shutdown_grace_period: Duration,
    /// Log filter (tracing-subscriber syntax).
    pub log_filter: String,
    /// Idle metric series are dropped at scrape after this long.
    pub metrics_retain_idle: Duration,
}

/// How the proxy obtains its certificate and whom it trusts.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    /// This workload's identity: the CSR's name, our TLS server name.
    pub local_name: String,
    /// Trust anchors for every mTLS connection (parsed from the PEM bundle).
    pub trust_anchors: rustls::RootCertStore,
    /// File holding the token sent with each Certify call (re-read every time).
    pub token_file: std::path::PathBuf,
    /// Identity service `host:port`.
    pub svc_addr: String,
    /// The identity service's identity (required unless its address is loopback).
    pub svc_name: Option<String>,
    /// Lower bound of the refresh interval (also the retry delay cap).
    pub min_refresh: Duration,
    /// Upper bound of the refresh interval.
    pub max_refresh: Duration,
}

/// Whether a control-plane `host:port` is on loopback, where it is dialled
/// without TLS (`localhost`, `localhost.`, 127.0.0.0/8, ::1).
pub fn is_loopback_addr(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host == "localhost."
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An IP network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or("expected a CIDR such as 10.0.0.0/8")?;
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IP address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("{prefix:?} is not a prefix length"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("prefix /{prefix} is longer than {max}"));
        }
        Ok(IpNet { addr, prefix })
    }
}

/// A set of ports and inclusive port ranges, e.g. `25,587,3306,4444-4450`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet(Vec<(u16, u16)>);

impl PortSet {
    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }

    fn parse(s: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let port = |p: &str| -> Result<u16, String> {
                p.trim()
                    .parse::<u16>()
                    .map_err(|_| format!("{p:?} is not a port"))
            };
            let range = match part.split_once('-') {
                Some((lo, hi)) => (port(lo)?, port(hi)?),
                None => (port(part)?, port(part)?),
            };
            if range.0 > range.1 {
                return Err(format!("range {part:?} is empty"));
            }
            ranges.push(range);
        }
        Ok(PortSet(ranges))
    }
}

/// Reads the variables from a map (the process environment in `from_env`).
struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    fn get(&self, name: &'static str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn parse<T, E>(
        &self,
        name: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<T, ConfigError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse(v).map_err(|reason| ConfigError::Invalid {
                name,
                value: v.to_string(),
                reason: reason.into(),
            }),
        }
    }

    fn addr(&self, name: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
        let default = default.parse().map_err(|_| ConfigError::Missing(name))?;
        self.parse(name, default, parse_addr)
    }

    fn duration(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.parse(name, default, wisp_common::duration::parse_proxy_duration)
    }

    fn number<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        self.parse(name, default, |v| {
            v.trim().parse().map_err(|_| "expected a whole number")
        })
    }

    fn bool(&self, name: &'static str) -> Result<bool, ConfigError> {
        self.parse(name, false, |v| {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err("expected true or false"),
            }
        })
    }
}

fn parse_addr(v: &str) -> Result<SocketAddr, String> {
    v.trim()
        .parse()
        .map_err(|_| "expected an address such as 127.0.0.1:4140".to_string())
}

fn parse_list<T>(v: &str, item: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(item)
        .collect()
}

fn identity_config(env: &Env<'_>) -> Result<IdentityConfig, ConfigError> {
    let required = |name: &'static str| {
        env.get(name)
            .map(|v| v.trim().to_string())
            .ok_or(ConfigError::Missing(name))
    };
    let local_name = match env.get("LINKERD2_PROXY_IDENTITY_LOCAL_NAME") {
        Some(n) => n.trim().to_string(),
        None => {
            let id = required("LINKERD2_PROXY_IDENTITY_SERVER_ID")?;
            let name = required("LINKERD2_PROXY_IDENTITY_SERVER_NAME")?;
            if id != name {
                return Err(ConfigError::Invalid {
                    name: "LINKERD2_PROXY_IDENTITY_SERVER_NAME",
                    value: name,
                    reason: "must equal LINKERD2_PROXY_IDENTITY_SERVER_ID".into(),
                });
            }
            id
        }
    };
    if rustls_pki_types::DnsName::try_from(local_name.as_str()).is_err() {
        return Err(ConfigError::Invalid {
            name: "LINKERD2_PROXY_IDENTITY_LOCAL_NAME",
            value: local_name,
            reason: "must be a DNS-like name".into(),
        });
    }
    let pem = required("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS")?;
    let trust_anchors = parse_trust_anchors(&pem).map_err(|reason| ConfigError::Invalid {
        name: "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
        value: pem.chars().take(40).collect(),
        reason: format!("expected one or more PEM certificates: {reason}").into(),
    })?;
    let svc_addr = required("LINKERD2_PROXY_IDENTITY_SVC_ADDR")?;
    let svc_name = env
        .get("LINKERD2_PROXY_IDENTITY_SVC_NAME")
        .map(|s| s.trim().to_string());
    if svc_name.is_none() && !is_loopback_addr(&svc_addr) {
        return Err(ConfigError::Missing("LINKERD2_PROXY_IDENTITY_SVC_NAME"));
    }
    let min_refresh = env.duration(
        "LINKERD2_PROXY_IDENTITY_MIN_REFRESH",
        Duration::from_secs(10),
    )?;
    let max_refresh = env.duration(
        "LINKERD2_PROXY_IDENTITY_MAX_REFRESH",
        Duration::from_secs(86_400),
    )?;
    if min_refresh > max_refresh {
        return Err(ConfigError::Invalid {
            name: "LINKERD2_PROXY_IDENTITY_MIN_REFRESH",
            value: format!("{min_refresh:?}"),
            reason: "must not exceed LINKERD2_PROXY_IDENTITY_MAX_REFRESH".into(),
        });
    }
    Ok(IdentityConfig {
        local_name,
        trust_anchors,
        token_file: required("LINKERD2_PROXY_IDENTITY_TOKEN_FILE")?.into(),
        svc_addr,
        svc_name,
        min_refresh,
        max_refresh,
    })
}

/// Parses a PEM bundle of trust anchors.
fn parse_trust_anchors(pem: &str) -> Result<rustls::RootCertStore, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("invalid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("invalid certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no certificates".into());
    }
    Ok(roots)
}

/// The opaque ports Linkerd uses when none are configured.
const DEFAULT_OPAQUE_PORTS: &str = "25,587,3306,4444,5432,6379,9300,11211";

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_map(&vars)
    }

    /// Reads the configuration from a map of variables.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let env = Env(vars);
        let outbound_addrs = match env.get("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS") {
            Some(v) => parse_list(v, parse_addr).map_err(|reason| ConfigError::Invalid {
                name: "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS",
                value: v.into(),
                reason: reason.into(),
            })?,
            None => vec![env.addr("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR", "127.0.0.1:4140")?],
        };
        let destination_addr = env
            .get("LINKERD2_PROXY_DESTINATION_SVC_ADDR")
            .ok_or(ConfigError::Missing("LINKERD2_PROXY_DESTINATION_SVC_ADDR"))?
            .trim()
            .to_string();
        if destination_addr
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
        {
            return Err(ConfigError::Invalid {
                name: "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
                value: destination_addr,
                reason: "expected host:port".into(),
            });
        }
        let destination_name = env
            .get("LINKERD2_PROXY_DESTINATION_SVC_NAME")
            .map(|s| s.trim().to_string());
        let identity = match env.get("LINKERD2_PROXY_IDENTITY_DISABLED") {
            Some(_) => None,
            None => Some(identity_config(&env)?),
        };
        if identity.is_some() && destination_name.is_none() && !is_loopback_addr(&destination_addr)
        {
            return Err(ConfigError::Missing("LINKERD2_PROXY_DESTINATION_SVC_NAME"));
        }
        let cores = match env.get("LINKERD2_PROXY_CORES_MIN") {
            Some(_) => env.number("LINKERD2_PROXY_CORES_MIN", 1usize)?,
            None => env.number("LINKERD2_PROXY_CORES", 1usize)?,
        };
        let max_header_bytes = env.number("LINKERD2_PROXY_MAX_HEADER_BYTES", 64 * 1024usize)?;
        if max_header_bytes < 1024 {
            return Err(ConfigError::Invalid {
                name: "LINKERD2_PROXY_MAX_HEADER_BYTES",
                value: max_header_bytes.to_string(),
                reason: "must be at least 1024".into(),
            });
        }
        Ok(Config {
            outbound_addrs,
            inbound_addr: env.addr("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "0.0.0.0:4143")?,
            admin_addr: env.addr("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "127.0.0.1:4191")?,
            control_addr: env.addr("LINKERD2_PROXY_CONTROL_LISTEN_ADDR", "0.0.0.0:4190")?,
            tap_svc_name: env
                .get("LINKERD2_PROXY_TAP_SVC_NAME")
                .map(|s| s.trim().to_string()),
            max_connections_per_listener: env
                .number("WISP_PROXY_MAX_CONNECTIONS_PER_LISTENER", 20_000usize)?
                .max(1),
            max_connections_per_endpoint: env
                .number("WISP_PROXY_MAX_CONNECTIONS_PER_ENDPOINT", 1_000usize)?
                .max(1),
            request_body_timeout: env
                .duration("WISP_PROXY_REQUEST_BODY_TIMEOUT", Duration::from_secs(30))?,
            destination_addr,
            destination_name,
            identity,
            destination_context: env
                .get("LINKERD2_PROXY_DESTINATION_CONTEXT")
                .unwrap_or_default()
                .to_string(),
            profile_networks: env.parse(
                "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS",
                Vec::new(),
                |v| parse_list(v, IpNet::parse),
            )?,
            profile_suffixes: env.parse(
                "LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES",
                vec!["svc.cluster.local.".to_string()],
                |v| parse_list(v, |s| Ok(s.to_string())),
            )?,
            inbound_opaque_ports: env.parse(
                "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
                PortSet::parse(DEFAULT_OPAQUE_PORTS).unwrap_or_default(),
                PortSet::parse,
            )?,
            outbound_opaque_ports: env.parse(
                "LINKERD2_PROXY_OUTBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
                PortSet::parse(DEFAULT_OPAQUE_PORTS).unwrap_or_default(),
                PortSet::parse,
            )?,
            inbound_ips: env.parse("LINKERD2_PROXY_INBOUND_IPS", Vec::new(), |v| {
                parse_list(v, |s| s.parse().map_err(|_| format!("{s:?} is not an IP")))
            })?,
            inbound_detect_timeout: env.duration(
                "LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT",
                Duration::from_secs(10),
            )?,
            outbound_detect_timeout: env.duration(
                "LINKERD2_PROXY_OUTBOUND_DETECT_TIMEOUT",
                Duration::from_secs(10),
            )?,
            inbound_connect_timeout: env.duration(
                "LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT",
                Duration::from_millis(300),
            )?,
            outbound_connect_timeout: env.duration(
                "LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT",
                Duration::from_secs(1),
            )?,
            outbound_discovery_idle_timeout: env.duration(
                "LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT",
                Duration::from_secs(5),
            )?,
            inbound_discovery_idle_timeout: env.duration(
                "LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT",
                Duration::from_secs(90),
            )?,
            outbound_failfast_timeout: env.duration(
                "LINKERD2_PROXY_OUTBOUND_HTTP_FAILFAST_TIMEOUT",
                Duration::from_secs(3),
            )?,
            max_idle_conns_per_endpoint: env.number(
                "LINKERD2_PROXY_OUTBOUND_MAX_IDLE_CONNS_PER_ENDPOINT",
                10_000usize,
            )?,
            http1_pool_idle_timeout: env.duration(
                "LINKERD2_PROXY_OUTBOUND_HTTP1_CONNECTION_POOL_IDLE_TIMEOUT",
                Duration::from_secs(3),
            )?,
            max_header_bytes,
            cores: cores.max(1),
            shutdown_endpoint_enabled: env.bool("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED")?,
            shutdown_grace_period: env.duration(
                "LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD",
                Duration::from_secs(120),
            )?,
            log_filter: env
                .get("LINKERD2_PROXY_LOG")
                .unwrap_or("warn,wisp_proxy=info")
                .to_string(),
            metrics_retain_idle: env.duration(
                "LINKERD2_PROXY_METRICS_RETAIN_IDLE",
                Duration::from_secs(600),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("LINKERD2_PROXY_IDENTITY_DISABLED", "1"),
            ("LINKERD2_PROXY_DESTINATION_SVC_ADDR", "127.0.0.1:8086"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    #[test]
    fn defaults_match_linkerd() {
        let c = Config::from_map(&env(&[])).expect("valid");
        assert_eq!(
            c.outbound_addrs,
            vec!["127.0.0.1:4140".parse().expect("addr")]
        );
        assert_eq!(c.inbound_addr, "0.0.0.0:4143".parse().expect("addr"));
        assert_eq!(c.admin_addr, "127.0.0.1:4191".parse().expect("addr"));
        assert_eq!(c.cores, 1);
        assert!(c.inbound_opaque_ports.contains(3306));
        assert!(!c.inbound_opaque_ports.contains(80));
        assert_eq!(c.outbound_discovery_idle_timeout, Duration::from_secs(5));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let err = Config::from_map(&env(&[("LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT", "10")]))
            .expect_err("bare number");
        assert!(err
            .to_string()
            .contains("LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT"));
        let err = Config::from_map(&env(&[("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "nope")]))
            .expect_err("bad addr");
        assert!(err
            .to_string()
            .contains("LINKERD2_PROXY_INBOUND_LISTEN_ADDR"));
        let mut m = env(&[]);
        m.remove("LINKERD2_PROXY_DESTINATION_SVC_ADDR");
        let err = Config::from_map(&m).expect_err("missing");
        assert!(err
            .to_string()
            .contains("LINKERD2_PROXY_DESTINATION_SVC_ADDR"));
        let mut m = env(&[]);
        m.remove("LINKERD2_PROXY_IDENTITY_DISABLED");
        let err = Config::from_map(&m).expect_err("identity vars missing");
        assert!(err.to_string().contains("LINKERD2_PROXY_IDENTITY"), "{err}");
    }

    #[test]
    fn durations_ports_networks() {
        let d = |v: &str| {
            Config::from_map(&env(&[("LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT", v)]))
                .map(|c| c.outbound_connect_timeout)
        };
        assert_eq!(d("0").ok(), Some(Duration::ZERO));
        assert_eq!(d(" 150ms ").ok(), Some(Duration::from_millis(150)));
        assert_eq!(d("2m").ok(), Some(Duration::from_secs(120)));
        assert!(d("5").is_err());
        assert!(d("5x").is_err());
        let p = PortSet::parse("80, 8000-8010").expect("ports");
        assert!(p.contains(80) && p.contains(8005) && !p.contains(8011));
        assert!(PortSet::parse("10-5").is_err());
        let n = IpNet::parse("10.0.0.0/8").expect("net");
        assert!(n.contains("10.1.2.3".parse().expect("ip")));
        assert!(!n.contains("11.1.2.3".parse().expect("ip")));
        let n = IpNet::parse("fd00::/8").expect("net");
        assert!(n.contains("fd77::2".parse().expect("ip")));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
    }
}
