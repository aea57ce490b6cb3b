//! `kube` source: the objects of a Kubernetes cluster, listed and watched
//! through the API server.
//!
//! One kube-rs `watcher` (list, then watch from the list's resourceVersion,
//! with bookmarks; relist on 410 Gone; default backoff on errors) per kind of
//! [`KINDS`]. Its events map onto [`IndexEvent`]s: a (re)list
//! (`Init`/`InitApply`/`InitDone`) becomes one `ResetKind`, `Apply` an
//! `Upsert`, `Delete` a `Delete`. Every object goes through the same checks
//! as a manifest of the `dir` source ([`super::manifest::object_from_json`]):
//! an invalid object is logged and skipped, and the last good version the
//! index holds stays served.
//!
//! Objects are trimmed before they are checked and stored (see [`trim`]):
//! only the fields the resolvers and the policy code read are kept, so
//! memory grows with what wisp uses, not with what the cluster stores. Pods
//! and EndpointSlices are then stored as their
//! [`PodSummary`](crate::index::PodSummary) and
//! [`EndpointSliceSummary`](crate::index::EndpointSliceSummary) (made as soon
//! as each object is checked, so even a list of many never holds them whole).
//!
//! Adding a kind: a [`Kind`] in the index and one row in [`KINDS`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use wisp_profiles::ValidateOptions;

use super::manifest::{object_from_json, Document};
use super::SourceError;
use crate::index::{Index, IndexEvent, Kind, Object, ObjectKey, ObjectRef, SERVICE_NAME_LABEL};

/// How long [`start`] waits for the first list of every kind.
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// One watched kind: where it is served and how its objects are trimmed.
#[derive(Debug)]
pub struct WatchedKind {
    /// The index kind.
    pub kind: Kind,
    /// API group (`""` for core).
    pub group: &'static str,
    /// The version watched.
    pub version: &'static str,
    /// The `kind` of the API objects.
    pub api_kind: &'static str,
    /// The plural resource name.
    pub plural: &'static str,
    /// A custom resource whose CRD may be missing: a 404 on its list counts
    /// as "no objects" for the initial sync (the watcher keeps retrying and
    /// picks the kind up when the CRD is installed).
    pub optional: bool,
    /// Drops what the index does not read (applied after the common trim).
    pub trim: fn(&mut Value),
}

impl WatchedKind {
    fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.to_string(),
            version: self.version.to_string(),
            api_version: if self.group.is_empty() {
                self.version.to_string()
            } else {
                format!("{}/{}", self.group, self.version)
            },
            kind: self.api_kind.to_string(),
            plural: self.plural.to_string(),
        }
    }
}

/// The kinds the index holds, as watched in the cluster.
///
/// Namespaces are not watched: nothing in the resolvers or the policy code
/// reads a Namespace (the `config.linkerd.io/*` annotations are read from
/// the Pod and the Service; the injector copies namespace annotations onto
/// pods). ServiceProfiles are watched at `linkerd.io/v1alpha2` (objects
/// created as v1alpha1 are served in that version, same shape);
/// TrafficSplits at `v1alpha1`, the storage version of the CRD wisp
/// installs (as linkerd-smi), whose quantity weights also read whole numbers.
pub const KINDS: &[WatchedKind] = &[
    WatchedKind {
        kind: Kind::Service,
        group: "",
        version: "v1",
        api_kind: "Service",
        plural: "services",
        optional: false,
        trim: trim_service,
    },
    WatchedKind {
        kind: Kind::EndpointSlice,
        group: "discovery.k8s.io",
        version: "v1",
        api_kind: "EndpointSlice",
        plural: "endpointslices",
        optional: false,
        trim: trim_nothing,
    },
    WatchedKind {
        kind: Kind::Pod,
        group: "",
        version: "v1",
        api_kind: "Pod",
        plural: "pods",
        optional: false,
        trim: trim_pod,
    },
    WatchedKind {
        kind: Kind::ServiceProfile,
        group: "linkerd.io",
        version: "v1alpha2",
        api_kind: "ServiceProfile",
        plural: "serviceprofiles",
        optional: true,
        trim: trim_nothing,
    },
    WatchedKind {
        kind: Kind::TrafficSplit,
        group: "split.smi-spec.io",
        version: "v1alpha1",
        api_kind: "TrafficSplit",
        plural: "trafficsplits",
        optional: true,
        trim: trim_nothing,
    },
];

