//! `wisp demo`: the whole mesh on one machine — no Kubernetes, no root.
//!
//! The demo writes a manifest directory and (unless `--no-identity`) a fresh
//! CA with a token per service account, then starts (as child processes)
//! the destination service over the manifests, the identity service, three
//! backends of service `web` on their own loopback IPs and a `wisp-proxy`
//! per workload, each certified as its service account, and drives load
//! through the client workload's outbound proxy — mTLS between the proxies —
//! printing one line of statistics per second, with the share of mTLS
//! requests the client proxy counted.
//!
//! Modules, in reading order:
//!
//! * [`session`] runs the demo from start to finish;
//! * [`topology`] says who runs where; [`manifests`] writes them as YAML;
//! * [`identity`] makes the CA and tokens and configures proxies for mTLS;
//! * [`ports`] checks the addresses are free; [`workdir`] owns the temp dir;
//! * [`children`] spawns and always stops the child processes;
//! * [`ready`] waits for them; [`warmup`] checks the path end to end;
//! * [`banner`] says what is running;
//! * [`load`] sends the traffic; [`stats`] turns it into per-second lines;
//! * [`metrics`] reads the proxies' own counters (mTLS share, summaries);
//! * [`backend`] is the hidden `wisp demo backend` mode each backend runs;
//! * [`http_get`] and [`duration`] are small helpers.

mod backend;
mod banner;
mod children;
mod duration;
mod http_get;
mod identity;
mod load;
mod manifests;
mod metrics;
mod ports;
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
    /// Stop after this long (`10s`, `2m`, `500ms` or bare seconds);
    /// by default the demo runs until Ctrl-C.
    #[arg(long, value_parser = duration::parse)]
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
        }),
    }
}
