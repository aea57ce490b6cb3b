//! Live tap: the Tap API's `Observe` (served on the control port,
//! `server.rs`), the requests it asks for
//! (`matcher.rs`), the events tapped requests emit (`event.rs`) and the
//! small entries they wait as in each tap's buffer until the consumer
//! takes them (`queued.rs`).
//!
//! Costs nothing while no tap is open: the request path checks one relaxed
//! atomic (`Taps::is_active`) and does nothing else. While taps are open,
//! at most `registry::MAX_OBSERVERS` `Observe` calls are served at once, each with
//! a buffer of `registry::EVENT_BUFFER` events; a consumer that falls behind loses
//! events (counted in `tap_dropped_events_total`) and never slows traffic.

mod event;
mod matcher;
mod queued;
mod registry;
pub(crate) mod server;

pub(crate) use event::{Origin, TapRequest, TapResponse};
pub(crate) use matcher::RequestView;
pub(crate) use registry::Taps;
