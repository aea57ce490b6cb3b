//! Opaque TCP forwarding, both directions, with half-close.

use tokio::io::{AsyncRead, AsyncWrite};

/// Buffer size for each direction of a forwarded connection.
const BUF: usize = 8 * 1024;

/// Copies bytes between `client` and `server` until both sides are done.
/// When one side finishes sending, the other side's write half is shut down
/// (half-close), and the copy in the other direction goes on.
pub(crate) async fn splice<C, S>(mut client: C, mut server: S)
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional_with_sizes(&mut client, &mut server, BUF, BUF).await {
        Ok((up, down)) => tracing::debug!(up, down, "opaque connection closed"),
        Err(e) => tracing::debug!(error = %e, "opaque connection failed"),
    }
}
