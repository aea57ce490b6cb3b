//! Shared harness of wisp's end-to-end tests.
//!
//! Every test runs real `wisp-proxy` and `wisp destination` processes on its
//! own loopback block `127.0.<k>.0/24` (Linux routes all of 127/8 to `lo`), so
//! tests run in parallel without port clashes. Backends (HTTP/1+h2c, TCP echo,
//! WebSocket echo, gRPC health) run in-process on real sockets.
//!
//! Addresses in a block: `.10` client proxy, `.11`–`.19` pods (app + server
//! proxy), `.2` control plane.

#![allow(clippy::unwrap_used)]

pub mod identity;
pub mod kube_api;
pub mod netns;
pub mod running;

use std::convert::Infallible;
use std::fs;
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
pub use wisp_common::prometheus;

pub use identity::{identity_name, IdentityPlane, IDENTITY_SUFFIX, IDENTITY_SVC_NAME};
pub use running::Running;

/// The logical name every test service uses.
pub const WEB_FQDN: &str = "web.default.svc.cluster.local";
/// `WEB_FQDN` with the service port, as the outbound proxy's `authority` label.
pub const WEB_AUTHORITY: &str = "web.default.svc.cluster.local:80";

// ---------------------------------------------------------------------------
// Binaries and address blocks
// ---------------------------------------------------------------------------

/// Directory holding the `wisp-proxy` and `wisp` binaries: `$WISP_BIN_DIR`,
/// else `$CARGO_TARGET_DIR/debug`, else `<workspace>/target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WISP_BIN_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d).join("debug");
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("debug")
}

/// Path of binary `name`, panicking with build instructions if it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} not found: run `cargo build -p wisp-proxy -p wisp-cli` first (or set WISP_BIN_DIR)",
        p.display()
    );
    p
}

static NEXT_BLOCK: AtomicU8 = AtomicU8::new(0);

/// A loopback block `127.0.<k>.0/24` owned by one test.
#[derive(Clone, Copy, Debug)]
pub struct Net {
    /// The third octet.
    pub k: u8,
}

impl Net {
    /// Allocates a block unique within this test process. The base depends
    /// on the process id so consecutive test binaries rarely reuse a block
    /// whose sockets may still be in TIME_WAIT.
    pub fn new() -> Net {
        let n = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
        let base = (std::process::id() % 20) as u8 * 10;
        Net {
            k: 20u8.wrapping_add(base).wrapping_add(n) % 230 + 20,
        }
    }

    /// `127.0.k.host`.
    pub fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, self.k, host)
    }

    /// `127.0.k.host:port`.
    pub fn addr(&self, host: u8, port: u16) -> SocketAddr {
        SocketAddr::from((self.ip(host), port))
    }

    /// The client proxy's outbound listener.
    pub fn client_outbound(&self) -> SocketAddr {
        self.addr(10, 4140)
    }
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `check` every 10 ms until it returns `Ok` or `timeout` passes.
/// `Ok(v)` on success; otherwise `Err` with the last failure message, so
/// the caller's panic says what was still wrong at the deadline.
///
/// Use it instead of a fixed sleep: wait for the observable condition
/// (a metric, a routed request, a file written) the next step depends on.
pub async fn wait_until<T, F, Fut>(timeout: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!("still not the case after {timeout:?}: {last}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `addr` accepts TCP connections; panics after `timeout`.
pub async fn wait_for_port(addr: SocketAddr, timeout: Duration) {
    let ok = eventually(
        timeout,
        || async move { TcpStream::connect(addr).await.is_ok() },
    )
    .await;
    assert!(ok, "{addr} did not start accepting within {timeout:?}");
}

// ---------------------------------------------------------------------------
// Prerequisites
// ---------------------------------------------------------------------------

/// Something a test needs from the machine.
#[derive(Clone, Copy, Debug)]
pub enum Need {
    /// Running as root (uid 0): network namespaces, iptables.
    Root,
    /// An executable of this name on `PATH`.
    Tool(&'static str),
}

/// Whether this is a CI run: `CI` set to `true` or `1` (as CI services do).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// What of `needs` this machine lacks first, in words; `None` if nothing.
pub fn missing(needs: &[Need]) -> Option<String> {
    needs.iter().find_map(|need| match *need {
        Need::Root => {
            let uid = Command::new("id").arg("-u").output().ok();
            let root = uid.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
            (!root).then(|| "not running as root".to_string())
        }
        Need::Tool(tool) => {
            let on_path = std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| {
                    use std::os::unix::fs::PermissionsExt;
                    fs::metadata(dir.join(tool))
                        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                })
            });
            (!on_path).then(|| format!("`{tool}` is not installed (not on PATH)"))
        }
    })
}

/// Whether `test` (a test, or a part of one) can run given `needs`.
///
/// `true` when nothing is missing. Otherwise, under CI ([`in_ci`]) it
/// panics naming what is missing, so a CI machine without the tool fails
/// instead of passing silently; outside CI it prints `skipping <test>: ...`
/// to stderr and returns `false` (the caller returns).
pub fn require(test: &str, needs: &[Need]) -> bool {
    let Some(why) = missing(needs) else {
        return true;
    };
    assert!(
        !in_ci(),
        "{test}: {why}. CI=true, so this is a failure, not a skip: \
         the CI machine must provide it (`.ci/run` installs the packages when run as root)"
    );
    eprintln!("skipping {test}: {why} (under CI=true this fails)");
    false
}