/// Metadata fields no part of the destination reads.
const UNREAD_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
];

/// Trims what no kind needs: unread metadata, and annotations outside the
/// `linkerd.io` domains (every annotation wisp reads is `config.linkerd.io/…`;
/// this drops e.g. `kubectl.kubernetes.io/last-applied-configuration`).
/// Labels are kept whole (selectors and metric labels use them).
pub fn trim(kind: &WatchedKind, obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in UNREAD_METADATA {
            meta.remove(*field);
        }
        let empty = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
            Some(annotations) => {
                annotations.retain(|k, _| k.contains("linkerd.io/"));
                annotations.is_empty()
            }
            None => false,
        };
        if empty {
            meta.remove("annotations");
        }
    }
    (kind.trim)(obj);
}

fn trim_nothing(_: &mut Value) {}

/// Services: the status (load-balancer ingress) is not read.
fn trim_service(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
}

/// Container fields the index's [`PodSummary`](crate::index::PodSummary) reads: `name` (the proxy
/// container), `ports` (named ports, probe ports), `env` (the proxy's
/// inbound listen address) and the probes (policy: probe paths).
const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "ports",
    "env",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
];
/// Pod spec fields the summary reads.
const POD_SPEC_FIELDS: &[&str] = &["containers", "serviceAccountName"];
/// Pod status fields the summary reads: the phase and the IPs.
const POD_STATUS_FIELDS: &[&str] = &["phase", "podIP", "podIPs"];

/// Pods: only what their [`PodSummary`](crate::index::PodSummary) reads (identity, proxy port, opaque
/// ports, owner labels; inbound policy: ports, probes, annotations), so the
/// typed `Pod` checked before it is summarized stays small.
fn trim_pod(obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else {
        return;
    };
    if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
        spec.retain(|k, _| POD_SPEC_FIELDS.contains(&k.as_str()));
        for c in spec
            .get_mut("containers")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(c) = c.as_object_mut() {
                c.retain(|k, _| CONTAINER_FIELDS.contains(&k.as_str()));
            }
        }
    }
    if let Some(status) = o.get_mut("status").and_then(Value::as_object_mut) {
        status.retain(|k, _| POD_STATUS_FIELDS.contains(&k.as_str()));
    }
}

/// Where the client configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubeConfigSource {
    /// As kubectl finds it: `$KUBECONFIG` or `~/.kube/config`, else the
    /// in-cluster service account.
    Infer,
    /// This kubeconfig file (its current context).
    File(PathBuf),
}

/// A running kube source; stops watching when dropped.
#[derive(Debug)]
pub struct KubeWatch {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for KubeWatch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Builds a client from `source`.
pub async fn client(source: &KubeConfigSource) -> Result<kube::Client, SourceError> {
    let config = match source {
        KubeConfigSource::Infer => kube::Config::infer()
            .await
            .map_err(|e| SourceError::KubeConfig(Box::new(e)))?,
        KubeConfigSource::File(path) => from_file(path).await?,
    };
    kube::Client::try_from(config).map_err(SourceError::KubeClient)
}

async fn from_file(path: &Path) -> Result<kube::Config, SourceError> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| SourceError::KubeConfig(Box::new(e)))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| SourceError::KubeConfig(Box::new(e)))
}

/// Connects as `source` says and starts watching; see [`start_with_client`].
pub async fn start(
    source: &KubeConfigSource,
    index: Arc<Index>,
    cluster_domain: &str,
) -> Result<KubeWatch, SourceError> {
    let client = client(source).await?;
    start_with_client(client, index, cluster_domain, DEFAULT_SYNC_TIMEOUT).await
}

