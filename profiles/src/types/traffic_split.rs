//! `TrafficSplit` (`split.smi-spec.io` v1alpha1 to v1alpha4).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Quantity;

/// API group of TrafficSplits.
pub const TRAFFIC_SPLIT_GROUP: &str = "split.smi-spec.io";
/// Kind of TrafficSplits.
pub const TRAFFIC_SPLIT_KIND: &str = "TrafficSplit";

/// The SMI TrafficSplit versions, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TrafficSplitVersion {
    /// Weights are Kubernetes quantities (`900m`).
    V1alpha1,
    /// Weights are whole numbers.
    V1alpha2,
    /// Adds `matches` (HTTPRouteGroup references, specs v1alpha3).
    V1alpha3,
    /// `matches` reference specs v1alpha4.
    V1alpha4,
}

impl TrafficSplitVersion {
    /// All versions, oldest first; v1alpha1 is the storage version (as in linkerd-smi).
    pub const ALL: [TrafficSplitVersion; 4] = [
        TrafficSplitVersion::V1alpha1,
        TrafficSplitVersion::V1alpha2,
        TrafficSplitVersion::V1alpha3,
        TrafficSplitVersion::V1alpha4,
    ];

    /// The version string (`v1alpha1`).
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficSplitVersion::V1alpha1 => "v1alpha1",
            TrafficSplitVersion::V1alpha2 => "v1alpha2",
            TrafficSplitVersion::V1alpha3 => "v1alpha3",
            TrafficSplitVersion::V1alpha4 => "v1alpha4",
        }
    }

    /// Reads `split.smi-spec.io/<version>`.
    pub fn from_api_version(api_version: &str) -> Option<Self> {
        let version = api_version.strip_prefix("split.smi-spec.io/")?;
        Self::ALL.into_iter().find(|v| v.as_str() == version)
    }

    /// Whether weights are quantities (v1alpha1) rather than whole numbers.
    pub fn quantity_weights(self) -> bool {
        self == TrafficSplitVersion::V1alpha1
    }

    /// Whether `spec.matches` exists in this version.
    pub fn has_matches(self) -> bool {
        self >= TrafficSplitVersion::V1alpha3
    }
}

/// A TrafficSplit object: requests to the apex service `spec.service` are
/// spread over `spec.backends` by weight.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSplit {
    /// `split.smi-spec.io/v1alpha1` … `v1alpha4`.
    pub api_version: String,
    /// `TrafficSplit`.
    pub kind: String,
    /// Name and namespace of the object.
    pub metadata: ObjectMeta,
    /// The split itself.
    pub spec: TrafficSplitSpec,
}

/// The `spec` of a TrafficSplit (the union of all versions).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficSplitSpec {
    /// The apex (root) service clients address.
    pub service: String,
    /// Services that receive the traffic, with weights.
    pub backends: Vec<TrafficSplitBackend>,
    /// v1alpha3+: route groups whose requests are split (others go to the
    /// apex service). Parsed and kept; not represented in profiles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<TrafficSplitMatch>,
}

/// One backend of a split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficSplitBackend {
    /// Service name in the split's namespace.
    pub service: String,
    /// Relative weight: a quantity in v1alpha1, a whole number later.
    pub weight: Quantity,
}

/// A reference to a route group (`kind: HTTPRouteGroup`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficSplitMatch {
    /// Kind of the referenced object, usually `HTTPRouteGroup`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its API group (`specs.smi-spec.io`), optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
}

impl TrafficSplit {
    /// The version named by `apiVersion`, if known.
    pub fn version(&self) -> Option<TrafficSplitVersion> {
        TrafficSplitVersion::from_api_version(&self.api_version)
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
