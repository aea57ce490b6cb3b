//! Command-line interface.

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use wisp_common::duration::parse_flag_duration;

/// Open-loop HTTP load generator and side-by-side proxy benchmark.
///
/// Without a subcommand, runs `compare` with the given flags.
#[derive(Debug, Parser)]
#[command(name = "wisp-bench", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: compare).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of the default `compare` mode.
    #[command(flatten)]
    pub compare: CompareArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the benchmark backend (200 "ok\n" to everything, HTTP/1.1 + h2c).
    Backend(BackendArgs),
    /// Put load on any address and print the report.
    Load(LoadArgs),
    /// Start backend, control plane and proxy; compare direct vs proxied.
    Compare(Box<CompareArgs>),
    /// `wisp destination --source kube` against an in-process Kubernetes
    /// API test server: memory and EndpointSlice change → Get update latency.
    KubeSource(KubeSourceArgs),
}

/// Flags of `kube-source`.
#[derive(Debug, Args)]
pub struct KubeSourceArgs {
    /// Services (one EndpointSlice each).
    #[arg(long, default_value_t = 1000)]
    pub services: usize,
    /// Endpoints over all Services (spread evenly).
    #[arg(long, default_value_t = 10000)]
    pub endpoints: usize,
    /// No Pods behind the endpoints (by default one meshed Pod per endpoint).
    #[arg(long)]
    pub no_pods: bool,
    /// Destination.Get streams (one per Service, the first N Services).
    #[arg(long, default_value_t = 100)]
    pub streams: usize,
    /// EndpointSlice changes timed (one at a time, round-robin over the streamed Services).
    #[arg(long, default_value_t = 500)]
    pub updates: usize,
    /// The `wisp` CLI binary [default: `wisp` next to this executable].
    #[arg(long)]
    pub wisp_bin: Option<PathBuf>,
    /// Listen address of the `wisp destination` child.
    #[arg(long, default_value = "127.0.0.1:18086")]
    pub destination_addr: SocketAddr,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `backend`.
#[derive(Debug, Args)]
pub struct BackendArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub addr: SocketAddr,
}

/// Load-shaping flags shared by `load` and `compare`.
#[derive(Debug, Args, Clone)]
pub struct LoadOpts {
    /// Host header (HTTP/1.1) or authority (HTTP/2) of every request.
    #[arg(long)]
    pub host: Option<String>,
    /// Speak HTTP/2 (h2c with prior knowledge) instead of HTTP/1.1.
    #[arg(long)]
    pub http2: bool,
    /// Measured length of each constant-rate phase (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_flag_duration)]
    pub duration: Duration,
    /// Unrecorded warm-up before each phase, same load.
    #[arg(long, default_value = "2s", value_parser = parse_flag_duration)]
    pub warmup: Duration,
    /// Connections of constant-rate phases [default: 16; with `load --max`: --max-connections].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Connections of closed-loop (max throughput) phases.
    #[arg(long, default_value_t = 64)]
    pub max_connections: usize,
    /// Concurrent streams per connection in closed-loop HTTP/2 phases.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Load generator runtime threads [default: 1 for constant rate, 2 for max].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Pin the load generator's threads to these CPUs (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub loadgen_cpu: Vec<usize>,
    /// Per-request timeout; also bounds how long a phase may overrun.
    #[arg(long, default_value = "5s", value_parser = parse_flag_duration)]
    pub timeout: Duration,
    /// Pace constant-rate load with tokio's 1 ms timer instead of a timerfd:
    /// less generator CPU, but requests leave in 1 ms bursts.
    #[arg(long)]
    pub coarse_timer: bool,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Address to send load to (host:port).
    #[arg(long)]
    pub target: String,
    /// Constant rate, requests per second.
    #[arg(long, default_value_t = 1000.0, conflicts_with = "max")]
    pub rate: f64,
    /// Closed loop, back-to-back requests for --duration (max throughput).
    #[arg(long)]
    pub max: bool,
    /// Also report CPU and memory of this process (e.g. the proxy under test).
    #[arg(long)]
    pub watch_pid: Option<u32>,
    /// Load shape.
    #[command(flatten)]
    pub opts: LoadOpts,
}

