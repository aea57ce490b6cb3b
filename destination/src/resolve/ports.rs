//! Port-list annotations (`config.linkerd.io/opaque-ports`, `skip-inbound-ports`).

use std::ops::RangeInclusive;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::index::PodSummary;

pub use crate::index::pod::{OPAQUE_PORTS, SKIP_INBOUND_PORTS};

/// A set of ports parsed from a comma list of ports, ranges and port names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet(Vec<RangeInclusive<u16>>);

impl PortSet {
    /// Parses `list` (e.g. `"25,3306,4000-4010,mysql"`); names are resolved
    /// against the container ports of `pod`; unparsable items are ignored.
    pub fn parse(list: &str, pod: Option<&PodSummary>) -> Self {
        let mut ranges = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Some((lo, hi)) = item.split_once('-') {
                if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
                    if lo <= hi {
                        ranges.push(lo..=hi);
                    }
                    continue;
                }
            }
            if let Ok(port) = item.parse::<u16>() {
                ranges.push(port..=port);
            } else if let Some(port) = pod.and_then(|p| p.named_container_port(item)) {
                ranges.push(port..=port);
            }
        }
        PortSet(ranges)
    }

    /// Parses the annotation `key` of `meta` (a Service's: no port names
    /// resolve), if present.
    pub fn from_annotation(meta: &ObjectMeta, key: &str) -> Self {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(|v| Self::parse(v, None))
            .unwrap_or_default()
    }

    /// Parses the pod's port-list annotation `key` (port names resolve
    /// against its container ports); `None` when the pod does not have it.
    pub fn from_pod(pod: &PodSummary, key: &str) -> Option<Self> {
        pod.port_annotation(key).map(|v| Self::parse(v, Some(pod)))
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|r| r.contains(&port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_ranges() {
        let set = PortSet::parse("25, 3306,4000-4010,bogus,9-1", None);
        assert!(set.contains(25));
        assert!(set.contains(3306));
        assert!(set.contains(4005));
        assert!(!set.contains(4011));
        assert!(!set.contains(5));
    }
}
