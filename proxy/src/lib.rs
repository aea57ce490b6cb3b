//! wisp-proxy: a transparent sidecar proxy, compatible with linkerd2-proxy.
//!
//! The request path, in reading order:
//!
//! 1. [`run`] binds the listeners and spawns the accept loops.
//! 2. [`outbound::serve`] / [`inbound::serve`] accept a connection, read its
//!    original destination ([`orig_dst`]) and detect its protocol ([`detect`]).
//! 3. HTTP connections are served by [`http_proxy::serve`]; each request is routed
//!    (outbound: [`discovery`] + [`balance`]) and sent with [`http_proxy::forward`]
//!    through an [`endpoint::Endpoint`]'s pooled client.
//! 4. Opaque connections are spliced byte for byte by [`tcp::splice`].
//!
//! Side channels: [`admin`] (metrics, readiness, shutdown) and [`drain`]
//! (graceful shutdown).

pub mod admin;
pub mod balance;
pub mod body;
pub mod budget;
pub mod cache;
pub mod config;
pub mod control;
pub mod detect;
pub mod discovery;
pub mod drain;
pub mod endpoint;
pub mod errors;
pub mod http_proxy;
pub mod identity;
pub mod inbound;
pub mod io;
pub mod listen;
pub mod logical;
pub mod metrics;
pub mod orig_dst;
pub mod outbound;
mod process_metrics;
pub mod profiles;
pub mod reqbody;
pub mod routes;
pub mod tcp;
pub mod tls;
pub mod transport_header;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::cache::Cache;
use crate::config::Config;
use crate::discovery::Discovery;
use crate::endpoint::Endpoint;
use crate::identity::CertStore;
use crate::metrics::Registry;
use crate::profiles::Profiles;
use crate::tls::MeshTls;

/// How long a new target waits for its first GetProfile answer.
pub(crate) const PROFILE_TIMEOUT: Duration = Duration::from_millis(500);

/// State shared by every connection.
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// All metric series.
    pub metrics: Arc<Registry>,
    /// Balancers by authority, fed by Destination.Get.
    pub discovery: Discovery,
    /// Profile streams by target.
    pub profiles: Profiles,
    /// Logical services (targets with a profile) by target.
    pub logicals: Cache<String, logical::Logical>,
    /// Endpoints for traffic sent to an address rather than a service.
    pub forwards: Cache<SocketAddr, Endpoint>,
    /// Local application targets of inbound traffic.
    pub inbound_targets: Cache<SocketAddr, Endpoint>,
    /// The addresses this proxy listens on (to refuse forwarding loops).
    pub listen_addrs: Vec<SocketAddr>,
    /// Mesh TLS, when identity is enabled.
    pub tls: Option<Arc<MeshTls>>,
}

impl Shared {
    /// Whether the proxy may serve traffic: identity disabled, or certified.
    pub fn is_ready(&self) -> bool {
        self.tls.as_ref().is_none_or(|t| t.store.is_ready())
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({var}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The variable that named it.
        var: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The destination address is unusable.
    #[error("LINKERD2_PROXY_DESTINATION_SVC_ADDR: {0}")]
    Destination(String),
    /// The identity settings are unusable.
    #[error("identity: {0}")]
    Identity(String),
}

async fn bind(addr: SocketAddr, var: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, var, source })
}