/// Flags of `compare`.
#[derive(Debug, Args, Clone)]
pub struct CompareArgs {
    /// Where the backend child listens (also the "direct" target).
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub backend_addr: SocketAddr,
    /// The `wisp` CLI binary [default: `wisp` next to this executable].
    #[arg(long)]
    pub wisp_bin: Option<PathBuf>,
    /// The proxy binary [default: `wisp-proxy` next to this executable].
    #[arg(long)]
    pub proxy_bin: Option<PathBuf>,
    /// Listen address of the control plane (`wisp destination --addr`).
    #[arg(long, default_value = "127.0.0.1:8086")]
    pub destination_addr: SocketAddr,
    /// Proxy outbound listener (the proxied target).
    #[arg(long, default_value = "127.0.0.1:4140")]
    pub outbound_addr: SocketAddr,
    /// Proxy inbound listener.
    #[arg(long, default_value = "127.0.0.1:4143")]
    pub inbound_addr: SocketAddr,
    /// Proxy admin listener (readiness is polled at /ready).
    #[arg(long, default_value = "127.0.0.1:4191")]
    pub admin_addr: SocketAddr,
    /// LINKERD2_PROXY_CORES for the proxy.
    #[arg(long, default_value_t = 1)]
    pub proxy_cores: usize,
    /// Extra proxy environment, KEY=VALUE (repeatable).
    #[arg(long, value_parser = parse_env)]
    pub proxy_env: Vec<(String, String)>,
    /// How long the proxy may take to report ready.
    #[arg(long, default_value = "10s", value_parser = parse_flag_duration)]
    pub ready_timeout: Duration,
    /// Idle time after ready before sampling the proxy's idle memory.
    #[arg(long, default_value = "3s", value_parser = parse_flag_duration)]
    pub idle_wait: Duration,
    /// Constant rates to measure, req/s (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    pub rates: Vec<f64>,
    /// Length of each closed-loop max-throughput phase.
    #[arg(long, default_value = "10s", value_parser = parse_flag_duration)]
    pub max_duration: Duration,
    /// Skip the closed-loop max-throughput phases.
    #[arg(long)]
    pub no_max: bool,
    /// Repeat the whole direct/proxy comparison N times and report medians.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Keep the children's logs in this directory instead of a temp dir.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Meshed hop: a client proxy and a server proxy with mTLS between them
    /// (identity service started too); load goes through the client proxy.
    #[arg(long, conflicts_with = "mesh_plaintext")]
    pub mesh: bool,
    /// Same two-proxy topology as --mesh with identity disabled on both
    /// proxies (plaintext between them), to isolate the cost of TLS.
    #[arg(long)]
    pub mesh_plaintext: bool,
    /// Pod IP of the client proxy in mesh modes (ports from --outbound-addr,
    /// --inbound-addr, --admin-addr).
    #[arg(long, default_value = "127.0.0.2")]
    pub client_ip: IpAddr,
    /// Pod IP of the server proxy and the backend in mesh modes (the backend
    /// listens on this IP with the port of --backend-addr).
    #[arg(long, default_value = "127.0.0.3")]
    pub server_ip: IpAddr,
    /// Listen address of the identity service (`wisp identity`) with --mesh.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub identity_addr: SocketAddr,
    /// Serve a ServiceProfile for the bench service with N routes: N-1 that
    /// the load never matches (`GET /r1`, ...) and a last one matching `/`,
    /// so every request is matched against all of them (single proxy only).
    #[arg(long, value_name = "N", conflicts_with_all = ["mesh", "mesh_plaintext"],
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub profile_routes: Option<u32>,
    /// Serve a TrafficSplit of the bench service: weight A to `bench`, B to
    /// `bench-v2`, a second Service over the same backend address (a second
    /// balancer, not a second backend); e.g. `90/10` (single proxy only).
    #[arg(long, value_name = "A/B", value_parser = parse_split,
          conflicts_with_all = ["mesh", "mesh_plaintext"])]
    pub split: Option<Split>,
    /// Keep N `Tap.Observe` calls open on the (client) proxy during the
    /// phases, each streaming every request's events with headers.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub taps: usize,
    /// With --taps: each tap asks for at most N requests per second,
    /// re-issued every second (Linkerd viz tap's --max-rps); without it,
    /// every request.
    #[arg(long, value_name = "N", requires = "taps")]
    pub tap_max_rps: Option<u32>,
    /// Load shape.
    #[command(flatten)]
    pub opts: LoadOpts,
}

