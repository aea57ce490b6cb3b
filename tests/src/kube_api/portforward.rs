//! The `pods/portforward` subresource over WebSocket, as the API server
//! proxies it to the kubelet and the kubelet serves it.
//!
//! `GET|POST /api/v1/namespaces/{ns}/pods/{name}/portforward?ports=P[,Q…]`
//! with `Upgrade: websocket`: an unknown pod gets `404 NotFound` (before
//! any upgrade); a missing or invalid `ports` gets `400 BadRequest`; a
//! non-WebSocket request (SPDY, what kubectl uses) gets `400` too. The
//! subprotocol is `v4.channel.k8s.io` (binary), which the kubelet's
//! port-forward handler picks from the client's offer (it does not speak
//! `v5.channel.k8s.io` for port-forward), or the unnamed binary channel
//! protocol when the client offers none; an offer naming neither gets
//! `400`.
//!
//! Framing: every binary message starts with a channel byte; port `i` of
//! the request uses data channel `2i` and error channel `2i+1`. The server
//! first writes the port (u16 little-endian) on both channels of every
//! port. Then, per port, the fake kubelet connects to the address set by
//! [`super::KubeApi::forward_pod_port`] (the "pod's localhost:PORT") and
//! copies bytes both ways. When there is no such address or the connection
//! fails, the error channel carries the kubelet's message (`error
//! forwarding port P to pod …: …`) and the port is done. When every port
//! is done (its pod connection hit EOF or failed) the server sends a Close
//! frame; a Close from the client ends the session. `KubeApi::stop`,
//! `restart` and `drop_watches` cut open sessions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::http::{status, Body};
use super::store::{Broadcast, KindInfo};
use super::Shared;

/// The subprotocol answered.
pub(crate) const PROTOCOL: &str = "v4.channel.k8s.io";
/// Where the fake kubelet connects, by (namespace, pod, port).
pub(crate) type Forwards = Mutex<HashMap<(String, String, u16), SocketAddr>>;

