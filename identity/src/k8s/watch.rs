//! The issuer Secret and trust-roots ConfigMap, watched: the first usable
//! pair makes the CA, each later change is checked and swapped in with
//! [`Ca::reload`]; a change that does not make a usable CA is logged and
//! the current issuer kept.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch as tokio_watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::chain;
use super::material::ca_from_objects;
use crate::ca::{Ca, Validity};

/// Where the CA's material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectNames {
    /// The control-plane namespace holding both objects.
    pub namespace: String,
    /// The issuer Secret's name.
    pub issuer_secret: String,
    /// The trust-roots ConfigMap's name.
    pub trust_roots_configmap: String,
}

impl ObjectNames {
    /// Linkerd's names ([`super::ISSUER_SECRET`],
    /// [`super::TRUST_ROOTS_CONFIGMAP`]) in `namespace`.
    pub fn linkerd(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            issuer_secret: super::ISSUER_SECRET.to_string(),
            trust_roots_configmap: super::TRUST_ROOTS_CONFIGMAP.to_string(),
        }
    }
}

/// What the watch has done, for metrics.
#[derive(Debug, Default)]
pub struct KubeCaStats {
    /// Material changes swapped into the CA (the first load included).
    pub loads: AtomicU64,
    /// Material changes refused (the CA kept its issuer, or has none yet).
    pub rejected: AtomicU64,
    /// Errors of the watch streams (each is retried with backoff).
    pub watch_errors: AtomicU64,
    /// Re-lists of a watch after the first (a watch restarted).
    pub watch_restarts: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl KubeCaStats {
    /// Why the last change was refused, if the latest material is unusable.
    pub fn last_error(&self) -> Option<String> {
        match self.last_error.lock() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_error(&self, error: Option<String>) {
        match self.last_error.lock() {
            Ok(mut e) => *e = error,
            Err(poisoned) => *poisoned.into_inner() = error,
        }
    }
}

/// A CA fed by the issuer Secret and trust-roots ConfigMap; the watch
/// stops when this is dropped.
#[derive(Debug)]
pub struct KubeCa {
    ca: tokio_watch::Receiver<Option<Arc<Ca>>>,
    stats: Arc<KubeCaStats>,
    task: JoinHandle<()>,
}

impl Drop for KubeCa {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KubeCa {
    /// Starts watching `names` through `client` (call inside a runtime).
    pub fn spawn(client: Client, names: ObjectNames, validity: Validity) -> Self {
        let (tx, ca) = tokio_watch::channel(None);
        let stats = Arc::new(KubeCaStats::default());
        let task = tokio::spawn(run(client, names, validity, tx, stats.clone()));
        Self { ca, stats, task }
    }

    /// The CA, once the objects first made a usable one.
    pub fn current(&self) -> Option<Arc<Ca>> {
        self.ca.borrow().clone()
    }

    /// Waits until the objects make a usable CA (reasons why not yet are
    /// logged and in [`KubeCaStats::last_error`]).
    pub async fn ready(&self) -> Arc<Ca> {
        let mut rx = self.ca.clone();
        loop {
            if let Some(ca) = rx.borrow_and_update().clone() {
                return ca;
            }
            if rx.changed().await.is_err() {
                // The watch task ended (it does not, short of a panic):
                // stay not-ready rather than spin.
                std::future::pending::<()>().await;
            }
        }
    }

    /// What the watch has done so far.
    pub fn stats(&self) -> Arc<KubeCaStats> {
        self.stats.clone()
    }
}

/// A change of one of the two watched objects (`None`: absent).
enum Change {
    Secret(Option<Secret>),
    ConfigMap(Option<ConfigMap>),
}

async fn run(
    client: Client,
    names: ObjectNames,
    validity: Validity,
    tx: tokio_watch::Sender<Option<Arc<Ca>>>,
    stats: Arc<KubeCaStats>,
) {
    let secrets = object_stream(
        Api::<Secret>::namespaced(client.clone(), &names.namespace),
        names.issuer_secret.clone(),
        stats.clone(),
    )
    .map(Change::Secret);
    let configmaps = object_stream(
        Api::<ConfigMap>::namespaced(client, &names.namespace),
        names.trust_roots_configmap.clone(),
        stats.clone(),
    )
    .map(Change::ConfigMap);
    let mut changes = std::pin::pin!(futures_util::stream::select(secrets, configmaps));

    let (mut secret, mut configmap) = (None::<Option<Secret>>, None::<Option<ConfigMap>>);
    // The contents last turned into a CA (or refused): re-lists of
    // unchanged objects do nothing.
    let mut last: Option<Fingerprint> = None;
    while let Some(change) = changes.next().await {
        match change {
            Change::Secret(s) => secret = Some(s),
            Change::ConfigMap(c) => configmap = Some(c),
        }
        // Wait until both watches have listed once.
        let (Some(s), Some(c)) = (&secret, &configmap) else {
            continue;
        };
        let fingerprint = Fingerprint::of(s.as_ref(), c.as_ref());
        if last.as_ref() == Some(&fingerprint) {
            continue;
        }
        last = Some(fingerprint);
        let built = match (s, c) {
            (Some(s), Some(c)) => ca_from_objects(s, c, validity).map_err(|e| chain(&e)),
            (None, _) => Err(format!(
                "Secret {}/{} not found",
                names.namespace, names.issuer_secret
            )),
            (_, None) => Err(format!(
                "ConfigMap {}/{} not found",
                names.namespace, names.trust_roots_configmap
            )),
        };
        let current = tx.borrow().clone();
        match (built, current) {
            (Ok(next), None) => {
                info!(
                    secret = %names.issuer_secret,
                    configmap = %names.trust_roots_configmap,
                    "loaded the identity issuer"
                );
                stats.loads.fetch_add(1, Ordering::Relaxed);
                stats.set_error(None);
                let _ = tx.send(Some(Arc::new(next)));
            }
            (Ok(next), Some(ca)) => {
                ca.reload(next);
                info!(secret = %names.issuer_secret, "reloaded the identity issuer");
                stats.loads.fetch_add(1, Ordering::Relaxed);
                stats.set_error(None);
            }
            (Err(error), None) => {
                warn!(%error, "no usable identity issuer yet; waiting for a change");
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                stats.set_error(Some(error));
            }
            (Err(error), Some(_)) => {
                warn!(%error, "the changed identity issuer is unusable; keeping the current one");
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                stats.set_error(Some(error));
            }
        }
    }
}

/// A ConfigMap's `data` and `binaryData`.
type ConfigMapData = (
    Option<BTreeMap<String, String>>,
    Option<BTreeMap<String, ByteString>>,
);

/// What of the two objects matters to the CA.
#[derive(PartialEq)]
struct Fingerprint {
    secret: Option<BTreeMap<String, ByteString>>,
    configmap: Option<ConfigMapData>,
}

impl Fingerprint {
    fn of(secret: Option<&Secret>, configmap: Option<&ConfigMap>) -> Self {
        Self {
            secret: secret.map(|s| s.data.clone().unwrap_or_default()),
            configmap: configmap.map(|c| (c.data.clone(), c.binary_data.clone())),
        }
    }
}

/// The one object named `name`, as it changes (`None` when absent); watch
/// errors are counted and retried with kube's default backoff.
fn object_stream<K>(
    api: Api<K>,
    name: String,
    stats: Arc<KubeCaStats>,
) -> impl Stream<Item = Option<K>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut listed_once = false;
    let mut seen = false;
    watcher::watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            let out = match event {
                Err(error) => {
                    warn!(object = %name, error = %chain(&error), "watch failed; retrying");
                    stats.watch_errors.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Ok(Event::Init) => {
                    if listed_once {
                        stats.watch_restarts.fetch_add(1, Ordering::Relaxed);
                    }
                    seen = false;
                    None
                }
                Ok(Event::InitApply(obj)) | Ok(Event::Apply(obj)) if obj.name_any() == name => {
                    seen = true;
                    Some(Some(obj))
                }
                Ok(Event::Delete(obj)) if obj.name_any() == name => Some(None),
                Ok(Event::InitDone) => {
                    listed_once = true;
                    (!seen).then_some(None)
                }
                Ok(_) => None,
            };
            std::future::ready(out)
        })
}
