//! Profile generators (`wisp profile --template | --open-api | --proto`).

mod openapi;
mod proto;
mod template;

pub use openapi::{from_openapi, path_regex};
pub use proto::{from_proto, ProtoRpc};
pub use template::template;

use crate::types::{RouteSpec, ServiceProfile, ServiceProfileSpec};

/// Why a profile could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The input is neither JSON nor YAML.
    #[error("cannot parse the document: {0}")]
    Parse(String),
    /// The document is not a Swagger 2 / OpenAPI 3 document.
    #[error("not an OpenAPI document: {0}")]
    NotOpenApi(String),
    /// The `.proto` file is malformed.
    #[error("proto line {line}: {message}")]
    Proto {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Rendering YAML failed.
    #[error("cannot render YAML: {0}")]
    Render(#[from] serde_yaml_ng::Error),
}

/// The profile name of a service: `<svc>.<ns>.svc.<cluster_domain>`.
pub fn profile_name(service: &str, namespace: &str, cluster_domain: &str) -> String {
    format!("{service}.{namespace}.svc.{cluster_domain}")
}

/// A v1alpha2 profile for `service` in `namespace` with these routes.
pub fn profile_with_routes(
    service: &str,
    namespace: &str,
    cluster_domain: &str,
    routes: Vec<RouteSpec>,
) -> ServiceProfile {
    ServiceProfile::new(
        &profile_name(service, namespace, cluster_domain),
        namespace,
        ServiceProfileSpec {
            routes,
            ..Default::default()
        },
    )
}

/// Renders a profile as YAML.
pub fn to_yaml(profile: &ServiceProfile) -> Result<String, GenerateError> {
    Ok(serde_yaml_ng::to_string(profile)?)
}
