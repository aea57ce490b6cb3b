//! The tonic `InboundServerPolicies` service.

use std::sync::Arc;

use linkerd2_proxy_api::inbound::{
    inbound_server_policies_server::{InboundServerPolicies, InboundServerPoliciesServer},
    PortSpec, Server,
};
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::debug;

use super::port::port_policy;
use super::server::to_server;
use super::watch;
use crate::index::Index;
use crate::policy::changes::Changes;
use crate::policy::workload::Workload;
use crate::policy::PolicySettings;

/// Capacity of each stream's outgoing message buffer.
const STREAM_BUFFER: usize = 4;

/// The `InboundServerPolicies` gRPC service backed by an [`Index`].
#[derive(Clone, Debug)]
pub struct InboundPolicyService {
    index: Arc<Index>,
    settings: Arc<PolicySettings>,
    stop: tokio_watch::Receiver<bool>,
}

impl InboundPolicyService {
    /// Creates the service; streams end when `stop` becomes true (or its sender is dropped).
    pub fn new(
        index: Arc<Index>,
        settings: Arc<PolicySettings>,
        stop: tokio_watch::Receiver<bool>,
    ) -> Self {
        Self {
            index,
            settings,
            stop,
        }
    }

    /// Wraps the service for a tonic server.
    pub fn into_server(self) -> InboundServerPoliciesServer<Self> {
        InboundServerPoliciesServer::new(self)
    }
}

/// Validates a `PortSpec` like Linkerd: a known workload form and a port in 1..=65535.
pub fn parse_port_spec(spec: &PortSpec) -> Result<(Workload, u16), Status> {
    let workload: Workload = spec
        .workload
        .parse()
        .map_err(|e: crate::policy::WorkloadError| Status::invalid_argument(e.to_string()))?;
    let port = u16::try_from(spec.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Status::invalid_argument(format!("invalid port: {}", spec.port)))?;
    Ok((workload, port))
}

#[tonic::async_trait]
impl InboundServerPolicies for InboundPolicyService {
    async fn get_port(&self, request: Request<PortSpec>) -> Result<Response<Server>, Status> {
        let spec = request.into_inner();
        debug!(workload = %spec.workload, port = spec.port, "GetPort");
        let (workload, port) = parse_port_spec(&spec)?;
        let policy = self
            .index
            .read(|store| port_policy(store, &self.settings, &workload, port));
        Ok(Response::new(to_server(&policy, &self.settings)))
    }

    type WatchPortStream = ReceiverStream<Result<Server, Status>>;

    async fn watch_port(
        &self,
        request: Request<PortSpec>,
    ) -> Result<Response<Self::WatchPortStream>, Status> {
        let spec = request.into_inner();
        debug!(workload = %spec.workload, port = spec.port, "WatchPort");
        let (workload, port) = parse_port_spec(&spec)?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let changes = Changes::new(self.index.clone(), self.stop.clone());
        tokio::spawn(watch::run(
            changes,
            self.settings.clone(),
            workload,
            port,
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
