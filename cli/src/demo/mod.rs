//! `wisp demo`: the whole mesh on one machine — no Kubernetes, no root.
//!
//! The demo writes a manifest directory and (unless `--no-identity`) a fresh
//! CA with a token per service account, then starts (as child processes)
//! the destination service over the manifests, the identity service, two
//! versions of the application — service `web` (v1: web-a, web-b, web-c)
//! and service `web-v2` (v2: web-v2-a) — on their own loopback IPs and a
//! `wisp-proxy` per workload, each certified as its service account. After
//! a mesh check it applies (unless `--no-profiles`) a ServiceProfile for
//! `web` (a retryable route, a route with a timeout, a retry budget) and a
//! 90/10 TrafficSplit of `web` between `web` and `web-v2`, then drives a mix
//! of paths through the client workload's outbound proxy — mTLS between the
//! proxies — printing two lines of statistics per second: rate, success,
//! mTLS share, latency, pod shares and the v1/v2 split, then per route the
//! client proxy's own counts (success, retries) and the p99.
//!
//! Modules, in reading order:
//!
//! * [`session`] runs the demo from start to finish;
//! * [`topology`] says who runs where; [`manifests`] writes them as YAML;
//! * [`identity`] makes the CA and tokens and configures proxies for mTLS;
//! * [`ports`] checks the addresses are free; [`workdir`] owns the temp dir;
//! * [`children`] spawns and always stops the child processes;
//! * [`ready`] waits for them; [`warmup`] checks the path end to end;
//! * [`profile`] is the ServiceProfile and TrafficSplit, and applies them;
//! * [`banner`] says what is running;
//! * [`load`] sends the traffic; [`stats`] turns it into per-second lines;
//! * [`metrics`] reads the proxies' own counters (mTLS share, routes, summaries);
//! * [`backend`] is the hidden `wisp demo backend` mode each backend runs;
//! * [`http_get`] is a small helper.

mod backend;
mod banner;
mod children;
mod http_get;
mod identity;
mod load;
mod manifests;
mod metrics;
mod ports;
mod profile;
mod ready;
mod session;
mod stats;
mod topology;
mod warmup;
mod workdir;

use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `wisp demo`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Stop after this long (`10s`, `2m`, `500ms`, `1h30m` or bare
    /// seconds); by default the demo runs until Ctrl-C.
    #[arg(long, value_parser = wisp_common::duration::parse_positive_flag_duration)]
    duration: Option<Duration>,
    /// Requests per second sent through the client's outbound proxy.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=5000))]
    rate: u32,
    /// Extra latency, in milliseconds, of the slow pod (web-c).
    #[arg(long, default_value_t = 50)]
    slow_ms: u64,
    /// The wisp-proxy binary (default: `wisp-proxy` next to this executable).
    #[arg(long, value_name = "PATH")]
    proxy_bin: Option<PathBuf>,
    /// Run without the identity service: plaintext between the proxies
    /// (by default every proxy is certified and the proxies talk mTLS).
    #[arg(long)]
    no_identity: bool,
    /// Apply no ServiceProfile and no TrafficSplit: no routes, retries or
    /// timeouts, and all of `web`'s traffic stays on v1.
    #[arg(long)]
    no_profiles: bool,
    #[command(subcommand)]
    mode: Option<Mode>,
}

/// Internal roles the demo starts itself in.
#[derive(clap::Subcommand)]
enum Mode {
    /// One demo backend (started by `wisp demo`, not by hand).
    #[command(hide = true)]
    Backend(backend::Args),
}

/// Runs the demo, or one of its internal roles.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.mode {
        Some(Mode::Backend(backend)) => backend::run(backend),
        None => session::run(session::Options {
            duration: args.duration,
            rate: args.rate,
            slow: Duration::from_millis(args.slow_ms),
            proxy_bin: args.proxy_bin,
            identity: !args.no_identity,
            profiles: !args.no_profiles,
        }),
    }
}
