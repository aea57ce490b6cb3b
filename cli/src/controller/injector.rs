//! The injector role: the proxy-injector webhook.
//!
//! The admission logic, the TLS configuration (certificate re-read from
//! `--injector-tls-dir` when it changes) and the bounds are
//! [`wisp_inject::webhook`]'s; this module feeds it the cluster
//! ([`super::cluster::KubeCluster`]) and the trust anchors, and counts
//! each answer by result for `/metrics`.
//!
//! Trust anchors: `identityTrustAnchorsPEM` of `inject.yaml`, else the
//! `ca-bundle.crt` of the trust-roots ConfigMap, watched and updated in
//! place. The role is ready once the anchors are known, the Namespaces
//! listed, and the serving certificate loads.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{info, warn};
use wisp_inject::webhook::{self as hook, Cluster};
use wisp_inject::{InjectConfig, Injector};

use super::cluster::KubeCluster;
use super::{stopped, unless_stopped, Role, Settings, State};

/// Runs the webhook until `stop` turns true.
pub(crate) async fn run(
    settings: Arc<Settings>,
    client: Client,
    state: Arc<State>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let config = load_config(&settings)?;
    let from_config = !config.identity_trust_anchors_pem.trim().is_empty();
    let injector = Arc::new(Injector::new(config));
    let anchors_task = if from_config {
        None
    } else {
        Some(tokio::spawn(watch_trust_roots(
            client.clone(),
            settings.clone(),
            injector.clone(),
        )))
    };
    let result = serve_role(&settings, client, state, stop, injector).await;
    if let Some(task) = anchors_task {
        task.abort();
    }
    result
}

fn load_config(settings: &Settings) -> anyhow::Result<InjectConfig> {
    let path = &settings.injector_config;
    if !path.exists() {
        warn!(path = %path.display(), "no inject.yaml; using the defaults");
        return InjectConfig::from_yaml("", "defaults").context("the default inject.yaml");
    }
    InjectConfig::load(path).with_context(|| format!("--injector-config {}", path.display()))
}

async fn serve_role(
    settings: &Settings,
    client: Client,
    state: Arc<State>,
    stop: watch::Receiver<bool>,
    injector: Arc<Injector>,
) -> anyhow::Result<()> {
    // The serving certificate must load (a missing Secret mount is the
    // operator's to fix; the kubelet restarts us until it is there).
    hook::load_certificate(&settings.injector_tls_dir).with_context(|| {
        format!(
            "the injector's serving certificate in {}",
            settings.injector_tls_dir.display()
        )
    })?;
    hook::server_config(settings.injector_tls_dir.clone())
        .context("cannot configure the injector's TLS")?;
    let cluster = Arc::new(KubeCluster::spawn(client, state.clone()));
    let anchors_known = async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while injector.trust_anchors().trim().is_empty() {
            tick.tick().await;
        }
    };
    let Some(listed) = unless_stopped(&stop, async {
        let listed = cluster.ready().await;
        anchors_known.await;
        listed
    })
    .await
    else {
        return Ok(());
    };
    anyhow::ensure!(listed, "the Namespace reflector stopped before listing");
    let listener = tokio::net::TcpListener::bind(settings.injector_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--injector-addr)",
                settings.injector_addr
            )
        })?;
    info!(addr = %settings.injector_addr, "proxy-injector webhook listening (HTTPS)");
    state.set_ready(Role::Injector);
    let cluster: Arc<dyn Cluster> = cluster;
    let counts = state.clone();
    let observe: hook::Observer = Arc::new(move |answered| {
        let c = &counts.webhook;
        let counter = match answered {
            hook::Answered::Injected => &c.injected,
            hook::Answered::Skipped => &c.skipped,
            hook::Answered::Denied | hook::Answered::BadRequest => &c.error,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    });
    hook::serve(
        listener,
        settings.injector_tls_dir.clone(),
        injector,
        cluster,
        observe,
        stopped(stop),
    )
    .await;
    Ok(())
}

/// Keeps the injector's trust anchors equal to the trust-roots ConfigMap's
/// `ca-bundle.crt`.
async fn watch_trust_roots(client: Client, settings: Arc<Settings>, injector: Arc<Injector>) {
    let name = settings.trust_roots_configmap.clone();
    let api: Api<ConfigMap> = Api::namespaced(client, &settings.control_plane_ns);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        let cm = match event {
            Ok(Event::Apply(cm) | Event::InitApply(cm)) => cm,
            Ok(_) => continue,
            Err(error) => {
                warn!(error = %error, "trust-roots ConfigMap watch failed; retrying");
                continue;
            }
        };
        if cm.metadata.name.as_deref() != Some(name.as_str()) {
            continue;
        }
        match wisp_identity::k8s::anchors_from_configmap(&cm) {
            Ok(_) => {
                let key = wisp_identity::k8s::TRUST_ROOTS_KEY;
                let pem = match (&cm.data, &cm.binary_data) {
                    (Some(d), _) if d.contains_key(key) => d[key].clone(),
                    (_, Some(b)) => b
                        .get(key)
                        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                if pem != injector.trust_anchors() {
                    info!(configmap = %name, "injector trust anchors updated");
                    injector.set_trust_anchors(pem);
                }
            }
            Err(error) => warn!(%error, "unusable trust roots; keeping the current ones"),
        }
    }
}
