//! Validation of ServiceProfile and TrafficSplit manifests.
//!
//! Every problem is returned (not only the first), each naming the file,
//! the object and the exact field path. Checking happens in two passes:
//! a strict structural pass against the schema derived from the types
//! (types, required and unknown fields), then the semantic rules on the
//! typed object (regexes, methods, ranges, durations, weights, names).

mod document;
mod problem;
mod service_profile;
mod structure;
mod syntax;
mod traffic_split;

pub use document::{
    parse_documents, parse_service_profile, parse_traffic_split, validate_document,
    validate_document_with, Document, DocumentStatus, Object,
};
pub use problem::{ObjectId, Problem};
pub use syntax::{
    check_regex, is_dns1123_label, is_dns1123_subdomain, is_http_token, split_authority,
    SyntaxError,
};

use crate::types::{ServiceProfile, TrafficSplit};

/// Options of validation.
#[derive(Clone, Debug)]
pub struct ValidateOptions {
    /// Cluster domain profile names must end with (`cluster.local`).
    pub cluster_domain: String,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            cluster_domain: "cluster.local".to_string(),
        }
    }
}

/// Semantic problems of a typed ServiceProfile (e.g. one read by a
/// Kubernetes watcher), tagged with its object id.
pub fn validate_service_profile(sp: &ServiceProfile, opts: &ValidateOptions) -> Vec<Problem> {
    let mut out = problem::Problems::default();
    service_profile::check(sp, opts, &mut out);
    let id = ObjectId {
        kind: sp.kind.clone(),
        namespace: sp.namespace().to_string(),
        name: sp.name().to_string(),
    };
    tag(out.0, None, &id)
}

/// Semantic problems of a typed TrafficSplit, tagged with its object id.
pub fn validate_traffic_split(ts: &TrafficSplit) -> Vec<Problem> {
    let mut out = problem::Problems::default();
    traffic_split::check(ts, &mut out);
    let id = ObjectId {
        kind: ts.kind.clone(),
        namespace: ts.namespace().to_string(),
        name: ts.name().to_string(),
    };
    tag(out.0, None, &id)
}

fn tag(problems: Vec<Problem>, file: Option<&str>, id: &ObjectId) -> Vec<Problem> {
    problems
        .into_iter()
        .map(|mut p| {
            p.file = file.map(str::to_string);
            p.object = Some(id.clone());
            p
        })
        .collect()
}