/// Watches every kind of [`KINDS`] with `client`, feeding `index`.
///
/// Returns once every kind has been listed (an optional kind whose CRD is
/// missing counts as listed), so the first answers already reflect the
/// cluster; fails if that takes longer than `sync_timeout`, naming the
/// kinds still missing and the last error seen.
pub async fn start_with_client(
    client: kube::Client,
    index: Arc<Index>,
    cluster_domain: &str,
    sync_timeout: Duration,
) -> Result<KubeWatch, SourceError> {
    let opts = Arc::new(ValidateOptions {
        cluster_domain: cluster_domain.trim_matches('.').to_string(),
    });
    let (synced_tx, mut synced_rx) = mpsc::channel::<Result<Kind, String>>(KINDS.len() * 4);
    let tasks = KINDS
        .iter()
        .map(|kind| {
            tokio::spawn(watch_kind(
                client.clone(),
                kind,
                index.clone(),
                opts.clone(),
                synced_tx.clone(),
            ))
        })
        .collect();
    drop(synced_tx);
    let watch = KubeWatch { tasks };
    let mut pending: Vec<Kind> = KINDS.iter().map(|k| k.kind).collect();
    let mut last_error = String::from("no answer from the API server");
    let deadline = tokio::time::Instant::now() + sync_timeout;
    while !pending.is_empty() {
        match tokio::time::timeout_at(deadline, synced_rx.recv()).await {
            Ok(Some(Ok(kind))) => pending.retain(|k| *k != kind),
            Ok(Some(Err(error))) => last_error = error,
            Ok(None) => break,
            Err(_) => {
                return Err(SourceError::KubeSync {
                    kinds: pending
                        .iter()
                        .map(Kind::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    timeout: sync_timeout,
                    last_error,
                })
            }
        }
    }
    let ((services, slices, pods), (profiles, splits)) =
        index.read(|s| (s.counts(), s.profile_counts()));
    info!(
        services,
        slices, pods, profiles, splits, "index loaded from the Kubernetes API"
    );
    Ok(watch)
}

/// Whether `error` says the resource is not served (404: CRD not installed).
fn not_found(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 404,
        _ => false,
    }
}

/// Converts one API object; `None` (logged) when it is not valid.
fn convert(
    kind: &WatchedKind,
    obj: DynamicObject,
    opts: &ValidateOptions,
) -> Result<Object, (ObjectKey, String, Option<String>)> {
    let mut value = match serde_json::to_value(&obj) {
        Ok(v) => v,
        Err(e) => return Err((ObjectKey::from_meta(&obj.metadata), e.to_string(), None)),
    };
    // Objects in lists may come without their type.
    let ar = kind.api_resource();
    value["apiVersion"] = Value::String(ar.api_version);
    value["kind"] = Value::String(ar.kind);
    trim(kind, &mut value);
    let service_label = value["metadata"]["labels"][SERVICE_NAME_LABEL]
        .as_str()
        .map(str::to_string);
    match object_from_json(value, opts) {
        Document::Object(object) => Ok(object),
        Document::Invalid { key, error, .. } => Err((key, error.to_string(), service_label)),
        Document::Skipped { api_version, kind } => Err((
            ObjectKey::from_meta(&obj.metadata),
            format!("unexpected {api_version} {kind}"),
            None,
        )),
    }
}

/// The version of an object the index serves now (kept when the API
/// server's version is invalid).
fn last_good(index: &Index, kind: Kind, key: &ObjectKey, service: Option<&str>) -> Option<Object> {
    index.read(|s| match kind {
        Kind::Service => s
            .service(key)
            .cloned()
            .map(|o| Object::Service(Box::new(o))),
        Kind::Pod => s.pod(key).cloned().map(|o| Object::PodSummary(Box::new(o))),
        Kind::ServiceProfile => s
            .service_profile(key)
            .cloned()
            .map(|o| Object::ServiceProfile(Box::new(o))),
        Kind::TrafficSplit => s
            .traffic_splits(&key.namespace)
            .find(|t| t.metadata.name.as_deref() == Some(key.name.as_str()))
            .cloned()
            .map(|o| Object::TrafficSplit(Box::new(o))),
        Kind::EndpointSlice => service.and_then(|svc| {
            s.slices_for_service(&key.namespace, svc)
                .find(|e| e.name() == key.name)
                .cloned()
                .map(|o| Object::EndpointSliceSummary(Box::new(o)))
        }),
    })
}