/// Bytes read from a pod connection per data frame.
const CHUNK: usize = 32 * 1024;
/// Frames queued from the pod connections to the WebSocket.
const QUEUE: usize = 64;
/// How long closing a session waits for the client.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves one port-forward request for pod `ns/name` of kind `info`.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    mut req: Request<Incoming>,
    info: &KindInfo,
    ns: &str,
    name: &str,
    query: &[(String, String)],
) -> Response<Body> {
    let uid = {
        let st = shared.lock();
        let pod = st
            .objects
            .get(&info.res())
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())));
        match pod {
            Some(p) => p["metadata"]["uid"].as_str().unwrap_or("").to_string(),
            None => return status(404, "NotFound", &format!("pods \"{name}\" not found")),
        }
    };
    let mut ports = Vec::new();
    for (_, v) in query.iter().filter(|(k, _)| k == "ports") {
        for p in v.split(',') {
            match p.trim().parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => {
                    return status(
                        400,
                        "BadRequest",
                        &format!("unable to parse {p:?} as a port"),
                    )
                }
            }
        }
    }
    if ports.is_empty() {
        return status(400, "BadRequest", "query parameter \"ports\" is required");
    }
    let headers = req.headers();
    let header = |h: http::header::HeaderName| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let upgrade = header(http::header::UPGRADE);
    let key = header(http::header::SEC_WEBSOCKET_KEY);
    if !upgrade.eq_ignore_ascii_case("websocket") || key.is_empty() {
        return status(
            400,
            "BadRequest",
            "the test API server serves port-forward over WebSocket only (no SPDY)",
        );
    }
    let offered = header(http::header::SEC_WEBSOCKET_PROTOCOL);
    let offered: Vec<&str> = offered
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let protocol = if offered.is_empty() {
        None
    } else if offered.contains(&PROTOCOL) {
        Some(PROTOCOL)
    } else if offered.contains(&"channel.k8s.io") {
        Some("channel.k8s.io")
    } else {
        return status(
            400,
            "BadRequest",
            &format!(
                "none of the requested subprotocols {offered:?} is supported (want {PROTOCOL})"
            ),
        );
    };
    let targets: Vec<Option<SocketAddr>> = {
        let forwards = shared.forwards.lock().unwrap_or_else(|e| e.into_inner());
        ports
            .iter()
            .map(|p| {
                forwards
                    .get(&(ns.to_string(), name.to_string(), *p))
                    .copied()
            })
            .collect()
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let cut = shared.tx.subscribe();
    let pod = format!("{ns}/{name}");
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            session(ws, ports, targets, pod, uid, cut).await;
        }
    });
    let mut rsp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::CONNECTION, "Upgrade")
        .header(
            http::header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(key.as_bytes()),
        );
    if let Some(p) = protocol {
        rsp = rsp.header(http::header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    rsp.body(Full::new(Bytes::new()).map_err(|e| match e {}).boxed())
        .unwrap_or_else(|_| status(400, "BadRequest", "cannot build the upgrade response"))
}

/// What a pod connection's reader reports.
enum FromPod {
    Data(usize, Bytes),
    Done(usize),
}

fn frame(channel: usize, payload: &[u8]) -> Message {
    let mut v = Vec::with_capacity(payload.len() + 1);
    v.push(channel as u8);
    v.extend_from_slice(payload);
    Message::binary(v)
}

async fn session<S>(
    ws: WebSocketStream<S>,
    ports: Vec<u16>,
    targets: Vec<Option<SocketAddr>>,
    pod: String,
    uid: String,
    mut cut: broadcast::Receiver<Broadcast>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    for (i, port) in ports.iter().enumerate() {
        for ch in [2 * i, 2 * i + 1] {
            if sink.send(frame(ch, &port.to_le_bytes())).await.is_err() {
                return;
            }
        }
    }
    let (tx, mut rx) = mpsc::channel::<FromPod>(QUEUE);
    let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::new();
    let mut open = 0usize;
    for (i, (port, target)) in ports.iter().zip(&targets).enumerate() {
        let conn = match target {
            Some(addr) => TcpStream::connect(addr).await.map_err(|e| e.to_string()),
            None => Err("connection refused (no kube_api::forward_pod_port for this port)".into()),
        };
        match conn {
            Ok(conn) => {
                let (mut r, w) = conn.into_split();
                writers.push(Some(w));
                open += 1;
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; CHUNK];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let data = Bytes::copy_from_slice(&buf[..n]);
                                if tx.send(FromPod::Data(i, data)).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = tx.send(FromPod::Done(i)).await;
                });
            }
            Err(reason) => {
                writers.push(None);
                let msg = format!(
                    "error forwarding port {port} to pod {pod}, uid {uid}: failed to connect to localhost:{port} inside the pod's network namespace: {reason}"
                );
                if sink.send(frame(2 * i + 1, msg.as_bytes())).await.is_err() {
                    return;
                }
            }
        }
    }
    drop(tx);
    // Whether the client closed first (else the pods' side ended).
    let mut client_closed = false;
    while open > 0 {
        tokio::select! {
            from_pod = rx.recv() => match from_pod {
                Some(FromPod::Data(i, data)) => {
                    if sink.send(frame(2 * i, &data)).await.is_err() {
                        return;
                    }
                }
                Some(FromPod::Done(i)) => {
                    if let Some(mut w) = writers.get_mut(i).and_then(Option::take) {
                        let _ = w.shutdown().await;
                    }
                    open -= 1;
                }
                None => break,
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(data))) if data.len() > 1 => {
                    let ch = usize::from(data[0]);
                    // Data for a port; the client never writes error channels.
                    if ch % 2 == 0 {
                        if let Some(Some(w)) = writers.get_mut(ch / 2) {
                            if w.write_all(&data[1..]).await.is_err() {
                                writers[ch / 2] = None;
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    client_closed = true;
                    break;
                }
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            c = cut.recv() => match c {
                // Cut: the connection is dropped, no Close, no TLS close_notify.
                Ok(Broadcast::Cut) | Err(broadcast::error::RecvError::Closed) => return,
                _ => {}
            },
        }
    }
    // Our Close (or the answer to the client's, which `send` would refuse).
    let _ = sink.close().await;
    if !client_closed {
        // Let the client's Close answer arrive (or the connection end).
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(m)) = stream.next().await {
                if m.is_close() {
                    break;
                }
            }
        })
        .await;
    }
    // Then close the connection as a server does: TLS close_notify, FIN.
    if let Ok(mut ws) = sink.reunite(stream) {
        let _ = tokio::time::timeout(CLOSE_WAIT, ws.get_mut().shutdown()).await;
    }
}
