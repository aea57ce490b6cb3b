//! A minimal blocking HTTP/1.1 GET used for readiness and sanity checks.

use anyhow::{anyhow, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Sends `GET path` with the given Host header to `addr` and returns the
/// response status code. The whole exchange is bounded by `timeout`.
pub fn get_status(addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("writing request to {addr}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("reading response from {addr}"))?;
        if n == 0 {
            return Err(anyhow!("{addr} closed the connection without a response"));
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status_line(&head).ok_or_else(|| anyhow!("{addr} sent a malformed status line"))
}

/// Sends `GET path` (Connection: close) to `addr` and returns the status
/// code and the body, read to the end of the connection (admin endpoints
/// such as `/metrics`; chunked encoding is not decoded, which is harmless
/// for line-oriented text).
pub fn get_text(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("writing request to {addr}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .with_context(|| format!("reading response from {addr}"))?;
    let status = parse_status_line(&response)
        .ok_or_else(|| anyhow!("{addr} sent a malformed status line"))?;
    let body = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&response[..0], |i| &response[i + 4..]);
    Ok((status, String::from_utf8_lossy(body).into_owned()))
}

/// Parses the status code out of `HTTP/1.x CODE ...`.
fn parse_status_line(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head.split(|&b| b == b'\r').next()?).ok()?;
    let mut parts = text.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// True if a TCP connection to `addr` can be established right now.
pub fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::parse_status_line;

    #[test]
    fn status_line() {
        assert_eq!(
            parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"SSH-2.0\r\n"), None);
    }
}
