//! An endpoint's address and metadata as the Destination API gives them
//! (`WeightedAddr`), read the same way for `Get` and `GetProfile` answers.

use std::collections::HashMap;
use std::net::SocketAddr;

use linkerd2_proxy_api::destination as api;

use crate::balance::EndpointMeta;

/// Reads an address and its metadata from a `WeightedAddr`.
pub(crate) fn endpoint_meta(
    set_labels: &HashMap<String, String>,
    wa: api::WeightedAddr,
) -> Option<(SocketAddr, EndpointMeta)> {
    let addr = SocketAddr::try_from(wa.addr?).ok()?;
    let mut labels: Vec<(String, String)> = set_labels
        .iter()
        .filter(|(k, _)| !wa.metric_labels.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(wa.metric_labels);
    labels.sort();
    let identity = wa.tls_identity.and_then(|t| match t.strategy? {
        api::tls_identity::Strategy::DnsLikeIdentity(d) => Some(d.name),
        api::tls_identity::Strategy::UriLikeIdentity(u) => Some(u.uri),
    });
    let h2_hint = matches!(
        wa.protocol_hint.as_ref().and_then(|h| h.protocol.as_ref()),
        Some(api::protocol_hint::Protocol::H2(_))
    );
    let opaque_transport_port = wa
        .protocol_hint
        .and_then(|h| h.opaque_transport)
        .map(|o| o.inbound_port)
        .filter(|&p| 0 < p && p < 65535)
        .and_then(|p| u16::try_from(p).ok());
    Some((
        addr,
        EndpointMeta {
            labels,
            identity,
            opaque_transport_port,
            h2_hint,
        },
    ))
}
