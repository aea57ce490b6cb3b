//! Protocol detection: HTTP/2 prior knowledge, HTTP/1.x, or opaque TCP.
//!
//! Reads the first bytes of a connection (at most [`DETECT_BUFFER`], within a
//! timeout) and classifies them. The bytes are returned so they can be
//! replayed to whatever serves the connection.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most bytes read for detection.
pub const DETECT_BUFFER: usize = 1024;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// What a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or HTTP/1.1.
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    Http2,
    /// Anything else: forwarded byte for byte.
    Opaque,
}

/// The outcome of detection.
pub enum Detected {
    /// The protocol and the bytes read so far.
    Protocol(Protocol, Bytes),
    /// No bytes arrived within the timeout (a server-speaks-first protocol,
    /// or an idle client). The bytes read so far, usually none.
    Timeout(Bytes),
    /// The peer closed the connection before sending anything.
    Closed,
}

/// Reads from `io` until the protocol is known.
pub async fn detect<T: AsyncRead + Unpin>(
    io: &mut T,
    timeout: Duration,
) -> std::io::Result<Detected> {
    let mut buf = BytesMut::with_capacity(DETECT_BUFFER);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let read = tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await;
        match read {
            Err(_) => return Ok(Detected::Timeout(buf.freeze())),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(0)) if buf.is_empty() => return Ok(Detected::Closed),
            Ok(Ok(0)) => return Ok(Detected::Protocol(Protocol::Opaque, buf.freeze())),
            Ok(Ok(_)) => {}
        }
        if let Some(p) = classify(&buf) {
            return Ok(Detected::Protocol(p, buf.freeze()));
        }
        if buf.len() >= DETECT_BUFFER {
            return Ok(Detected::Protocol(Protocol::Opaque, buf.freeze()));
        }
    }
}

/// Classifies the bytes read so far; `None` means "need more".
pub fn classify(buf: &[u8]) -> Option<Protocol> {
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
    use super::*;

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
