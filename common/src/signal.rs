//! Waiting for the signal that asks a process to stop: SIGTERM (Kubernetes,
//! `kill`) or SIGINT (Ctrl-C).
//!
//! [`ShutdownSignals::new`] installs both handlers at once, so no signal
//! delivered after it returns is missed, and [`ShutdownSignals::recv`] is a
//! cancel-safe future that a caller can `select!` against its own stop
//! conditions (the proxy's admin `POST /shutdown`, a run time elapsing):
//!
//! ```no_run
//! # async fn run(mut admin: tokio::sync::mpsc::Receiver<()>) -> Result<(), wisp_common::signal::SignalError> {
//! let mut signals = wisp_common::signal::ShutdownSignals::new()?;
//! tokio::select! {
//!     signal = signals.recv() => println!("received {signal}"),
//!     _ = admin.recv() => println!("shutdown requested on the admin port"),
//! }
//! # Ok(()) }
//! ```
//!
//! [`shutdown_signal`] does both steps for callers that wait for nothing
//! else.

use std::fmt;

use tokio::signal::unix::{signal, SignalKind};

/// Which stop signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Signal {
    /// The conventional name: `SIGINT` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The exit status a shell reports for a process killed by this
    /// signal (128 + signal number): 130 or 143.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A signal handler could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for {signal}")]
pub struct SignalError {
    /// The signal whose handler failed.
    pub signal: Signal,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// SIGTERM and SIGINT handlers, installed together.
#[derive(Debug)]
pub struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers. Must be called inside a Tokio runtime whose
    /// I/O driver is enabled; fails if the OS refuses a handler.
    pub fn new() -> Result<Self, SignalError> {
        let install = |kind, which| {
            signal(kind).map_err(|source| SignalError {
                signal: which,
                source,
            })
        };
        Ok(Self {
            interrupt: install(SignalKind::interrupt(), Signal::Interrupt)?,
            terminate: install(SignalKind::terminate(), Signal::Terminate)?,
        })
    }

    /// Completes when SIGTERM or SIGINT arrives (one received since the
    /// handlers were installed counts), telling which. Cancel-safe: a
    /// signal is never lost by dropping the future, so this can be polled
    /// again after losing a `select!`.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            Some(()) = self.interrupt.recv() => Signal::Interrupt,
            Some(()) = self.terminate.recv() => Signal::Terminate,
            // Both streams ended (the runtime is shutting down): no signal
            // can arrive any more.
            else => std::future::pending().await,
        }
    }
}

/// Installs the handlers and waits for SIGTERM or SIGINT, telling which.
///
/// Fails at once if a handler cannot be installed; callers that must not
/// miss an early signal create [`ShutdownSignals`] before starting work.
pub async fn shutdown_signal() -> Result<Signal, SignalError> {
    let mut signals = ShutdownSignals::new()?;
    Ok(signals.recv().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Signal::Terminate.to_string(), "SIGTERM");
        assert_eq!(Signal::Interrupt.name(), "SIGINT");
        assert_eq!(Signal::Interrupt.exit_code(), 130);
        assert_eq!(Signal::Terminate.exit_code(), 143);
    }

    #[tokio::test]
    async fn waits_then_tells_which_signal_arrived() {
        let mut signals = match ShutdownSignals::new() {
            Ok(s) => s,
            Err(e) => panic!("installing handlers: {e}"),
        };
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(20), signals.recv()).await;
        assert!(waited.is_err(), "no signal was sent");
        // One test only: every handler of the process sees a signal, so a
        // parallel test would see this one.
        let pid = std::process::id();
        let status = std::process::Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "sending SIGTERM");
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), signals.recv()).await;
        assert_eq!(got.ok(), Some(Signal::Terminate));
    }
}