/// [`require`] for one executable on `PATH`.
pub fn require_tool(test: &str, tool: &'static str) -> bool {
    require(test, &[Need::Tool(tool)])
}

/// [`require`] for root.
pub fn require_root(test: &str) -> bool {
    require(test, &[Need::Root])
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// A child process whose stderr goes to a file; killed (SIGKILL) on drop.
pub struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    _logdir: tempfile::TempDir,
    status: Option<ExitStatus>,
}

impl Process {
    /// Spawns `cmd` with stdout and stderr captured to a temp file.
    pub fn spawn(name: &str, mut cmd: Command) -> Process {
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("log");
        let f = fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            name: name.to_string(),
            child: Some(child),
            log,
            _logdir: logdir,
            status: None,
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the process printed so far.
    pub fn output(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        if let Some(pid) = self.pid() {
            let ok = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "kill -TERM {pid} failed");
        }
    }

    /// Sends SIGTERM and asserts that the process exits successfully within
    /// `timeout`.
    pub async fn stop_cleanly(&mut self, timeout: Duration) {
        self.terminate();
        let status = self
            .wait_exit(timeout)
            .await
            .unwrap_or_else(|| panic!("no exit within {timeout:?}\n{}", self.output()));
        assert!(status.success(), "{status}\n{}", self.output());
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            self.status = c.wait().ok();
        }
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(s)) = c.try_wait() {
                    self.status = Some(s);
                }
            }
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit; `None` if it did not.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("----- {} output -----\n{}", self.name, self.output());
        }
    }
}

// ---------------------------------------------------------------------------
// Manifests and the control plane
// ---------------------------------------------------------------------------

/// One endpoint of an EndpointSlice; `pod` names its Pod (targetRef), if any.
#[derive(Clone, Debug)]
pub struct SliceEndpoint {
    /// The endpoint IP.
    pub ip: Ipv4Addr,
    /// The Pod behind it.
    pub pod: Option<String>,
}

/// YAML of a Service `name.ns` with one port `port -> target_port`.
pub fn service_yaml(
    name: &str,
    ns: &str,
    cluster_ip: Option<Ipv4Addr>,
    port: u16,
    target_port: u16,
) -> String {
    let ip = cluster_ip
        .map(|ip| format!("  clusterIP: {ip}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{ip}  ports: [{{name: http, port: {port}, targetPort: {target_port}}}]\n"
    )
}

/// YAML of Service `web.default` (port 80 -> 8080) and its EndpointSlice
/// `web-1` with the one endpoint `ip`.
pub fn web_service_yaml(ip: Ipv4Addr) -> String {
    format!(
        "{}---\n{}",
        service_yaml("web", "default", None, 80, 8080),
        endpoint_slice_yaml(
            "web-1",
            "default",
            "web",
            8080,
            &[SliceEndpoint { ip, pod: None }]
        )
    )
}

/// A TCP port free on every loopback address right now (bound and
/// released), for a listener that must be given a fixed port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// YAML of an EndpointSlice of Service `service.ns` on `port`.
pub fn endpoint_slice_yaml(
    name: &str,
    ns: &str,
    service: &str,
    port: u16,
    endpoints: &[SliceEndpoint],
) -> String {
    let mut s = format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: {ns}, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nports: [{{name: http, port: {port}, protocol: TCP}}]\n"
    );
    if endpoints.is_empty() {
        s.push_str("endpoints: []\n");
    } else {
        s.push_str("endpoints:\n");
        for e in endpoints {
            s.push_str(&format!(
                "- addresses: [{}]\n  conditions: {{ready: true}}\n",
                e.ip
            ));
            if let Some(p) = &e.pod {
                s.push_str(&format!(
                    "  targetRef: {{kind: Pod, name: {p}, namespace: {ns}}}\n"
                ));
            }
        }
    }
    s
}

/// YAML of a meshed Pod whose `linkerd-proxy` container listens inbound on `<ip>:4143`.
pub fn pod_yaml(name: &str, ns: &str, ip: Ipv4Addr) -> String {
    pod_yaml_with_sa(name, ns, ip, None)
}

/// [`pod_yaml`] with `spec.serviceAccountName` (the identity discovery
/// gives the pod: `<sa>.<ns>.serviceaccount.identity.linkerd.cluster.local`).
pub fn pod_yaml_with_sa(name: &str, ns: &str, ip: Ipv4Addr, sa: Option<&str>) -> String {
    let sa = sa
        .map(|sa| format!("  serviceAccountName: {sa}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app: web, linkerd.io/control-plane-ns: linkerd}}\nspec:\n{sa}  containers:\n  - name: app\n    image: app\n  - name: linkerd-proxy\n    image: wisp-proxy\n    env: [{{name: LINKERD2_PROXY_INBOUND_LISTEN_ADDR, value: \"{ip}:4143\"}}]\nstatus: {{podIP: {ip}}}\n"
    )
}

/// A `wisp destination` process serving a manifest directory.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    /// Its gRPC address.
    pub addr: SocketAddr,
    process: Option<Process>,
}

impl ControlPlane {
    /// Starts a destination service on `addr` over an empty manifest directory.
    pub async fn start(addr: SocketAddr) -> ControlPlane {
        let mut cp = ControlPlane::create(addr);
        cp.restart().await;
        cp
    }

