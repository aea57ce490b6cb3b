//! `wisp`: the control-plane roles and the user commands, in one binary.
//!
//! Each subcommand lives in its own module; `main` only parses arguments,
//! sets up logging, dispatches, and reports a failed command as one
//! `wisp: <error>: <cause>: ...` line on stderr with exit code 1 (usage
//! errors exit with 2, from clap) — never with a backtrace: these are the
//! user's errors, not the program's.

mod check_cmd;
mod controller;
mod controller_cmd;
mod demo;
mod destination_cmd;
mod identity_cmd;
mod inject_cmd;
mod inspect;
mod install;
mod install_cmd;
mod profile_cmd;
mod signal;
mod tap;
mod target;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// wisp: a lightweight, Linkerd-compatible service mesh.
#[derive(Parser)]
#[command(name = "wisp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Destination API from a resource index.
    Destination(destination_cmd::Args),
    /// The control plane on Kubernetes: destination, identity and the injector webhook.
    Controller(controller_cmd::Args),
    /// Print the control plane's manifests (the charts/wisp chart), or with `--crds` the CRDs.
    Install(install_cmd::Args),
    /// Check the cluster (`--pre`) or the installed control plane; non-zero exit on failure.
    Check(check_cmd::Args),
    /// The certificate authority: `init`, `token`, or serve Identity.Certify.
    Identity(identity_cmd::Args),
    /// Add the proxy to pod templates in manifests (`linkerd inject --manual`).
    Inject(inject_cmd::InjectArgs),
    /// Remove what `wisp inject` or the injector added to manifests.
    Uninject(inject_cmd::UninjectArgs),
    /// Print a ServiceProfile: a template, or generated from OpenAPI or protobuf.
    Profile(profile_cmd::Args),
    /// Check ServiceProfile, TrafficSplit and core manifests; print every problem.
    Validate(profile_cmd::ValidateArgs),
    /// Validate manifests, then write them into a universal-mode source directory.
    Apply(profile_cmd::ApplyArgs),
    /// Remove the objects named in manifests from a source directory.
    Delete(profile_cmd::DeleteArgs),
    /// Run the whole mesh on this machine, without Kubernetes.
    Demo(demo::Args),
    /// Golden metrics per workload and per authority: success rate, RPS, latency, TCP, mTLS.
    Stat(inspect::stat::Args),
    /// Golden metrics per ServiceProfile route.
    Routes(inspect::routes::Args),
    /// Who talks to whom, with client and server identities.
    Edges(inspect::edges::Args),
    /// Watch a proxy's requests live, one line per event (`linkerd viz tap`).
    Tap(tap::TapArgs),
    /// A live table of the busiest paths, from tap (`linkerd viz top`).
    Top(tap::TopArgs),
    /// What a proxy knows: identity, listeners, services, endpoints, profiles.
    ProxyConfig(tap::ProxyConfigArgs),
}

fn main() -> ExitCode {
    // On a usage error clap prints its message and exits with 2.
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WISP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // No backtrace, even when RUST_BACKTRACE is set.
            eprintln!("wisp: {}", wisp_common::error::chain_of(error.chain()));
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand.
fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Destination(args) => destination_cmd::run(args),
        Command::Controller(args) => controller_cmd::run(args),
        Command::Install(args) => install_cmd::run(args),
        Command::Check(args) => check_cmd::run(args),
        Command::Identity(args) => identity_cmd::run(args),
        Command::Inject(args) => inject_cmd::run_inject(args),
        Command::Uninject(args) => inject_cmd::run_uninject(args),
        Command::Profile(args) => profile_cmd::run(args),
        Command::Validate(args) => profile_cmd::run_validate(args),
        Command::Apply(args) => profile_cmd::run_apply(args),
        Command::Delete(args) => profile_cmd::run_delete(args),
        Command::Demo(args) => demo::run(args),
        Command::Stat(args) => inspect::stat::run(args),
        Command::Routes(args) => inspect::routes::run(args),
        Command::Edges(args) => inspect::edges::run(args),
        Command::Tap(args) => tap::run_tap(args),
        Command::Top(args) => tap::run_top(args),
        Command::ProxyConfig(args) => tap::run_proxy_config(args),
    }
}
