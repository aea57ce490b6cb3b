//! Small parsers for annotation values, with the same acceptance rules as
//! Linkerd's Go code: Go durations, Go booleans, Kubernetes quantities,
//! port ranges and CIDRs.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// `strconv.ParseBool`.
pub(crate) fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `time.ParseDuration`, in nanoseconds (`"1m30s"`, `"1.5s"`, `"100ms"`,
/// `"0"`). Negative durations are accepted as Go does.
pub(crate) fn go_duration_nanos(s: &str) -> Option<i128> {
    wisp_common::duration::parse_go_duration(s).ok()
}

/// A parsed Kubernetes quantity, as a decimal value.
pub(crate) fn quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return None;
    }
    let digits = num.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits.contains(['+', '-']) {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        other => {
            let exp = other.strip_prefix(['e', 'E'])?;
            let exp: i32 = exp.parse().ok()?;
            10f64.powi(exp)
        }
    };
    Some(value * scale)
}

/// A CPU quantity rounded up to whole cores (Linkerd's `ToWholeCPUCores`).
pub(crate) fn whole_cores(q: f64) -> i64 {
    // Quantities are exact decimals; guard against 0.1*10 style noise.
    let scaled = (q * 1000.0).round() / 1000.0;
    scaled.ceil() as i64
}

/// Whether `s` is `address/prefix`.
pub(crate) fn is_cidr(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else {
        return false;
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let Ok(len) = len.parse::<u8>() else {
        return false;
    };
    match addr {
        IpAddr::V4(_) => len <= 32,
        IpAddr::V6(_) => len <= 128,
    }
}

/// One `a` or `a-b` entry of a port list.
pub(crate) fn port_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    match s.split_once('-') {
        Some((a, b)) => {
            let a: u16 = a.trim().parse().ok()?;
            let b: u16 = b.trim().parse().ok()?;
            (a <= b).then_some((a, b))
        }
        None => {
            let p: u16 = s.parse().ok()?;
            Some((p, p))
        }
    }
}

/// Linkerd's `ParseContainerOpaquePorts`: entries are ports, ranges or the
/// names of container ports; invalid entries are dropped (and reported).
pub(crate) fn opaque_ports(value: &str, named: &BTreeMap<String, i32>) -> (String, Vec<String>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for entry in value.strip_suffix(',').unwrap_or(value).split(',') {
        let entry = entry.trim();
        if let Some(port) = named.get(entry) {
            out.push(port.to_string());
        } else if let Some((a, b)) = port_range(entry) {
            out.push(if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            });
        } else {
            bad.push(entry.to_string());
        }
    }
    (out.join(","), bad)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_follow_go() {
        assert_eq!(go_duration_nanos("100ms"), Some(100_000_000));
        assert_eq!(go_duration_nanos("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration_nanos("1.5s"), Some(1_500_000_000));
        assert_eq!(go_duration_nanos("0"), Some(0));
        assert_eq!(go_duration_nanos("10"), None);
        assert_eq!(go_duration_nanos("abc"), None);
        assert_eq!(go_duration_nanos(""), None);
    }

    #[test]
    fn quantities_and_cores() {
        assert_eq!(quantity("100m").map(whole_cores), Some(1));
        assert_eq!(quantity("1500m").map(whole_cores), Some(2));
        assert_eq!(quantity("2").map(whole_cores), Some(2));
        assert_eq!(quantity("0.5").map(whole_cores), Some(1));
        assert!(quantity("64Mi").is_some());
        assert!(quantity("1e3").is_some());
        assert!(quantity("lots").is_none());
        assert!(quantity("").is_none());
    }

    #[test]
    fn opaque_ports_resolve_names_and_ranges() {
        let named = BTreeMap::from([("mysql".to_string(), 3306)]);
        let (ports, bad) = opaque_ports("mysql,8000-8002,9,nope,", &named);
        assert_eq!(ports, "3306,8000-8002,9");
        assert_eq!(bad, vec!["nope".to_string()]);
    }

    #[test]
    fn cidrs() {
        assert!(is_cidr("10.0.0.0/8"));
        assert!(is_cidr("fd00::/8"));
        assert!(!is_cidr("10.0.0.0/33"));
        assert!(!is_cidr("10.0.0.0"));
    }
}
