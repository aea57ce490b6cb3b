//! Following a server-streaming control-plane call for as long as its
//! answers are needed, reconnecting with jittered exponential backoff.

use std::future::Future;
use std::time::Duration;

/// Reconnect backoff bounds for control-plane streams (Linkerd's outbound defaults).
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Why [`follow`] stopped.
#[derive(Debug)]
pub(crate) enum Stopped {
    /// The server refused the request (InvalidArgument / FailedPrecondition):
    /// it will never succeed, so it is not retried.
    Rejected(tonic::Status),
    /// `on_event` asked to stop (nobody needs the answers any more).
    Unneeded,
}

/// What [`follow`] reports to its caller.
pub(crate) enum Event<T> {
    /// An answer; `first` when it is the first of a new stream (it replaces
    /// whatever an earlier stream said).
    Message {
        /// The answer.
        msg: T,
        /// Whether it opens a new stream.
        first: bool,
    },
    /// The control plane could not be reached or the stream broke; it will
    /// be retried after a backoff.
    Unavailable,
}

/// Follows a server-streaming call: `open` starts it, `on_event` gets every
/// answer and every outage (and returns `false` to stop). When the stream
/// ends or fails it is reopened with jittered exponential backoff; whatever
/// the caller built from earlier answers stays in use meanwhile.
pub(crate) async fn follow<T, F, Fut>(
    what: &str,
    mut open: F,
    mut on_event: impl FnMut(Event<T>) -> bool,
) -> Stopped
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>>,
{
    let mut backoff = wisp_common::backoff::Backoff::new(BACKOFF_MIN, BACKOFF_MAX, 0.1);
    loop {
        match open().await {
            Ok(rsp) => {
                let mut stream = rsp.into_inner();
                let mut first = true;
                loop {
                    match stream.message().await {
                        Ok(Some(msg)) => {
                            if !on_event(Event::Message { msg, first }) {
                                return Stopped::Unneeded;
                            }
                            first = false;
                            backoff.reset();
                        }
                        Ok(None) => {
                            tracing::debug!(%what, "control-plane stream ended");
                            break;
                        }
                        Err(status) => {
                            tracing::info!(%what, %status, "control-plane stream failed; keeping the last answer");
                            if !on_event(Event::Unavailable) {
                                return Stopped::Unneeded;
                            }
                            break;
                        }
                    }
                }
            }
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
                ) =>
            {
                return Stopped::Rejected(status);
            }
            Err(status) => {
                tracing::info!(%what, %status, "control plane unavailable; retrying");
                if !on_event(Event::Unavailable) {
                    return Stopped::Unneeded;
                }
            }
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::time::Instant;

    use super::*;

    type Never = ();

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_control_plane_is_retried_with_growing_backoff() {
        let opened = Arc::new(std::sync::Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut outages = 0;
        let o = opened.clone();
        let stopped = follow::<Never, _, _>(
            "test",
            move || {
                if let Ok(mut v) = o.lock() {
                    v.push(start.elapsed());
                }
                async { Err(tonic::Status::unavailable("down")) }
            },
            |ev| {
                assert!(matches!(ev, Event::Unavailable));
                outages += 1;
                outages < 6
            },
        )
        .await;
        assert!(matches!(stopped, Stopped::Unneeded));
        let at = opened.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(at.len(), 6);
        // Gaps: 100ms, 200ms, 400ms, 800ms, 1.6s, each plus up to 10% jitter.
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        for (i, gap) in gaps.iter().enumerate() {
            let base = BACKOFF_MIN * 2u32.pow(i as u32);
            assert!(
                *gap >= base && *gap <= base.mul_f64(1.1),
                "gap {i}: {gap:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_name_is_not_retried() {
        let calls = AtomicUsize::new(0);
        let stopped = follow::<Never, _, _>(
            "test",
            || {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Err(tonic::Status::invalid_argument("no such name")) }
            },
            |_| true,
        )
        .await;
        assert!(
            matches!(stopped, Stopped::Rejected(s) if s.code() == tonic::Code::InvalidArgument)
        );
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_is_capped() {
        let start = Instant::now();
        let mut last = start;
        let mut n = 0;
        follow::<Never, _, _>(
            "test",
            || async { Err(tonic::Status::unavailable("down")) },
            |_| {
                let now = Instant::now();
                if n > 12 {
                    assert!(now - last <= BACKOFF_MAX.mul_f64(1.1), "{:?}", now - last);
                }
                last = now;
                n += 1;
                n < 20
            },
        )
        .await;
        assert!(start.elapsed() > BACKOFF_MAX * 5);
    }
}
