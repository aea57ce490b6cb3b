//! Protocol detection: HTTP/2 prior knowledge, HTTP/1.x, or opaque TCP.
//!
//! Reads the first bytes of a connection (at most [`DETECT_BUFFER`], within a
//! timeout) and classifies them. The bytes are returned so they can be
//! replayed to whatever serves the connection.

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// The most bytes read for detection.
pub(crate) const DETECT_BUFFER: usize = 1024;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// What a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/1.0 or HTTP/1.1.
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    Http2,
    /// Anything else: forwarded byte for byte.
    Opaque,
}

/// The outcome of detection.
pub(crate) enum Detected {
    /// The protocol and the bytes read so far.
    Protocol(Protocol, Bytes),
    /// No bytes arrived within the timeout (a server-speaks-first protocol,
    /// or an idle client). The bytes read so far, usually none.
    Timeout(Bytes),
    /// The peer closed the connection before sending anything.
    Closed,
}

/// Reads from `io` until the protocol is known.
pub(crate) async fn detect<T: AsyncRead + Unpin>(
    io: &mut T,
    timeout: Duration,
) -> std::io::Result<Detected> {
    let buf = BytesMut::with_capacity(DETECT_BUFFER);
    detect_from(io, buf, Instant::now() + timeout).await
}

/// Goes on detecting with the bytes read so far in `buf`.
async fn detect_from<T: AsyncRead + Unpin>(
    io: &mut T,
    mut buf: BytesMut,
    deadline: Instant,
) -> std::io::Result<Detected> {
    loop {
        if !buf.is_empty() {
            if let Some(p) = classify(&buf) {
                return Ok(Detected::Protocol(p, buf.freeze()));
            }
            if buf.len() >= DETECT_BUFFER {
                return Ok(Detected::Protocol(Protocol::Opaque, buf.freeze()));
            }
        }
        let read = tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await;
        match read {
            Err(_) => return Ok(Detected::Timeout(buf.freeze())),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(0)) if buf.is_empty() => return Ok(Detected::Closed),
            Ok(Ok(0)) => return Ok(Detected::Protocol(Protocol::Opaque, buf.freeze())),
            Ok(Ok(_)) => {}
        }
    }
}

/// How long a silent client is waited for before the proxy connects to
/// the target to see whether the server speaks first.
pub(crate) const CLIENT_QUIET: Duration = Duration::from_millis(300);

/// Who spoke first on a connection whose protocol was not known.
pub(crate) enum FirstSpeaker<S> {
    /// The client: what detection found, and the server connection opened
    /// meanwhile, if any (use it for opaque traffic, drop it for HTTP).
    Client(Detected, Option<S>),
    /// The server (a server-speaks-first protocol such as MySQL or SMTP):
    /// splice at once; these bytes came from the server already.
    Server(S, Bytes),
}

