//! wisp-proxy: a transparent sidecar proxy, compatible with linkerd2-proxy.
//!
//! The request path, in reading order (`docs/architecture.md` walks it):
//!
//! 1. [`run`] binds the [`Listeners`] and calls [`run_with`], which builds
//!    the narrow handles each side needs and spawns the accept loops
//!    (`transport::listen`).
//! 2. `outbound::serve` / `inbound::serve` accept a connection, read its
//!    original destination (`transport::orig_dst`) and detect its protocol
//!    (`transport::detect`).
//! 3. HTTP connections are served by `http::serve`; each request is routed
//!    (outbound: `outbound::target` + `outbound::backends` over
//!    `control::discovery` and `balance`) and sent with
//!    `http::forward::to_endpoint` over an endpoint's pooled connections
//!    (`balance::pool`).
//! 4. Opaque connections are spliced byte for byte (`transport::splice`).
//!
//! Folders by concern: `inbound/`, `outbound/`, `balance/`, `http/`,
//! `transport/`, `control/`, `telemetry/`; `admin` and `drain` are the side
//! channels. Modules import one way: sides → http/balance/control →
//! transport/telemetry → config; a test (`tests/import_cycles.rs`) keeps it so.

pub(crate) mod admin;
pub(crate) mod balance;
pub(crate) mod cache;
pub mod config;
pub(crate) mod control;
pub(crate) mod drain;
pub(crate) mod http;
pub(crate) mod inbound;
pub(crate) mod outbound;
pub(crate) mod tap;
pub(crate) mod telemetry;
pub(crate) mod transport;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use linkerd2_proxy_api::destination::destination_client::DestinationClient;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wisp_common::signal::ShutdownSignals;

