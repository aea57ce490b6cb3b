//! `Authz` messages for the default policies.

use linkerd2_proxy_api::inbound::{
    authn::{permit_mesh_tls, Permit, PermitMeshTls, PermitUnauthenticated},
    Authn, Authz, IdentitySuffix, Network,
};

use crate::policy::default_policy::DefaultPolicy;
use crate::policy::networks::Cidr;
use crate::policy::proto::{default_labels, default_meta};

/// Who an authorization admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuthn {
    /// Any client, with or without TLS.
    Unauthenticated,
    /// Any client with a mesh TLS identity (`suffixes: [{parts: []}]`).
    AnyIdentity,
}

/// One default authorization named `name` (`metadata.default` and the
/// deprecated labels), or `None` if `networks` is empty (the proxy rejects
/// an `Authz` without networks).
pub fn authz(name: &str, networks: &[Cidr], authn: ClientAuthn) -> Option<Authz> {
    if networks.is_empty() {
        return None;
    }
    let permit = match authn {
        ClientAuthn::Unauthenticated => Permit::Unauthenticated(PermitUnauthenticated {}),
        ClientAuthn::AnyIdentity => Permit::MeshTls(PermitMeshTls {
            clients: Some(permit_mesh_tls::Clients::Identities(
                permit_mesh_tls::PermitClientIdentities {
                    identities: Vec::new(),
                    suffixes: vec![IdentitySuffix { parts: Vec::new() }],
                },
            )),
        }),
    };
    Some(Authz {
        networks: networks
            .iter()
            .map(|net| Network {
                net: Some(net.to_proto()),
                except: Vec::new(),
            })
            .collect(),
        authentication: Some(Authn {
            permit: Some(permit),
        }),
        labels: default_labels(name),
        metadata: Some(default_meta(name)),
    })
}

/// The server-level authorizations of a default policy, as Linkerd's
/// policy controller builds them: `all-*` and `audit` allow `0.0.0.0/0`
/// and `::/0`, `cluster-*` the cluster networks, `deny` nothing.
pub fn policy_authzs(policy: DefaultPolicy, cluster_networks: &[Cidr]) -> Vec<Authz> {
    let all = all_networks();
    let (networks, authn) = match policy {
        DefaultPolicy::Deny => return Vec::new(),
        DefaultPolicy::AllUnauthenticated | DefaultPolicy::Audit => {
            (all.as_slice(), ClientAuthn::Unauthenticated)
        }
        DefaultPolicy::AllAuthenticated => (all.as_slice(), ClientAuthn::AnyIdentity),
        DefaultPolicy::ClusterUnauthenticated => (cluster_networks, ClientAuthn::Unauthenticated),
        DefaultPolicy::ClusterAuthenticated => (cluster_networks, ClientAuthn::AnyIdentity),
    };
    authz(policy.as_str(), networks, authn)
        .into_iter()
        .collect()
}

/// `0.0.0.0/0` and `::/0`.
pub fn all_networks() -> Vec<Cidr> {
    vec![
        Cidr {
            ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
            prefix_len: 0,
        },
        Cidr {
            ip: std::net::Ipv6Addr::UNSPECIFIED.into(),
            prefix_len: 0,
        },
    ]
}
