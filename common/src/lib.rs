//! Small helpers shared by the wisp crates, one per job, so that the proxy,
//! the control plane, the CLI, the bench and the tests agree:
//!
//! * [`duration`]: the proxy's, Go's and the command line's duration syntaxes;
//! * [`prometheus`]: samples of the Prometheus text exposition format;
//! * [`signal`]: waiting for SIGTERM or SIGINT;
//! * [`backoff`]: jittered exponential backoff between retries;
//! * [`procfs`]: process and machine statistics from `/proc`;
//! * [`error`]: an error and its causes on one line;
//! * [`json`]: writing small JSON documents without serde;
//! * [`yaml`]: cutting a YAML stream into its documents' text.
//!
//! The proxy depends on this crate, so it stays a leaf with few
//! dependencies (`tokio`, `fastrand`, `thiserror` and rustix's `param`
//! module).

pub mod backoff;
pub mod duration;
pub mod error;
pub mod json;
pub mod procfs;
pub mod prometheus;
pub mod signal;
pub mod yaml;
