//! A Kubernetes API server for tests: the REST list/watch protocol spoken for
//! real over HTTPS, so the real kube-rs client (and `wisp` processes given a
//! kubeconfig) can be driven against it.
//!
//! # Public API
//!
//! ```ignore
//! use wisp_tests::kube_api::KubeApi;
//! let api = KubeApi::start().await;            // https://127.0.0.1:<port>, CA by rcgen, bearer token
//! api.apply(serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}}));
//! api.apply_yaml("apiVersion: v1\nkind: ConfigMap\n...");   // multi-document YAML
//! api.delete("Service", "default", "web");     // kind name (or `Kind.group`); "" namespace for cluster-scoped
//! let client: kube::Client = api.client().await; // in-process kube-rs client
//! api.kubeconfig(&path);                       // KUBECONFIG file for child processes
//! ```
//!
//! - [`KubeApi::start`]: listens on `127.0.0.1:0`; [`KubeApi::url`], [`KubeApi::addr`],
//!   [`KubeApi::token`], [`KubeApi::ca_pem`].
//! - State: a generic object store of JSON values keyed by resource, namespace and name,
//!   one global resourceVersion counter ([`KubeApi::resource_version`]), objects get
//!   `metadata.uid`, `creationTimestamp`, `generation` (bumped when anything but metadata
//!   and status changes) and `resourceVersion`. Namespaces `default`, `kube-system`,
//!   `kube-public` and `kube-node-lease` exist from the start.
//! - Kinds: [`KubeApi::register`]`(group, version, kind, plural, namespaced)`, pre-filled
//!   with the core, apps, batch, discovery, rbac, apiextensions, admissionregistration,
//!   `linkerd.io` (ServiceProfile v1alpha2 + v1alpha1) and `split.smi-spec.io`
//!   (TrafficSplit v1alpha1..v1alpha4) kinds wisp uses. Applying a
//!   CustomResourceDefinition registers its kind too.
//! - HTTP: GET list (namespaced and all-namespaces; `limit`/`continue`;
//!   `labelSelector`; `fieldSelector` on `metadata.name`/`metadata.namespace`), GET one,
//!   watch (`watch=true`, `resourceVersion`, `allowWatchBookmarks`, `timeoutSeconds`,
//!   `sendInitialEvents`): a chunked stream of `{"type":…,"object":…}` lines, ERROR with a
//!   410 Expired Status when the resourceVersion is older than the kept history; POST
//!   create, PUT replace, PATCH (merge and JSON patch), DELETE; TokenReview and
//!   SelfSubjectAccessReview (answered by [`KubeApi::set_token_reviewer`] /
//!   [`KubeApi::set_access_reviewer`]); `/version`, `/api`, `/apis`, per-group discovery.
//!   Requests without `Authorization: Bearer <token>` get 401.
//! - Test controls: [`KubeApi::apply`], [`KubeApi::apply_yaml`], [`KubeApi::delete`],
//!   [`KubeApi::get`], [`KubeApi::list`], [`KubeApi::fail_next`] (next n requests answer
//!   a Status with that code), [`KubeApi::drop_watches`] (cut open watch streams),
//!   [`KubeApi::compact`] (forget history → 410), [`KubeApi::bookmark`],
//!   [`KubeApi::stop`] / [`KubeApi::listen`] / [`KubeApi::restart`] (same port, state
//!   kept), [`KubeApi::open_watches`], [`KubeApi::requests`] (the request log),
//!   [`KubeApi::wait_for_watches`].
//! - Port-forward: `GET /api/v1/namespaces/{ns}/pods/{name}/portforward?ports=P` upgraded
//!   to a WebSocket with subprotocol `v4.channel.k8s.io`, framed as the kubelet frames it
//!   (data channel `2i`, error channel `2i+1`, each opened by the port as u16
//!   little-endian), so kube-rs `Api::<Pod>::portforward` works against it.
//!   [`KubeApi::forward_pod_port`]`(namespace, pod, port, target)` says where the fake
//!   kubelet connects for that pod port; an unset or refused port gets the kubelet's
//!   `error forwarding port …` message on the error channel, an unknown pod a 404.
//!   `stop`/`restart`/`drop_watches` cut open sessions. Details in `portforward.rs`.
//!
//! What it does not do (admission, RBAC enforcement, server-side apply, protobuf,
//! HTTP/2, …) is listed in `docs/kubernetes.md` §8.

