//! The side-by-side benchmark: the same load straight at the backend and
//! through the proxy, interleaved, optionally repeated.

use crate::args::{CompareArgs, Topology};
use crate::client::{Protocol, Target};
use crate::harness::{ChildGuard, TempDir};
use crate::manifest::MATCHING_ROUTE;
use crate::phase::{self, Mode, PhaseSpec};
use crate::procstat::{self, MemSample};
use crate::sampler::PhaseSampler;
use crate::stats::{LoadResult, Percentiles};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wisp_common::prometheus::{self, Sample};

/// Default Host header through the proxy.
pub const DEFAULT_HOST: &str = "bench.default.svc.cluster.local";

/// Settings echoed in the report.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// `single` (one proxy), `mesh` (client and server proxy, mTLS) or
    /// `mesh-plaintext` (two proxies, identity disabled).
    pub topology: &'static str,
    /// `http1` or `http2`.
    pub protocol: &'static str,
    /// Host header / authority.
    pub host: String,
    /// Constant rates measured, req/s.
    pub rates: Vec<f64>,
    /// Measured seconds per constant-rate phase.
    pub duration_s: f64,
    /// Warm-up seconds before each phase.
    pub warmup_s: f64,
    /// Connections of constant-rate phases.
    pub connections: usize,
    /// Connections of closed-loop phases (absent with --no-max).
    pub max_connections: Option<usize>,
    /// Seconds per closed-loop phase.
    pub max_duration_s: Option<f64>,
    /// LINKERD2_PROXY_CORES.
    pub proxy_cores: usize,
    /// Repetitions.
    pub runs: usize,
    /// Proxy binary used.
    pub proxy_bin: String,
    /// CPUs online on this machine.
    pub ncpu: usize,
    /// Routes of the ServiceProfile served for the bench service (`--profile-routes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_routes: Option<u32>,
    /// TrafficSplit weights `bench/bench-v2` (`--split`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// Open `Tap.Observe` calls during the phases (`--taps`).
    pub taps: usize,
    /// Requests per second each tap asks for (`--tap-max-rps`); all if absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tap_max_rps: Option<u32>,
}

/// One direct-vs-proxy pair of phases with the same load.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    /// Straight at the backend.
    pub direct: LoadResult,
    /// Through the proxy's outbound listener.
    pub proxy: LoadResult,
    /// Proxy memory right after its phase (the client proxy in mesh modes).
    pub proxy_mem_after: MemSample,
    /// Server proxy memory right after the proxied phase (mesh modes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_proxy_mem_after: Option<MemSample>,
    /// Proxy minus direct at each percentile, µs.
    pub added_latency_us: Percentiles,
}

/// One repetition of the whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// 1-based run number.
    pub run: usize,
    /// Milliseconds from starting the proxy until /ready answered 200
    /// (the client proxy in mesh modes).
    pub proxy_startup_ms: f64,
    /// Proxy memory after --idle-wait of idleness (the client proxy in mesh modes).
    pub proxy_idle: MemSample,
    /// Same as `proxy_startup_ms` for the server proxy (mesh modes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_proxy_startup_ms: Option<f64>,
    /// Same as `proxy_idle` for the server proxy (mesh modes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_proxy_idle: Option<MemSample>,
    /// Constant-rate pairs, in --rates order.
    pub rates: Vec<Pair>,
    /// Closed-loop pair (absent with --no-max).
    pub max: Option<Pair>,
    /// Tap events the `--taps` consumers received over the phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tap_events: Option<u64>,
}

/// Everything a comparison produced.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// Settings.
    pub params: Params,
    /// Per-run figures.
    pub runs: Vec<RunResult>,
    /// Median of every metric over the runs (see `report::flatten`).
    pub median: std::collections::BTreeMap<String, f64>,
}

