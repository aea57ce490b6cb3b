//! The proxy injection transformation, shared by the mutating admission
//! webhook (`wisp controller`) and `wisp inject` / `wisp uninject`.
//!
//! Pods get exactly what Linkerd's proxy injector gives them — the
//! `linkerd-proxy` container (native sidecar by default), the `linkerd-init`
//! iptables container, the identity volumes, and Linkerd's labels and
//! annotations — with wisp's images (`ghcr.io/wisp-mesh/proxy`,
//! `ghcr.io/wisp-mesh/init`). Modules by concern:
//!
//! - [`config`]: `inject.yaml`, the defaults;
//! - [`decision`]: inject or not, and why not;
//! - `overrides`: `config.linkerd.io/*` annotations → per-pod values;
//! - `render`: the containers and volumes; [`patch`]: RFC 6902 operations;
//! - [`Injector`]: one pod template → a patch;
//! - [`workload`]: offline manifests (YAML streams, Lists, every workload kind);
//! - `uninject`: removing what inject added;
//! - [`webhook`]: the HTTPS AdmissionReview server.

pub mod config;
pub mod decision;
mod injector;
pub mod names;
mod overrides;
mod parse;
pub mod patch;
mod render;
mod uninject;
pub mod webhook;
pub mod workload;

pub use config::{ConfigError, InjectConfig};
pub use decision::{Decision, Origin, SkipReason};
pub use injector::{InjectError, Injector, Outcome, PodInput, VERSION};
pub use render::{RenderError, AWAIT_COMMAND, INIT_COMMAND};