mod http;
mod portforward;
mod store;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use store::KindInfo;
use store::{Broadcast, State};

/// Requests kept in the request log.
const LOG_MAX: usize = 20_000;
/// Capacity of the channel feeding open watches; a watch that falls further
/// behind is cut (as the real API server closes slow watchers) and resumes.
const WATCH_CHANNEL: usize = 16_384;

/// One request the server received.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string ("" when none).
    pub query: String,
    /// The status answered.
    pub status: u16,
}

impl LoggedRequest {
    /// Whether this was a watch request.
    pub fn is_watch(&self) -> bool {
        self.query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1")
    }
}

/// Answers a TokenReview: given its `spec`, returns its `status`.
pub type TokenReviewer = dyn Fn(&Value) -> Value + Send + Sync;
/// Answers a SelfSubjectAccessReview: given its `spec`, whether it is allowed.
pub type AccessReviewer = dyn Fn(&Value) -> bool + Send + Sync;

/// State shared by the server tasks and the [`KubeApi`] handle.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) tx: broadcast::Sender<Broadcast>,
    pub(crate) token: String,
    /// (remaining, status code) of [`KubeApi::fail_next`].
    pub(crate) fail: Mutex<(usize, u16)>,
    pub(crate) log: Mutex<std::collections::VecDeque<LoggedRequest>>,
    pub(crate) open_watches: AtomicUsize,
    pub(crate) token_reviewer: Mutex<Arc<TokenReviewer>>,
    pub(crate) access_reviewer: Mutex<Arc<AccessReviewer>>,
    pub(crate) addr: SocketAddr,
    /// [`KubeApi::forward_pod_port`] targets.
    pub(crate) forwards: portforward::Forwards,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running test API server; stops when dropped.
