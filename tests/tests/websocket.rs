//! WebSocket (HTTP/1.1 Upgrade) through one and two proxies.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use wisp_tests::*;

/// Opens a WebSocket to `proxy` with `Host: host` and checks that text and
/// binary messages echo, in order, both ways.
async fn echo_via(proxy: SocketAddr, host: &str) {
    let mut req = format!("ws://{proxy}/chat").into_client_request().unwrap();
    req.headers_mut().insert("host", host.parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let (mut ws, rsp) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::client_async(req, tcp),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rsp.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..20u32 {
        let text = format!("message {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let bin = pattern(100 + i as usize * 3000, u64::from(i) + 1);
        ws.send(Message::binary(bin.clone())).await.unwrap();
        let a = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(a.into_text().unwrap().as_str(), text);
        let b = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(b.into_data().as_ref(), bin.as_slice());
    }
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_through_one_proxy() {
    // Unmeshed endpoint: client proxy -> ws server directly.
    let mesh = Mesh::start(1, 8081, false, &[]).await;
    let _ws = WsEchoServer::start(mesh.app_addr(0)).await;
    echo_via(mesh.client.outbound, WEB_FQDN).await;
    // And by IP:port Host (forwarded, no discovery).
    echo_via(mesh.client.outbound, &mesh.app_addr(0).to_string()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_through_two_proxies() {
    let mesh = Mesh::start(1, 8081, true, &[]).await;
    let _ws = WsEchoServer::start(mesh.app_addr(0)).await;
    echo_via(mesh.client.outbound, WEB_FQDN).await;
    let m = mesh.servers[0].metrics().await;
    assert!(
        metric_sum(&m, "request_total", &[("direction", "inbound")]) >= 1.0,
        "{m}"
    );
}