    /// A control plane on `addr` with an empty manifest directory, not yet
    /// running: write manifests, then call [`ControlPlane::restart`], so the
    /// first answers already reflect them.
    pub fn create(addr: SocketAddr) -> ControlPlane {
        ControlPlane {
            dir: tempfile::tempdir().unwrap(),
            addr,
            process: None,
        }
    }

    /// The manifest directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Atomically writes manifest file `name` (temp file + rename).
    pub fn write(&self, name: &str, yaml: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        fs::write(&tmp, yaml).unwrap();
        fs::rename(&tmp, self.dir.path().join(name)).unwrap();
    }

    /// Removes manifest file `name`.
    pub fn remove(&self, name: &str) {
        fs::remove_file(self.dir.path().join(name)).unwrap();
    }

    /// Kills the destination process (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// (Re)starts the destination process on the same address and waits for its port.
    pub async fn restart(&mut self) {
        self.stop();
        let mut cmd = Command::new(bin("wisp"));
        cmd.arg("destination")
            .arg("--source")
            .arg(format!("dir:{}", self.dir.path().display()))
            .arg("--addr")
            .arg(self.addr.to_string());
        self.process = Some(Process::spawn("wisp destination", cmd));
        wait_for_port(self.addr, Duration::from_secs(10)).await;
    }
}

// ---------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------

/// A running `wisp-proxy`.
pub struct Proxy {
    /// Outbound listener.
    pub outbound: SocketAddr,
    /// Inbound listener.
    pub inbound: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// The process.
    pub process: Process,
}

impl Proxy {
    /// Starts a proxy listening on `ip:4140/4143/4191`, discovering from
    /// `destination`, with identity disabled and extra environment `env`;
    /// waits for `/ready`.
    pub async fn start(ip: Ipv4Addr, destination: &str, env: &[(&str, &str)]) -> Proxy {
        let mut p = Proxy::spawn(ip, destination, None, env);
        p.wait_ready(Duration::from_secs(10)).await;
        p
    }

    /// Like [`Proxy::start`], with identity enabled by `identity` (see
    /// [`IdentityPlane::proxy_env`]); waits for `/ready` (the first certificate).
    pub async fn start_with_identity(
        ip: Ipv4Addr,
        destination: &str,
        identity: &[(String, String)],
        env: &[(&str, &str)],
    ) -> Proxy {
        let mut p = Proxy::spawn(ip, destination, Some(identity), env);
        p.wait_ready(Duration::from_secs(10)).await;
        p
    }

