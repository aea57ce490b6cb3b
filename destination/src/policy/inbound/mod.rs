//! `io.linkerd.proxy.inbound.InboundServerPolicies`: per-port server policy.
//!
//! [`port`] reads what the index says about a pod's port, [`server`] turns
//! that into the `Server` message (with [`authz`] and [`routes`]),
//! [`service`] is the tonic service and [`watch`] drives one `WatchPort`.

pub mod authz;
pub mod port;
pub mod probes;
pub mod routes;
pub mod server;
pub mod service;
mod watch;

pub use port::{port_policy, PortPolicy};
pub use server::to_server;
pub use service::InboundPolicyService;
