//! Port-list annotations (`config.linkerd.io/opaque-ports`, `skip-inbound-ports`).

use std::ops::RangeInclusive;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Annotation listing ports whose traffic is opaque TCP.
pub const OPAQUE_PORTS: &str = "config.linkerd.io/opaque-ports";
/// Annotation listing inbound ports the proxy does not handle.
pub const SKIP_INBOUND_PORTS: &str = "config.linkerd.io/skip-inbound-ports";

/// A set of ports parsed from a comma list of ports, ranges and port names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet(Vec<RangeInclusive<u16>>);

impl PortSet {
    /// Parses `list` (e.g. `"25,3306,4000-4010,mysql"`); names are resolved
    /// against the container ports of `pod`; unparsable items are ignored.
    pub fn parse(list: &str, pod: Option<&Pod>) -> Self {
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
            } else if let Some(port) = pod.and_then(|p| named_container_port(p, item)) {
                ranges.push(port..=port);
            }
        }
        PortSet(ranges)
    }

    /// Parses the annotation `key` of `meta`, if present.
    pub fn from_annotation(meta: &ObjectMeta, key: &str, pod: Option<&Pod>) -> Self {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(|v| Self::parse(v, pod))
            .unwrap_or_default()
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|r| r.contains(&port))
    }
}

fn named_container_port(pod: &Pod, name: &str) -> Option<u16> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .and_then(|p| u16::try_from(p.container_port).ok())
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
