//! Binding and serving: the identity service over TLS (with a certificate it
//! issues to itself) and plaintext on the same port.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::{debug, info};

use crate::ca::Ca;
use crate::config::Config;
use crate::incoming::dual_mode_incoming;
use crate::names::{is_dns_label, is_dns_name};
use crate::own::OwnIdentity;
use crate::service::IdentityService;
use crate::token::{DirTokenValidator, TokenValidator};
use crate::Error;

/// A bound, loaded identity server that has not started serving yet.
pub struct Server {
    listener: TcpListener,
    ca: Arc<Ca>,
    validator: Arc<dyn TokenValidator>,
    config: Config,
    own: OwnIdentity,
    tls: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads the CA and token key from `config.dir`, issues the service's own
    /// certificate and binds `config.addr`.
    pub async fn bind(config: Config) -> Result<Self, Error> {
        check_names(&config)?;
        let ca = Ca::load_dir(&config.dir, config.validity)?;
        let validator = DirTokenValidator::load_dir(&config.dir)?;
        Self::bind_loaded(config, ca, Arc::new(validator)).await
    }

    /// Like [`Server::bind`], with tokens checked by `validator`.
    pub async fn bind_with_validator(
        config: Config,
        validator: Arc<dyn TokenValidator>,
    ) -> Result<Self, Error> {
        check_names(&config)?;
        let ca = Ca::load_dir(&config.dir, config.validity)?;
        Self::bind_loaded(config, ca, validator).await
    }

    async fn bind_loaded(
        config: Config,
        ca: Ca,
        validator: Arc<dyn TokenValidator>,
    ) -> Result<Self, Error> {
        Self::bind_with_ca(config, Arc::new(ca), validator).await
    }

    /// Binds `config.addr` to issue from an already loaded (possibly
    /// reloadable, e.g. [`crate::k8s::KubeCa`]) CA with tokens checked by
    /// `validator`; `config.dir` is not read.
    pub async fn bind_with_ca(
        config: Config,
        ca: Arc<Ca>,
        validator: Arc<dyn TokenValidator>,
    ) -> Result<Self, Error> {
        check_names(&config)?;
        let own = OwnIdentity::issue(ca.clone(), config.service_name())?;
        let tls = own.server_config()?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|e| Error::Bind(config.addr, e))?;
        Ok(Self {
            listener,
            ca,
            validator,
            config,
            own,
            tls,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(Error::Io)
    }

    /// The certificate authority (e.g. to read how many certificates it issued).
    pub fn ca(&self) -> Arc<Ca> {
        self.ca.clone()
    }

    /// The identity (and SNI) the service presents over TLS.
    pub fn service_name(&self) -> String {
        self.config.service_name()
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let addr = self.local_addr()?;
        let name = self.config.service_name();
        let renew = tokio::spawn(self.own.clone().renew_forever());
        let service = IdentityService::new(
            self.ca.clone(),
            self.validator.clone(),
            &self.config.control_plane_ns,
            &self.config.trust_domain,
        );
        info!(%addr, identity = %name, "Identity API listening (TLS and plaintext)");
        let signal = async {
            shutdown.await;
            info!("shutting down Identity API");
        };
        let result = tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(
                service.into_server(),
                dual_mode_incoming(self.listener, self.tls),
                signal,
            )
            .await;
        renew.abort();
        debug!("Identity API stopped");
        result.map_err(Error::Serve)
    }
}

/// Loads the identity directory, binds `config.addr` and serves until
/// `shutdown` completes.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    Server::bind(config).await?.run(shutdown).await
}

fn check_names(config: &Config) -> Result<(), Error> {
    if !is_dns_name(config.trust_domain.trim_matches('.')) {
        return Err(Error::Config(format!(
            "trust domain {:?} is not a DNS name",
            config.trust_domain
        )));
    }
    if !is_dns_label(&config.control_plane_ns) {
        return Err(Error::Config(format!(
            "control-plane namespace {:?} is not a DNS-1123 label",
            config.control_plane_ns
        )));
    }
    Ok(())
}
