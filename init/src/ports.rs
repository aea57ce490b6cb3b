//! Port lists (`4190,4191,4567-4568`) and subnet lists (`10.0.0.0/8,fd00::/8`)
//! as the proxy-init flags take them, and the chunking of port lists into
//! `-m multiport` rules.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// How many port references one `-m multiport --dports` match may hold
/// (a kernel limit): a single port counts one, a range `a:b` counts two.
pub(crate) const MULTIPORT_LIMIT: usize = 15;

/// An inclusive range of TCP ports; `lo == hi` for a single port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PortRange {
    /// The first port.
    pub(crate) lo: u16,
    /// The last port (inclusive).
    pub(crate) hi: u16,
}

/// A port list entry the user wrote that is not a port or a range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PortError {
    /// Two commas in a row, or a leading/trailing comma.
    #[error("empty entry in port list {list:?} (expected ports or ranges like 4190,4567-4568)")]
    Empty {
        /// The whole list.
        list: String,
    },
    /// Not a number.
    #[error("{item:?} is not a port number (expected 1-65535 or a range like 4567-4568)")]
    NotANumber {
        /// The offending entry.
        item: String,
    },
    /// A number outside 1–65535.
    #[error("port {item} is out of range (ports are 1-65535)")]
    OutOfRange {
        /// The offending number.
        item: String,
    },
    /// `b-a` with `b > a`.
    #[error("port range {item:?} is reversed (the lower bound comes first)")]
    Reversed {
        /// The offending range.
        item: String,
    },
}

impl PortRange {
    /// The range in `-m multiport` syntax: `4190` or `4567:4568`.
    pub(crate) fn multiport(&self) -> String {
        if self.lo == self.hi {
            self.lo.to_string()
        } else {
            format!("{}:{}", self.lo, self.hi)
        }
    }

    /// Port references this range uses in a multiport match.
    fn references(&self) -> usize {
        if self.lo == self.hi {
            1
        } else {
            2
        }
    }
}

fn parse_port(item: &str, whole: &str) -> Result<u16, PortError> {
    if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError::NotANumber {
            item: whole.to_string(),
        });
    }
    match item.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(PortError::OutOfRange {
            item: item.to_string(),
        }),
    }
}

impl FromStr for PortRange {
    type Err = PortError;

    /// Parses `p` or `lo-hi` (inclusive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s.split_once('-') {
            None => {
                let p = parse_port(s, s)?;
                Ok(PortRange { lo: p, hi: p })
            }
            Some((lo, hi)) => {
                let (lo, hi) = (parse_port(lo.trim(), s)?, parse_port(hi.trim(), s)?);
                if hi < lo {
                    return Err(PortError::Reversed {
                        item: s.to_string(),
                    });
                }
                Ok(PortRange { lo, hi })
            }
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// One `--*-ports-to-ignore` value: comma-separated ports and ranges. An
/// empty (or all-blank) value is an empty list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PortList(pub(crate) Vec<PortRange>);

impl FromStr for PortList {
    type Err = PortError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Ok(PortList::default());
        }
        s.split(',')
            .map(|item| {
                if item.trim().is_empty() {
                    Err(PortError::Empty {
                        list: s.to_string(),
                    })
                } else {
                    item.parse()
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(PortList)
    }
}

/// Splits `ports` into groups of at most [`MULTIPORT_LIMIT`] references,
/// keeping their order (a range is never split across groups).
pub(crate) fn multiport_chunks(ports: &[PortRange]) -> Vec<Vec<PortRange>> {
    let mut chunks = Vec::new();
    let mut current: Vec<PortRange> = Vec::new();
    let mut used = 0;
    for p in ports {
        if used + p.references() > MULTIPORT_LIMIT {
            chunks.push(std::mem::take(&mut current));
            used = 0;
        }
        current.push(*p);
        used += p.references();
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// A subnet of `--subnets-to-ignore`, as written and as a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Subnet {
    /// The text the user gave (trimmed); it names the rule's comment.
    pub(crate) text: String,
    /// The network address (host bits cleared).
    pub(crate) network: IpAddr,
    /// The prefix length.
    pub(crate) prefix: u8,
}

/// A subnet entry that is not a CIDR.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{item:?} is not a valid CIDR (expected e.g. 10.0.0.0/8 or fd00::/8)")]
pub(crate) struct SubnetError {
    /// The offending entry.
    item: String,
}

impl Subnet {
    /// Whether this is an IPv6 network.
    pub(crate) fn is_ipv6(&self) -> bool {
        self.network.is_ipv6()
    }

    /// `network/prefix`, as iptables-save prints a source match.
    pub(crate) fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let err = || SubnetError {
            item: text.to_string(),
        };
        let (addr, prefix) = text.split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        let network = match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
            _ => return Err(err()),
        };
        Ok(Subnet {
            text: text.to_string(),
            network,
            prefix,
        })
    }
}

/// One `--subnets-to-ignore` value: comma-separated CIDRs (empty: none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SubnetList(pub(crate) Vec<Subnet>);

impl FromStr for SubnetList {
    type Err = SubnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Ok(SubnetList::default());
        }
        s.split(',')
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(SubnetList)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn r(lo: u16, hi: u16) -> PortRange {
        PortRange { lo, hi }
    }

