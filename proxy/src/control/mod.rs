//! The control plane as the proxy sees it: gRPC channels to the destination
//! and identity services, the reconnecting stream follower, and what is
//! built from their answers — service discovery (balancers), ServiceProfiles
//! and the proxy's own certificate.
//!
//! Everything here talks to the control plane; nothing here handles a
//! client's connection.

pub(crate) mod channel;
pub(crate) mod discovery;
pub(crate) mod endpoint_meta;
pub(crate) mod follow;
pub(crate) mod identity;
pub(crate) mod profiles;
