//! `io.linkerd.proxy.outbound.OutboundPolicies`: per-target client policy.
//!
//! [`target`] parses and resolves a `TrafficSpec`, [`service`] builds a
//! Service's policy from [`routes`] and [`backend`], [`fallback`] holds the
//! `egress-fallback` and `undefined-port` answers, [`grpc`] is the tonic
//! service and [`watch`] drives one `Watch`.

pub mod backend;
pub mod fallback;
pub mod grpc;
pub mod routes;
pub mod service;
pub mod target;
mod watch;

pub use grpc::OutboundPolicyService;
pub use service::{service_policy, AppProtocol};
pub use target::{parse_traffic_spec, resolve_lookup, Lookup, Resolved};