use crate::admin::Admin;
use crate::balance::EndpointFactory;
use crate::config::Config;
use crate::control::channel::channel;
pub use crate::control::channel::ChannelError;
use crate::control::discovery::Discovery;
use crate::control::identity::LocalIdentity;
use crate::control::profiles::Profiles;
use crate::http::serve::ServeLimits;
use crate::inbound::Inbound;
use crate::outbound::{Backends, Outbound, Profile, ProfileLookups, Resolver};
use crate::tap::Taps;
use crate::telemetry::metrics::Registry;
use crate::transport::cert_store::CertStore;
use crate::transport::listen::{AcceptLimit, OwnAddrs};
use crate::transport::tls::MeshTls;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({var})")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The variable that named it.
        var: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The destination service's address or name is unusable.
    #[error("LINKERD2_PROXY_DESTINATION_SVC_ADDR / _NAME")]
    Destination(#[source] ChannelError),
    /// The identity service's address or name is unusable.
    #[error("LINKERD2_PROXY_IDENTITY_SVC_ADDR / _NAME")]
    IdentityService(#[source] ChannelError),
    /// The mesh TLS configuration could not be built from the trust anchors.
    #[error("cannot build mesh TLS from LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS")]
    Tls(#[source] rustls::Error),
    /// The SIGTERM/SIGINT handlers could not be installed.
    #[error("cannot watch for shutdown signals")]
    Signals(#[source] wisp_common::signal::SignalError),
    /// The proxy's key or CSR could not be generated.
    #[error("cannot generate a key and CSR for LINKERD2_PROXY_IDENTITY_LOCAL_NAME")]
    Key(#[source] rcgen::Error),
}

/// The proxy's bound listeners.
pub struct Listeners {
    /// Admin (4191).
    pub admin: TcpListener,
    /// Inbound (4143).
    pub inbound: TcpListener,
    /// Outbound (4140), one per configured address.
    pub outbound: Vec<TcpListener>,
    /// Control (4190): the Tap API; bound only when
    /// `LINKERD2_PROXY_TAP_SVC_NAME` is set.
    pub control: Option<TcpListener>,
}

impl Listeners {
    /// Binds the configured addresses.
    pub async fn bind(config: &Config) -> Result<Self, StartError> {
        let admin = bind(config.admin_addr, "LINKERD2_PROXY_ADMIN_LISTEN_ADDR").await?;
        let inbound = bind(config.inbound_addr, "LINKERD2_PROXY_INBOUND_LISTEN_ADDR").await?;
        let mut outbound = Vec::new();
        for addr in &config.outbound_addrs {
            outbound.push(bind(*addr, "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR").await?);
        }
        let control = match config.tap_svc_name {
            Some(_) => Some(bind(config.control_addr, "LINKERD2_PROXY_CONTROL_LISTEN_ADDR").await?),
            None => None,
        };
        Ok(Listeners {
            admin,
            inbound,
            outbound,
            control,
        })
    }

    /// The bound addresses, by listener name.
    fn named(&self) -> Vec<(&'static str, SocketAddr)> {
        let mut named = Vec::new();
        let mut add = |name, l: &TcpListener| {
            if let Ok(a) = l.local_addr() {
                named.push((name, a));
            }
        };
        add("admin", &self.admin);
        add("inbound", &self.inbound);
        for l in &self.outbound {
            add("outbound", l);
        }
        if let Some(l) = &self.control {
            add("control", l);
        }
        named
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(&self.admin)
            .chain(std::iter::once(&self.inbound))
            .chain(&self.outbound)
            .chain(&self.control)
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }
}

async fn bind(addr: SocketAddr, var: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, var, source })
}

/// Runs the proxy until SIGTERM, SIGINT or `POST /shutdown`, then drains
/// in-flight work for at most the shutdown grace period.
pub async fn run(config: Config) -> Result<(), StartError> {
    let mut signals = ShutdownSignals::new().map_err(StartError::Signals)?;
    let listeners = Listeners::bind(&config).await?;
    run_with(config, listeners, async move {
        let signal = signals.recv().await;
        tracing::info!("received {}", signal.name());
    })
    .await
}

/// Runs the proxy on `listeners` until `shutdown` completes (or `POST
/// /shutdown` is accepted), then drains in-flight work for at most the
/// shutdown grace period. Catches no signals: this is the entry point for
/// running the proxy inside another program or a test.
pub async fn run_with(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let mut own = listeners.addrs();
    own.push(config.control_addr);
    let own = OwnAddrs::new(&own, &config.inbound_ips);
    let metrics = Registry::new(config.metrics_retain_idle);

    let (tls, certificate) = match &config.identity {
        None => (None, None),
        Some(id) => {
            let store = CertStore::new();
            let mesh = MeshTls::new(
                id.local_name.clone(),
                id.trust_anchors.clone(),
                store.clone(),
            )
            .map_err(StartError::Tls)?;
            let mesh = Arc::new(mesh);
            let local = LocalIdentity::generate(&id.local_name).map_err(StartError::Key)?;
            let channel = channel(
                &id.svc_addr,
                id.svc_name.as_deref(),
                Some(mesh.client_h2.clone()),
            )
            .map_err(StartError::IdentityService)?;
            tokio::spawn(control::identity::run(
                id.clone(),
                local,
                IdentityClient::new(channel),
                id.trust_anchors.clone(),
                store.clone(),
                metrics.clone(),
            ));
            (Some(mesh), Some(store))
        }
    };
    let channel = channel(
        &config.destination_addr,
        config.destination_name.as_deref(),
        tls.as_ref().map(|t| t.client_h2.clone()),
    )
    .map_err(StartError::Destination)?;
    let client = DestinationClient::new(channel);
    let endpoints = Arc::new(EndpointFactory::from_config(
        &config,
        metrics.clone(),
        tls.clone(),
    ));
    let idle = config.outbound_discovery_idle_timeout;
    let discovery = Discovery::new(
        client.clone(),
        config.destination_context.clone(),
        endpoints.clone(),
        idle,
    );
    let backends = Arc::new(Backends::new(
        discovery,
        endpoints.clone(),
        own.clone(),
        idle,
        config.outbound_failfast_timeout,
    ));
    let profiles = Profiles::new(
        client,
        config.destination_context.clone(),
        Profile::converter(metrics.clone()),
        idle,
    );
    let resolver = Resolver::new(
        backends,
        profiles,
        ProfileLookups::from_config(&config),
        idle,
    );
    let taps = Taps::new();
    let outbound = Arc::new(Outbound::new(
        resolver,
        metrics.clone(),
        taps.clone(),
        &config,
    ));
    let inbound = Arc::new(Inbound::new(
        &config,
        endpoints,
        metrics.clone(),
        taps.clone(),
        tls.clone(),
        own,
    ));

    let (trigger, drain) = drain::channel();
    let (shutdown_tx, mut shutdown_rx) = mpsc::channel(1);
    let admin = Arc::new(Admin {
        metrics: metrics.clone(),
        certificate: certificate.clone(),
        taps: taps.clone(),
        shutdown_enabled: config.shutdown_endpoint_enabled,
        limits: ServeLimits::from_config(&config),
        shutdown: shutdown_tx,
        outbound: outbound.clone(),
        inbound: inbound.clone(),
        identity: config.identity.as_ref().map(|i| i.local_name.clone()),
        listeners: listeners.named(),
    });
    tokio::spawn(admin::serve(admin, listeners.admin, drain.clone()));
    if let (Some(listener), Some(tap_identity)) = (listeners.control, &config.tap_svc_name) {
        let control = Arc::new(tap::server::Control {
            taps,
            tls: tls.clone(),
            tap_identity: tap_identity.clone(),
        });
        tokio::spawn(tap::server::serve(control, listener, drain.clone()));
    }
    // As upstream: traffic is served only once the proxy has its certificate.
    let max_connections = config.max_connections_per_listener;
    tokio::spawn({
        let drain = drain.clone();
        let (inbound, outbound) = (inbound.clone(), outbound.clone());
        let (inbound_l, outbound_l) = (listeners.inbound, listeners.outbound);
        async move {
            if let Some(store) = &certificate {
                tokio::select! {
                    _ = store.ready() => {}
                    _ = drain.signaled() => return,
                }
            }
            let limit = |direction| AcceptLimit {
                max_connections,
                refused: metrics.refused_connections(direction),
            };
            tokio::spawn(inbound::serve(
                inbound,
                inbound_l,
                limit("inbound"),
                drain.clone(),
            ));
            for l in outbound_l {
                tokio::spawn(outbound::serve(
                    outbound.clone(),
                    l,
                    limit("outbound"),
                    drain.clone(),
                ));
            }
            tracing::info!("proxy ready");
        }
    });
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            outbound.evict_idle();
            inbound.evict_idle();
        }
    });
    drop(drain);

    tokio::select! {
        _ = shutdown => {}
        _ = shutdown_rx.recv() => tracing::info!("shutdown requested on the admin port"),
    }
    tracing::info!(grace = ?config.shutdown_grace_period, "draining");
    let clean = trigger.drain(config.shutdown_grace_period).await;
    sweeper.abort();
    if !clean {
        tracing::warn!("grace period over; closing remaining connections");
    }
    Ok(())
}
