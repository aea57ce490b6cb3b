//! The accept loop shared by the inbound and outbound listeners.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::drain::Drain;

/// Accepts connections until the proxy drains, spawning `handle` for each.
/// Accept errors (e.g. out of file descriptors) are logged and retried
/// after a short pause instead of ending the listener.
pub async fn accept_loop<F, Fut>(listener: TcpListener, drain: Drain, side: &'static str, handle: F)
where
    F: Fn(TcpStream, SocketAddr, Drain) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "{side} accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = drain.signaled() => return,
        };
        tokio::spawn(handle(stream, peer, drain.clone()));
    }
}