/// Detection that does not stall server-speaks-first protocols.
///
/// Linkerd waits the whole detect timeout for a client that never speaks
/// (because its server speaks first) before it forwards opaque. Here, a
/// client silent for `quiet` makes the proxy `connect` to the target; if the
/// server then sends the first bytes, the connection is opaque at once; if
/// the client speaks, detection goes on as usual. A client that speaks
/// within `quiet` (every HTTP client) sees no difference.
pub(crate) async fn detect_or_server_first<T, S, C, Fut>(
    io: &mut T,
    timeout: Duration,
    quiet: Duration,
    connect: C,
) -> std::io::Result<FirstSpeaker<S>>
where
    T: AsyncRead + Unpin,
    S: AsyncRead + Unpin,
    C: FnOnce() -> Fut,
    Fut: Future<Output = Option<S>>,
{
    let deadline = Instant::now() + timeout;
    let mut buf = BytesMut::with_capacity(DETECT_BUFFER);
    let quiet_until = (Instant::now() + quiet).min(deadline);
    match tokio::time::timeout_at(quiet_until, io.read_buf(&mut buf)).await {
        Ok(Ok(0)) => return Ok(FirstSpeaker::Client(Detected::Closed, None)),
        Ok(Ok(_)) => {
            let d = detect_from(io, buf, deadline).await?;
            return Ok(FirstSpeaker::Client(d, None));
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => {}
    }
    let Some(mut server) = connect().await else {
        let d = detect_from(io, buf, deadline).await?;
        return Ok(FirstSpeaker::Client(d, None));
    };
    let mut from_server = BytesMut::with_capacity(DETECT_BUFFER);
    tokio::select! {
        r = io.read_buf(&mut buf) => match r {
            Ok(0) => Ok(FirstSpeaker::Client(Detected::Closed, Some(server))),
            Ok(_) => {
                let d = detect_from(io, buf, deadline).await?;
                Ok(FirstSpeaker::Client(d, Some(server)))
            }
            Err(e) => Err(e),
        },
        // Data, end of stream or an error: the server acted first either
        // way, and splicing passes it on to the client.
        _ = server.read_buf(&mut from_server) => Ok(FirstSpeaker::Server(server, from_server.freeze())),
        _ = tokio::time::sleep_until(deadline) => {
            Ok(FirstSpeaker::Client(Detected::Timeout(buf.freeze()), Some(server)))
        }
    }
}

/// Classifies the bytes read so far; `None` means "need more".
pub(crate) fn classify(buf: &[u8]) -> Option<Protocol> {
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return (buf.len() >= H2_PREFACE.len()).then_some(Protocol::Http2);
    }
    // Until the request line is complete, keep reading as long as the bytes
    // could still be one: a token, a space, then printable characters.
    let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
        let plausible = buf.iter().all(|&b| b.is_ascii_graphic() || b == b' ')
            && buf.first().is_some_and(u8::is_ascii_uppercase);
        return if plausible {
            None
        } else {
            Some(Protocol::Opaque)
        };
    };
    let mut headers = [httparse::EMPTY_HEADER; 0];
    let mut req = httparse::Request::new(&mut headers);
    // Parse only the request line (plus its CRLF) so that the header count
    // does not matter.
    match req.parse(&buf[..line_end + 2]) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) if req.version.is_some() => {
            Some(Protocol::Http1)
        }
        _ => Some(Protocol::Opaque),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_server_that_speaks_first_is_spliced_after_the_quiet_wait() {
        let (mut client, mut proxy_side) = tokio::io::duplex(64);
        let (mut server, server_side) = tokio::io::duplex(64);
        server
            .write_all(b"220 smtp ready\r\n")
            .await
            .expect("write");
        let started = Instant::now();
        let got = detect_or_server_first(
            &mut proxy_side,
            Duration::from_secs(10),
            CLIENT_QUIET,
            || async { Some(server_side) },
        )
        .await
        .expect("detect");
        match got {
            FirstSpeaker::Server(_, bytes) => assert_eq!(&bytes[..], b"220 smtp ready\r\n"),
            FirstSpeaker::Client(..) => panic!("the server spoke first"),
        }
        assert_eq!(started.elapsed(), CLIENT_QUIET);
        client.shutdown().await.expect("shutdown");
    }

    #[tokio::test(start_paused = true)]
    async fn an_http_client_is_detected_without_connecting() {
        let (mut client, mut proxy_side) = tokio::io::duplex(64);
        client
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        let got = detect_or_server_first(
            &mut proxy_side,
            Duration::from_secs(10),
            CLIENT_QUIET,
            || async { None::<tokio::io::DuplexStream> },
        )
        .await
        .expect("detect");
        assert!(matches!(
            got,
            FirstSpeaker::Client(Detected::Protocol(Protocol::Http1, _), None)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_client_still_gets_detected_and_keeps_the_connection() {
        let (mut client, mut proxy_side) = tokio::io::duplex(64);
        let (_server, server_side) = tokio::io::duplex(64);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.write_all(b"\x00\x01binary").await.expect("write");
            client
        });
        let got = detect_or_server_first(
            &mut proxy_side,
            Duration::from_secs(10),
            CLIENT_QUIET,
            || async { Some(server_side) },
        )
        .await
        .expect("detect");
        assert!(matches!(
            got,
            FirstSpeaker::Client(Detected::Protocol(Protocol::Opaque, _), Some(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_on_both_sides_times_out() {
        let (_client, mut proxy_side) = tokio::io::duplex(64);
        let (_server, server_side) = tokio::io::duplex(64);
        let started = Instant::now();
        let got = detect_or_server_first(
            &mut proxy_side,
            Duration::from_secs(10),
            CLIENT_QUIET,
            || async { Some(server_side) },
        )
        .await
        .expect("detect");
        assert!(matches!(
            got,
            FirstSpeaker::Client(Detected::Timeout(_), Some(_))
        ));
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[test]
    fn classifies() {
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Some(Protocol::Http2)
        );
        assert_eq!(classify(b"PRI * HT"), None);
        assert_eq!(
            classify(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Some(Protocol::Http1)
        );
        assert_eq!(classify(b"POST /a?b=c HTTP/1.0\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"GET / HT"), None);
        assert_eq!(classify(b"\x16\x03\x01\x02\x00"), Some(Protocol::Opaque));
        assert_eq!(classify(b"SSH-2.0-OpenSSH\r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(b"hello world\r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(b"GET / FOO/1.1\r\n"), Some(Protocol::Opaque));
    }
}
