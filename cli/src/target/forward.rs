//! Reaching a pod's proxy through the API server's `pods/portforward`
//! subresource, as `kubectl port-forward` does.
//!
//! For each (pod, port) a listener is bound on `127.0.0.1:0`; every
//! connection accepted there opens its own port-forward stream to the pod
//! (kube-rs [`Api::portforward`], a WebSocket to the API server, which the
//! kubelet connects to `localhost:PORT` inside the pod's network namespace)
//! and the bytes are copied both ways. The consumers (tap gRPC client,
//! `/metrics` scrapes, `/config.json`) just dial the local address. A
//! refusal by the API server (pod gone, 403, …) or an error message from
//! the kubelet reaches the consumer as a closed connection, with a `warn`
//! log saying why.
//!
//! Everything runs on one process-wide runtime ([`run`]) with its own
//! thread: the listeners outlive the call that resolved the targets and
//! serve the command's own runtimes until the process exits. Listeners are
//! shared per (source, pod, port) within the process, so one pod resolved
//! twice has one address; at most [`MAX_CONNECTIONS`] connections per
//! listener are forwarded at once (later ones wait in the accept backlog)
//! and at most [`MAX_LISTENERS`] listeners exist.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

/// Connections forwarded at once through one listener.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Listeners (pod ports) one process forwards.
pub(crate) const MAX_LISTENERS: usize = 4096;
/// How long opening one port-forward stream may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a finished stream may take to close its WebSocket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Errors setting up forwarding (never from the forwarded traffic itself).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The runtime could not be started: the machine's fault (threads,
    /// file descriptors).
    #[error("cannot start the port-forwarding runtime: {0}")]
    Runtime(String),
    /// No local listener could be bound: the machine's fault.
    #[error(
        "cannot listen on 127.0.0.1 to forward port {port} of pod {namespace}/{pod}: {source}"
    )]
    Listen {
        /// The pod's namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// The pod's port.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command selected more pod ports than [`MAX_LISTENERS`]: narrow
    /// the target.
    #[error("too many pod ports to forward (at most {MAX_LISTENERS}); use a narrower target")]
    TooMany,
    /// The task resolving targets ended without an answer (it panicked: a bug).
    #[error("the Kubernetes task ended without an answer (a bug in wisp)")]
    Stopped,
}

/// Identifies a listener: source, namespace, pod, port.
type Key = (String, String, String, u16);

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
static LISTENERS: Mutex<BTreeMap<Key, SocketAddr>> = Mutex::new(BTreeMap::new());

fn runtime() -> Result<&'static Runtime, ForwardError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("wisp-forward")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| ForwardError::Runtime(e.clone()))
}

/// Runs `fut` on the forwarding runtime and waits for its output. May be
/// called from any thread, including from inside another runtime.
pub(crate) fn run<F>(fut: F) -> Result<F::Output, ForwardError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = runtime()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| ForwardError::Stopped)
}

/// The local address forwarding to `port` of pod `namespace/pod` through
/// `client`; `source` names the cluster (listeners are shared per source,
/// pod and port). Must run on the forwarding runtime ([`run`]).
pub(crate) async fn local_addr(
    client: kube::Client,
    source: &str,
    namespace: &str,
    pod: &str,
    port: u16,
) -> Result<SocketAddr, ForwardError> {
    let key: Key = (
        source.to_string(),
        namespace.to_string(),
        pod.to_string(),
        port,
    );
    if let Some(addr) = listeners().get(&key) {
        return Ok(*addr);
    }
    if listeners().len() >= MAX_LISTENERS {
        return Err(ForwardError::TooMany);
    }
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .await
        .and_then(|l| Ok((l.local_addr()?, l)));
    let (addr, listener) = listener.map_err(|source| ForwardError::Listen {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        port,
        source,
    })?;
    // Two resolutions may race; the first listener registered wins.
    let mut map = listeners();
    if let Some(existing) = map.get(&key) {
        return Ok(*existing);
    }
    map.insert(key, addr);
    drop(map);
    let api: Api<Pod> = Api::namespaced(client, namespace);
    tokio::spawn(serve(listener, api, Arc::from(pod), port));
    tracing::debug!(%addr, namespace, pod, port, "forwarding through the API server");
    Ok(addr)
}

fn listeners() -> std::sync::MutexGuard<'static, BTreeMap<Key, SocketAddr>> {
    LISTENERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accepts connections on `listener` and forwards each to `port` of `pod`.
async fn serve(listener: TcpListener, api: Api<Pod>, pod: Arc<str>, port: u16) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                let (api, pod) = (api.clone(), pod.clone());
                tokio::spawn(async move {
                    forward_one(tcp, api, &pod, port).await;
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!(%error, pod = &*pod, port, "cannot accept a local connection to forward");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Forwards one local connection through its own port-forward stream.
async fn forward_one(mut tcp: TcpStream, api: Api<Pod>, pod: &str, port: u16) {
    let namespace = api.namespace().unwrap_or_default().to_string();
    let mut forwarder = match tokio::time::timeout(OPEN_TIMEOUT, api.portforward(pod, &[port]))
        .await
    {
        Ok(Ok(f)) => f,
        Ok(Err(error)) => {
            tracing::warn!(%error, %namespace, pod, port, "the Kubernetes API refused the port-forward");
            return;
        }
        Err(_) => {
            tracing::warn!(%namespace, pod, port, timeout = ?OPEN_TIMEOUT, "the port-forward did not open in time");
            return;
        }
    };
    let (Some(mut stream), Some(error)) = (forwarder.take_stream(port), forwarder.take_error(port))
    else {
        forwarder.abort();
        return;
    };
    {
        let copy = tokio::io::copy_bidirectional(&mut tcp, &mut stream);
        tokio::pin!(copy);
        tokio::pin!(error);
        // The error channel first: the kubelet's message arrives before the
        // stream's end, so it is logged before the consumer sees the close.
        tokio::select! {
            biased;
            message = &mut error => match message {
                Some(error) => tracing::warn!(%namespace, pod, port, %error, "the kubelet could not forward the port"),
                // The stream ended without an error message: let the copy finish.
                None => {
                    let _ = copy.await;
                }
            },
            done = &mut copy => {
                if let Err(error) = done {
                    tracing::debug!(%error, %namespace, pod, port, "forwarded connection ended");
                }
            }
        }
    }
    drop(stream);
    drop(tcp);
    match tokio::time::timeout(CLOSE_TIMEOUT, forwarder.join()).await {
        Ok(Ok(())) | Err(_) => {}
        Ok(Err(error)) => {
            tracing::debug!(%error, %namespace, pod, port, "port-forward stream ended with an error")
        }
    }
}
