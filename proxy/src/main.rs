//! The `wisp-proxy` binary: reads its environment and runs the proxy.

use std::process::ExitCode;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn main() -> ExitCode {
    let config = match wisp_proxy::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "wisp-proxy: invalid configuration: {}",
                wisp_common::error::chain(&e)
            );
            return ExitCode::from(2);
        }
    };
    // `Targets` understands LINKERD2_PROXY_LOG's `level,target=level` syntax
    // without pulling regex code into memory (EnvFilter parses with regex).
    let filter: Targets = match config.log_filter.parse() {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "wisp-proxy: LINKERD2_PROXY_LOG={:?}: {e}; using \"warn\"",
                config.log_filter
            );
            Targets::new().with_default(tracing::Level::WARN)
        }
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(filter)
        .init();

    let runtime = if config.cores <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.cores)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wisp-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(wisp_proxy::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wisp-proxy: {}", wisp_common::error::chain(&e));
            ExitCode::FAILURE
        }
    }
}