async fn watch_kind(
    client: kube::Client,
    kind: &'static WatchedKind,
    index: Arc<Index>,
    opts: Arc<ValidateOptions>,
    synced: mpsc::Sender<Result<Kind, String>>,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &kind.api_resource());
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: Vec<Object> = Vec::new();
    let mut announced = false;
    let mut absent = false;
    let invalid = |key: &ObjectKey, error: &str, kept: bool| {
        warn!(kind = %kind.kind, object = %key, %error, kept_last_good = kept, "invalid object skipped");
    };
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(obj)) => match convert(kind, obj, &opts) {
                Ok(object) => listing.push(object),
                Err((key, error, service)) => {
                    let kept = last_good(&index, kind.kind, &key, service.as_deref());
                    invalid(&key, &error, kept.is_some());
                    listing.extend(kept);
                }
            },
            Ok(watcher::Event::InitDone) => {
                let objects = std::mem::take(&mut listing);
                let count = objects.len();
                let changed = index.apply(IndexEvent::ResetKind(kind.kind, objects));
                if absent {
                    info!(kind = %kind.kind, "resource is served now");
                    absent = false;
                }
                debug!(kind = %kind.kind, objects = count, changed, "listed");
                if !announced {
                    announced = true;
                    let _ = synced.send(Ok(kind.kind)).await;
                }
            }
            Ok(watcher::Event::Apply(obj)) => match convert(kind, obj, &opts) {
                Ok(object) => {
                    index.apply(IndexEvent::Upsert(object));
                }
                Err((key, error, service)) => {
                    let kept = last_good(&index, kind.kind, &key, service.as_deref()).is_some();
                    invalid(&key, &error, kept);
                }
            },
            Ok(watcher::Event::Delete(obj)) => {
                index.apply(IndexEvent::Delete(ObjectRef {
                    kind: kind.kind,
                    key: ObjectKey::from_meta(&obj.metadata),
                }));
            }
            Err(error) if kind.optional && not_found(&error) => {
                if !absent {
                    info!(
                        kind = %kind.kind,
                        resource = %format!("{}.{}/{}", kind.plural, kind.group, kind.version),
                        "resource not served (CRD not installed?); none indexed, retrying"
                    );
                    absent = true;
                    index.apply(IndexEvent::ResetKind(kind.kind, Vec::new()));
                }
                if !announced {
                    announced = true;
                    let _ = synced.send(Ok(kind.kind)).await;
                }
            }
            Err(error) => {
                warn!(kind = %kind.kind, %error, "Kubernetes API watch failed; retrying");
                if !announced {
                    let _ = synced.try_send(Err(format!("{}: {error}", kind.kind)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_keep_what_is_read() {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "n", "uid": "u", "resourceVersion": "5",
                "managedFields": [{"manager": "kubectl"}],
                "labels": {"app": "a", "pod-template-hash": "h"},
                "annotations": {"config.linkerd.io/opaque-ports": "3306",
                    "kubectl.kubernetes.io/last-applied-configuration": "{…}"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a-h", "uid": "x", "controller": true}]},
            "spec": {"serviceAccountName": "sa", "volumes": [{"name": "v"}],
                "containers": [{"name": "linkerd-proxy", "image": "i", "resources": {},
                    "env": [{"name": "LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "value": "0.0.0.0:4143"}],
                    "ports": [{"containerPort": 4143, "name": "linkerd-proxy"}],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 4191}}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": []}
        });
        trim(&KINDS[2], &mut pod);
        assert_eq!(
            pod,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "n",
                    "labels": {"app": "a", "pod-template-hash": "h"},
                    "annotations": {"config.linkerd.io/opaque-ports": "3306"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a-h", "uid": "x", "controller": true}]},
                "spec": {"serviceAccountName": "sa",
                    "containers": [{"name": "linkerd-proxy",
                        "env": [{"name": "LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "value": "0.0.0.0:4143"}],
                        "ports": [{"containerPort": 4143, "name": "linkerd-proxy"}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 4191}}}]},
                "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]}
            })
        );
    }

    #[test]
    fn kinds_cover_the_index() {
        for kind in [
            Kind::Service,
            Kind::EndpointSlice,
            Kind::Pod,
            Kind::ServiceProfile,
            Kind::TrafficSplit,
        ] {
            assert!(
                KINDS.iter().any(|k| k.kind == kind),
                "{kind} is not watched"
            );
        }
    }
}
