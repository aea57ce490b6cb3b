//! The plain data of the index: objects by kind and key, plus IP lookups.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use wisp_profiles::{ServiceProfile, TrafficSplit};

use super::object::{Kind, Object, ObjectKey, ObjectRef};

/// Label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// All indexed objects; read through [`super::Index::read`].
#[derive(Debug, Default, PartialEq)]
pub struct Store {
    services: BTreeMap<ObjectKey, Service>,
    slices: BTreeMap<ObjectKey, EndpointSlice>,
    pods: BTreeMap<ObjectKey, Pod>,
    profiles: BTreeMap<ObjectKey, ServiceProfile>,
    splits: BTreeMap<ObjectKey, TrafficSplit>,
    pods_by_ip: HashMap<IpAddr, Vec<ObjectKey>>,
    services_by_ip: HashMap<IpAddr, Vec<ObjectKey>>,
}

impl Store {
    /// Builds a store holding exactly `objects` (later duplicates win).
    pub fn from_objects(objects: impl IntoIterator<Item = Object>) -> Self {
        let mut store = Store::default();
        for object in objects {
            store.insert(object);
        }
        store.rebuild_ip_maps();
        store
    }

    /// Inserts or replaces one object; returns true if anything changed.
    pub(crate) fn upsert(&mut self, object: Object) -> bool {
        let changed = match &object {
            Object::Service(s) => self.services.get(&ObjectKey::from_meta(&s.metadata)) != Some(s),
            Object::EndpointSlice(s) => {
                self.slices.get(&ObjectKey::from_meta(&s.metadata)) != Some(s)
            }
            Object::Pod(p) => self.pods.get(&ObjectKey::from_meta(&p.metadata)) != Some(p),
            Object::ServiceProfile(p) => {
                self.profiles.get(&ObjectKey::from_meta(&p.metadata)) != Some(p)
            }
            Object::TrafficSplit(t) => {
                self.splits.get(&ObjectKey::from_meta(&t.metadata)) != Some(t)
            }
        };
        if changed {
            let kind = object.kind();
            self.insert(object);
            if has_ips(kind) {
                self.rebuild_ip_maps();
            }
        }
        changed
    }

    /// Removes one object; returns true if it was present.
    pub(crate) fn delete(&mut self, object: &ObjectRef) -> bool {
        let removed = match object.kind {
            Kind::Service => self.services.remove(&object.key).is_some(),
            Kind::EndpointSlice => self.slices.remove(&object.key).is_some(),
            Kind::Pod => self.pods.remove(&object.key).is_some(),
            Kind::ServiceProfile => self.profiles.remove(&object.key).is_some(),
            Kind::TrafficSplit => self.splits.remove(&object.key).is_some(),
        };
        if removed && has_ips(object.kind) {
            self.rebuild_ip_maps();
        }
        removed
    }

    /// Replaces every object of `kind` by `objects` (objects of other kinds are ignored).
    pub(crate) fn reset_kind(&mut self, kind: Kind, objects: Vec<Object>) -> bool {
        let mut fresh = Store::default();
        for object in objects.into_iter().filter(|o| o.kind() == kind) {
            fresh.insert(object);
        }
        let changed = match kind {
            Kind::Service => self.services != fresh.services,
            Kind::EndpointSlice => self.slices != fresh.slices,
            Kind::Pod => self.pods != fresh.pods,
            Kind::ServiceProfile => self.profiles != fresh.profiles,
            Kind::TrafficSplit => self.splits != fresh.splits,
        };
        if changed {
            match kind {
                Kind::Service => self.services = fresh.services,
                Kind::EndpointSlice => self.slices = fresh.slices,
                Kind::Pod => self.pods = fresh.pods,
                Kind::ServiceProfile => self.profiles = fresh.profiles,
                Kind::TrafficSplit => self.splits = fresh.splits,
            }
            if has_ips(kind) {
                self.rebuild_ip_maps();
            }
        }
        changed
    }

