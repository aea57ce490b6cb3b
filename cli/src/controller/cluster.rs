//! The injector's view of the cluster through the Kubernetes API
//! ([`wisp_inject::webhook::Cluster`]): Namespaces from a reflector (a
//! watch kept in memory; a namespace not seen yet is fetched), pod owners
//! (ReplicaSets, Jobs) fetched when a pod is admitted.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::task::JoinHandle;
use tracing::warn;
use wisp_inject::webhook::{Cluster, ClusterError, ClusterFuture};

use super::State;

/// Namespace and owner lookups against the API server.
pub(crate) struct KubeCluster {
    client: Client,
    namespaces: Store<Namespace>,
    task: JoinHandle<()>,
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KubeCluster {
    /// Starts the Namespace reflector (call inside a runtime); its watch
    /// restarts are counted in `state`.
    pub(crate) fn spawn(client: Client, state: Arc<State>) -> Self {
        let (namespaces, writer) = reflector::store();
        let api: Api<Namespace> = Api::all(client.clone());
        let mut listed_once = false;
        let stream = reflector::reflector(
            writer,
            watcher::watcher(api, watcher::Config::default()).default_backoff(),
        );
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Init) if listed_once => {
                        state
                            .injector_watch_restarts
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::InitDone) => listed_once = true,
                    Ok(_) => {}
                    Err(error) => {
                        warn!(error = %format!("{error}"), "Namespace watch failed; retrying")
                    }
                }
            }
        });
        Self {
            client,
            namespaces,
            task,
        }
    }

    /// Waits until the Namespaces have been listed once.
    pub(crate) async fn ready(&self) -> bool {
        self.namespaces.wait_until_ready().await.is_ok()
    }
}

fn lookup_error(e: kube::Error) -> ClusterError {
    ClusterError(Box::new(e))
}

impl Cluster for KubeCluster {
    fn namespace<'a>(&'a self, name: &'a str) -> ClusterFuture<'a, Option<ObjectMeta>> {
        Box::pin(async move {
            if let Some(ns) = self.namespaces.get(&ObjectRef::new(name)) {
                return Ok(Some(ns.metadata.clone()));
            }
            // Created after the last watch event we saw: ask directly.
            let api: Api<Namespace> = Api::all(self.client.clone());
            let ns = api.get_opt(name).await.map_err(lookup_error)?;
            Ok(ns.map(|ns| ns.metadata))
        })
    }

    fn owner<'a>(
        &'a self,
        namespace: &'a str,
        kind: &'a str,
        name: &'a str,
    ) -> ClusterFuture<'a, Option<ObjectMeta>> {
        Box::pin(async move {
            match kind {
                "ReplicaSet" => {
                    let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), namespace);
                    let rs = api.get_opt(name).await.map_err(lookup_error)?;
                    Ok(rs.map(|rs| rs.metadata))
                }
                "Job" => {
                    let api: Api<Job> = Api::namespaced(self.client.clone(), namespace);
                    let job = api.get_opt(name).await.map_err(lookup_error)?;
                    Ok(job.map(|job| job.metadata))
                }
                _ => Ok(None),
            }
        })
    }
}
