//! wisp's Destination API server.
//!
//! An in-memory [`index`] of Services, EndpointSlices, Pods, ServiceProfiles
//! and TrafficSplits is fed by a
//! [`source`] (today a directory of YAML manifests); the [`server`] answers
//! the Linkerd `Destination.Get` and `Destination.GetProfile` streams from
//! it, using the answer builders in [`resolve`], and, on the same port, the
//! Linkerd policy APIs (`InboundServerPolicies`, `OutboundPolicies`) from
//! [`policy`].

pub mod config;
pub mod index;
pub mod policy;
pub mod resolve;
pub mod server;
pub mod source;

use std::net::SocketAddr;

pub use config::Config;
pub use policy::{DefaultPolicy, PolicySettings};
pub use server::{serve, DestinationService, Server};
pub use source::SourceSpec;

/// Errors running the Destination server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source could not be started.
    #[error(transparent)]
    Source(#[from] source::SourceError),
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
