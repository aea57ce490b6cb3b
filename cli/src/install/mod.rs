//! `wisp install`'s machinery: the embedded `charts/wisp` chart, the Helm
//! values it is rendered with, the Go-template renderer with the Helm and
//! Sprig functions the chart uses, and the certificates generated when the
//! user gives none.

pub(crate) mod certs;
pub(crate) mod chart;
pub(crate) mod cluster;
pub(crate) mod funcs;
pub(crate) mod render;
pub(crate) mod values;