/// Runs the comparison described by `args`.
pub fn run(args: &CompareArgs) -> Result<CompareReport> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if args.rates.is_empty() && args.no_max {
        bail!("nothing to measure: no --rates and --no-max");
    }
    let wisp_bin = sibling_binary(args.wisp_bin.as_ref(), "wisp", "--wisp-bin")?;
    let proxy_bin = sibling_binary(args.proxy_bin.as_ref(), "wisp-proxy", "--proxy-bin")?;
    crate::harness::install_signal_handler()?;

    let tmp = TempDir::new("wisp-bench")?;
    let log_dir = match &args.log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let layout = Layout::new(args);
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir(&manifests).with_context(|| format!("creating {}", manifests.display()))?;
    crate::manifest::write(
        &manifests,
        layout.backend,
        layout.server.map(|server| server.inbound),
        args.profile_routes,
        args.split,
    )?;

    let exe = std::env::current_exe().context("locating wisp-bench executable")?;
    let mut cmd = Command::new(&exe);
    cmd.arg("backend")
        .arg("--addr")
        .arg(layout.backend.to_string());
    let mut backend = ChildGuard::spawn("backend", cmd, &log_dir)?;
    backend.wait_listening(layout.backend, Duration::from_secs(5))?;

    // mTLS: a CA, one token per service account, and the identity service.
    let mut identity = None;
    if layout.topology == (Topology::Mesh { tls: true }) {
        progress("creating the identity CA and tokens");
        let files = identity_files(&wisp_bin, tmp.path())?;
        let mut cmd = Command::new(&wisp_bin);
        cmd.arg("identity")
            .arg("--dir")
            .arg(&files.dir)
            .arg("--addr")
            .arg(args.identity_addr.to_string());
        let mut child = ChildGuard::spawn("identity", cmd, &log_dir)?;
        child.wait_listening(args.identity_addr, Duration::from_secs(10))?;
        identity = Some((child, files));
    }

    let mut cmd = Command::new(&wisp_bin);
    cmd.arg("destination")
        .arg("--source")
        .arg(format!("dir:{}", manifests.display()))
        .arg("--addr")
        .arg(args.destination_addr.to_string());
    let mut destination = ChildGuard::spawn("destination", cmd, &log_dir)?;
    destination.wait_listening(args.destination_addr, Duration::from_secs(10))?;

    let mut runs = Vec::with_capacity(args.runs);
    for run in 1..=args.runs {
        progress(&format!(
            "run {run}/{} ({})",
            args.runs,
            layout.topology.name()
        ));
        let ctx = RunContext {
            args,
            layout: &layout,
            run,
            proxy_bin: &proxy_bin,
            log_dir: &log_dir,
            identity: identity.as_ref().map(|(_, files)| files),
        };
        runs.push(run_once(&ctx, &mut backend)?);
        destination.check_running()?;
        if let Some((child, _)) = identity.as_mut() {
            child.check_running()?;
        }
    }
    destination.stop();
    if let Some((mut child, _)) = identity {
        child.stop();
    }
    backend.stop();

    let median = crate::report::medians(&runs);
    Ok(CompareReport {
        params: params(args, &proxy_bin),
        runs,
        median,
    })
}

/// Listener addresses of one proxy.
#[derive(Debug, Clone, Copy)]
struct ProxyAddrs {
    outbound: SocketAddr,
    inbound: SocketAddr,
    admin: SocketAddr,
}

impl ProxyAddrs {
    /// The --outbound-addr/--inbound-addr/--admin-addr ports on `ip`.
    fn on_ip(args: &CompareArgs, ip: IpAddr) -> Self {
        Self {
            outbound: SocketAddr::new(ip, args.outbound_addr.port()),
            inbound: SocketAddr::new(ip, args.inbound_addr.port()),
            admin: SocketAddr::new(ip, args.admin_addr.port()),
        }
    }
}

/// Where everything listens for the selected topology.
#[derive(Debug, Clone, Copy)]
struct Layout {
    topology: Topology,
    /// The backend, also the direct target.
    backend: SocketAddr,
    /// The proxy the load goes through (the client proxy in mesh modes).
    client: ProxyAddrs,
    /// The server-side proxy (mesh modes only).
    server: Option<ProxyAddrs>,
}

