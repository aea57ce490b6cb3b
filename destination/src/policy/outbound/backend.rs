//! Backends: a Service's balancer, or a forward to one address.

use std::net::SocketAddr;
use std::time::Duration;

use linkerd2_proxy_api::destination::WeightedAddr;
use linkerd2_proxy_api::meta::Metadata;
use linkerd2_proxy_api::outbound::{
    backend::{self, balance_p2c, endpoint_discovery, BalanceP2c, EndpointDiscovery},
    Backend, Queue,
};

use crate::policy::proto::duration;

/// Requests a backend queues before exerting backpressure.
pub const QUEUE_CAPACITY: u32 = 100;
/// How long a backend may stay unready before its queue fails.
pub const FAILFAST_TIMEOUT: Duration = Duration::from_secs(3);
/// Peak-EWMA initial RTT.
pub const DEFAULT_RTT: Duration = Duration::from_millis(30);
/// Peak-EWMA decay window.
pub const RTT_DECAY: Duration = Duration::from_secs(10);

/// `queue{capacity:100, failfast_timeout:3s}`.
pub fn default_queue() -> Queue {
    Queue {
        capacity: QUEUE_CAPACITY,
        failfast_timeout: Some(duration(FAILFAST_TIMEOUT)),
    }
}

/// A P2C balancer over `Destination.Get(path)` with peak-EWMA load.
pub fn balancer(metadata: Metadata, path: String) -> Backend {
    Backend {
        metadata: Some(metadata),
        queue: Some(default_queue()),
        kind: Some(backend::Kind::Balancer(BalanceP2c {
            discovery: Some(EndpointDiscovery {
                kind: Some(endpoint_discovery::Kind::Dst(
                    endpoint_discovery::DestinationGet { path },
                )),
            }),
            load: Some(balance_p2c::Load::PeakEwma(balance_p2c::PeakEwma {
                default_rtt: Some(duration(DEFAULT_RTT)),
                decay: Some(duration(RTT_DECAY)),
            })),
        })),
    }
}

/// A backend forwarding to `addr` (weight 1).
pub fn forward(metadata: Metadata, addr: SocketAddr) -> Backend {
    Backend {
        metadata: Some(metadata),
        queue: Some(default_queue()),
        kind: Some(backend::Kind::Forward(WeightedAddr {
            addr: Some(addr.into()),
            weight: 1,
            ..Default::default()
        })),
    }
}
