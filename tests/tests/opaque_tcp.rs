//! Opaque TCP forwarding on the inbound direct path (transport header
//! without a session protocol), including server-speaks-first protocols and
//! half-close.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wisp_tests::*;

/// Connects to a proxy's inbound listener and writes an opaque transport
/// header for `port`.
async fn direct_opaque(inbound: SocketAddr, port: u16) -> TcpStream {
    let mut s = TcpStream::connect(inbound).await.unwrap();
    s.write_all(&transport_header(port, Session::Opaque))
        .await
        .unwrap();
    s
}

/// Reads exactly `n` bytes within 5 s.
async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("read timed out")
        .unwrap();
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_echo_with_half_close() {
    let net = Net::new();
    let _echo = EchoServer::start(net.addr(11, 7000), None).await;
    let proxy = Proxy::start(net.ip(11), &net.addr(2, 8086).to_string(), &[]).await;

    let mut s = direct_opaque(proxy.inbound, 7000).await;
    s.write_all(b"ping").await.unwrap();
    assert_eq!(read_n(&mut s, 4).await, b"ping");

    // A large payload, then half-close: the rest of the echo still arrives,
    // followed by EOF.
    let data = pattern(512 * 1024, 3);
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn({
        let data = data.clone();
        async move {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
            w
        }
    });
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut got))
        .await
        .expect("no EOF after half-close")
        .unwrap();
    let _w = writer.await.unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(fnv1a(&got), fnv1a(&data));

    let m = proxy.metrics().await;
    assert!(
        metric_sum(&m, "tcp_open_total", &[("direction", "inbound")]) >= 1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_server_speaks_first() {
    let net = Net::new();
    let _smtp = EchoServer::start(net.addr(11, 2525), Some(b"220 wisp ESMTP ready\r\n")).await;
    let proxy = Proxy::start(net.ip(11), &net.addr(2, 8086).to_string(), &[]).await;

    // The client writes only the header; the server's greeting must arrive
    // without the client sending any application byte.
    let mut s = direct_opaque(proxy.inbound, 2525).await;
    let greeting = read_n(&mut s, 22).await;
    assert_eq!(greeting, b"220 wisp ESMTP ready\r\n");
    s.write_all(b"EHLO test\r\n").await.unwrap();
    assert_eq!(read_n(&mut s, 11).await, b"EHLO test\r\n");
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_opaque_without_original_destination_is_closed() {
    // Through the outbound side in universal mode opaque traffic has no
    // original destination and is closed; the direct inbound path is what
    // carries it. Check the outbound proxy refuses (closes) rather than hangs.
    let net = Net::new();
    let proxy = Proxy::start(net.ip(10), &net.addr(2, 8086).to_string(), &[]).await;
    let mut s = TcpStream::connect(proxy.outbound).await.unwrap();
    s.write_all(b"\x16\x03\x01 not http at all, just opaque bytes")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        r.is_ok(),
        "outbound proxy kept an opaque connection without a target open"
    );
    assert!(buf.is_empty());
    assert!(!proxy.process.output().contains("panicked"));
}
