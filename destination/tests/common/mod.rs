//! Shared helpers: a server on a temp manifest directory and a real client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use linkerd2_proxy_api::destination::{
    destination_client::DestinationClient, update, DestinationProfile, GetDestination, Update,
};
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::Streaming;
use wisp_destination::index::Index;
use wisp_destination::{Config, Server, SourceSpec};

/// The demo's universal-mode manifests for `web`.
pub const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [127.0.0.11]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: web-a, namespace: default}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-a
  namespace: default
  labels: {app: web, linkerd.io/control-plane-ns: linkerd}
spec:
  serviceAccountName: web
  containers:
  - name: app
    image: demo
  - name: linkerd-proxy
    image: wisp-proxy
    env: [{name: LINKERD2_PROXY_INBOUND_LISTEN_ADDR, value: "127.0.0.11:4143"}]
status: {podIP: 127.0.0.11}
"#;

/// A destination server running on a task of its own until stopped (or
/// dropped).
pub struct Serving {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Serving {
    /// Runs `server` (bound) until [`Serving::stop`] or drop.
    pub fn spawn(server: Server) -> Serving {
        let addr = server.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Serving {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// A Destination client connected to the server.
    pub async fn client(&self) -> DestinationClient<Channel> {
        DestinationClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("server stops in time")
            .expect("server task");
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// A running server on a temp directory.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub index: Arc<Index>,
    pub serving: Serving,
}

impl TestServer {
    /// Writes `files` into a temp dir and starts a server on 127.0.0.1:0.
    pub async fn start(files: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            write(dir.path(), name, text);
        }
        let config = Config::new(
            SourceSpec::Dir(dir.path().to_path_buf()),
            "127.0.0.1:0".parse().expect("addr"),
        );
        let server = Server::bind(config).await.expect("bind");
        let index = server.index();
        let serving = Serving::spawn(server);
        TestServer {
            dir,
            index,
            serving,
        }
    }

    /// A client connected to the server.
    pub async fn client(&self) -> DestinationClient<Channel> {
        self.serving.client().await
    }

    /// Path of a file in the manifest directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(self) {
        self.serving.stop().await;
    }
}

/// Writes a manifest file (non-atomically, like an editor or `echo >`).
pub fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write manifest");
}

/// Opens a `Get` stream.
pub async fn get(
    client: &mut DestinationClient<Channel>,
    path: &str,
    token: &str,
) -> Result<Streaming<Update>, tonic::Status> {
    client
        .get(GetDestination {
            scheme: String::new(),
            path: path.to_string(),
            context_token: token.to_string(),
        })
        .await
        .map(|r| r.into_inner())
}

/// Opens a `GetProfile` stream.
pub async fn get_profile(
    client: &mut DestinationClient<Channel>,
    path: &str,
) -> Result<Streaming<DestinationProfile>, tonic::Status> {
    client
        .get_profile(GetDestination {
            scheme: String::new(),
            path: path.to_string(),
            context_token: r#"{"ns":"default"}"#.to_string(),
        })
        .await
        .map(|r| r.into_inner())
}

/// The next message of a stream, failing the test after 2 s.
pub async fn next<T>(stream: &mut Streaming<T>) -> T {
    tokio::time::timeout(Duration::from_secs(2), stream.message())
        .await
        .expect("message within 2s")
        .expect("stream ok")
        .expect("stream not ended")
}

/// Asserts no message arrives for `wait`.
pub async fn assert_quiet<T: std::fmt::Debug>(stream: &mut Streaming<T>, wait: Duration) {
    if let Ok(msg) = tokio::time::timeout(wait, stream.message()).await {
        panic!("unexpected message: {msg:?}");
    }
}

/// The inner update of an `Update`.
pub fn inner(update: Update) -> update::Update {
    update.update.expect("update set")
}

/// Opens a `GetProfile` stream with context token `token`.
pub async fn get_profile_with(
    client: &mut DestinationClient<Channel>,
    path: &str,
    token: &str,
) -> Result<Streaming<DestinationProfile>, tonic::Status> {
    client
        .get_profile(GetDestination {
            scheme: String::new(),
            path: path.to_string(),
            context_token: token.to_string(),
        })
        .await
        .map(|r| r.into_inner())
}
