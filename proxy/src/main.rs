//! The `wisp-proxy` binary: reads its environment and runs the proxy.

use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match wisp_proxy::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wisp-proxy: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

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
            eprintln!("wisp-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
