//! Sub-millisecond sleeping for request pacing.
//!
//! Tokio's timer wheel has 1 ms granularity, which at 5,000 req/s would
//! turn a smooth schedule into bursts of five requests per millisecond. A
//! `timerfd` registered with the runtime's reactor wakes the task within a
//! few microseconds of the deadline, at the cost of one `timerfd_settime`
//! and one `read` per request. If a timerfd cannot be created the pacer
//! falls back to tokio's timer, which `--coarse-timer` also selects (less
//! generator CPU per request, bursty schedule).

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// A per-task precise sleeper.
pub struct Pacer {
    timer: Option<AsyncFd<File>>,
}

impl Pacer {
    /// A pacer backed by a timerfd (or by tokio's timer if `coarse`, or if
    /// the timerfd cannot be set up). Must be called inside a tokio runtime.
    pub fn new(coarse: bool) -> Self {
        if coarse {
            return Self { timer: None };
        }
        let timer = crate::sys::timerfd_create()
            .ok()
            .and_then(|fd: OwnedFd| crate::sys::register_timer(File::from(fd)).ok());
        Self { timer }
    }

    /// Returns at (or just after) `deadline`; immediately if it has passed.
    pub async fn sleep_until(&mut self, deadline: Instant) {
        let now = Instant::now();
        if deadline <= now {
            return;
        }
        if let Some(timer) = &self.timer {
            if wait_timerfd(timer, deadline - now).await.is_ok() {
                return;
            }
            // Any timerfd failure: stop using it and fall back below.
            self.timer = None;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

async fn wait_timerfd(timer: &AsyncFd<File>, after: std::time::Duration) -> anyhow::Result<()> {
    crate::sys::timerfd_arm(timer.get_ref(), after)?;
    let mut buf = [0u8; 8];
    loop {
        let mut guard = timer.readable().await?;
        match guard.try_io(|inner| {
            let mut file: &File = inner.get_ref();
            file.read(&mut buf)
        }) {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => return Err(e.into()),
            Err(_would_block) => continue,
        }
    }
}
