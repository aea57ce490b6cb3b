//! What the webhook needs from the cluster, implemented by the caller (the
//! controller, with kube) so this crate stays free of an API client.

use std::future::Future;
use std::pin::Pin;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A boxed future returned by [`Cluster`] methods.
pub type ClusterFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ClusterError>> + Send + 'a>>;

/// A failed lookup (the API server's or the network's fault).
#[derive(Debug, thiserror::Error)]
#[error("cluster lookup failed")]
pub struct ClusterError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Metadata lookups for the webhook.
pub trait Cluster: Send + Sync {
    /// The metadata of namespace `name` (`None`: it does not exist).
    fn namespace<'a>(&'a self, name: &'a str) -> ClusterFuture<'a, Option<ObjectMeta>>;

    /// The metadata of a pod's owner (`kind` is `ReplicaSet` or `Job`), so
    /// its own owner (Deployment, CronJob) names the workload.
    fn owner<'a>(
        &'a self,
        namespace: &'a str,
        kind: &'a str,
        name: &'a str,
    ) -> ClusterFuture<'a, Option<ObjectMeta>>;
}