impl Layout {
    fn new(args: &CompareArgs) -> Self {
        let topology = args.topology();
        match topology {
            Topology::Single => Self {
                topology,
                backend: args.backend_addr,
                client: ProxyAddrs {
                    outbound: args.outbound_addr,
                    inbound: args.inbound_addr,
                    admin: args.admin_addr,
                },
                server: None,
            },
            Topology::Mesh { .. } => Self {
                topology,
                backend: SocketAddr::new(args.server_ip, args.backend_addr.port()),
                client: ProxyAddrs::on_ip(args, args.client_ip),
                server: Some(ProxyAddrs::on_ip(args, args.server_ip)),
            },
        }
    }
}

/// Identity material for --mesh.
#[derive(Debug)]
struct IdentityFiles {
    /// `wisp identity init` output directory.
    dir: PathBuf,
    /// PEM of `ca.crt`.
    trust_anchors_pem: String,
    /// Token files of the client and server service accounts.
    client_token: PathBuf,
    server_token: PathBuf,
}

/// `wisp identity init` into `DIR/identity` and one token per service account.
fn identity_files(wisp_bin: &Path, dir: &Path) -> Result<IdentityFiles> {
    let id_dir = dir.join("identity");
    let id_dir_arg = id_dir.display().to_string();
    run_tool(wisp_bin, &["identity", "init", "--out", &id_dir_arg])?;
    let ca = id_dir.join("ca.crt");
    let trust_anchors_pem =
        std::fs::read_to_string(&ca).with_context(|| format!("reading {}", ca.display()))?;
    let mut tokens = Vec::new();
    for sa in [crate::manifest::CLIENT_SA, crate::manifest::SERVER_SA] {
        let token = run_tool(
            wisp_bin,
            &[
                "identity",
                "token",
                "--dir",
                &id_dir_arg,
                "--sa",
                sa,
                "--ns",
                crate::manifest::NAMESPACE,
            ],
        )?;
        let path = dir.join(format!("{sa}.token"));
        std::fs::write(&path, token.trim())
            .with_context(|| format!("writing {}", path.display()))?;
        tokens.push(path);
    }
    let server_token = tokens.pop().context("server token")?;
    let client_token = tokens.pop().context("client token")?;
    Ok(IdentityFiles {
        dir: id_dir,
        trust_anchors_pem,
        client_token,
        server_token,
    })
}

/// Runs `bin ARGS` to completion and returns its stdout.
fn run_tool(bin: &Path, tool_args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(tool_args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} {}", bin.display(), tool_args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({}): {}",
            bin.display(),
            tool_args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).context("tool output is not UTF-8")
}

/// The identity of service account `sa` in the bench namespace.
fn local_identity(sa: &str) -> String {
    format!(
        "{sa}.{}.serviceaccount.identity.linkerd.cluster.local",
        crate::manifest::NAMESPACE
    )
}

/// `explicit`, or NAME next to the current executable.
fn sibling_binary(explicit: Option<&PathBuf>, name: &str, flag: &str) -> Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating wisp-bench executable")?
            .parent()
            .map(|dir| dir.join(name))
            .context("executable has no parent directory")?,
    };
    if !path.is_file() {
        bail!("{} not found (build it, or pass {flag})", path.display());
    }
    Ok(path)
}

fn params(args: &CompareArgs, proxy_bin: &Path) -> Params {
    Params {
        topology: args.topology().name(),
        protocol: protocol(args).name(),
        host: host(args),
        rates: args.rates.clone(),
        duration_s: args.opts.duration.as_secs_f64(),
        warmup_s: args.opts.warmup.as_secs_f64(),
        connections: args.opts.connections.unwrap_or(16),
        max_connections: (!args.no_max).then_some(args.opts.max_connections),
        max_duration_s: (!args.no_max).then_some(args.max_duration.as_secs_f64()),
        proxy_cores: args.proxy_cores,
        runs: args.runs,
        proxy_bin: proxy_bin.display().to_string(),
        ncpu: std::thread::available_parallelism().map_or(0, |n| n.get()),
        profile_routes: args.profile_routes,
        split: args.split.map(|s| s.to_string()),
        taps: args.taps,
        tap_max_rps: args.tap_max_rps,
    }
}

