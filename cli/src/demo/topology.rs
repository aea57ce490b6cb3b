//! Who runs where: the demo's service, its pods and their addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Namespace of every demo object.
pub const NAMESPACE: &str = "default";
/// The demo service.
pub const SERVICE: &str = "web";
/// The name the client addresses (the proxy routes by Host).
pub const SERVICE_HOST: &str = "web.default.svc.cluster.local";
/// The service's (fictional) cluster IP.
pub const CLUSTER_IP: &str = "10.96.0.10";
/// The service port.
pub const SERVICE_PORT: u16 = 80;
/// The port each backend application listens on.
pub const APP_PORT: u16 = 8080;
/// Each proxy's inbound listener port.
pub const INBOUND_PORT: u16 = 4143;
/// Each proxy's outbound listener port.
pub const OUTBOUND_PORT: u16 = 4140;
/// Each proxy's admin port.
pub const ADMIN_PORT: u16 = 4191;
/// The control plane's namespace (part of every identity name).
pub const CONTROL_PLANE_NS: &str = "linkerd";
/// The identity trust domain.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// One workload ("pod"): a name, its own loopback IP and the service
/// account it runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The pod name.
    pub name: &'static str,
    /// The pod's IP (a loopback address; Linux routes 127/8 to `lo`).
    pub ip: Ipv4Addr,
    /// The pod's service account (its identity, with identity on).
    pub service_account: &'static str,
}

impl Workload {
    /// This workload's IP with `port`.
    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.ip), port)
    }

    /// The TLS identity its proxy is certified for:
    /// `<sa>.default.serviceaccount.identity.linkerd.cluster.local`.
    pub fn identity(&self) -> String {
        wisp_identity::workload_identity(
            self.service_account,
            NAMESPACE,
            CONTROL_PLANE_NS,
            TRUST_DOMAIN,
        )
    }
}

/// The load driver's workload.
pub const CLIENT: Workload = Workload {
    name: "client",
    ip: Ipv4Addr::new(127, 0, 0, 10),
    service_account: "client",
};

/// The backends of service `web`.
pub const BACKENDS: [Workload; 3] = [
    Workload {
        name: "web-a",
        ip: Ipv4Addr::new(127, 0, 0, 11),
        service_account: SERVICE,
    },
    Workload {
        name: "web-b",
        ip: Ipv4Addr::new(127, 0, 0, 12),
        service_account: SERVICE,
    },
    Workload {
        name: "web-c",
        ip: Ipv4Addr::new(127, 0, 0, 13),
        service_account: SERVICE,
    },
];

/// The backend that answers slowly (by `--slow-ms`).
pub const SLOW_BACKEND: &str = "web-c";

/// Every service account with a workload, each once, in start order.
pub fn service_accounts() -> Vec<&'static str> {
    let mut accounts: Vec<&'static str> = Vec::new();
    for w in meshed() {
        if !accounts.contains(&w.service_account) {
            accounts.push(w.service_account);
        }
    }
    accounts
}

/// Every workload that gets a proxy, in start order.
pub fn meshed() -> impl Iterator<Item = Workload> {
    BACKENDS.into_iter().chain(std::iter::once(CLIENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_follow_service_accounts() {
        assert_eq!(
            BACKENDS[0].identity(),
            "web.default.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(
            CLIENT.identity(),
            "client.default.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(service_accounts(), ["web", "client"]);
    }
}
