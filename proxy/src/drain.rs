//! Graceful shutdown: stop accepting, let connections finish, within a bound.
//!
//! Every listener and connection task holds a [`Drain`]. Shutdown signals
//! them all, then waits until every `Drain` is dropped or the grace period
//! runs out.

use std::time::Duration;

use tokio::sync::watch;

/// Held by tasks that must finish before the process exits.
#[derive(Clone)]
pub(crate) struct Drain(watch::Receiver<bool>);

/// Starts the drain and waits for it.
pub(crate) struct Trigger(watch::Sender<bool>);

/// A new drain and its trigger.
pub(crate) fn channel() -> (Trigger, Drain) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Drain(rx))
}

impl Drain {
    /// Completes once shutdown has started.
    pub(crate) async fn signaled(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|d| *d).await;
    }
}

impl Trigger {
    /// Signals every task, then waits up to `grace` for all of them to finish.
    /// Returns whether everything finished in time.
    pub(crate) async fn drain(self, grace: Duration) -> bool {
        let _ = self.0.send(true);
        tokio::time::timeout(grace, self.0.closed()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_holders_then_completes() {
        let (trigger, drain) = channel();
        let holder = drain.clone();
        tokio::spawn(async move {
            holder.signaled().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(holder);
        });
        drop(drain);
        let started = Instant::now();
        assert!(trigger.drain(Duration::from_secs(10)).await);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_after_the_grace_period() {
        let (trigger, drain) = channel();
        // A connection that never finishes.
        let stuck = drain.clone();
        tokio::spawn(async move {
            stuck.signaled().await;
            std::future::pending::<()>().await;
            drop(stuck);
        });
        drop(drain);
        let started = Instant::now();
        assert!(!trigger.drain(Duration::from_secs(5)).await);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