fn protocol(args: &CompareArgs) -> Protocol {
    if args.opts.http2 {
        Protocol::Http2
    } else {
        Protocol::Http1
    }
}

fn host(args: &CompareArgs) -> String {
    args.opts
        .host
        .clone()
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

/// What one run needs besides the backend.
struct RunContext<'a> {
    args: &'a CompareArgs,
    layout: &'a Layout,
    run: usize,
    proxy_bin: &'a Path,
    log_dir: &'a Path,
    /// Identity material (`--mesh` only).
    identity: Option<&'a IdentityFiles>,
}

/// Which proxy of the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The only proxy of the single topology.
    Single,
    Client,
    Server,
}

impl RunContext<'_> {
    /// Starts one proxy listening on `addrs`.
    fn spawn_proxy(&self, role: Role, addrs: ProxyAddrs) -> Result<ChildGuard> {
        let args = self.args;
        let mut cmd = Command::new(self.proxy_bin);
        cmd.env(
            "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
            args.destination_addr.to_string(),
        )
        .env(
            "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR",
            addrs.outbound.to_string(),
        )
        .env(
            "LINKERD2_PROXY_INBOUND_LISTEN_ADDR",
            addrs.inbound.to_string(),
        )
        .env("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", addrs.admin.to_string())
        .env("LINKERD2_PROXY_CORES", args.proxy_cores.to_string())
        .env("LINKERD2_PROXY_LOG", "warn");
        match (self.identity, role) {
            (Some(files), Role::Client | Role::Server) => {
                let (sa, token) = if role == Role::Client {
                    (crate::manifest::CLIENT_SA, &files.client_token)
                } else {
                    (crate::manifest::SERVER_SA, &files.server_token)
                };
                cmd.env(
                    "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
                    &files.trust_anchors_pem,
                )
                .env("LINKERD2_PROXY_IDENTITY_TOKEN_FILE", token)
                .env("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", local_identity(sa))
                .env(
                    "LINKERD2_PROXY_IDENTITY_SVC_ADDR",
                    args.identity_addr.to_string(),
                );
            }
            _ => {
                cmd.env("LINKERD2_PROXY_IDENTITY_DISABLED", "1");
            }
        }
        if args.taps > 0 && role != Role::Server {
            cmd.env("LINKERD2_PROXY_TAP_SVC_NAME", crate::tap::TAP_SVC_NAME)
                .env(
                    "LINKERD2_PROXY_CONTROL_LISTEN_ADDR",
                    SocketAddr::new(addrs.admin.ip(), crate::tap::CONTROL_PORT).to_string(),
                );
        }
        for (k, v) in &args.proxy_env {
            cmd.env(k, v);
        }
        let run = self.run;
        let name = match role {
            Role::Single => format!("proxy-run{run}"),
            Role::Client => format!("proxy-client-run{run}"),
            Role::Server => format!("proxy-server-run{run}"),
        };
        ChildGuard::spawn(&name, cmd, self.log_dir)
    }
}

/// A running proxy of one run.
struct RunningProxy {
    child: ChildGuard,
    addrs: ProxyAddrs,
    started: Instant,
}

impl RunningProxy {
    /// Waits for /ready; returns milliseconds since the proxy was started.
    fn wait_ready(&mut self, timeout: Duration) -> Result<f64> {
        self.child
            .wait_http_ok(self.addrs.admin, "/ready", timeout)?;
        Ok(self.started.elapsed().as_secs_f64() * 1e3)
    }
}

