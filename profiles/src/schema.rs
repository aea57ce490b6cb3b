//! JSON schemas of the objects, derived from the Rust types with `schemars`.
//!
//! The *raw* schema (full recursion, `$defs`, `additionalProperties: false`)
//! drives the strict structural validation in [`crate::validate`]; the CRDs in
//! [`crate::crd`] are the same schema made Kubernetes-structural.

use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Value};

use crate::types::{ServiceProfileSpec, TrafficSplitSpec, TrafficSplitVersion};

/// The object kinds this crate understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// `linkerd.io` ServiceProfile.
    ServiceProfile,
    /// `split.smi-spec.io` TrafficSplit.
    TrafficSplit,
}

impl ObjectKind {
    /// The `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::ServiceProfile => "ServiceProfile",
            ObjectKind::TrafficSplit => "TrafficSplit",
        }
    }

    /// The API group.
    pub fn group(self) -> &'static str {
        match self {
            ObjectKind::ServiceProfile => "linkerd.io",
            ObjectKind::TrafficSplit => "split.smi-spec.io",
        }
    }

    /// Served versions, in CRD order.
    pub fn versions(self) -> Vec<&'static str> {
        match self {
            ObjectKind::ServiceProfile => crate::types::SERVICE_PROFILE_VERSIONS.to_vec(),
            ObjectKind::TrafficSplit => TrafficSplitVersion::ALL
                .iter()
                .map(|v| v.as_str())
                .collect(),
        }
    }

    /// Recognises a `kind` string.
    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "ServiceProfile" => Some(ObjectKind::ServiceProfile),
            "TrafficSplit" => Some(ObjectKind::TrafficSplit),
            _ => None,
        }
    }
}

fn root_schema_of<T: JsonSchema>() -> Value {
    SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value()
}

/// The raw schema of a whole object (`apiVersion`, `kind`, `metadata`,
/// `spec`) of `kind` at `version`, with the spec's definitions under `$defs`.
/// `None` for a version the kind does not have.
pub fn object_schema(kind: ObjectKind, version: &str) -> Option<Value> {
    let mut spec = match kind {
        ObjectKind::ServiceProfile => {
            if !kind.versions().contains(&version) {
                return None;
            }
            root_schema_of::<ServiceProfileSpec>()
        }
        ObjectKind::TrafficSplit => {
            let v = TrafficSplitVersion::ALL
                .into_iter()
                .find(|v| v.as_str() == version)?;
            let mut spec = root_schema_of::<TrafficSplitSpec>();
            adjust_traffic_split(&mut spec, v);
            spec
        }
    };
    let defs = spec
        .as_object_mut()
        .and_then(|o| o.remove("$defs"))
        .unwrap_or_else(|| json!({}));
    if let Some(o) = spec.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
    }
    Some(json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
        },
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": false,
        "$defs": defs,
    }))
}

/// One Rust type serves every TrafficSplit version; the versions differ in
/// two places: `matches` exists from v1alpha3 on, and weights are
/// quantities (int-or-string) in v1alpha1 but whole numbers afterwards.
fn adjust_traffic_split(spec: &mut Value, version: TrafficSplitVersion) {
    if !version.has_matches() {
        if let Some(props) = spec
            .pointer_mut("/properties")
            .and_then(Value::as_object_mut)
        {
            props.remove("matches");
        }
    }
    if !version.quantity_weights() {
        if let Some(weight) = spec.pointer_mut("/$defs/TrafficSplitBackend/properties/weight") {
            let description = weight.get("description").cloned();
            *weight = json!({"type": "integer"});
            if let (Some(d), Some(o)) = (description, weight.as_object_mut()) {
                o.insert("description".into(), d);
            }
        }
    }
}