pub struct KubeApi {
    shared: Arc<Shared>,
    tls: tokio_rustls::TlsAcceptor,
    ca_pem: String,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl KubeApi {
    /// Starts a server on `127.0.0.1:0` with a fresh CA and token and the default kinds.
    pub async fn start() -> KubeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ca_pem, tls) = tls_setup();
        let (tx, _) = broadcast::channel(WATCH_CHANNEL);
        let token = format!("wisp-test-{:016x}", {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            t ^ u64::from(std::process::id()).rotate_left(32)
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            tx,
            token,
            fail: Mutex::new((0, 500)),
            log: Mutex::new(Default::default()),
            open_watches: AtomicUsize::new(0),
            token_reviewer: Mutex::new(Arc::new(
                |_: &Value| json!({"authenticated": false, "error": "no token reviewer configured"}),
            )),
            access_reviewer: Mutex::new(Arc::new(|_: &Value| true)),
            addr,
            forwards: Mutex::new(Default::default()),
        });
        let api = KubeApi {
            shared,
            tls,
            ca_pem,
            server: Mutex::new(None),
        };
        api.register_defaults();
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            api.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        api.serve(listener);
        api
    }

    fn register_defaults(&self) {
        let core = [
            ("Namespace", "namespaces", false),
            ("Pod", "pods", true),
            ("Service", "services", true),
            ("Endpoints", "endpoints", true),
            ("Secret", "secrets", true),
            ("ConfigMap", "configmaps", true),
            ("ServiceAccount", "serviceaccounts", true),
            ("Node", "nodes", false),
            ("Event", "events", true),
        ];
        for (kind, plural, ns) in core {
            self.register("", "v1", kind, plural, ns);
        }
        self.register(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
        );
        for (kind, plural) in [
            ("Deployment", "deployments"),
            ("ReplicaSet", "replicasets"),
            ("DaemonSet", "daemonsets"),
            ("StatefulSet", "statefulsets"),
        ] {
            self.register("apps", "v1", kind, plural, true);
        }
        self.register("batch", "v1", "Job", "jobs", true);
        self.register("batch", "v1", "CronJob", "cronjobs", true);
        self.register(
            "linkerd.io",
            "v1alpha2",
            "ServiceProfile",
            "serviceprofiles",
            true,
        );
        self.register(
            "linkerd.io",
            "v1alpha1",
            "ServiceProfile",
            "serviceprofiles",
            true,
        );
        for v in ["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"] {
            self.register(
                "split.smi-spec.io",
                v,
                "TrafficSplit",
                "trafficsplits",
                true,
            );
        }
        self.register(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        );
        self.register(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
        );
        let rbac = "rbac.authorization.k8s.io";
        self.register(rbac, "v1", "ClusterRole", "clusterroles", false);
        self.register(
            rbac,
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
        );
        self.register(rbac, "v1", "Role", "roles", true);
        self.register(rbac, "v1", "RoleBinding", "rolebindings", true);
        let mut st = self.shared.lock();
        st.register(
            "authentication.k8s.io",
            "v1",
            "TokenReview",
            "tokenreviews",
            false,
            true,
        );
        st.register(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            false,
            true,
        );
    }

    /// Serves `version` of a kind (adds the version to an existing group+plural).
    pub fn register(&self, group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) {
        self.shared
            .lock()
            .register(group, version, kind, plural, namespaced, false);
    }

    /// Stops serving a kind (every version) and forgets its objects.
    pub fn unregister(&self, group: &str, plural: &str) {
        self.shared.lock().unregister(group, plural);
    }

    /// The kind table.
    pub fn kinds(&self) -> Vec<KindInfo> {
        self.shared.lock().kinds.clone()
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let tls = self.tls.clone();
        let task = tokio::spawn(http::accept_loop(listener, tls, shared));
        *self.server.lock().unwrap() = Some(task);
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.shared.addr)
    }

    /// The bearer token clients must present.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The CA certificate (PEM) that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Creates or replaces `obj` (by `apiVersion`, `kind`, namespace, name) as a
    /// client PUT would, emitting ADDED or MODIFIED; returns the stored object.
    /// Panics if the kind is not registered or the object is invalid.
    pub fn apply(&self, obj: Value) -> Value {
        let api_version = obj["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        let mut st = self.shared.lock();
        let (info, version) = st
            .kind_by_type(&api_version, &kind)
            .unwrap_or_else(|| panic!("kube_api: kind {api_version} {kind} is not registered"));
        let mut obj = obj;
        // A test apply replaces whatever is there, whatever its resourceVersion.
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        let (stored, _) = st
            .put(&info, &version, "", obj, false, false, &self.shared.tx)
            .unwrap_or_else(|r| panic!("kube_api: apply refused: {}", r.message));
        http::after_write(&mut st, &info, &stored, false);
        stored
    }

    /// Applies every document of a (multi-document) YAML text; returns the stored objects.
    pub fn apply_yaml(&self, yaml: &str) -> Vec<Value> {
        use serde::Deserialize as _;
        let mut out = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
            let v = Value::deserialize(doc).expect("kube_api: invalid YAML");
            if v.is_null() {
                continue;
            }
            out.push(self.apply(v));
        }
        out
    }

    /// Deletes an object of `kind` (a Kind such as `Pod`, a plural, or `Kind.group`);
    /// `namespace` is ignored for cluster-scoped kinds. Returns whether it existed.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> bool {
        let mut st = self.shared.lock();
        let info = st
            .kind_by_name(kind)
            .unwrap_or_else(|| panic!("kube_api: unknown kind {kind}"));
        match st.delete(&info, namespace, name, &self.shared.tx) {
            Ok(obj) => {
                http::after_write(&mut st, &info, &obj, true);
                true
            }
            Err(_) => false,
        }
    }

    /// The stored object, if any.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let st = self.shared.lock();
        let info = st.kind_by_name(kind)?;
        let ns = if info.namespaced { namespace } else { "" };
        st.objects
            .get(&info.res())
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    /// Every stored object of `kind`, in all namespaces.
    pub fn list(&self, kind: &str) -> Vec<Value> {
        let st = self.shared.lock();
        match st.kind_by_name(kind) {
            Some(info) => st.list(&info.res(), None),
            None => Vec::new(),
        }
    }

    /// Answers the next `n` requests (any path, authenticated or not) with a
    /// Status of code `status` (e.g. 500 InternalError, 503, 429).
    pub fn fail_next(&self, n: usize, status: u16) {
        *self.shared.fail.lock().unwrap() = (n, status);
    }

    /// Cuts every open watch stream mid-stream (the connection is aborted,
    /// no terminating chunk), as a network failure or API server crash would.
    pub fn drop_watches(&self) {
        let _ = self.shared.tx.send(Broadcast::Cut);
    }

    /// Forgets the change history: watches resuming from an older
    /// resourceVersion (and `continue` tokens) get 410 Gone.
    pub fn compact(&self) {
        self.shared.lock().compact();
    }

    /// Sends a BOOKMARK at the current resourceVersion to open watches that asked for them.
    pub fn bookmark(&self) {
        let st = self.shared.lock();
        let _ = self.shared.tx.send(Broadcast::Bookmark(st.rv));
    }

    /// Number of watch streams currently open.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// Polls until at least `n` watches are open; panics after `timeout`.
    pub async fn wait_for_watches(&self, n: usize, timeout: Duration) {
        let ok = crate::eventually(timeout, || async { self.open_watches() >= n }).await;
        assert!(
            ok,
            "expected {n} open watches, have {} after {timeout:?}",
            self.open_watches()
        );
    }

    /// The request log (oldest first, the last 20,000).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log.lock().unwrap().iter().cloned().collect()
    }

    /// How TokenReviews are answered: `f(spec)` returns the review's `status`.
    /// By default every token is unauthenticated.
    pub fn set_token_reviewer(&self, f: impl Fn(&Value) -> Value + Send + Sync + 'static) {
        *self.shared.token_reviewer.lock().unwrap() = Arc::new(f);
    }

    /// How SelfSubjectAccessReviews are answered: `f(spec)` says whether it is
    /// allowed. By default everything is.
    pub fn set_access_reviewer(&self, f: impl Fn(&Value) -> bool + Send + Sync + 'static) {
        *self.shared.access_reviewer.lock().unwrap() = Arc::new(f);
    }

    /// Where port-forwards to `port` of pod `namespace/pod` connect (the
    /// pod's `localhost:port` as the kubelet would dial it); the pod itself
    /// must exist when the forward is opened. Replaces an earlier target.
    pub fn forward_pod_port(&self, namespace: &str, pod: &str, port: u16, target: SocketAddr) {
        self.shared
            .forwards
            .lock()
            .unwrap()
            .insert((namespace.to_string(), pod.to_string(), port), target);
    }

    /// Stops listening and closes every connection (open watches end
    /// abruptly); the state is kept. Connections are refused until [`KubeApi::listen`].
    pub async fn stop(&self) {
        let task = self.server.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        let _ = self.shared.tx.send(Broadcast::Cut);
    }

    /// Listens again on the same address (after [`KubeApi::stop`]).
    pub async fn listen(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.shared.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 200 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("kube_api: cannot listen again on {}: {e}", self.shared.addr),
            }
        };
        self.serve(listener);
    }

    /// [`KubeApi::stop`] then [`KubeApi::listen`]: an API server restart that keeps its state.
    pub async fn restart(&self) {
        self.stop().await;
        self.listen().await;
    }

    /// The kubeconfig text: cluster `wisp-test` at [`KubeApi::url`] with
    /// `certificate-authority-data`, user `wisp-test` with the bearer token.
    pub fn kubeconfig_yaml(&self) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: wisp-test\nclusters:\n- name: wisp-test\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: wisp-test\n  user:\n    token: {token}\ncontexts:\n- name: wisp-test\n  context:\n    cluster: wisp-test\n    user: wisp-test\n    namespace: default\n",
            url = self.url(),
            token = self.shared.token,
        )
    }

    /// Writes [`KubeApi::kubeconfig_yaml`] to `path` (for `KUBECONFIG=path`).
    pub fn kubeconfig(&self, path: &Path) {
        std::fs::write(path, self.kubeconfig_yaml()).unwrap();
    }

    /// A kube-rs config for this server (through the kubeconfig, as a child process would load it).
    pub async fn config(&self) -> kube::Config {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml()).unwrap();
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap()
    }

    /// An in-process kube-rs client for this server.
    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config().await).unwrap()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        if let Some(task) = self.server.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        let _ = self.shared.tx.send(Broadcast::Cut);
    }
}

/// A CA and a serving certificate for 127.0.0.1 / localhost signed by it.
fn tls_setup() -> (String, tokio_rustls::TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wisp-test-kube-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "kubernetes".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let cert = params.signed_by(&key, &issuer).unwrap();
    let chain = vec![cert.der().clone(), ca_cert.der().clone()];
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca_cert.der().as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    (pem, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
