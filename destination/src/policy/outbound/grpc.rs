//! The tonic `OutboundPolicies` service.

use std::sync::Arc;

use linkerd2_proxy_api::outbound::{
    outbound_policies_server::{OutboundPolicies, OutboundPoliciesServer},
    OutboundPolicy, TrafficSpec,
};
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::debug;

use super::fallback::egress_fallback;
use super::service::service_policy;
use super::target::{parse_traffic_spec, resolve_lookup, Resolved};
use super::watch;
use crate::index::{Index, Store};
use crate::policy::changes::Changes;
use crate::policy::PolicySettings;
use crate::resolve::Settings;

/// Capacity of each stream's outgoing message buffer.
const STREAM_BUFFER: usize = 4;

/// The `OutboundPolicies` gRPC service backed by an [`Index`].
#[derive(Clone, Debug)]
pub struct OutboundPolicyService {
    index: Arc<Index>,
    naming: Arc<Settings>,
    settings: Arc<PolicySettings>,
    stop: tokio_watch::Receiver<bool>,
}

impl OutboundPolicyService {
    /// Creates the service; streams end when `stop` becomes true (or its sender is dropped).
    pub fn new(
        index: Arc<Index>,
        naming: Arc<Settings>,
        settings: Arc<PolicySettings>,
        stop: tokio_watch::Receiver<bool>,
    ) -> Self {
        Self {
            index,
            naming,
            settings,
            stop,
        }
    }

    /// Wraps the service for a tonic server.
    pub fn into_server(self) -> OutboundPoliciesServer<Self> {
        OutboundPoliciesServer::new(self)
    }
}

/// The answer for a resolved target as the store stands now: `None` when
/// the Service it names is gone.
pub(super) fn answer(
    store: &Store,
    naming: &Settings,
    settings: &PolicySettings,
    resolved: &Resolved,
) -> Result<Option<OutboundPolicy>, Status> {
    match resolved {
        Resolved::Service { key, port, by_addr } => Ok(store.service(key).map(|svc| {
            service_policy(svc, key, *port, *by_addr, &naming.cluster_domain, settings)
        })),
        Resolved::External(addr) => Ok(Some(egress_fallback(*addr, settings))),
        Resolved::NotFound(why) => Err(Status::not_found(why.clone())),
    }
}

impl OutboundPolicyService {
    fn resolve(&self, spec: &TrafficSpec) -> Result<Resolved, Status> {
        let lookup = parse_traffic_spec(spec, &self.naming.cluster_domain)?;
        let resolved = self
            .index
            .read(|store| resolve_lookup(store, &self.settings, &lookup));
        if let Resolved::NotFound(why) = resolved {
            return Err(Status::not_found(why));
        }
        Ok(resolved)
    }
}

#[tonic::async_trait]
impl OutboundPolicies for OutboundPolicyService {
    async fn get(&self, request: Request<TrafficSpec>) -> Result<Response<OutboundPolicy>, Status> {
        let spec = request.into_inner();
        debug!(?spec.target, workload = %spec.source_workload, "outbound Get");
        let resolved = self.resolve(&spec)?;
        let policy = self
            .index
            .read(|store| answer(store, &self.naming, &self.settings, &resolved))?;
        policy
            .map(Response::new)
            .ok_or_else(|| Status::not_found("unknown target"))
    }

    type WatchStream = ReceiverStream<Result<OutboundPolicy, Status>>;

    async fn watch(
        &self,
        request: Request<TrafficSpec>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let spec = request.into_inner();
        debug!(?spec.target, workload = %spec.source_workload, "outbound Watch");
        let changes = Changes::new(self.index.clone(), self.stop.clone());
        let resolved = self.resolve(&spec)?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(watch::run(
            changes,
            self.naming.clone(),
            self.settings.clone(),
            resolved,
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
