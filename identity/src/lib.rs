//! wisp's identity service: a certificate authority that signs workload
//! CSRs for callers holding a valid token, speaking Linkerd's
//! `Identity.Certify` API.
//!
//! - [`ca`]: trust anchors + issuer; issues leaf certificates from CSRs.
//! - [`token`]: who is asking ([`token::TokenValidator`], `wisp1.` tokens).
//! - [`service`]: the `Certify` handler (checks in Linkerd's order).
//! - [`incoming`] and [`tls`]: one port serving TLS and plaintext gRPC,
//!   reusable by the other control-plane servers.
//! - [`server`]: binding and serving; [`init`]: fresh identity material.
//! - [`k8s`]: on Kubernetes, TokenReview validation and the CA read from
//!   the issuer Secret and trust-roots ConfigMap (watched, reloaded).

#![warn(missing_docs)]

pub mod ca;
pub mod config;
pub mod csr;
pub mod files;
pub mod incoming;
pub mod init;
pub mod k8s;
pub mod keys;
pub mod names;
pub mod own;
pub mod pem;
pub mod server;
pub mod service;
pub mod tls;
pub mod token;

use std::net::SocketAddr;

pub use ca::{Ca, Issued, Validity};
pub use config::Config;
pub use incoming::{dual_mode_incoming, Incoming, MeshConnectInfo, MeshStream};
pub use names::{identity_service_name, workload_identity};
pub use own::OwnIdentity;
pub use server::{serve, Server};
pub use service::IdentityService;
pub use tls::{mesh_crypto_provider, server_tls_config, ReloadableCert};
pub use token::{DirTokenValidator, ServiceAccount, TokenError, TokenKey, TokenValidator};

/// Errors running the identity server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The CA could not be loaded.
    #[error(transparent)]
    Ca(#[from] ca::CaError),
    /// The token key could not be loaded.
    #[error(transparent)]
    TokenKey(#[from] files::FileError),
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The service could not issue its own certificate.
    #[error("cannot issue the identity service's own certificate: {0}")]
    OwnCertificate(#[source] ca::IssueError),
    /// The listen address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// Another I/O error.
    #[error("I/O error: {0}")]
    Io(std::io::Error),
    /// The gRPC server failed.
    #[error("gRPC server error: {0}")]
    Serve(tonic::transport::Error),
}