    /// Spawns a proxy without waiting for it: identity disabled when
    /// `identity` is `None`, else configured by those variables.
    pub fn spawn(
        ip: Ipv4Addr,
        destination: &str,
        identity: Option<&[(String, String)]>,
        env: &[(&str, &str)],
    ) -> Proxy {
        let outbound = SocketAddr::from((ip, 4140));
        let inbound = SocketAddr::from((ip, 4143));
        let admin = SocketAddr::from((ip, 4191));
        let mut cmd = Command::new(bin("wisp-proxy"));
        cmd.env_clear()
            .env("LINKERD2_PROXY_DESTINATION_SVC_ADDR", destination)
            .env("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR", outbound.to_string())
            .env("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", inbound.to_string())
            .env("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", admin.to_string());
        match identity {
            None => {
                cmd.env("LINKERD2_PROXY_IDENTITY_DISABLED", "1");
            }
            Some(vars) => {
                for (k, v) in vars {
                    cmd.env(k, v);
                }
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let process = Process::spawn(&format!("wisp-proxy {ip}"), cmd);
        Proxy {
            outbound,
            inbound,
            admin,
            process,
        }
    }

    /// The status of `GET /ready` on the admin port, if it answered.
    pub async fn ready_status(&self) -> Option<StatusCode> {
        http_get(self.admin, "/ready").await.ok().map(|(s, _)| s)
    }

    /// Polls `/ready` until it is 200; panics (with the proxy's output) if
    /// the proxy exits or `timeout` passes.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let ip = self.admin.ip();
        let deadline = Instant::now() + timeout;
        loop {
            if self.ready_status().await == Some(StatusCode::OK) {
                return;
            }
            if let Some(s) = self.process.exited() {
                panic!(
                    "wisp-proxy {ip} exited at start ({s}):\n{}",
                    self.process.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "wisp-proxy {ip} not ready in {timeout:?}:\n{}",
                self.process.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (up to `within`) until exactly `n` taps are open on the
    /// proxy (`tap_observers`); whether they were.
    pub async fn wait_tap_observers(&self, n: usize, within: Duration) -> bool {
        let want = format!("tap_observers {n}");
        eventually(within, || async {
            self.metrics().await.lines().any(|l| l == want)
        })
        .await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let (status, body) = http_get(self.admin, "/metrics")
            .await
            .unwrap_or_else(|e| panic!("GET /metrics on {}: {e}", self.admin));
        assert_eq!(status, StatusCode::OK);
        String::from_utf8_lossy(&body).into_owned()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.process.terminate();
    }

    /// Waits up to `timeout` for the proxy to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout).await
    }
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// Sum of the values of metric `name` over series whose labels contain
/// every `key="value"` pair of `labels` ([`prometheus::sum`]).
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    prometheus::sum(text, name, labels)
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// A hyper HTTP/1.1 client with a fresh pool.
pub fn http1_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Every line of `out` parsed as JSON (panics naming a line that is not).
pub fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A hyper h2c (prior knowledge) client with a fresh pool.
pub fn h2c_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// GETs `http://addr/path` on a new HTTP/1.1 connection: status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
    let rsp = tokio::time::timeout(
        Duration::from_secs(5),
        http1_client().get(format!("http://{addr}{path}").parse()?),
    )
    .await??;
    let status = rsp.status();
    let body = rsp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Sends `GET /` for `host` (Host header) to the proxy at `proxy` with `client`:
/// status, the `x-backend` header and the body.
pub async fn get_via(
    client: &Client<HttpConnector, Full<Bytes>>,
    proxy: SocketAddr,
    host: &str,
) -> anyhow::Result<(StatusCode, String, Bytes)> {
    let req = Request::get(format!("http://{proxy}/"))
        .header(http::header::HOST, host)
        .body(Full::new(Bytes::new()))?;
    let rsp = tokio::time::timeout(Duration::from_secs(5), client.request(req)).await??;
    let status = rsp.status();
    let backend = rsp
        .headers()
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = rsp.into_body().collect().await?.to_bytes();
    Ok((status, backend, body))
}

/// Runs `curl -sS` with `args`; returns (exit success, stdout, stderr).
pub async fn curl(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new("curl")
        .arg("-sS")
        .arg("--max-time")
        .arg("10")
        .args(args)
        .output()
        .await
        .expect("curl is installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A 64-bit FNV-1a hash of `data` (to compare large bodies).
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `n` deterministic pseudo-random bytes.
pub fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Transport header (docs/proxy-runtime.md §6.1), encoded independently of the proxy
// ---------------------------------------------------------------------------

/// `transport.l5d.io.Header`.
#[derive(Clone, PartialEq, prost::Message)]
struct WireHeader {
    #[prost(int32, tag = "1")]
    port: i32,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, optional, tag = "3")]
    session_protocol: Option<WireSession>,
}

/// `transport.l5d.io.SessionProtocol`.
#[derive(Clone, PartialEq, prost::Message)]
struct WireSession {
    #[prost(oneof = "WireKind", tags = "1, 2")]
    kind: Option<WireKind>,
}

/// The session protocol's oneof.
#[derive(Clone, PartialEq, prost::Oneof)]
enum WireKind {
    #[prost(message, tag = "1")]
    Http1(WireEmpty),
    #[prost(message, tag = "2")]
    Http2(WireEmpty),
}

/// An empty message.
#[derive(Clone, Copy, PartialEq, prost::Message)]
struct WireEmpty {}

/// The session protocol a transport header announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Session {
    /// HTTP/1.x follows.
    Http1,
    /// HTTP/2 follows.
    Http2,
    /// Opaque bytes follow (no session protocol field).
    Opaque,
}

/// The bytes a client proxy writes first on a direct connection to a peer's
/// inbound port: preface, big-endian u32 length, protobuf header.
pub fn transport_header(port: u16, session: Session) -> Vec<u8> {
    use prost::Message as _;
    let kind = match session {
        Session::Http1 => Some(WireKind::Http1(WireEmpty {})),
        Session::Http2 => Some(WireKind::Http2(WireEmpty {})),
        Session::Opaque => None,
    };
    let msg = WireHeader {
        port: i32::from(port),
        name: String::new(),
        session_protocol: kind.map(|k| WireSession { kind: Some(k) }),
    }
    .encode_to_vec();
    let mut out = b"transport.l5d.io/v1\r\n\r\n".to_vec();
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
    out
}

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

/// An in-process HTTP/1.1 + h2c server that answers with its name in the
/// `x-backend` header.
///
/// Paths: `/echo` returns the request body; `/headers` returns the request
/// headers as received, one `name: value` line each (names lowercase);
/// `/bytes/<n>` returns `pattern(n, 7)`; anything else returns the name. Every response carries
/// `x-saw-dst-override: yes|no` (whether `l5d-dst-override` reached it) and
/// `x-version` (the request's HTTP version).
pub struct HttpBackend {
    /// The listening address.
    pub addr: SocketAddr,
    /// Its name.
    pub name: String,
    /// Requests received so far.
    pub hits: Arc<AtomicU64>,
    /// Delay added before each response, in milliseconds.
    pub delay_ms: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl HttpBackend {
    /// Binds `addr` and serves until dropped.
    pub async fn start(addr: SocketAddr, name: &str) -> HttpBackend {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let hits = Arc::new(AtomicU64::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (hits, delay_ms, name) = (hits.clone(), delay_ms.clone(), name.to_string());
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let (hits, delay_ms, name) = (hits.clone(), delay_ms.clone(), name.clone());
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            let (hits, delay_ms, name) =
                                (hits.clone(), delay_ms.clone(), name.clone());
                            async move {
                                Ok::<_, Infallible>(answer(req, &name, &hits, &delay_ms).await)
                            }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
        });
        HttpBackend {
            addr,
            name: name.to_string(),
            hits,
            delay_ms,
            task,
        }
    }

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Sets the delay added to each response.
    pub fn set_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    name: &str,
    hits: &AtomicU64,
    delay_ms: &AtomicU64,
) -> Response<Full<Bytes>> {
    hits.fetch_add(1, Ordering::SeqCst);
    let saw_override = req.headers().contains_key("l5d-dst-override");
    let version = format!("{:?}", req.version());
    let path = req.uri().path().to_string();
    let headers: String = req
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let delay = delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let out = if path == "/echo" {
        body
    } else if path == "/headers" {
        Bytes::from(headers)
    } else if let Some(n) = path.strip_prefix("/bytes/") {
        Bytes::from(pattern(n.parse().unwrap_or(0), 7))
    } else {
        Bytes::from(name.to_string())
    };
    Response::builder()
        .header("x-backend", name)
        .header(
            "x-saw-dst-override",
            if saw_override { "yes" } else { "no" },
        )
        .header("x-version", version)
        .body(Full::new(out))
        .unwrap()
}

/// A TCP echo server; with `greeting`, it speaks first (like SMTP or MySQL).
/// When the client half-closes, it shuts down its write side after echoing.
pub struct EchoServer {
    /// The listening address.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EchoServer {
    /// Binds `addr` and serves until dropped.
    pub async fn start(addr: SocketAddr, greeting: Option<&'static [u8]>) -> EchoServer {
        let listener = TcpListener::bind(addr).await.unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    if let Some(g) = greeting {
                        if s.write_all(g).await.is_err() {
                            return;
                        }
                    }
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = s.shutdown().await;
                });
            }
        });
        EchoServer { addr, task }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A WebSocket server echoing every text and binary message.
pub struct WsEchoServer {
    /// The listening address.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl WsEchoServer {
    /// Binds `addr` and serves until dropped.
    pub async fn start(addr: SocketAddr) -> WsEchoServer {
        use futures_util::{SinkExt, StreamExt};
        let listener = TcpListener::bind(addr).await.unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_text() || msg.is_binary() {
                            if ws.send(msg).await.is_err() {
                                return;
                            }
                        } else if msg.is_close() {
                            return;
                        }
                    }
                });
            }
        });
        WsEchoServer { addr, task }
    }
}