/// Starts fresh proxies, measures idle memory, then every phase pair.
fn run_once(ctx: &RunContext<'_>, backend: &mut ChildGuard) -> Result<RunResult> {
    let args = ctx.args;
    let layout = ctx.layout;
    // The server proxy first: the client's first requests need it.
    let mut server = match layout.server {
        Some(addrs) => Some(RunningProxy {
            child: ctx.spawn_proxy(Role::Server, addrs)?,
            addrs,
            started: Instant::now(),
        }),
        None => None,
    };
    let client_role = if server.is_some() {
        Role::Client
    } else {
        Role::Single
    };
    let mut client = RunningProxy {
        child: ctx.spawn_proxy(client_role, layout.client)?,
        addrs: layout.client,
        started: Instant::now(),
    };
    let server_proxy_startup_ms = match server.as_mut() {
        Some(s) => Some(s.wait_ready(args.ready_timeout)?),
        None => None,
    };
    let proxy_startup_ms = client.wait_ready(args.ready_timeout)?;
    std::thread::sleep(args.idle_wait);
    client.child.check_running()?;
    let proxy_idle = procstat::mem(client.child.pid())?;
    let server_proxy_idle = match server.as_mut() {
        Some(s) => {
            s.child.check_running()?;
            Some(procstat::mem(s.child.pid())?)
        }
        None => None,
    };
    check_route(args, &mut client, server.as_mut())?;
    if args.profile_routes.is_some() || args.split.is_some() {
        verify_profile(args, &mut client)?;
    }
    if let Some(s) = server.as_ref() {
        let tls = matches!(layout.topology, Topology::Mesh { tls: true });
        verify_mesh(&client, s, tls)?;
    }

    let host = host(args);
    let direct = Target::new(&layout.backend.to_string(), &host, protocol(args))?;
    let proxied = Target::new(&layout.client.outbound.to_string(), &host, protocol(args))?;
    let base = |target: &Target, mode: Mode| PhaseSpec {
        target: target.clone(),
        mode,
        connections: match mode {
            Mode::Open { .. } => args.opts.connections.unwrap_or(16),
            Mode::Closed { .. } => args.opts.max_connections,
        },
        duration: match mode {
            Mode::Open { .. } => args.opts.duration,
            Mode::Closed { .. } => args.max_duration,
        },
        warmup: args.opts.warmup,
        timeout: args.opts.timeout,
        threads: args.opts.threads.unwrap_or(match mode {
            Mode::Open { .. } => 1,
            Mode::Closed { .. } => 2,
        }),
        cpus: args.opts.loadgen_cpu.clone(),
        coarse_timer: args.opts.coarse_timer,
    };

    let mut modes: Vec<(String, Mode)> = args
        .rates
        .iter()
        .map(|&rate| (format!("{rate} req/s"), Mode::Open { rate }))
        .collect();
    if !args.no_max {
        modes.push((
            "max".to_string(),
            Mode::Closed {
                streams: args.opts.streams,
            },
        ));
    }

    // Taps open after the idle sample: they are part of the load's cost.
    let taps = match args.taps {
        0 => None,
        n => {
            let control = SocketAddr::new(layout.client.admin.ip(), crate::tap::CONTROL_PORT);
            Some(
                crate::tap::OpenTaps::open(control, n, args.tap_max_rps)
                    .map_err(|e| e.context(proxy_logs(&client, server.as_ref())))?,
            )
        }
    };

    let mut rates = Vec::new();
    let mut max = None;
    for (label, mode) in modes {
        progress(&format!("  direct {label}"));
        let d = phase::run(
            base(&direct, mode),
            PhaseSampler::new(None, Some(backend.pid())),
        )?;
        backend.check_running()?;
        progress(&format!("  proxy  {label}"));
        let sampler = PhaseSampler::new(Some(client.child.pid()), Some(backend.pid()))
            .with_server_proxy(server.as_ref().map(|s| s.child.pid()));
        let p = phase::run(base(&proxied, mode), sampler)
            .map_err(|e| e.context(proxy_logs(&client, server.as_ref())))?;
        client.child.check_running()?;
        let server_proxy_mem_after = match server.as_mut() {
            Some(s) => {
                s.child.check_running()?;
                Some(procstat::mem(s.child.pid())?)
            }
            None => None,
        };
        let pair = Pair {
            proxy_mem_after: procstat::mem(client.child.pid())?,
            server_proxy_mem_after,
            added_latency_us: difference(&p.latency_us, &d.latency_us),
            direct: d,
            proxy: p,
        };
        match mode {
            Mode::Open { .. } => rates.push(pair),
            Mode::Closed { .. } => max = Some(pair),
        }
    }
    let tap_events = taps.as_ref().map(crate::tap::OpenTaps::events);
    drop(taps);
    if tap_events == Some(0) {
        anyhow::bail!("the taps received no events: the row would not be tapped");
    }
    client.child.stop();
    if let Some(s) = server.as_mut() {
        s.child.stop();
    }
    Ok(RunResult {
        run: ctx.run,
        proxy_startup_ms,
        proxy_idle,
        server_proxy_startup_ms,
        server_proxy_idle,
        rates,
        max,
        tap_events,
    })
}

