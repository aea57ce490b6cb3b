//! The open taps: at most [`MAX_OBSERVERS`] `Observe` calls, each with its
//! compiled match, its remaining limit and a bounded event buffer.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use linkerd2_proxy_api::tap::{observe_request, ObserveRequest};
use tokio::sync::mpsc;

use crate::tap::matcher::{self, Matcher, RequestView};
use crate::tap::queued::Queued;

/// `Observe` calls served at once at most.
pub(crate) const MAX_OBSERVERS: usize = 64;

/// Events buffered per `Observe` call (as linkerd2-proxy).
pub(crate) const EVENT_BUFFER: usize = 400;

/// What one `Observe` call sends its events into.
type Events = mpsc::Sender<Queued>;

/// One open `Observe` call.
pub(crate) struct Subscription {
    /// `StreamId.base`: this call's number.
    pub(super) base: u32,
    matcher: Matcher,
    /// Whether events carry headers and trailers.
    pub(super) headers: bool,
    /// Requests still to be tapped (`limit` minus those tapped).
    remaining: AtomicU32,
    /// The next `StreamId.stream`.
    pub(super) next_stream: AtomicU64,
    events: Events,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// Sends an event, or counts it as dropped when the consumer is behind.
    pub(super) fn send(&self, event: Queued) {
        if self.events.try_send(event).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }
}

/// The open taps of this proxy.
#[derive(Default)]
pub(crate) struct Taps {
    /// How many subscriptions are registered (the request path's only check).
    active: AtomicUsize,
    subscriptions: Mutex<Vec<Arc<Subscription>>>,
    next_base: AtomicU32,
    dropped: Arc<AtomicU64>,
}

/// Why an `Observe` call is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ObserveError {
    /// `limit` is 0.
    #[error("limit must be positive")]
    Limit,
    /// The match cannot be used.
    #[error("invalid match")]
    Match(#[from] matcher::InvalidMatch),
    /// Too many taps are open.
    #[error("too many taps are open ({MAX_OBSERVERS})")]
    TooMany,
}

impl From<ObserveError> for tonic::Status {
    fn from(e: ObserveError) -> Self {
        let msg = wisp_common::error::chain(&e);
        match e {
            ObserveError::TooMany => tonic::Status::resource_exhausted(msg),
            _ => tonic::Status::invalid_argument(msg),
        }
    }
}

impl Taps {
    /// No taps yet.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Taps::default())
    }

    /// Whether any tap is open: one relaxed load, the request path's only
    /// cost while nobody taps.
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Relaxed) > 0
    }

    /// How many taps are open.
    pub(crate) fn open(&self) -> usize {
        self.active.load(Relaxed)
    }

    /// Opens a tap; its events arrive on the returned receiver, which ends
    /// once `limit` requests have been tapped and have completed.
    pub(crate) fn observe(
        &self,
        req: ObserveRequest,
    ) -> Result<(u32, mpsc::Receiver<Queued>), ObserveError> {
        if req.limit == 0 {
            return Err(ObserveError::Limit);
        }
        let matcher = Matcher::from_proto(req.r#match)?;
        let headers = matches!(
            req.extract.and_then(|e| e.extract),
            Some(observe_request::extract::Extract::Http(
                observe_request::extract::Http {
                    extract: Some(observe_request::extract::http::Extract::Headers(_))
                }
            ))
        );
        let mut subs = self
            .subscriptions
            .lock()
            .map_err(|_| ObserveError::TooMany)?;
        subs.retain(|s| !s.events.is_closed());
        if subs.len() >= MAX_OBSERVERS {
            return Err(ObserveError::TooMany);
        }
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let base = self.next_base.fetch_add(1, Relaxed);
        subs.push(Arc::new(Subscription {
            base,
            matcher,
            headers,
            remaining: AtomicU32::new(req.limit),
            next_stream: AtomicU64::new(0),
            events: tx,
            dropped: self.dropped.clone(),
        }));
        self.active.store(subs.len(), Relaxed);
        Ok((base, rx))
    }

    /// Closes the tap `base` (its consumer went away).
    pub(crate) fn close(&self, base: u32) {
        if let Ok(mut subs) = self.subscriptions.lock() {
            subs.retain(|s| s.base != base && !s.events.is_closed());
            self.active.store(subs.len(), Relaxed);
        }
    }

    /// The taps that want this request; each counts it against its limit.
    pub(crate) fn select(&self, view: &RequestView<'_>) -> Vec<Arc<Subscription>> {
        let mut chosen = Vec::new();
        {
            let Ok(mut subs) = self.subscriptions.lock() else {
                return chosen;
            };
            for s in subs.iter() {
                if s.events.is_closed() || !s.matcher.matches(view) {
                    continue;
                }
                if s.remaining
                    .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    chosen.push(s.clone());
                }
            }
            if !chosen.is_empty() {
                // A tap that has all its requests stops matching; its stream
                // ends when they complete (the last `Arc` goes).
                subs.retain(|s| s.remaining.load(Relaxed) > 0 && !s.events.is_closed());
                self.active.store(subs.len(), Relaxed);
            }
        }
        chosen
    }

    /// Appends the tap families to a Prometheus text page.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP tap_observers Open tap Observe calls.\n# TYPE tap_observers gauge\ntap_observers {}",
            self.active.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP tap_dropped_events_total Tap events dropped because a consumer fell behind.\n# TYPE tap_dropped_events_total counter\ntap_dropped_events_total {}",
            self.dropped.load(Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_limit_is_refused() {
        let taps = Taps::new();
        let err = taps.observe(ObserveRequest::default()).err();
        assert!(matches!(err, Some(ObserveError::Limit)));
        let status = tonic::Status::from(ObserveError::Limit);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "limit must be positive");
        assert!(!taps.is_active());
    }

    #[test]
    fn taps_are_bounded_and_closed() {
        let taps = Taps::new();
        let req = ObserveRequest {
            limit: 1,
            ..Default::default()
        };
        let mut open = Vec::new();
        for _ in 0..MAX_OBSERVERS {
            open.push(taps.observe(req.clone()).expect("room"));
        }
        assert!(taps.is_active());
        assert!(matches!(
            taps.observe(req.clone()),
            Err(ObserveError::TooMany)
        ));
        // A consumer that goes away frees its place.
        let (base, rx) = open.pop().expect("one");
        drop(rx);
        taps.close(base);
        assert!(taps.observe(req).is_ok());
    }
}