impl Drop for WsEchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A tonic server with the standard `grpc.health.v1.Health` service, where
/// service `web` is SERVING and any other name is NOT_FOUND.
pub struct GrpcBackend {
    /// The listening address.
    pub addr: SocketAddr,
    /// Flips the `web` service's status (for `Watch`).
    pub reporter: tonic_health::server::HealthReporter,
    task: JoinHandle<()>,
}

impl GrpcBackend {
    /// Binds `addr` and serves until dropped.
    pub async fn start(addr: SocketAddr) -> GrpcBackend {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("web", tonic_health::ServingStatus::Serving)
            .await;
        let listener = TcpListener::bind(addr).await.unwrap();
        let incoming = tokio_stream_shim(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        GrpcBackend {
            addr,
            reporter,
            task,
        }
    }
}

impl Drop for GrpcBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Turns a listener into the stream of connections tonic's server takes.
fn tokio_stream_shim(
    listener: TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    })
}

// ---------------------------------------------------------------------------
// Topologies
// ---------------------------------------------------------------------------

/// A universal-mode mesh: a control plane at `.2:8086`, Service `web`
/// (port 80 -> `app_port`) with endpoints on pods `.11`, `.12`, ...; when
/// `meshed`, each pod has a Pod object and a server proxy on `<pod>:4143`;
/// the client proxy is at `.10`. With identity ([`Mesh::start_mtls`]), a
/// `wisp identity` service runs at `.3:8080` and every proxy is certified.
pub struct Mesh {
    /// The address block.
    pub net: Net,
    /// The destination service.
    pub cp: ControlPlane,
    /// The client proxy (outbound at `.10:4140`).
    pub client: Proxy,
    /// Server proxies, one per pod (empty unless meshed).
    pub servers: Vec<Proxy>,
    /// The pods' IPs.
    pub pods: Vec<Ipv4Addr>,
    /// The application port.
    pub app_port: u16,
    /// Whether pods have proxies.
    pub meshed: bool,
    /// The certificate authority, when identity is on.
    pub identity: Option<IdentityPlane>,
}

/// How [`Mesh::start_mtls`] sets up identity.
#[derive(Clone, Debug)]
pub struct MtlsOptions<'a> {
    /// `serviceAccountName` of the Pods in the manifests: the identity
    /// discovery tells clients to expect.
    pub manifest_sa: &'a str,
    /// The service account the pod proxies are certified as.
    pub server_sa: &'a str,
    /// The service account the client proxy is certified as.
    pub client_sa: &'a str,
    /// Extra environment of the client proxy.
    pub client_env: &'a [(&'a str, &'a str)],
    /// Extra environment of every server proxy.
    pub server_env: &'a [(&'a str, &'a str)],
    /// `--lifetime` and `--skew` of the identity service, if not its defaults.
    pub lifetime: Option<(&'a str, &'a str)>,
}

impl Default for MtlsOptions<'_> {
    fn default() -> Self {
        MtlsOptions {
            manifest_sa: "web",
            server_sa: "web",
            client_sa: "client",
            client_env: &[],
            server_env: &[],
            lifetime: None,
        }
    }
}

