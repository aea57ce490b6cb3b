//! Stopping a long-running command on SIGTERM or Ctrl-C: the handlers of
//! [`wisp_common::signal`], plus a log line naming the signal.

use std::future::Future;

use wisp_common::signal::{ShutdownSignals, SignalError};

/// Installs the SIGTERM and SIGINT handlers now (call it inside the
/// runtime, before serving, so no early signal is missed) and returns a
/// future that completes, logging which, when one arrives.
pub fn shutdown_signal() -> Result<impl Future<Output = ()>, SignalError> {
    let mut signals = ShutdownSignals::new()?;
    Ok(async move {
        let signal = signals.recv().await;
        tracing::info!(%signal, "stopping");
    })
}
