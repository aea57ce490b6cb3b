//! `ServiceProfile` (`linkerd.io/v1alpha2`, and v1alpha1 with the same shape).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Quantity;

/// API group of ServiceProfiles.
pub const SERVICE_PROFILE_GROUP: &str = "linkerd.io";
/// Kind of ServiceProfiles.
pub const SERVICE_PROFILE_KIND: &str = "ServiceProfile";
/// Served versions; the last one is the storage version.
pub const SERVICE_PROFILE_VERSIONS: [&str; 2] = ["v1alpha1", "v1alpha2"];

/// A ServiceProfile object: routes, retry budget and traffic overrides of
/// one service, named `<svc>.<ns>.svc.<cluster-domain>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceProfile {
    /// `linkerd.io/v1alpha2` (or `linkerd.io/v1alpha1`).
    pub api_version: String,
    /// `ServiceProfile`.
    pub kind: String,
    /// Name and namespace of the object.
    pub metadata: ObjectMeta,
    /// The profile itself.
    pub spec: ServiceProfileSpec,
}

/// The `spec` of a ServiceProfile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceProfileSpec {
    /// Routes, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
    /// How many retries the routes marked retryable may add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
    /// Traffic split: authorities and their relative weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dst_overrides: Vec<WeightedDst>,
    /// Controller-internal in Linkerd (overwritten from the Service's
    /// `config.linkerd.io/opaque-ports` annotation); kept for compatibility.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opaque_ports: Vec<String>,
}

/// One route of a profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSpec {
    /// Route name; becomes the `rt_route` metric label.
    pub name: String,
    /// Which requests belong to this route.
    pub condition: RequestMatch,
    /// How responses are classified; first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_classes: Vec<ResponseClass>,
    /// Whether failed requests of this route may be retried.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_retryable: bool,
    /// Route timeout as a Go duration (`250ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// A predicate over requests. Several fields set means all must hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestMatch {
    /// Every one of these matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<RequestMatch>>,
    /// At least one of these matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<RequestMatch>>,
    /// This one does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<RequestMatch>>,
    /// Regular expression over the path (the proxy anchors it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<String>,
    /// HTTP method, case-insensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// A response class: responses matching `condition` are failures or not.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseClass {
    /// Which responses are in the class.
    pub condition: ResponseMatch,
    /// Whether they count as failures.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_failure: bool,
}

/// A predicate over responses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseMatch {
    /// Every one of these matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<ResponseMatch>>,
    /// At least one of these matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<ResponseMatch>>,
    /// This one does not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<ResponseMatch>>,
    /// Status code range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Range>,
}

/// An inclusive status range; 0 means "not set" (as in Linkerd's Go type).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Range {
    /// Lowest status (inclusive).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min: u32,
    /// Highest status (inclusive).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Retry budget of a profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    /// Retries allowed as a ratio of original requests.
    pub retry_ratio: f32,
    /// Retries always allowed per second, on top of the ratio.
    pub min_retries_per_second: u32,
    /// Window over which the ratio is computed (Go duration).
    pub ttl: String,
}

/// A weighted destination of a traffic split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedDst {
    /// `host` or `host:port`.
    pub authority: String,
    /// Relative weight, a Kubernetes quantity.
    pub weight: Quantity,
}

impl ServiceProfile {
    /// A v1alpha2 profile with the given name and namespace.
    pub fn new(name: &str, namespace: &str, spec: ServiceProfileSpec) -> Self {
        ServiceProfile {
            api_version: format!("{SERVICE_PROFILE_GROUP}/v1alpha2"),
            kind: SERVICE_PROFILE_KIND.to_string(),
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..ObjectMeta::default()
            },
            spec,
        }
    }

    /// `metadata.name`, or "" when missing.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace`, or `default` when missing.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }
}