impl Mesh {
    /// Starts a mesh with `pods` endpoints; `client_env` is added to the client proxy's env.
    pub async fn start(pods: u8, app_port: u16, meshed: bool, client_env: &[(&str, &str)]) -> Mesh {
        Mesh::start_inner(pods, app_port, meshed, client_env, None).await
    }

    /// Starts a meshed mesh with identity on for every proxy: the client
    /// proxy certified as `client.default`, pod proxies as `web.default`
    /// (both configurable in `opts`).
    pub async fn start_mtls(pods: u8, app_port: u16, opts: &MtlsOptions<'_>) -> Mesh {
        Mesh::start_inner(pods, app_port, true, opts.client_env, Some(opts)).await
    }

    /// [`Mesh::start_mtls`] with one pod whose proxy serves tap for
    /// `tap_identity` on a free port of every address (`0.0.0.0:PORT`);
    /// returns the mesh and that port.
    pub async fn start_tapped(tap_identity: &str) -> (Mesh, u16) {
        let port = free_port();
        let control_listen = format!("0.0.0.0:{port}");
        let server_env = [
            ("LINKERD2_PROXY_TAP_SVC_NAME", tap_identity),
            (
                "LINKERD2_PROXY_CONTROL_LISTEN_ADDR",
                control_listen.as_str(),
            ),
        ];
        let opts = MtlsOptions {
            server_env: &server_env,
            ..MtlsOptions::default()
        };
        (Mesh::start_mtls(1, 8080, &opts).await, port)
    }

    async fn start_inner(
        pods: u8,
        app_port: u16,
        meshed: bool,
        client_env: &[(&str, &str)],
        mtls: Option<&MtlsOptions<'_>>,
    ) -> Mesh {
        let net = Net::new();
        let mut cp = ControlPlane::create(net.addr(2, 8086));
        let pod_ips: Vec<Ipv4Addr> = (0..pods).map(|i| net.ip(11 + i)).collect();
        cp.write(
            "svc.yaml",
            &service_yaml("web", "default", None, 80, app_port),
        );
        let mut servers = Vec::new();
        let dst = cp.addr.to_string();
        if meshed {
            for (i, ip) in pod_ips.iter().enumerate() {
                cp.write(
                    &format!("pod-{i}.yaml"),
                    &pod_yaml_with_sa(
                        &format!("web-{i}"),
                        "default",
                        *ip,
                        mtls.map(|o| o.manifest_sa),
                    ),
                );
            }
        }
        let eps: Vec<SliceEndpoint> = pod_ips
            .iter()
            .enumerate()
            .map(|(i, ip)| SliceEndpoint {
                ip: *ip,
                pod: meshed.then(|| format!("web-{i}")),
            })
            .collect();
        cp.write(
            "slice.yaml",
            &endpoint_slice_yaml("web-1", "default", "web", app_port, &eps),
        );
        // Every manifest is in place before the destination service starts.
        cp.restart().await;
        let identity = match mtls {
            None => None,
            Some(o) => {
                let mut id = IdentityPlane::init(net.addr(3, 8080));
                if let Some((lifetime, skew)) = o.lifetime {
                    id = id.with_lifetime(lifetime, skew);
                }
                id.restart().await;
                Some(id)
            }
        };
        if meshed {
            for ip in &pod_ips {
                servers.push(match (&identity, mtls) {
                    (Some(id), Some(o)) => {
                        let env = id.proxy_env(o.server_sa, "default");
                        Proxy::start_with_identity(*ip, &dst, &env, o.server_env).await
                    }
                    _ => Proxy::start(*ip, &dst, &[]).await,
                });
            }
        }
        let client = match (&identity, mtls) {
            (Some(id), Some(o)) => {
                let env = id.proxy_env(o.client_sa, "default");
                Proxy::start_with_identity(net.ip(10), &dst, &env, client_env).await
            }
            _ => Proxy::start(net.ip(10), &dst, client_env).await,
        };
        Mesh {
            client,
            net,
            cp,
            servers,
            pods: pod_ips,
            app_port,
            meshed,
            identity,
        }
    }

    /// The slice entry for pod `ip` (with a targetRef when meshed).
    pub fn endpoint(&self, ip: Ipv4Addr) -> SliceEndpoint {
        let pod = self
            .pods
            .iter()
            .position(|p| *p == ip)
            .filter(|_| self.meshed)
            .map(|i| format!("web-{i}"));
        SliceEndpoint { ip, pod }
    }

    /// Rewrites the EndpointSlice to exactly `ips`.
    pub fn set_endpoints(&self, ips: &[Ipv4Addr]) {
        let eps: Vec<SliceEndpoint> = ips.iter().map(|ip| self.endpoint(*ip)).collect();
        self.cp.write(
            "slice.yaml",
            &endpoint_slice_yaml("web-1", "default", "web", self.app_port, &eps),
        );
    }

    /// The app address of pod `i`.
    pub fn app_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.pods[i], self.app_port))
    }

    /// Starts an HTTP backend named `pod-<i>` on every pod.
    pub async fn http_backends(&self) -> Vec<HttpBackend> {
        let mut v = Vec::new();
        for i in 0..self.pods.len() {
            v.push(HttpBackend::start(self.app_addr(i), &format!("pod-{i}")).await);
        }
        v
    }

    /// Polls until a request for `web` through the client proxy returns 200
    /// (discovery has answered); panics after 10 s.
    pub async fn wait_routable(&self) {
        let client = http1_client();
        let out = self.client.outbound;
        let ok = eventually(Duration::from_secs(10), || {
            let client = client.clone();
            async move {
                matches!(
                    get_via(&client, out, WEB_FQDN).await,
                    Ok((StatusCode::OK, _, _))
                )
            }
        })
        .await;
        assert!(
            ok,
            "web never became routable:\n{}",
            self.client.process.output()
        );
    }
}