/// TrafficSplit weights of `bench` and `bench-v2` (whole numbers, as in
/// `split.smi-spec.io/v1alpha2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Weight of `bench` itself.
    pub primary: u32,
    /// Weight of `bench-v2`.
    pub secondary: u32,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.primary, self.secondary)
    }
}

/// Parses `A/B` (whole numbers, not both zero).
fn parse_split(s: &str) -> Result<Split> {
    let parsed = s
        .split_once('/')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some((0, 0)) => bail!("split weights {s:?} are both zero"),
        Some((primary, secondary)) => Ok(Split { primary, secondary }),
        None => bail!("expected A/B with whole numbers, e.g. 90/10; got {s:?}"),
    }
}

/// How many proxies `compare` puts on the path, and how they talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One proxy (outbound listener) in front of the backend.
    Single,
    /// Client proxy -> server proxy -> backend; `tls` is mTLS between the proxies.
    Mesh {
        /// Identity enabled on both proxies.
        tls: bool,
    },
}

impl Topology {
    /// `single`, `mesh` or `mesh-plaintext`.
    pub fn name(self) -> &'static str {
        match self {
            Topology::Single => "single",
            Topology::Mesh { tls: true } => "mesh",
            Topology::Mesh { tls: false } => "mesh-plaintext",
        }
    }
}

impl CompareArgs {
    /// The topology selected by --mesh / --mesh-plaintext.
    pub fn topology(&self) -> Topology {
        if self.mesh {
            Topology::Mesh { tls: true }
        } else if self.mesh_plaintext {
            Topology::Mesh { tls: false }
        } else {
            Topology::Single
        }
    }
}

/// Parses `KEY=VALUE`.
fn parse_env(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("expected KEY=VALUE, got {s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_flags() {
        let cli = Cli::try_parse_from(["wisp-bench", "--duration", "1.5", "--warmup", "0"]);
        let cli = cli.expect("flags parse");
        assert_eq!(cli.compare.opts.duration, Duration::from_millis(1_500));
        assert_eq!(cli.compare.opts.warmup, Duration::ZERO);
        assert!(Cli::try_parse_from(["wisp-bench", "--duration", "abc"]).is_err());
    }

    #[test]
    fn splits() {
        assert_eq!(
            parse_split("90/10").ok(),
            Some(Split {
                primary: 90,
                secondary: 10
            })
        );
        assert!(parse_split("0/0").is_err());
        assert!(parse_split("90").is_err());
        assert!(parse_split("0.9/0.1").is_err());
        assert_eq!(
            parse_split("100/0").map(|s| s.to_string()).ok(),
            Some("100/0".into())
        );
    }

    #[test]
    fn profile_flags_are_single_proxy_only() {
        let ok = Cli::try_parse_from([
            "wisp-bench",
            "compare",
            "--profile-routes",
            "20",
            "--split",
            "90/10",
        ]);
        assert!(ok.is_ok());
        let mesh = Cli::try_parse_from(["wisp-bench", "compare", "--mesh", "--split", "90/10"]);
        assert!(mesh.is_err());
        let zero = Cli::try_parse_from(["wisp-bench", "compare", "--profile-routes", "0"]);
        assert!(zero.is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
