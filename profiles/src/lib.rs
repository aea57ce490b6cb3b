//! ServiceProfile and TrafficSplit support for wisp.
//!
//! - [`types`]: the objects (`linkerd.io` ServiceProfile v1alpha1/v1alpha2,
//!   `split.smi-spec.io` TrafficSplit v1alpha1..v1alpha4), with serde.
//! - [`validate`]: strict validation that reports every problem with its
//!   file, object and field path.
//! - [`translate`]: the proxy API's `DestinationProfile` for a service, its
//!   profile and the TrafficSplits whose apex it is.
//! - [`generate`]: profiles from OpenAPI documents, `.proto` files, or a
//!   commented template.
//! - [`schema`] and [`crd`]: JSON schemas and CRDs derived from the types.

pub mod crd;
pub mod generate;
pub mod schema;
pub mod translate;
pub mod types;
pub mod validate;

pub use translate::{destination_profile, ServiceRef};
pub use types::{ServiceProfile, TrafficSplit};
pub use validate::{
    parse_documents, validate_document, Document, DocumentStatus, Object, ObjectId, Problem,
    ValidateOptions,
};
