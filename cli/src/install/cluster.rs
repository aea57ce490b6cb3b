//! `wisp install`'s look at the cluster, as `linkerd install` does unless
//! `--ignore-cluster`: if the control plane is already installed there,
//! printing fresh manifests (with freshly generated trust anchors) and
//! applying them would replace the trust anchors every meshed pod relies
//! on, so `wisp install` refuses.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};

/// How long one request to the API server may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The ConfigMap whose presence means "installed" (docs/kubernetes.md §1).
const MARKER: &str = "wisp-config";

/// Why `wisp install` stopped after looking at the cluster.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClusterError {
    /// The control plane is already there.
    #[error(
        "wisp is already installed in namespace {ns} (ConfigMap {MARKER} exists): new manifests \
         would replace its trust anchors and certificates; pass --ignore-cluster to print them anyway"
    )]
    Installed {
        /// The control-plane namespace.
        ns: String,
    },
    /// A kubeconfig is set up but the cluster could not be asked.
    #[error(
        "cannot check the cluster for an existing control plane (pass --ignore-cluster to skip the check)"
    )]
    Unreachable(#[source] kube::Error),
    /// The async runtime could not start (a system problem).
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// Whether the cluster the kubeconfig (or the in-cluster config) names
/// already has the control plane in `ns`. Without any configured cluster
/// there is nothing to collide with, and the check passes.
pub(crate) fn check_not_installed(ns: &str) -> Result<(), ClusterError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClusterError::Runtime)?;
    runtime.block_on(async {
        let Ok(mut config) = kube::Config::infer().await else {
            return Ok(());
        };
        config.connect_timeout = Some(TIMEOUT);
        config.read_timeout = Some(TIMEOUT);
        let client = Client::try_from(config).map_err(ClusterError::Unreachable)?;
        let configmaps: Api<ConfigMap> = Api::namespaced(client, ns);
        match configmaps.get_opt(MARKER).await {
            Ok(Some(_)) => Err(ClusterError::Installed { ns: ns.to_string() }),
            Ok(None) => Ok(()),
            Err(e) => Err(ClusterError::Unreachable(e)),
        }
    })
}
