//! The accept loop shared by the inbound and outbound listeners: a bound on
//! the connections served at once, and a tracing span per connection.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::drain::Drain;

/// The proxy's own listening addresses: never a forwarding target, whether
/// named by a request, an original destination or a transport header
/// (a target there would reach the admin port's `/shutdown`, or loop).
#[derive(Clone, Debug, Default)]
pub(crate) struct OwnAddrs {
    ports: Vec<u16>,
    ips: Vec<IpAddr>,
}

impl OwnAddrs {
    /// The ports of `listeners`, on loopback, the unspecified address, the
    /// listeners' own IPs and `local_ips` (the pod's IPs).
    pub(crate) fn new(listeners: &[SocketAddr], local_ips: &[IpAddr]) -> Self {
        let mut ports: Vec<u16> = listeners.iter().map(SocketAddr::port).collect();
        ports.sort_unstable();
        ports.dedup();
        let ips = listeners
            .iter()
            .map(|l| l.ip().to_canonical())
            .filter(|ip| !ip.is_unspecified())
            .chain(local_ips.iter().map(|ip| ip.to_canonical()))
            .collect();
        OwnAddrs { ports, ips }
    }

    /// Whether `port` is one of the proxy's (for targets that are local by
    /// construction, such as the inbound application address).
    pub(crate) fn has_port(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    /// Whether `addr` reaches one of the proxy's listeners.
    pub(crate) fn contains(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        self.has_port(addr.port())
            && (ip.is_loopback() || ip.is_unspecified() || self.ips.contains(&ip))
    }
}

/// How a listener bounds its connections.
pub(crate) struct AcceptLimit {
    /// Connections served at once at most; more are closed at once.
    pub(crate) max_connections: usize,
    /// Counts the connections closed because of the limit.
    pub(crate) refused: Arc<AtomicU64>,
}

/// Accepts connections until the proxy drains, spawning `handle` for each
/// inside a span `conn{dir, peer}` (handlers add `target` once known).
/// A connection beyond the limit is closed at once and counted. Accept
/// errors (e.g. out of file descriptors) are logged and retried after a
/// short pause instead of ending the listener.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    drain: Drain,
    direction: &'static str,
    limit: AcceptLimit,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, Drain) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limit.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "{direction} accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = drain.signaled() => return,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            limit.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, max = limit.max_connections, "{direction} connection limit reached; closing");
            drop(stream);
            continue;
        };
        let span = tracing::info_span!(
            "conn",
            dir = direction,
            %peer,
            target = tracing::field::Empty
        );
        let conn = handle(stream, peer, drain.clone());
        tokio::spawn(
            async move {
                conn.await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_addresses() {
        let own = OwnAddrs::new(
            &[
                "127.0.0.1:4140".parse().expect("addr"),
                "0.0.0.0:4143".parse().expect("addr"),
                "127.0.0.1:4191".parse().expect("addr"),
            ],
            &["10.1.1.7".parse().expect("ip")],
        );
        assert!(own.contains("127.0.0.1:4191".parse().expect("addr")));
        assert!(own.contains("127.0.0.9:4140".parse().expect("addr")));
        assert!(own.contains("10.1.1.7:4143".parse().expect("addr")));
        assert!(own.contains("[::ffff:127.0.0.1]:4191".parse().expect("addr")));
        assert!(
            !own.contains("10.1.1.8:4143".parse().expect("addr")),
            "another pod's proxy"
        );
        assert!(!own.contains("127.0.0.1:8080".parse().expect("addr")));
        assert!(own.has_port(4191));
    }
}