/// Runs the proxy until SIGTERM, SIGINT or `POST /shutdown`, then drains
/// in-flight work for at most the shutdown grace period.
pub async fn run(config: Config) -> Result<(), StartError> {
    let admin = bind(config.admin_addr, "LINKERD2_PROXY_ADMIN_LISTEN_ADDR").await?;
    let inbound = bind(config.inbound_addr, "LINKERD2_PROXY_INBOUND_LISTEN_ADDR").await?;
    let mut outbound = Vec::new();
    for addr in &config.outbound_addrs {
        outbound.push(bind(*addr, "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR").await?);
    }
    let mut listen_addrs: Vec<SocketAddr> = outbound
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    listen_addrs.extend(inbound.local_addr().ok());
    listen_addrs.extend(admin.local_addr().ok());

    let metrics = Registry::new(config.metrics_retain_idle);
    let tls = match &config.identity {
        None => None,
        Some(id) => {
            let roots =
                tls::parse_trust_anchors(&id.trust_anchors_pem).map_err(StartError::Identity)?;
            let mesh = MeshTls::new(id.local_name.clone(), roots.clone(), CertStore::new())
                .map_err(|e| StartError::Identity(e.to_string()))?;
            let mesh = Arc::new(mesh);
            let local = identity::LocalIdentity::generate(&id.local_name)
                .map_err(|e| StartError::Identity(e.to_string()))?;
            let channel = control::channel(
                &id.svc_addr,
                id.svc_name.as_deref(),
                Some(mesh.client_h2.clone()),
            )
            .map_err(StartError::Identity)?;
            let client =
                linkerd2_proxy_api::identity::identity_client::IdentityClient::new(channel);
            tokio::spawn(identity::run(
                id.clone(),
                local,
                client,
                roots,
                mesh.store.clone(),
                metrics.clone(),
            ));
            Some(mesh)
        }
    };
    let channel = control::channel(
        &config.destination_addr,
        config.destination_name.as_deref(),
        tls.as_ref().map(|t| t.client_h2.clone()),
    )
    .map_err(StartError::Destination)?;
    let discovery = Discovery::new(channel, config.outbound_discovery_idle_timeout);
    let profiles = Profiles::new(
        discovery.client(),
        config.destination_context.clone(),
        metrics.clone(),
        config.outbound_discovery_idle_timeout,
    );
    let shared = Arc::new(Shared {
        metrics,
        discovery,
        profiles,
        logicals: Cache::new(config.outbound_discovery_idle_timeout, 10_000),
        forwards: Cache::new(config.outbound_discovery_idle_timeout, 10_000),
        inbound_targets: Cache::new(config.inbound_discovery_idle_timeout, 1_000),
        listen_addrs,
        tls,
        config,
    });

    let (trigger, drain) = drain::channel();
    let (shutdown_tx, mut shutdown_rx) = mpsc::channel(1);
    tokio::spawn(admin::serve(
        shared.clone(),
        admin,
        shutdown_tx,
        drain.clone(),
    ));
    // As upstream: traffic is served only once the proxy has its certificate.
    tokio::spawn({
        let shared = shared.clone();
        let drain = drain.clone();
        async move {
            if let Some(tls) = &shared.tls {
                tokio::select! {
                    _ = tls.store.ready() => {}
                    _ = drain.signaled() => return,
                }
            }
            tokio::spawn(inbound::serve(shared.clone(), inbound, drain.clone()));
            for l in outbound {
                tokio::spawn(outbound::serve(shared.clone(), l, drain.clone()));
            }
            tracing::info!(
                outbound = ?shared.config.outbound_addrs,
                inbound = %shared.config.inbound_addr,
                admin = %shared.config.admin_addr,
                "proxy ready"
            );
        }
    });
    let sweeper = tokio::spawn({
        let shared = shared.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                shared.discovery.evict_idle();
                shared.profiles.evict_idle();
                shared.logicals.evict_idle();
                shared.forwards.evict_idle();
                shared.inbound_targets.evict_idle();
            }
        }
    });
    drop(drain);

    wait_for_shutdown(&mut shutdown_rx).await;
    tracing::info!(grace = ?shared.config.shutdown_grace_period, "draining");
    let clean = trigger.drain(shared.config.shutdown_grace_period).await;
    sweeper.abort();
    if !clean {
        tracing::warn!("grace period over; closing remaining connections");
    }
    Ok(())
}

async fn wait_for_shutdown(admin: &mut mpsc::Receiver<()>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => tracing::info!("received SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
        _ = admin.recv() => tracing::info!("shutdown requested on the admin port"),
    }
}
