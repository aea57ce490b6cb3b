//! Checks, before anything starts, that every address the demo needs is free.

use std::net::{SocketAddr, TcpListener};

/// Fails with a clear message if any of `addrs` cannot be bound.
pub fn check_free(addrs: &[SocketAddr]) -> anyhow::Result<()> {
    for &addr in addrs {
        if let Err(e) = TcpListener::bind(addr) {
            match e.kind() {
                std::io::ErrorKind::AddrInUse => anyhow::bail!(
                    "{addr} is already in use — is another `wisp demo` running? \
                     Stop it (or whatever holds the port) and try again"
                ),
                std::io::ErrorKind::AddrNotAvailable => anyhow::bail!(
                    "cannot use {addr}: this system does not route {} to the loopback \
                     interface (Linux routes all of 127.0.0.0/8 there; elsewhere add \
                     loopback aliases for 127.0.0.10-14)",
                    addr.ip()
                ),
                _ => anyhow::bail!("cannot listen on {addr}: {e}"),
            }
        }
    }
    Ok(())
}

/// `n` distinct free ports on 127.0.0.1, chosen by the kernel (all bound at
/// once, so none repeats).
pub fn free_local_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| {
            TcpListener::bind("127.0.0.1:0")
                .map_err(|e| anyhow::anyhow!("cannot find a free port on 127.0.0.1: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}
