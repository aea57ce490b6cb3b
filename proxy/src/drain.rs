//! Graceful shutdown: stop accepting, let connections finish, within a bound.
//!
//! Every listener and connection task holds a [`Drain`]. Shutdown signals
//! them all, then waits until every `Drain` is dropped or the grace period
//! runs out.

use std::time::Duration;

use tokio::sync::watch;

/// Held by tasks that must finish before the process exits.
#[derive(Clone)]
pub struct Drain(watch::Receiver<bool>);

/// Starts the drain and waits for it.
pub struct Trigger(watch::Sender<bool>);

/// A new drain and its trigger.
pub fn channel() -> (Trigger, Drain) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Drain(rx))
}

impl Drain {
    /// Completes once shutdown has started.
    pub async fn signaled(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|d| *d).await;
    }
}

impl Trigger {
    /// Signals every task, then waits up to `grace` for all of them to finish.
    /// Returns whether everything finished in time.
    pub async fn drain(self, grace: Duration) -> bool {
        let _ = self.0.send(true);
        tokio::time::timeout(grace, self.0.closed()).await.is_ok()
    }
}
