//! Binding and serving: the identity service over TLS (with a certificate it
//! issues to itself) and plaintext on the same port.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DnType, KeyPair, SanType, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::ca::{Ca, IssueError};
use crate::config::Config;
use crate::incoming::dual_mode_incoming;
use crate::names::{is_dns_label, is_dns_name};
use crate::service::IdentityService;
use crate::tls::{server_tls_config_with_resolver, ReloadableCert};
use crate::token::{DirTokenValidator, TokenValidator};
use crate::Error;

/// Shortest wait before renewing the service's own certificate.
const MIN_REFRESH: Duration = Duration::from_secs(10);

/// A bound, loaded identity server that has not started serving yet.
pub struct Server {
    listener: TcpListener,
    ca: Arc<Ca>,
    validator: Arc<dyn TokenValidator>,
    config: Config,
    own_cert: Arc<ReloadableCert>,
    own_valid_until: SystemTime,
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
        let ca = Arc::new(ca);
        let (chain, key, own_valid_until) = issue_own(&ca, &config.service_name())?;
        let own_cert = Arc::new(ReloadableCert::new(chain, key)?);
        let tls = server_tls_config_with_resolver(own_cert.clone(), ca.trust_anchors())?;
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|e| Error::Bind(config.addr, e))?;
        Ok(Self {
            listener,
            ca,
            validator,
            config,
            own_cert,
            own_valid_until,
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
        let renew = tokio::spawn(renew_own(
            self.ca.clone(),
            name.clone(),
            self.own_cert.clone(),
            self.own_valid_until,
        ));
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

type OwnCert = (
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
    SystemTime,
);

/// Issues the service its own certificate through the regular CSR path.
fn issue_own(ca: &Ca, name: &str) -> Result<OwnCert, Error> {
    let own = |e: String| Error::OwnCertificate(IssueError::Issuer(e));
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| own(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = vec![SanType::DnsName(
        name.try_into()
            .map_err(|e: rcgen::Error| own(e.to_string()))?,
    )];
    let csr = params
        .serialize_request(&key)
        .map_err(|e| own(e.to_string()))?;
    let issued = ca.issue(name, csr.der()).map_err(Error::OwnCertificate)?;
    let mut chain = vec![issued.leaf];
    chain.extend(issued.intermediates);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((chain, key, issued.valid_until))
}

/// Renews the service's own certificate at 70% of its remaining lifetime.
async fn renew_own(
    ca: Arc<Ca>,
    name: String,
    cert: Arc<ReloadableCert>,
    mut valid_until: SystemTime,
) {
    loop {
        let remaining = valid_until
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(remaining.mul_f64(0.7).max(MIN_REFRESH)).await;
        let renewed = issue_own(&ca, &name).and_then(|(chain, key, until)| {
            cert.set(chain, key)?;
            Ok(until)
        });
        match renewed {
            Ok(until) => {
                valid_until = until;
                info!(identity = %name, "renewed the service's own certificate");
            }
            Err(error) => {
                warn!(%error, "cannot renew the service's own certificate; retrying");
                valid_until = SystemTime::now();
            }
        }
    }
}