    fn insert(&mut self, object: Object) {
        match object {
            Object::Service(s) => {
                self.services.insert(ObjectKey::from_meta(&s.metadata), *s);
            }
            Object::EndpointSlice(s) => {
                self.slices.insert(ObjectKey::from_meta(&s.metadata), *s);
            }
            Object::Pod(p) => {
                self.pods.insert(ObjectKey::from_meta(&p.metadata), *p);
            }
            Object::ServiceProfile(p) => {
                self.profiles.insert(ObjectKey::from_meta(&p.metadata), *p);
            }
            Object::TrafficSplit(t) => {
                self.splits.insert(ObjectKey::from_meta(&t.metadata), *t);
            }
        }
    }

    fn rebuild_ip_maps(&mut self) {
        self.pods_by_ip.clear();
        for (key, pod) in &self.pods {
            for ip in pod_ips(pod) {
                self.pods_by_ip.entry(ip).or_default().push(key.clone());
            }
        }
        self.services_by_ip.clear();
        for (key, svc) in &self.services {
            for ip in cluster_ips(svc) {
                let keys = self.services_by_ip.entry(ip).or_default();
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
    }

    /// The Service with this key.
    pub fn service(&self, key: &ObjectKey) -> Option<&Service> {
        self.services.get(key)
    }

    /// The Services whose `clusterIP`/`clusterIPs` include `ip`.
    pub fn services_by_cluster_ip(&self, ip: IpAddr) -> Vec<(&ObjectKey, &Service)> {
        self.services_by_ip
            .get(&ip)
            .into_iter()
            .flatten()
            .filter_map(|k| self.services.get_key_value(k))
            .collect()
    }

    /// The EndpointSlices labelled for Service `service` in `namespace`.
    pub fn slices_for_service<'a>(
        &'a self,
        namespace: &'a str,
        service: &'a str,
    ) -> impl Iterator<Item = &'a EndpointSlice> + 'a {
        let start = ObjectKey::new(namespace, "");
        self.slices
            .range(start..)
            .take_while(move |(k, _)| k.namespace == namespace)
            .map(|(_, s)| s)
            .filter(move |s| {
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL))
                    .is_some_and(|n| n == service)
            })
    }

    /// The Pod with this key.
    pub fn pod(&self, key: &ObjectKey) -> Option<&Pod> {
        self.pods.get(key)
    }

    /// A Pod whose `podIP`/`podIPs` include `ip` (running pods preferred).
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Pod> {
        let pods: Vec<&Pod> = self
            .pods_by_ip
            .get(&ip)
            .into_iter()
            .flatten()
            .filter_map(|k| self.pods.get(k))
            .collect();
        pods.iter()
            .find(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                !matches!(phase, Some("Succeeded") | Some("Failed"))
            })
            .or(pods.first())
            .copied()
    }

    /// The ServiceProfile with this key (`<svc>.<ns>.svc.<cd>` in some namespace).
    pub fn service_profile(&self, key: &ObjectKey) -> Option<&ServiceProfile> {
        self.profiles.get(key)
    }

    /// The TrafficSplits of `namespace`, by name.
    pub fn traffic_splits<'a>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a TrafficSplit> + 'a {
        let start = ObjectKey::new(namespace, "");
        self.splits
            .range(start..)
            .take_while(move |(k, _)| k.namespace == namespace)
            .map(|(_, t)| t)
    }

    /// Number of objects of each kind: (services, slices, pods).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.services.len(), self.slices.len(), self.pods.len())
    }

    /// Number of (ServiceProfiles, TrafficSplits).
    pub fn profile_counts(&self) -> (usize, usize) {
        (self.profiles.len(), self.splits.len())
    }
}

/// Whether objects of `kind` contribute to the IP lookups.
fn has_ips(kind: Kind) -> bool {
    matches!(kind, Kind::Service | Kind::Pod)
}

/// The IPs of a Pod (`status.podIP` and `status.podIPs`).
pub fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    if let Some(status) = &pod.status {
        let all = status
            .pod_ip
            .iter()
            .chain(status.pod_ips.iter().flatten().map(|p| &p.ip));
        for ip in all.filter_map(|s| s.parse::<IpAddr>().ok()) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    ips
}

/// The cluster IPs of a Service (`spec.clusterIP` and `spec.clusterIPs`).
pub fn cluster_ips(svc: &Service) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    if let Some(spec) = &svc.spec {
        let all = spec
            .cluster_ip
            .iter()
            .chain(spec.cluster_ips.iter().flatten());
        for ip in all.filter_map(|s| s.parse::<IpAddr>().ok()) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    ips
}
