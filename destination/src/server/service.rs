//! The tonic `Destination` service: validates requests and starts streams.

use std::sync::Arc;

use linkerd2_proxy_api::destination::{
    destination_server::{Destination, DestinationServer},
    DestinationProfile, GetDestination, Update,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::debug;

use super::{get, profile, StreamCtx};
use crate::index::Index;
use crate::resolve::{parse_context_token, parse_target, Settings, Target};

/// Capacity of each stream's outgoing message buffer.
const STREAM_BUFFER: usize = 8;

/// The Destination gRPC service backed by an [`Index`].
#[derive(Clone, Debug)]
pub struct DestinationService {
    index: Arc<Index>,
    settings: Arc<Settings>,
    stop: watch::Receiver<bool>,
}

impl DestinationService {
    /// Creates the service; streams end when `stop` becomes true (or its sender is dropped).
    pub fn new(index: Arc<Index>, settings: Settings, stop: watch::Receiver<bool>) -> Self {
        Self {
            index,
            settings: Arc::new(settings),
            stop,
        }
    }

    /// Wraps the service for `tonic::transport::Server::add_service`.
    pub fn into_server(self) -> DestinationServer<Self> {
        DestinationServer::new(self)
    }

    fn ctx(&self) -> StreamCtx {
        StreamCtx {
            // Subscribe before the first read so no change is missed.
            version: self.index.subscribe(),
            index: self.index.clone(),
            settings: self.settings.clone(),
            stop: self.stop.clone(),
        }
    }

    fn target(&self, req: &GetDestination) -> Result<Target, Status> {
        let context = parse_context_token(&req.context_token);
        parse_target(&req.path, &context, &self.settings.cluster_domain)
            .map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

#[tonic::async_trait]
impl Destination for DestinationService {
    type GetStream = ReceiverStream<Result<Update, Status>>;
    type GetProfileStream = ReceiverStream<Result<DestinationProfile, Status>>;

    async fn get(
        &self,
        request: Request<GetDestination>,
    ) -> Result<Response<Self::GetStream>, Status> {
        let req = request.into_inner();
        debug!(path = %req.path, token = %req.context_token, "Get");
        let (name, port) = match self.target(&req)? {
            Target::Service { name, port } => (name, port),
            Target::Addr(addr) => {
                return Err(Status::invalid_argument(format!(
                    "cannot resolve an IP address ({addr}); Get needs a service name"
                )))
            }
        };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(get::run(self.ctx(), name, port, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_profile(
        &self,
        request: Request<GetDestination>,
    ) -> Result<Response<Self::GetProfileStream>, Status> {
        let req = request.into_inner();
        debug!(path = %req.path, token = %req.context_token, "GetProfile");
        let target = self.target(&req)?;
        let client_ns = parse_context_token(&req.context_token).ns;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(profile::run(self.ctx(), target, client_ns, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
