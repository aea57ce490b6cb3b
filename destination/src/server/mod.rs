//! The gRPC server: binding, serving, and the per-stream tasks.
//!
//! One port serves `Destination` and both policy APIs
//! (`InboundServerPolicies`, `OutboundPolicies`), dispatched by [`routes`].

mod get;
mod profile;
pub mod routes;
mod service;

pub use get::Sent;
pub use routes::GrpcRoutes;
pub use service::DestinationService;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{debug, info};

use crate::config::Config;
use crate::index::Index;
use crate::policy::{InboundPolicyService, OutboundPolicyService, PolicySettings};
use crate::resolve::Settings;
use crate::source::{self, SourceHandle};
use crate::Error;

/// What every stream task needs.
#[derive(Debug)]
pub(crate) struct StreamCtx {
    index: Arc<Index>,
    settings: Arc<Settings>,
    version: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
}

impl StreamCtx {
    /// Waits for the next index change; false when the stream should end
    /// (client gone, server stopping, or index dropped).
    async fn wait_for_change<T>(&mut self, tx: &mpsc::Sender<T>) -> bool {
        tokio::select! {
            changed = self.version.changed() => changed.is_ok(),
            _ = tx.closed() => false,
            _ = self.stop.wait_for(|stop| *stop) => false,
        }
    }
}

/// A bound, loaded Destination server that has not started serving yet.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    index: Arc<Index>,
    settings: Settings,
    source: SourceHandle,
    tls: Option<Arc<rustls::ServerConfig>>,
    policy: PolicySettings,
}

impl Server {
    /// Loads the source into a fresh index and binds the listen address.
    pub async fn bind(config: Config) -> Result<Self, Error> {
        let index = Arc::new(Index::new());
        let settings = config.settings();
        let source = source::start(&config.source, index.clone(), &settings.cluster_domain).await?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|e| Error::Bind(config.addr, e))?;
        Ok(Self {
            listener,
            index,
            settings,
            source,
            tls: None,
            policy: PolicySettings::default(),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(Error::Io)
    }

    /// The index the server answers from.
    pub fn index(&self) -> Arc<Index> {
        self.index.clone()
    }

    /// Also serves mesh TLS (with this server certificate) on the same port.
    pub fn with_tls(mut self, tls: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Uses these policy settings (cluster networks, default inbound
    /// policy, ...) instead of Linkerd's defaults.
    pub fn with_policy(mut self, policy: PolicySettings) -> Self {
        self.policy = policy;
        self
    }

    /// Serves until `shutdown` completes; open streams are ended then.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let addr = self.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let naming = Arc::new(self.settings.clone());
        let policy = Arc::new(self.policy);
        let routes = GrpcRoutes::new(
            DestinationService::new(self.index.clone(), self.settings, stop_rx.clone())
                .into_server(),
            InboundPolicyService::new(self.index.clone(), policy.clone(), stop_rx.clone())
                .into_server(),
            OutboundPolicyService::new(self.index.clone(), naming, policy, stop_rx).into_server(),
        );
        info!(%addr, "Destination and policy APIs listening");
        let signal = async move {
            shutdown.await;
            info!("shutting down Destination API");
            let _ = stop_tx.send(true);
        };
        let builder = tonic::transport::Server::builder();
        let result = match self.tls {
            // Remote proxies dial with mesh TLS, loopback ones in plaintext:
            // serve both on one port.
            Some(tls) => {
                builder
                    .serve_with_incoming_shutdown(
                        routes,
                        wisp_identity::dual_mode_incoming(self.listener, tls),
                        signal,
                    )
                    .await
            }
            None => {
                builder
                    .serve_with_incoming_shutdown(
                        routes,
                        TcpListenerStream::new(self.listener),
                        signal,
                    )
                    .await
            }
        };
        drop(self.source);
        debug!("Destination API stopped");
        result.map_err(Error::Serve)
    }
}

/// Loads the source, binds `config.addr` and serves until `shutdown` completes.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    Server::bind(config).await?.run(shutdown).await
}
