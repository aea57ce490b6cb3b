//! The compact form the index keeps of an EndpointSlice: exactly what the
//! endpoint resolver reads, nothing more.
//!
//! A `k8s-openapi` `Endpoint` is about 340 bytes inline (its `targetRef` is a
//! whole `ObjectReference`) plus half a dozen small strings, so the sources
//! convert every EndpointSlice into an [`EndpointSliceSummary`] before it
//! reaches the index. What is kept, and why:
//!
//! - namespace and name (the index key);
//! - the `kubernetes.io/service-name` label (which Service the slice serves);
//! - the ports as (name, port): the resolver matches the Service port's name
//!   against them (an unset name counts as `""`), or takes the only one;
//! - per endpoint, only endpoints the resolver can serve: not marked
//!   `conditions.ready: false`, with a first address that is an IP (only the
//!   first address is served, as Linkerd does). Of each:
//!   - that first address, as an [`IpAddr`];
//!   - `hostname`, and `targetRef.name` (whatever its kind): an instance
//!     name (`web-0.web.ns.svc…`) matches the hostname, else the target's
//!     name; a hostname equal to the target's name is kept once;
//!   - whether `targetRef` is a `Pod`, and its namespace when it is not the
//!     slice's own (the Pod behind the address: identity, metric labels);
//!   - `zone` (the `zone` metric label), each distinct zone stored once per
//!     slice.
//!
//! `addressType` is only read by the checks made before summarizing; the
//! other conditions, `nodeName`, `hints` and `deprecatedTopology` are not
//! read at all.

use std::net::IpAddr;
use std::num::NonZeroU32;

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

use super::object::ObjectKey;

/// Label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the index keeps of one EndpointSlice (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSliceSummary {
    key: ObjectKey,
    service: Option<Box<str>>,
    ports: Box<[(Box<str>, Option<i32>)]>,
    zones: Box<[Box<str>]>,
    endpoints: Box<[SliceEndpoint]>,
}

/// One servable endpoint of an [`EndpointSliceSummary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEndpoint {
    ip: IpAddr,
    target_is_pod: bool,
    /// Index + 1 into the slice's zones.
    zone: Option<NonZeroU32>,
    /// `hostname`, unless it is `None` or equal to `target`.
    hostname: Option<Box<str>>,
    /// `targetRef.name`.
    target: Option<Box<str>>,
    /// `targetRef.namespace` of a Pod target, when not the slice's namespace.
    pod_namespace: Option<Box<str>>,
}

impl EndpointSliceSummary {
    /// Summarizes `slice`, keeping only what wisp reads.
    pub fn from_slice(slice: &EndpointSlice) -> Self {
        let key = ObjectKey::from_meta(&slice.metadata);
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .map(|s| s.as_str().into());
        let ports = slice
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref().unwrap_or_default().into(), p.port))
            .collect();
        let mut zones: Vec<Box<str>> = Vec::new();
        let endpoints = slice
            .endpoints
            .iter()
            .flatten()
            .filter_map(|e| SliceEndpoint::new(e, &key.namespace, &mut zones))
            .collect();
        Self {
            key,
            service,
            ports,
            zones: zones.into_boxed_slice(),
            endpoints,
        }
    }

    /// Namespace and name of the slice.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// Name of the slice.
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// The `kubernetes.io/service-name` label.
    pub fn service_name(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// The slice's ports as (name, port), in order; an unset name is `""`.
    pub fn ports(&self) -> impl ExactSizeIterator<Item = (&str, Option<i32>)> + '_ {
        self.ports.iter().map(|(name, port)| (&**name, *port))
    }

    /// The endpoints the resolver can serve (ready or without a readiness
    /// condition, first address an IP), in order.
    pub fn endpoints(&self) -> &[SliceEndpoint] {
        &self.endpoints
    }

    /// The `zone` of `endpoint` (an endpoint of this slice).
    pub fn zone(&self, endpoint: &SliceEndpoint) -> Option<&str> {
        let at = usize::try_from(endpoint.zone?.get()).ok()? - 1;
        self.zones.get(at).map(|z| &**z)
    }

    /// Namespace and name of the Pod `endpoint` (an endpoint of this slice)
    /// targets, when its `targetRef` is a Pod (the namespace defaults to the
    /// slice's, the name to `""`).
    pub fn target_pod<'a>(&'a self, endpoint: &'a SliceEndpoint) -> Option<(&'a str, &'a str)> {
        if !endpoint.target_is_pod {
            return None;
        }
        let namespace = endpoint
            .pod_namespace
            .as_deref()
            .unwrap_or(&self.key.namespace);
        Some((namespace, endpoint.target.as_deref().unwrap_or_default()))
    }
}

