//! The Linkerd transport header (`transport.l5d.io/v1`).
//!
//! A direct connection between proxies starts with a preface, a big-endian
//! u32 length and a protobuf `Header` naming the real target port and the
//! session protocol. The inbound proxy reads it and forwards to the workload.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The preface that starts a transport header.
pub(crate) const PREFACE: &[u8] = b"transport.l5d.io/v1\r\n\r\n";

/// Headers longer than this are refused.
const MAX_LEN: u32 = 64 * 1024;

/// `transport.l5d.io.Header`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Header {
    /// The port the connection is really for.
    #[prost(int32, tag = "1")]
    pub port: i32,
    /// An optional logical name (gateways).
    #[prost(string, tag = "2")]
    pub name: String,
    /// HTTP/1 or HTTP/2; absent means opaque.
    #[prost(message, optional, tag = "3")]
    pub session_protocol: Option<SessionProtocol>,
}

/// `transport.l5d.io.SessionProtocol`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct SessionProtocol {
    /// Which HTTP version.
    #[prost(oneof = "Kind", tags = "1, 2")]
    pub kind: Option<Kind>,
}

/// The session protocol's variants.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum Kind {
    /// HTTP/1.
    #[prost(message, tag = "1")]
    Http1(Empty),
    /// HTTP/2.
    #[prost(message, tag = "2")]
    Http2(Empty),
}

/// An empty message.
#[derive(Clone, Copy, PartialEq, Message)]
pub(crate) struct Empty {}

/// The session protocol a header announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Session {
    /// HTTP/1.x requests follow.
    Http1,
    /// HTTP/2 follows.
    Http2,
    /// Opaque bytes follow.
    Opaque,
}

impl Header {
    /// Builds a header for `port` and `session`.
    pub fn new(port: u16, session: Session) -> Self {
        let kind = match session {
            Session::Http1 => Some(Kind::Http1(Empty {})),
            Session::Http2 => Some(Kind::Http2(Empty {})),
            Session::Opaque => None,
        };
        Header {
            port: i32::from(port),
            name: String::new(),
            session_protocol: kind.map(|k| SessionProtocol { kind: Some(k) }),
        }
    }

    /// The announced session protocol.
    pub fn session(&self) -> Session {
        match self.session_protocol.as_ref().and_then(|s| s.kind.as_ref()) {
            Some(Kind::Http1(_)) => Session::Http1,
            Some(Kind::Http2(_)) => Session::Http2,
            None => Session::Opaque,
        }
    }

    /// Preface, length and message, ready to write.
    pub fn encode_frame(&self) -> Bytes {
        let len = self.encoded_len();
        let mut buf = BytesMut::with_capacity(PREFACE.len() + 4 + len);
        buf.put_slice(PREFACE);
        buf.put_u32(len as u32);
        // Encoding into a buffer with enough capacity cannot fail.
        let _ = self.encode(&mut buf);
        buf.freeze()
    }
}

/// Why a transport header could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The stream does not start with the preface.
    #[error("no transport header")]
    Missing,
    /// The header is malformed.
    #[error("invalid transport header: {0}")]
    Invalid(String),
    /// The stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads a transport header from the start of `io`.
///
/// Returns the header and any bytes that followed it. On `Missing`, the
/// bytes read are returned with the error so the caller can replay them.
pub(crate) async fn read<T: AsyncRead + Unpin>(
    io: &mut T,
) -> Result<(Header, Bytes), (ReadError, Bytes)> {
    let mut buf = BytesMut::with_capacity(PREFACE.len() + 4);
    while buf.len() < PREFACE.len() + 4 {
        match io.read_buf(&mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err((e.into(), buf.freeze())),
        }
        let n = buf.len().min(PREFACE.len());
        if buf[..n] != PREFACE[..n] {
            return Err((ReadError::Missing, buf.freeze()));
        }
    }
    if buf.len() < PREFACE.len() + 4 {
        return Err((ReadError::Missing, buf.freeze()));
    }
    let invalid = |m: String| (ReadError::Invalid(m), Bytes::new());
    buf.advance(PREFACE.len());
    let len = buf.get_u32();
    if len > MAX_LEN {
        return Err(invalid(format!("length {len} too large")));
    }
    let len = len as usize;
    while buf.len() < len {
        match io.read_buf(&mut buf).await {
            Ok(0) => return Err(invalid("truncated".into())),
            Ok(_) => {}
            Err(e) => return Err((e.into(), Bytes::new())),
        }
    }
    let msg = buf.split_to(len).freeze();
    let header = Header::decode(msg).map_err(|e| invalid(e.to_string()))?;
    if !(1..=65535).contains(&header.port) {
        return Err(invalid(format!("port {} out of range", header.port)));
    }
    Ok((header, buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_remainder() {
        let mut wire = Header::new(8080, Session::Http2).encode_frame().to_vec();
        wire.extend_from_slice(b"PRI * HTTP/2.0");
        let (h, rest) = read(&mut &wire[..]).await.expect("header");
        assert_eq!(h.port, 8080);
        assert_eq!(h.session(), Session::Http2);
        assert_eq!(&rest[..], b"PRI * HTTP/2.0");
        let (h, _) = read(&mut &Header::new(5432, Session::Opaque).encode_frame()[..])
            .await
            .expect("header");
        assert_eq!(h.session(), Session::Opaque);
    }

    #[tokio::test]
    async fn missing_and_garbage() {
        let (e, replay) = read(&mut &b"GET / HTTP/1.1\r\n"[..])
            .await
            .expect_err("no header");
        assert!(matches!(e, ReadError::Missing));
        assert_eq!(&replay[..], b"GET / HTTP/1.1\r\n");
        let mut bad = PREFACE.to_vec();
        bad.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            read(&mut &bad[..]).await,
            Err((ReadError::Invalid(_), _))
        ));
    }
}
