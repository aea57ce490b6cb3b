//! What the proxy tells about itself: Prometheus metrics with Linkerd's
//! names and labels, and the `process_*` families.

pub(crate) mod metrics;
pub(crate) mod process;
