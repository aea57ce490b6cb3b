//! Bytes on the wire, below HTTP: listeners and their limits, original
//! destinations, protocol detection, mesh TLS and the certificate store,
//! the transport header of direct connections, counted and prefixed
//! streams, and opaque splicing.

pub(crate) mod cert_store;
pub(crate) mod detect;
pub(crate) mod header;
pub(crate) mod io;
pub(crate) mod listen;
pub(crate) mod orig_dst;
pub(crate) mod splice;
pub(crate) mod tls;
