//! HTTP, for both directions: serving a client's connection, forwarding a
//! request to an endpoint, the request and response bodies, response
//! classification, header rules and the errors the proxy answers itself.
//!
//! Nothing here knows about ServiceProfiles or discovery: callers pass what
//! they know (a classifier, extra metric series) as values.

pub(crate) mod body;
pub(crate) mod classify;
pub(crate) mod errors;
pub(crate) mod forward;
pub(crate) mod headers;
pub(crate) mod request_body;
pub(crate) mod serve;
