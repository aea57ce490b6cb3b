//! The original destination of a connection redirected by iptables.

use std::net::SocketAddr;

use tokio::net::TcpStream;

/// Reads `SO_ORIGINAL_DST` (or `IP6T_SO_ORIGINAL_DST`) from an accepted socket.
///
/// Returns `None` when the connection was not redirected (the kernel has no
/// NAT record for it) or the original destination is the local address
/// itself: the client connected to the proxy directly.
pub(crate) fn original_dst(stream: &TcpStream) -> Option<SocketAddr> {
    let local = stream.local_addr().ok()?;
    let sock = socket2::SockRef::from(stream);
    let addr = match local {
        SocketAddr::V4(_) => sock.original_dst_v4(),
        SocketAddr::V6(_) => sock.original_dst_v6(),
    }
    .ok()?
    .as_socket()?;
    // IPv4-mapped peers on a v6 socket report the v4 form; compare canonical.
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    (canonical(addr) != canonical(local)).then_some(canonical(addr))
}