/// The end of each proxy's output, for error messages.
fn proxy_logs(client: &RunningProxy, server: Option<&RunningProxy>) -> String {
    match server {
        None => format!("proxy output:\n{}", client.child.log_tail(20)),
        Some(s) => format!(
            "client proxy output:\n{}\nserver proxy output:\n{}",
            client.child.log_tail(20),
            s.child.log_tail(20)
        ),
    }
}

/// One request through the proxy must succeed before anything is measured
/// (the proxy may need a moment to resolve the service).
fn check_route(
    args: &CompareArgs,
    client: &mut RunningProxy,
    mut server: Option<&mut RunningProxy>,
) -> Result<()> {
    let host = host(args);
    let outbound = client.addrs.outbound;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        client.child.check_running()?;
        if let Some(s) = server.as_mut() {
            s.child.check_running()?;
        }
        let last = match crate::probe::get_status(outbound, &host, "/", Duration::from_secs(2)) {
            Ok(200) => return Ok(()),
            Ok(code) => format!("status {code}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!(
                "GET http://{outbound}/ with Host {host} did not return 200 within 10s \
                 (last: {last}); {}",
                proxy_logs(client, server.as_deref())
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// With `--profile-routes` / `--split`, checks from the proxy's `/metrics`
/// that the destination service's profile is in effect before anything is
/// measured: requests counted under `rt_route="GET /"` of the bench
/// service, and (split) requests sent to an endpoint of `bench-v2`. Sends
/// `GET /` through the proxy until both show, for up to 15 s.
fn verify_profile(args: &CompareArgs, client: &mut RunningProxy) -> Result<()> {
    let host = host(args);
    let outbound = client.addrs.outbound;
    let dst_value = format!("{DEFAULT_HOST}:80");
    let dst = format!("dst=\"{dst_value}\"");
    let route = format!("rt_route=\"{MATCHING_ROUTE}\"");
    let v2 = format!(
        "{}.{}.svc",
        crate::manifest::SERVICE_V2,
        crate::manifest::NAMESPACE
    );
    let want_route = args.profile_routes.is_some();
    let want_split = args.split.is_some_and(|s| s.secondary > 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut sent = 0u64;
    loop {
        client.child.check_running()?;
        for _ in 0..20 {
            let _ = crate::probe::get_status(outbound, &host, "/", Duration::from_secs(2));
            sent += 1;
        }
        let text = metrics(client.addrs.admin)?;
        let routed = !want_route
            || prometheus::series(&text, "route_request_total").any(|s| {
                s.has_labels(&[("dst", &dst_value), ("rt_route", MATCHING_ROUTE)]) && s.value > 0.0
            });
        let split = !want_split
            || request_series(&text, "outbound")
                .iter()
                .any(|s| s.labels.iter().any(|(_, v)| v.contains(&v2)) && s.value > 0.0);
        if routed && split {
            progress(&format!(
                "  profile in effect after {sent} requests{}{}",
                if want_route {
                    format!(": {route} counted")
                } else {
                    String::new()
                },
                if want_split {
                    format!(", {v2} endpoints used")
                } else {
                    String::new()
                },
            ));
            return Ok(());
        }
        if Instant::now() > deadline {
            let relevant: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.starts_with("route_request_total{") || l.starts_with("request_total{")
                })
                .collect();
            bail!(
                "the profile is not in effect after {sent} requests through {outbound}: {}{}; \
                 does the destination service serve ServiceProfiles/TrafficSplits? \
                 Refusing to measure. The proxy's request series:\n{}",
                if routed {
                    String::new()
                } else {
                    format!("no route_request_total{{{dst},{route}}}")
                },
                if split {
                    String::new()
                } else {
                    format!(" no request to a {v2} endpoint")
                },
                if relevant.is_empty() {
                    "(none)".to_string()
                } else {
                    relevant.join("\n")
                }
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks, from both proxies' `/metrics`, that the route check really went
/// client proxy -> server proxy, and over mTLS when `tls` (the client proxy
/// saw `tls="true"` outbound, the server proxy `tls="true"` inbound with the
/// client's identity as `client_id`).
fn verify_mesh(client: &RunningProxy, server: &RunningProxy, tls: bool) -> Result<()> {
    let what = if tls { "mTLS" } else { "plaintext" };
    let client_id = local_identity(crate::manifest::CLIENT_SA);
    type Check<'a> = (&'a str, &'a RunningProxy, &'a str, Vec<(&'a str, &'a str)>);
    let checks: [Check<'_>; 2] = if tls {
        [
            ("client", client, "outbound", vec![("tls", "true")]),
            (
                "server",
                server,
                "inbound",
                vec![("tls", "true"), ("client_id", &client_id)],
            ),
        ]
    } else {
        [
            ("client", client, "outbound", vec![("tls", "disabled")]),
            ("server", server, "inbound", vec![]),
        ]
    };
    for (side, proxy, direction, want) in checks {
        let text = metrics(proxy.addrs.admin)?;
        let series = request_series(&text, direction);
        if !series.iter().any(|s| s.has_labels(&want) && s.value > 0.0) {
            let want = want
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(",");
            bail!(
                "the {side} proxy counted no {direction} request with {{{want}}}: the two-proxy hop \
                 is not {what}, refusing to measure it. Its request_total series:\n{}",
                if series.is_empty() {
                    "(none)".to_string()
                } else {
                    series
                        .iter()
                        .map(|s| format!("  {}", describe(s)))
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            );
        }
    }
    Ok(())
}

/// `GET http://ADMIN/metrics`.
fn metrics(admin: SocketAddr) -> Result<String> {
    match crate::probe::get_text(admin, "/metrics", Duration::from_secs(2))? {
        (200, text) => Ok(text),
        (code, _) => bail!("GET http://{admin}/metrics returned {code}"),
    }
}

/// Every `request_total{direction="DIRECTION",...}` sample of `text`.
fn request_series<'a>(text: &'a str, direction: &str) -> Vec<Sample<'a>> {
    prometheus::series(text, "request_total")
        .filter(|s| s.label("direction") == Some(direction))
        .collect()
}

/// A sample written back as `name{k="v",...} value`, for messages.
fn describe(s: &Sample<'_>) -> String {
    let labels = s
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",");
    format!("{}{{{labels}}} {}", s.name, s.value)
}

fn difference(a: &Percentiles, b: &Percentiles) -> Percentiles {
    Percentiles {
        p50: a.p50 - b.p50,
        p90: a.p90 - b.p90,
        p99: a.p99 - b.p99,
        p999: a.p999 - b.p999,
        max: a.max - b.max,
        mean: a.mean - b.mean,
    }
}

/// Progress goes to stderr so that --json output stays clean.
fn progress(msg: &str) {
    eprintln!("wisp-bench: {msg}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_series_by_direction() {
        let text = "# TYPE request_total counter\n\
request_total{direction=\"outbound\",tls=\"true\",server_id=\"x\"} 3\n\
request_total{direction=\"inbound\",tls=\"true\"} 2\n\
response_total{direction=\"outbound\"} 3\n";
        let out = super::request_series(text, "outbound");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].label("tls"), Some("true"));
        assert_eq!(out[0].value, 3.0);
        assert_eq!(
            super::describe(&out[0]),
            "request_total{direction=\"outbound\",tls=\"true\",server_id=\"x\"} 3"
        );
        assert_eq!(super::request_series(text, "inbound").len(), 1);
    }
}