impl SliceEndpoint {
    /// The summary of `endpoint` of a slice in `namespace`; `None` when the
    /// resolver would never serve it. New zones are added to `zones`.
    fn new(endpoint: &Endpoint, namespace: &str, zones: &mut Vec<Box<str>>) -> Option<Self> {
        let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false);
        if !ready {
            return None;
        }
        let ip = endpoint.addresses.first()?.parse::<IpAddr>().ok()?;
        let target_ref = endpoint.target_ref.as_ref();
        let target = target_ref.and_then(|r| r.name.as_deref());
        let target_is_pod = target_ref.is_some_and(|r| r.kind.as_deref() == Some("Pod"));
        let pod_namespace = target_ref
            .filter(|_| target_is_pod)
            .and_then(|r| r.namespace.as_deref())
            .filter(|ns| *ns != namespace)
            .map(Into::into);
        let hostname = endpoint
            .hostname
            .as_deref()
            .filter(|h| Some(*h) != target)
            .map(Into::into);
        let zone = endpoint.zone.as_deref().and_then(|zone| {
            let at = match zones.iter().position(|z| &**z == zone) {
                Some(at) => at,
                None => {
                    zones.push(zone.into());
                    zones.len() - 1
                }
            };
            NonZeroU32::new(u32::try_from(at + 1).ok()?)
        });
        Some(Self {
            ip,
            target_is_pod,
            zone,
            hostname,
            target: target.map(Into::into),
            pod_namespace,
        })
    }

    /// The endpoint's address (its first one).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Whether the endpoint answers to the instance name `wanted`: its
    /// `hostname`, else its `targetRef.name`; any endpoint matches `None`.
    pub fn matches_hostname(&self, wanted: Option<&str>) -> bool {
        let Some(wanted) = wanted else {
            return true;
        };
        self.hostname.as_deref().or(self.target.as_deref()) == Some(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(yaml: &str) -> EndpointSliceSummary {
        EndpointSliceSummary::from_slice(&serde_yaml_ng::from_str(yaml).expect("slice yaml"))
    }

    #[test]
    fn keeps_what_is_read() {
        let slice = summary(
            r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: ns
  labels: {kubernetes.io/service-name: web, other: x}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}, {port: 9090}]
endpoints:
- addresses: [10.0.0.1, 10.0.0.9]
  conditions: {ready: true, serving: true, terminating: false}
  zone: z1
  nodeName: node-1
  targetRef: {kind: Pod, name: web-a, namespace: ns}
- addresses: [10.0.0.2]
  conditions: {ready: false}
  targetRef: {kind: Pod, name: web-b, namespace: ns}
- addresses: [10.0.0.3]
  hostname: web-c
  zone: z1
  targetRef: {kind: Pod, name: web-c, namespace: other}
- addresses: [10.0.0.4]
  hostname: db-0
  zone: z2
  targetRef: {kind: ExternalThing, name: ext}
- addresses: [not-an-ip]
- addresses: []
"#,
        );
        assert_eq!(slice.key().to_string(), "ns/web-1");
        assert_eq!(slice.name(), "web-1");
        assert_eq!(slice.service_name(), Some("web"));
        assert_eq!(
            slice.ports().collect::<Vec<_>>(),
            [("http", Some(8080)), ("", Some(9090))]
        );
        let endpoints = slice.endpoints();
        let ips: Vec<String> = endpoints.iter().map(|e| e.ip().to_string()).collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.3", "10.0.0.4"]);
        let zones: Vec<_> = endpoints.iter().map(|e| slice.zone(e)).collect();
        assert_eq!(zones, [Some("z1"), Some("z1"), Some("z2")]);
        let pods: Vec<_> = endpoints.iter().map(|e| slice.target_pod(e)).collect();
        assert_eq!(
            pods,
            [Some(("ns", "web-a")), Some(("other", "web-c")), None]
        );
        assert!(endpoints[0].matches_hostname(None));
        assert!(endpoints[0].matches_hostname(Some("web-a")));
        assert!(endpoints[1].matches_hostname(Some("web-c")));
        assert!(endpoints[2].matches_hostname(Some("db-0")));
        assert!(!endpoints[2].matches_hostname(Some("ext")));
        assert_eq!(endpoints[0].pod_namespace, None);
        assert_eq!(endpoints[1].hostname, None);
    }

    #[test]
    fn defaults_when_unset() {
        let slice = summary(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv6\nendpoints:\n- addresses: [\"fd00::1\"]\n  targetRef: {kind: Pod}\n",
        );
        assert_eq!(slice.key().to_string(), "default/s");
        assert_eq!(slice.service_name(), None);
        assert_eq!(slice.ports().len(), 0);
        let endpoint = &slice.endpoints()[0];
        assert_eq!(slice.zone(endpoint), None);
        assert_eq!(slice.target_pod(endpoint), Some(("default", "")));
        assert!(!endpoint.matches_hostname(Some("x")));
    }
}
