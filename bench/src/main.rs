//! `wisp-bench`: open-loop HTTP load generator, benchmark backend, and a
//! side-by-side (direct vs. through the proxy) benchmark of `wisp-proxy`.

mod args;
mod backend;
mod client;
mod closed;
mod compare;
mod harness;
mod kube_source;
mod load;
mod manifest;
mod pacer;
mod phase;
mod probe;
mod procstat;
mod report;
mod sampler;
mod stats;
mod sys;
mod tap;

use anyhow::Result;
use args::{Cli, Command, LoadArgs};
use clap::Parser;
use client::{Protocol, Target};
use phase::{Mode, PhaseSpec};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Backend(a)) => backend::serve(a.addr),
        Some(Command::Load(a)) => run_load(&a),
        Some(Command::Compare(a)) => run_compare(&a),
        Some(Command::KubeSource(a)) => kube_source::run(&a),
        None => run_compare(&cli.compare),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wisp-bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `wisp-bench load`: one phase against an arbitrary address.
fn run_load(a: &LoadArgs) -> Result<()> {
    let o = &a.opts;
    let protocol = if o.http2 {
        Protocol::Http2
    } else {
        Protocol::Http1
    };
    let host = o.host.clone().unwrap_or_else(|| a.target.clone());
    let (mode, connections, threads) = if a.max {
        (
            Mode::Closed { streams: o.streams },
            o.connections.unwrap_or(o.max_connections),
            o.threads.unwrap_or(2),
        )
    } else {
        (
            Mode::Open { rate: a.rate },
            o.connections.unwrap_or(16),
            o.threads.unwrap_or(1),
        )
    };
    let spec = PhaseSpec {
        target: Target::new(&a.target, &host, protocol)?,
        mode,
        connections,
        duration: o.duration,
        warmup: o.warmup,
        timeout: o.timeout,
        threads,
        cpus: o.loadgen_cpu.clone(),
        coarse_timer: o.coarse_timer,
    };
    let result = phase::run(spec, sampler::PhaseSampler::new(a.watch_pid, None))?;
    let watched = a.watch_pid.and_then(|pid| procstat::mem(pid).ok());
    if o.json {
        report::print_json(&serde_json::json!({ "result": result, "watched_mem_after": watched }))
    } else {
        print!("{}", report::load_text(&result, watched));
        Ok(())
    }
}

/// `wisp-bench compare` (the default).
fn run_compare(a: &args::CompareArgs) -> Result<()> {
    let report = compare::run(a)?;
    if a.opts.json {
        report::print_json(&report)
    } else {
        print!("{}", report::compare_text(&report));
        Ok(())
    }
}