// ---------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------

/// One request made by a [`LoadGen`].
#[derive(Clone, Debug)]
pub struct Sample {
    /// When it was sent.
    pub at: Instant,
    /// How long it took.
    pub latency: Duration,
    /// Its status, or the client error.
    pub result: Result<StatusCode, String>,
    /// The `x-backend` that answered.
    pub backend: String,
}

/// Closed-loop load: `workers` tasks each sending `GET /` for a host through a
/// proxy, back to back, until stopped.
pub struct LoadGen {
    stop: Arc<std::sync::atomic::AtomicBool>,
    samples: Arc<std::sync::Mutex<Vec<Sample>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl LoadGen {
    /// Starts the workers; each pauses `pause` between requests.
    pub fn start(proxy: SocketAddr, host: &str, workers: usize, pause: Duration) -> LoadGen {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks = (0..workers)
            .map(|_| {
                let (stop, samples, host) = (stop.clone(), samples.clone(), host.to_string());
                tokio::spawn(async move {
                    let client = http1_client();
                    while !stop.load(Ordering::SeqCst) {
                        let at = Instant::now();
                        let r = get_via(&client, proxy, &host).await;
                        let latency = at.elapsed();
                        let (result, backend) = match r {
                            Ok((s, b, _)) => (Ok(s), b),
                            Err(e) => (Err(e.to_string()), String::new()),
                        };
                        samples.lock().unwrap().push(Sample {
                            at,
                            latency,
                            result,
                            backend,
                        });
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                })
            })
            .collect();
        LoadGen {
            stop,
            samples,
            tasks,
        }
    }

    /// Requests completed so far.
    pub fn count(&self) -> usize {
        self.samples.lock().unwrap().len()
    }

    /// Requests completed so far for which `keep` holds.
    pub fn count_where(&self, keep: impl Fn(&Sample) -> bool) -> usize {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| keep(s))
            .count()
    }

    /// Stops the workers and returns every sample.
    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let v = self.samples.lock().unwrap().clone();
        v
    }
}

/// Panics listing the failures among `samples`, if any.
pub fn assert_no_failures(samples: &[Sample]) {
    let failed: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.result != Ok(StatusCode::OK))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        failed.len(),
        samples.len(),
        &failed[..failed.len().min(5)]
    );
}

// ---------------------------------------------------------------------------
// Scripted backends, request batches and metric queries (ServiceProfile tests)
// ---------------------------------------------------------------------------

/// How a [`ScriptedBackend`] answers requests on a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Behavior {
    /// Fail this many requests per thousand with 500 (pseudo-randomly).
    pub fail_per_mille: u32,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Behavior {
    /// Fails `per_mille`/1000 of the requests with 500.
    pub fn failing(per_mille: u32) -> Behavior {
        Behavior {
            fail_per_mille: per_mille,
            ..Behavior::default()
        }
    }

    /// Answers 200 after `delay`.
    pub fn delayed(delay: Duration) -> Behavior {
        Behavior {
            delay,
            ..Behavior::default()
        }
    }
}

#[derive(Default)]
struct ScriptState {
    /// (path prefix, behaviour); the longest matching prefix wins.
    rules: std::sync::Mutex<Vec<(String, Behavior)>>,
    /// Requests received per (METHOD, path).
    counts: std::sync::Mutex<std::collections::HashMap<(String, String), u64>>,
    seq: AtomicU64,
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
}