    #[test]
    fn parses_ports_and_ranges() {
        let l: PortList = "4190, 4191,4567-4568".parse().unwrap();
        assert_eq!(l.0, vec![r(4190, 4190), r(4191, 4191), r(4567, 4568)]);
        assert_eq!("".parse::<PortList>().unwrap(), PortList::default());
        assert_eq!("  ".parse::<PortList>().unwrap(), PortList::default());
        assert_eq!("1-65535".parse::<PortRange>().unwrap(), r(1, 65535));
        assert_eq!("80-80".parse::<PortRange>().unwrap().multiport(), "80");
        assert_eq!(r(4567, 4568).multiport(), "4567:4568");
    }

    #[test]
    fn rejects_bad_ports_with_a_reason() {
        let e = |s: &str| s.parse::<PortList>().unwrap_err().to_string();
        assert_eq!(e("70000"), "port 70000 is out of range (ports are 1-65535)");
        assert_eq!(e("0"), "port 0 is out of range (ports are 1-65535)");
        assert_eq!(
            e("80,http"),
            "\"http\" is not a port number (expected 1-65535 or a range like 4567-4568)"
        );
        assert_eq!(
            e("-5"),
            "\"-5\" is not a port number (expected 1-65535 or a range like 4567-4568)"
        );
        assert_eq!(
            e("1-2-3"),
            "\"1-2-3\" is not a port number (expected 1-65535 or a range like 4567-4568)"
        );
        assert_eq!(
            e("90-80"),
            "port range \"90-80\" is reversed (the lower bound comes first)"
        );
        assert_eq!(
            e("80,,81"),
            "empty entry in port list \"80,,81\" (expected ports or ranges like 4190,4567-4568)"
        );
        assert!(e("80,").starts_with("empty entry"));
    }

    #[test]
    fn chunks_hold_at_most_fifteen_references() {
        let ports: Vec<PortRange> = (1..=20).map(|p| r(p, p)).collect();
        let c = multiport_chunks(&ports);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].len(), 15);
        assert_eq!(c[1], (16..=20).map(|p| r(p, p)).collect::<Vec<_>>());

        // 14 singles + a range (2 references) does not fit: the range starts a new chunk.
        let mut ports: Vec<PortRange> = (1..=14).map(|p| r(p, p)).collect();
        ports.push(r(100, 200));
        ports.push(r(300, 300));
        let c = multiport_chunks(&ports);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].len(), 14);
        assert_eq!(c[1], vec![r(100, 200), r(300, 300)]);

        // Ranges only: 7 per chunk (14 references).
        let ranges: Vec<PortRange> = (0..8).map(|i| r(1000 + i * 10, 1005 + i * 10)).collect();
        let c = multiport_chunks(&ranges);
        assert_eq!(c.iter().map(Vec::len).collect::<Vec<_>>(), vec![7, 1]);

        assert!(multiport_chunks(&[]).is_empty());
    }

    #[test]
    fn parses_subnets() {
        let l: SubnetList = "10.1.2.3/8, fd00::1/8,192.168.0.7/32".parse().unwrap();
        assert_eq!(l.0[0].cidr(), "10.0.0.0/8");
        assert_eq!(l.0[0].text, "10.1.2.3/8");
        assert!(!l.0[0].is_ipv6());
        assert_eq!(l.0[1].cidr(), "fd00::/8");
        assert!(l.0[1].is_ipv6());
        assert_eq!(l.0[2].cidr(), "192.168.0.7/32");
        assert_eq!("0.0.0.0/0".parse::<Subnet>().unwrap().cidr(), "0.0.0.0/0");
        assert_eq!("::/0".parse::<Subnet>().unwrap().cidr(), "::/0");
        assert!("".parse::<SubnetList>().unwrap().0.is_empty());
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "fd00::/129",
            "ten/8",
            "10.0.0.0/x",
            "10.0.0.0/",
        ] {
            let e = bad.parse::<Subnet>().unwrap_err().to_string();
            assert!(e.contains("is not a valid CIDR"), "{bad}: {e}");
        }
    }
}
