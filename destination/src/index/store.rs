//! The plain data of the index: objects by kind and key, plus IP lookups.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use wisp_profiles::{ServiceProfile, TrafficSplit};

use super::object::{Kind, Object, ObjectKey, ObjectRef};
use super::pod::PodSummary;
use super::slice::EndpointSliceSummary;

/// All indexed objects; read through [`super::Index::read`].
///
/// The IP lookups are kept up to date object by object: each IP maps to the
/// keys of the Pods (Services) holding it, sorted by key, so a lookup sees
/// them in the same order whatever the order of the changes was.
#[derive(Debug, Default, PartialEq)]
pub struct Store {
    services: BTreeMap<ObjectKey, Service>,
    slices: BTreeMap<ObjectKey, EndpointSliceSummary>,
    pods: BTreeMap<ObjectKey, PodSummary>,
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
        store.rebuild_pod_ips();
        store.rebuild_service_ips();
        store
    }

    /// Inserts or replaces one object; returns true if anything changed.
    pub(crate) fn upsert(&mut self, object: Object) -> bool {
        match object {
            Object::Service(s) => {
                let key = ObjectKey::from_meta(&s.metadata);
                if self.services.get(&key) == Some(&*s) {
                    return false;
                }
                let ips = cluster_ips(&s);
                if let Some(old) = self.services.insert(key.clone(), *s) {
                    unlink_ips(&mut self.services_by_ip, &key, &cluster_ips(&old));
                }
                link_ips(&mut self.services_by_ip, &key, &ips);
            }
            Object::Pod(p) => return self.upsert_pod(PodSummary::from_pod(&p)),
            Object::PodSummary(p) => return self.upsert_pod(*p),
            Object::EndpointSlice(s) => {
                let slice = EndpointSliceSummary::from_slice(&s);
                return replace(&mut self.slices, slice.key().clone(), slice);
            }
            Object::EndpointSliceSummary(s) => {
                return replace(&mut self.slices, s.key().clone(), *s)
            }
            Object::ServiceProfile(p) => {
                return replace(&mut self.profiles, ObjectKey::from_meta(&p.metadata), *p)
            }
            Object::TrafficSplit(t) => {
                return replace(&mut self.splits, ObjectKey::from_meta(&t.metadata), *t)
            }
        }
        true
    }

    fn upsert_pod(&mut self, pod: PodSummary) -> bool {
        let key = pod.key().clone();
        if self.pods.get(&key) == Some(&pod) {
            return false;
        }
        let ips = pod.ips().to_vec();
        if let Some(old) = self.pods.insert(key.clone(), pod) {
            unlink_ips(&mut self.pods_by_ip, &key, old.ips());
        }
        link_ips(&mut self.pods_by_ip, &key, &ips);
        true
    }

    /// Removes one object; returns true if it was present.
    pub(crate) fn delete(&mut self, object: &ObjectRef) -> bool {
        let key = &object.key;
        match object.kind {
            Kind::Service => match self.services.remove(key) {
                Some(old) => {
                    unlink_ips(&mut self.services_by_ip, key, &cluster_ips(&old));
                    true
                }
                None => false,
            },
            Kind::Pod => match self.pods.remove(key) {
                Some(old) => {
                    unlink_ips(&mut self.pods_by_ip, key, old.ips());
                    true
                }
                None => false,
            },
            Kind::EndpointSlice => self.slices.remove(key).is_some(),
            Kind::ServiceProfile => self.profiles.remove(key).is_some(),
            Kind::TrafficSplit => self.splits.remove(key).is_some(),
        }
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
                Kind::Service => {
                    self.services = fresh.services;
                    self.rebuild_service_ips();
                }
                Kind::EndpointSlice => self.slices = fresh.slices,
                Kind::Pod => {
                    self.pods = fresh.pods;
                    self.rebuild_pod_ips();
                }
                Kind::ServiceProfile => self.profiles = fresh.profiles,
                Kind::TrafficSplit => self.splits = fresh.splits,
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
                let slice = EndpointSliceSummary::from_slice(&s);
                self.slices.insert(slice.key().clone(), slice);
            }
            Object::EndpointSliceSummary(s) => {
                self.slices.insert(s.key().clone(), *s);
            }
            Object::Pod(p) => {
                let pod = PodSummary::from_pod(&p);
                self.pods.insert(pod.key().clone(), pod);
            }
            Object::PodSummary(p) => {
                self.pods.insert(p.key().clone(), *p);
            }
            Object::ServiceProfile(p) => {
                self.profiles.insert(ObjectKey::from_meta(&p.metadata), *p);
            }
            Object::TrafficSplit(t) => {
                self.splits.insert(ObjectKey::from_meta(&t.metadata), *t);
            }
        }
    }

    fn rebuild_pod_ips(&mut self) {
        self.pods_by_ip.clear();
        for (key, pod) in &self.pods {
            for ip in pod.ips() {
                self.pods_by_ip.entry(*ip).or_default().push(key.clone());
            }
        }
    }

    fn rebuild_service_ips(&mut self) {
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
    ) -> impl Iterator<Item = &'a EndpointSliceSummary> + 'a {
        let start = ObjectKey::new(namespace, "");
        self.slices
            .range(start..)
            .take_while(move |(k, _)| k.namespace == namespace)
            .map(|(_, s)| s)
            .filter(move |s| s.service_name() == Some(service))
    }

    /// The Pod with this key.
    pub fn pod(&self, key: &ObjectKey) -> Option<&PodSummary> {
        self.pods.get(key)
    }

    /// A Pod whose `podIP`/`podIPs` include `ip` (pods not `Succeeded` or
    /// `Failed` preferred; then by key).
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&PodSummary> {
        let mut pods = self
            .pods_by_ip
            .get(&ip)
            .into_iter()
            .flatten()
            .filter_map(|k| self.pods.get(k));
        let first = pods.next()?;
        if !first.is_finished() {
            return Some(first);
        }
        pods.find(|p| !p.is_finished()).or(Some(first))
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

/// Stores `value` under `key`; returns true if that changed anything.
fn replace<T: PartialEq>(map: &mut BTreeMap<ObjectKey, T>, key: ObjectKey, value: T) -> bool {
    if map.get(&key) == Some(&value) {
        return false;
    }
    map.insert(key, value);
    true
}

/// Adds `key` under each of `ips`, keeping every list sorted and unique.
fn link_ips(by_ip: &mut HashMap<IpAddr, Vec<ObjectKey>>, key: &ObjectKey, ips: &[IpAddr]) {
    for ip in ips {
        let keys = by_ip.entry(*ip).or_default();
        if let Err(at) = keys.binary_search(key) {
            keys.insert(at, key.clone());
        }
    }
}

/// Removes `key` from under each of `ips`, dropping lists that empty.
fn unlink_ips(by_ip: &mut HashMap<IpAddr, Vec<ObjectKey>>, key: &ObjectKey, ips: &[IpAddr]) {
    for ip in ips {
        if let Some(keys) = by_ip.get_mut(ip) {
            if let Ok(at) = keys.binary_search(key) {
                keys.remove(at);
            }
            if keys.is_empty() {
                by_ip.remove(ip);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::PodSummary;

    fn pod(name: &str, ips: &[&str], phase: &str) -> Object {
        let ips: Vec<String> = ips.iter().map(|ip| format!("{{ip: \"{ip}\"}}")).collect();
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: ns}}\nstatus: {{phase: {phase}, podIPs: [{}]}}\n",
            ips.join(", ")
        );
        let pod: Box<k8s_openapi::api::core::v1::Pod> =
            serde_yaml_ng::from_str(&yaml).expect("pod yaml");
        // Whole Pods for "a", summaries (as the kube source sends) otherwise.
        if name == "a" {
            Object::Pod(pod)
        } else {
            Object::PodSummary(Box::new(PodSummary::from_pod(&pod)))
        }
    }

    fn service(name: &str, ips: &[&str]) -> Object {
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: ns}}\nspec: {{clusterIPs: [{}]}}\n",
            ips.join(", ")
        );
        Object::Service(Box::new(serde_yaml_ng::from_str(&yaml).expect("svc yaml")))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// Changes applied one by one leave the same store (IP lookups
    /// included) as building it from the final objects.
    #[test]
    fn incremental_ip_lookups_match_a_rebuild() {
        let mut store = Store::default();
        for object in [
            pod("c", &["10.0.0.1"], "Running"),
            pod("a", &["10.0.0.1", "10.0.0.2"], "Failed"),
            pod("b", &["10.0.0.3"], "Running"),
            service("s2", &["10.96.0.1"]),
            service("s1", &["10.96.0.1", "10.96.0.2"]),
        ] {
            assert!(store.upsert(object.clone()));
            assert!(!store.upsert(object));
        }
        // b moves to the IP a and c share; c goes; s2 moves.
        assert!(store.upsert(pod("b", &["10.0.0.1"], "Running")));
        assert!(store.delete(&ObjectRef {
            kind: Kind::Pod,
            key: ObjectKey::new("ns", "c"),
        }));
        assert!(!store.delete(&ObjectRef {
            kind: Kind::Pod,
            key: ObjectKey::new("ns", "c"),
        }));
        assert!(store.upsert(service("s2", &["10.96.0.3"])));
        let rebuilt = Store::from_objects([
            pod("a", &["10.0.0.1", "10.0.0.2"], "Failed"),
            pod("b", &["10.0.0.1"], "Running"),
            service("s1", &["10.96.0.1", "10.96.0.2"]),
            service("s2", &["10.96.0.3"]),
        ]);
        assert_eq!(store, rebuilt);
        assert_eq!(store.pods_by_ip.get(&ip("10.0.0.3")), None);
        // a (Failed) sorts first; the running b is preferred.
        let by_ip = store.pod_by_ip(ip("10.0.0.1")).expect("pod");
        assert_eq!(by_ip.name(), "b");
        assert_eq!(store.pod_by_ip(ip("10.0.0.2")).expect("pod").name(), "a");
        let names = |ip: IpAddr| -> Vec<String> {
            store
                .services_by_cluster_ip(ip)
                .iter()
                .map(|(k, _)| k.name.clone())
                .collect()
        };
        assert_eq!(names(self::ip("10.96.0.1")), ["s1"]);
        assert_eq!(names(self::ip("10.96.0.3")), ["s2"]);
    }
}
