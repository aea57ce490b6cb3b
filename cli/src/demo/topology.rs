//! Who runs where: the demo's service, its pods and their addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Namespace of every demo object.
pub const NAMESPACE: &str = "default";
/// The demo service: the name the client addresses (the TrafficSplit's
/// apex), also the first version's service.
pub const SERVICE: &str = "web";
/// The name the client addresses (the proxy routes by Host).
pub const SERVICE_HOST: &str = "web.default.svc.cluster.local";
/// The second version's service (a TrafficSplit backend of `web`).
pub const SERVICE_V2: &str = "web-v2";
/// `web-v2`'s fully qualified name (the mesh check addresses it directly).
pub const SERVICE_V2_HOST: &str = "web-v2.default.svc.cluster.local";

/// A Service of the demo, with its pods.
#[derive(Clone, Copy, Debug)]
pub struct Service {
    /// The Service name.
    pub name: &'static str,
    /// Its (fictional) cluster IP.
    pub cluster_ip: &'static str,
    /// The application version its pods run (their `version` label).
    pub version: &'static str,
}

impl Service {
    /// The backends selected by this Service.
    pub fn backends(&self) -> impl Iterator<Item = Workload> + '_ {
        BACKENDS.into_iter().filter(|b| b.service == self.name)
    }
}

/// The demo's Services: `web` (v1: web-a, web-b, web-c) and `web-v2`
/// (v2: web-v2-a).
pub const SERVICES: [Service; 2] = [
    Service {
        name: SERVICE,
        cluster_ip: "10.96.0.10",
        version: "v1",
    },
    Service {
        name: SERVICE_V2,
        cluster_ip: "10.96.0.11",
        version: "v2",
    },
];
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
/// Each proxy's control port (the Tap API).
pub const CONTROL_PORT: u16 = 4190;
/// The tap service identity the demo's proxies are given (loopback clients
/// such as `wisp tap` may tap whatever it is).
pub const TAP_SVC_NAME: &str = "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local";
/// The control plane's namespace (part of every identity name).
pub const CONTROL_PLANE_NS: &str = "linkerd";
/// The identity trust domain.
pub const TRUST_DOMAIN: &str = "cluster.local";

/// One workload ("pod"): a name, its own loopback IP, the service account
/// it runs as and the Service that selects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The pod name.
    pub name: &'static str,
    /// The pod's IP (a loopback address; Linux routes 127/8 to `lo`).
    pub ip: Ipv4Addr,
    /// The pod's service account (its identity, with identity on).
    pub service_account: &'static str,
    /// The Service selecting the pod (the client: none, `""`).
    pub service: &'static str,
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
    service: "",
};

/// Every backend: web-a, web-b, web-c of service `web` (v1) and web-v2-a
/// of service `web-v2` (v2). All run as service account `web`.
pub const BACKENDS: [Workload; 4] = [
    Workload {
        name: "web-a",
        ip: Ipv4Addr::new(127, 0, 0, 11),
        service_account: SERVICE,
        service: SERVICE,
    },
    Workload {
        name: "web-b",
        ip: Ipv4Addr::new(127, 0, 0, 12),
        service_account: SERVICE,
        service: SERVICE,
    },
    Workload {
        name: "web-c",
        ip: Ipv4Addr::new(127, 0, 0, 13),
        service_account: SERVICE,
        service: SERVICE,
    },
    Workload {
        name: "web-v2-a",
        ip: Ipv4Addr::new(127, 0, 0, 14),
        service_account: SERVICE,
        service: SERVICE_V2,
    },
];

/// The version (`v1`, `v2`) of backend `pod`, by its Service.
pub fn version_of(pod: &str) -> Option<&'static str> {
    let w = BACKENDS.iter().find(|b| b.name == pod)?;
    SERVICES
        .iter()
        .find(|s| s.name == w.service)
        .map(|s| s.version)
}

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

    #[test]
    fn two_versions() {
        let v1: Vec<&str> = SERVICES[0].backends().map(|b| b.name).collect();
        let v2: Vec<&str> = SERVICES[1].backends().map(|b| b.name).collect();
        assert_eq!(v1, ["web-a", "web-b", "web-c"]);
        assert_eq!(v2, ["web-v2-a"]);
        assert_eq!(version_of("web-c"), Some("v1"));
        assert_eq!(version_of("web-v2-a"), Some("v2"));
        assert_eq!(version_of("nope"), None);
    }
}
