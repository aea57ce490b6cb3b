//! IP networks (CIDRs): parsing, matching and their proto form.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use linkerd2_proxy_api::net::IpNetwork;

/// Why a network list cannot be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetworksError {
    /// An item is not `ip/prefix` (or a bare IP).
    #[error("invalid network {0:?}: expected ip/prefix")]
    Invalid(String),
    /// The prefix length is too long for the address family.
    #[error("invalid prefix length in {0:?}")]
    Prefix(String),
}

/// One IP network, e.g. `10.0.0.0/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address (host bits are cleared).
    pub ip: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
}

impl Cidr {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.ip, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix_len) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix_len) == u128::from(net)
            }
            _ => false,
        }
    }

    /// The proto form (`io.linkerd.proxy.net.IPNetwork`).
    pub fn to_proto(&self) -> IpNetwork {
        IpNetwork::from((self.ip, self.prefix_len))
    }
}

fn mask_v4(ip: u32, prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => ip & (u32::MAX << (32 - u32::from(p.min(32)))),
    }
}

fn mask_v6(ip: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p => ip & (u128::MAX << (128 - u32::from(p.min(128)))),
    }
}

impl FromStr for Cidr {
    type Err = NetworksError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let invalid = || NetworksError::Invalid(s.to_string());
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (s, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| invalid())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().map_err(|_| invalid())?,
        };
        if prefix_len > max {
            return Err(NetworksError::Prefix(s.to_string()));
        }
        let ip = match ip {
            IpAddr::V4(v4) => IpAddr::V4(mask_v4(u32::from(v4), prefix_len).into()),
            IpAddr::V6(v6) => IpAddr::V6(mask_v6(u128::from(v6), prefix_len).into()),
        };
        Ok(Cidr { ip, prefix_len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix_len)
    }
}

/// Parses a comma-separated list of networks (empty items are skipped).
pub fn parse_list(list: &str) -> Result<Vec<Cidr>, NetworksError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Cidr::from_str)
        .collect()
}

/// Whether any of `nets` contains `ip`.
pub fn any_contains(nets: &[Cidr], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let nets = parse_list(super::super::DEFAULT_CLUSTER_NETWORKS).expect("defaults parse");
        assert_eq!(nets.len(), 5);
        assert!(any_contains(&nets, "10.1.2.3".parse().expect("ip")));
        assert!(any_contains(&nets, "100.64.0.1".parse().expect("ip")));
        assert!(any_contains(&nets, "fd00::1".parse().expect("ip")));
        assert!(!any_contains(&nets, "8.8.8.8".parse().expect("ip")));
        assert!(!any_contains(&nets, "2001:db8::1".parse().expect("ip")));
        let all: Cidr = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains("1.2.3.4".parse().expect("ip")));
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().expect("masked").to_string(),
            "10.0.0.0/8"
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("bogus".parse::<Cidr>().is_err());
    }
}
