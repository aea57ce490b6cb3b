//! `wisp tap` (live requests, one line per event, like `linkerd viz tap`),
//! `wisp top` (the busiest paths, like `linkerd viz top`) and `wisp
//! proxy-config` (what a proxy knows, from its admin `/config.json`).
//!
//! Tap calls `Tap.Observe` on each target proxy's control port (4190)
//! directly: in plaintext, which the proxy allows from loopback clients
//! only (universal mode on one machine, or a Kubernetes port-forward), as
//! linkerd2-proxy does; or, with `--tls-dir` ([`tls`]), over mesh TLS
//! presenting the tap service's identity, which works from anywhere.

pub mod event;
pub mod observe;
mod proxy_config;
pub mod tls;
mod top;

use std::io::Write;

use anyhow::Context;
use tokio::sync::mpsc;

pub use proxy_config::{run_proxy_config, ProxyConfigArgs};
pub use tls::{TapTls, TapTlsArgs};
pub use top::{run_top, TopArgs};

use crate::tap::event::{render_json, render_line, render_wide};
use crate::tap::observe::{observe_request, spawn_taps, FilterArgs, Report};
use crate::target::{Kind, ProxyTarget, TargetArgs, TargetSpec};

/// How `wisp tap` prints events.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// One line per event, as `linkerd viz tap` prints it.
    Default,
    /// The line plus the source and destination resources.
    Wide,
    /// One JSON object per line.
    Json,
}

/// Arguments of `wisp tap`.
#[derive(clap::Args)]
pub struct TapArgs {
    /// The proxies to tap: `pod/NAME`, `deploy/NAME`, `ns/NAME`, or a
    /// proxy's admin `HOST:PORT`.
    pub target: String,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub tls: TapTlsArgs,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    pub max_events: Option<u64>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "default")]
    pub output: Output,
}

/// The async runtime of the tap commands.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Resolves the target to its proxies.
pub(crate) fn resolve(spec: &str, targets: &TargetArgs) -> anyhow::Result<Vec<ProxyTarget>> {
    targets.resolve_all(&[spec.to_string()])
}

/// The label naming a resource of the target's kind (for `-o wide`).
fn resource_label(spec: &str) -> &'static str {
    match TargetSpec::parse(spec) {
        Ok(TargetSpec::Deployment(_) | TargetSpec::Every(Kind::Deployment)) => "deployment",
        _ => "pod",
    }
}

/// Runs `wisp tap`: prints events until Ctrl-C, `--max-events`, or every
/// tap failing.
pub fn run_tap(args: TapArgs) -> anyhow::Result<()> {
    let proxies = resolve(&args.target, &args.targets)?;
    let req = observe_request(&args.filter, &args.targets, args.output == Output::Json)?;
    let kind = resource_label(&args.target);
    let tls = TapTls::load(&args.tls)?;
    runtime()?.block_on(async move {
        let mut signals = wisp_common::signal::ShutdownSignals::new()?;
        let (tx, mut rx) = mpsc::channel(1024);
        let _taps = spawn_taps(&proxies, req, tls.as_ref(), tx)?;
        let mut seen = 0u64;
        let mut failed = Vec::new();
        let stdout = std::io::stdout();
        loop {
            let report = tokio::select! {
                r = rx.recv() => r,
                _ = signals.recv() => return Ok(()),
            };
            match report {
                None => break,
                Some(Report::Failed(name, e)) => {
                    eprintln!("wisp: {}", wisp_common::error::chain_of(e.chain()));
                    failed.push(name);
                    if failed.len() == proxies.len() {
                        break;
                    }
                }
                Some(Report::Event(_, e)) => {
                    let line = match args.output {
                        Output::Default => render_line(&e),
                        Output::Wide => render_wide(&e, kind),
                        Output::Json => render_json(&e).to_string(),
                    };
                    let mut out = stdout.lock();
                    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                        // The reader went away (`| head`): done.
                        return Ok(());
                    }
                    seen += 1;
                    if args.max_events.is_some_and(|max| seen >= max) {
                        return Ok(());
                    }
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("could not tap {}", failed.join(", "))
        }
    })
}
