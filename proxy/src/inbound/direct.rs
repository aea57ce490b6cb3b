//! Direct connections from a peer proxy: the transport header that opens
//! them names the application port and the session protocol.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncRead;

use crate::transport::detect::Protocol;
use crate::transport::header::{self, Session};

/// Reads the transport header: the target port, the protocol of what
/// follows, and the bytes read past the header. `None` (logged) when the
/// peer sent no valid header in time.
pub(super) async fn read_header<I: AsyncRead + Unpin>(
    io: &mut I,
    timeout: Duration,
) -> Option<(u16, Protocol, Bytes)> {
    let (header, rest) = match tokio::time::timeout(timeout, header::read(io)).await {
        Ok(Ok(h)) => h,
        Ok(Err((e, _))) => {
            tracing::info!(error = %e, "refusing direct connection");
            return None;
        }
        Err(_) => {
            tracing::info!("direct connection sent no transport header in time");
            return None;
        }
    };
    let Ok(port) = u16::try_from(header.port) else {
        tracing::info!(
            port = header.port,
            "refusing direct connection to an invalid port"
        );
        return None;
    };
    let proto = match header.session() {
        Session::Http1 => Protocol::Http1,
        Session::Http2 => Protocol::Http2,
        Session::Opaque => Protocol::Opaque,
    };
    Some((port, proto, rest))
}