/// Marks a request cancelled if its handler is dropped before it answered.
struct CancelGuard {
    state: Arc<ScriptState>,
    done: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.done {
            self.state.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// An in-process HTTP/1.1 + h2c server whose answers are scripted per path
/// ([`Behavior`]: a failure fraction with 500, a delay). It counts requests
/// per method and path, answers with its name in `x-backend` (and as the
/// body), and counts requests whose handler was dropped before answering
/// (the client — or the proxy in front — cancelled them: reset the stream
/// or closed the connection).
pub struct ScriptedBackend {
    /// The listening address.
    pub addr: SocketAddr,
    /// Its name.
    pub name: String,
    state: Arc<ScriptState>,
    task: JoinHandle<()>,
}

impl ScriptedBackend {
    /// Binds `addr` and serves until dropped; every path answers 200 until
    /// [`ScriptedBackend::set`] says otherwise.
    pub async fn start(addr: SocketAddr, name: &str) -> ScriptedBackend {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let state = Arc::new(ScriptState::default());
        let task = tokio::spawn({
            let (state, name) = (state.clone(), name.to_string());
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let (state, name) = (state.clone(), name.clone());
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            let (state, name) = (state.clone(), name.clone());
                            async move { Ok::<_, Infallible>(scripted(req, &name, state).await) }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
        });
        ScriptedBackend {
            addr,
            name: name.to_string(),
            state,
            task,
        }
    }

    /// Requests on paths starting with `prefix` behave as `behavior`.
    pub fn set(&self, prefix: &str, behavior: Behavior) {
        let mut rules = self.state.rules.lock().unwrap();
        rules.retain(|(p, _)| p != prefix);
        rules.push((prefix.to_string(), behavior));
    }

    /// Requests received with `method` on exactly `path`.
    pub fn count(&self, method: &str, path: &str) -> u64 {
        let counts = self.state.counts.lock().unwrap();
        counts
            .get(&(method.to_string(), path.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Requests received so far (all paths).
    pub fn started(&self) -> u64 {
        self.state.started.load(Ordering::SeqCst)
    }

    /// Requests answered (their response was handed to the connection).
    pub fn completed(&self) -> u64 {
        self.state.completed.load(Ordering::SeqCst)
    }

    /// Requests answered with a scripted 500.
    pub fn failed(&self) -> u64 {
        self.state.failed.load(Ordering::SeqCst)
    }

    /// Requests whose handler was dropped before it answered.
    pub fn cancelled(&self) -> u64 {
        self.state.cancelled.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn scripted(
    req: Request<Incoming>,
    name: &str,
    state: Arc<ScriptState>,
) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    state.started.fetch_add(1, Ordering::SeqCst);
    *state
        .counts
        .lock()
        .unwrap()
        .entry((method, path.clone()))
        .or_default() += 1;
    let mut guard = CancelGuard {
        state: state.clone(),
        done: false,
    };
    let behavior = {
        let rules = state.rules.lock().unwrap();
        rules
            .iter()
            .filter(|(p, _)| path.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, b)| *b)
            .unwrap_or_default()
    };
    let _ = req.into_body().collect().await;
    if !behavior.delay.is_zero() {
        tokio::time::sleep(behavior.delay).await;
    }
    let n = state.seq.fetch_add(1, Ordering::SeqCst);
    let fail = fnv1a(&n.to_le_bytes()) % 1000 < u64::from(behavior.fail_per_mille);
    let status = if fail {
        state.failed.fetch_add(1, Ordering::SeqCst);
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    guard.done = true;
    state.completed.fetch_add(1, Ordering::SeqCst);
    Response::builder()
        .status(status)
        .header("x-backend", name)
        .body(Full::new(Bytes::from(name.to_string())))
        .unwrap()
}

/// The outcome of one request sent by [`send_many`] or [`request_via`].
#[derive(Clone, Debug)]
pub struct Reply {
    /// When it was sent.
    pub at: Instant,
    /// How long until the response body ended.
    pub latency: Duration,
    /// The status, or the client error.
    pub status: Result<StatusCode, String>,
    /// The `x-backend` that answered ("" for proxy errors).
    pub backend: String,
    /// The `l5d-proxy-error` header, if any.
    pub proxy_error: Option<String>,
}

/// Sends `method path` with `Host: host` (and `body`) through the proxy at
/// `proxy` with `client`; never panics.
pub async fn request_via(
    client: &Client<HttpConnector, Full<Bytes>>,
    proxy: SocketAddr,
    host: &str,
    method: &http::Method,
    path: &str,
    body: Bytes,
) -> Reply {
    let at = Instant::now();
    let result = async {
        let req = Request::builder()
            .method(method.clone())
            .uri(format!("http://{proxy}{path}"))
            .header(http::header::HOST, host)
            .body(Full::new(body))?;
        let rsp = tokio::time::timeout(Duration::from_secs(10), client.request(req)).await??;
        let status = rsp.status();
        let header = |name: &str| {
            rsp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let backend = header("x-backend").unwrap_or_default();
        let proxy_error = header("l5d-proxy-error");
        rsp.into_body().collect().await?;
        anyhow::Ok((status, backend, proxy_error))
    }
    .await;
    let latency = at.elapsed();
    match result {
        Ok((status, backend, proxy_error)) => Reply {
            at,
            latency,
            status: Ok(status),
            backend,
            proxy_error,
        },
        Err(e) => Reply {
            at,
            latency,
            status: Err(e.to_string()),
            backend: String::new(),
            proxy_error: None,
        },
    }
}

/// Sends `n` requests `method path` for `host` through `proxy`, at most
/// `concurrency` in flight, and returns every reply (in completion order).
pub async fn send_many(
    proxy: SocketAddr,
    host: &str,
    method: http::Method,
    path: &str,
    n: usize,
    concurrency: usize,
) -> Vec<Reply> {
    let next = Arc::new(AtomicU64::new(0));
    let replies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let client = http1_client();
    let workers: Vec<JoinHandle<()>> = (0..concurrency.max(1))
        .map(|_| {
            let (next, replies, client) = (next.clone(), replies.clone(), client.clone());
            let (host, method, path) = (host.to_string(), method.clone(), path.to_string());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::SeqCst) < n as u64 {
                    let r = request_via(&client, proxy, &host, &method, &path, Bytes::new()).await;
                    replies.lock().unwrap().push(r);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let v = std::mem::take(&mut *replies.lock().unwrap());
    v
}

/// Sum of metric `name` over the series whose label set satisfies `keep`
/// ([`prometheus::sum_by`], with the labels as owned pairs).
pub fn metric_sum_by(text: &str, name: &str, keep: impl Fn(&[(String, String)]) -> bool) -> f64 {
    prometheus::sum_by(text, name, |s| {
        let labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        keep(&labels)
    })
}
