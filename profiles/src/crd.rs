//! CustomResourceDefinitions for ServiceProfile and TrafficSplit, generated
//! from the types (see `examples/gen-crds.rs`, output in `charts/wisp/crds/`).
//!
//! The raw schemars schema is turned into a Kubernetes *structural* schema:
//! `$ref`s inlined, recursion cut with `x-kubernetes-preserve-unknown-fields`
//! (nested `all`/`any`/`not` matches are checked by `wisp validate`, as
//! Linkerd leaves them to its validating webhook), `Option`s unwrapped, and
//! keywords Kubernetes rejects dropped.

use serde_json::{json, Map, Value};

use crate::schema::{object_schema, ObjectKind};

/// Formats Kubernetes accepts in a CRD schema; schemars' others are dropped.
const K8S_FORMATS: [&str; 4] = ["int32", "int64", "float", "double"];

/// The CRD object of `kind` as JSON.
pub fn crd(kind: ObjectKind) -> Value {
    let (plural, short, storage) = match kind {
        ObjectKind::ServiceProfile => ("serviceprofiles", "sp", "v1alpha2"),
        ObjectKind::TrafficSplit => ("trafficsplits", "ts", "v1alpha1"),
    };
    let versions: Vec<Value> = kind
        .versions()
        .into_iter()
        .map(|version| {
            let raw = object_schema(kind, version).unwrap_or_else(|| json!({}));
            let defs = raw
                .get("$defs")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let mut schema = structural(&raw, &defs, &mut Vec::new());
            if let Some(o) = schema.as_object_mut() {
                // The API server fills apiVersion/kind/metadata itself.
                o.insert("required".into(), json!(["spec"]));
            }
            json!({
                "name": version,
                "served": true,
                "storage": version == storage,
                "schema": {"openAPIV3Schema": schema},
            })
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{plural}.{}", kind.group()),
            "labels": {"app.kubernetes.io/part-of": "wisp"},
        },
        "spec": {
            "group": kind.group(),
            "scope": "Namespaced",
            "names": {
                "kind": kind.as_str(),
                "listKind": format!("{}List", kind.as_str()),
                "plural": plural,
                "singular": kind.as_str().to_lowercase(),
                "shortNames": [short],
            },
            "versions": versions,
        },
    })
}

/// `(file name, YAML text)` of every CRD, as checked in under `charts/wisp/crds/`.
pub fn crd_files() -> Vec<(String, String)> {
    [ObjectKind::ServiceProfile, ObjectKind::TrafficSplit]
        .into_iter()
        .map(|kind| {
            let name = format!("{}.yaml", kind.as_str().to_lowercase());
            let body = serde_yaml_ng::to_string(&crd(kind)).unwrap_or_default();
            let text = format!(
                "# Generated from the wisp-profiles types by\n# `cargo run -p wisp-profiles --example gen-crds`. Do not edit.\n{body}"
            );
            (name, text)
        })
        .collect()
}

fn structural(schema: &Value, defs: &Map<String, Value>, stack: &mut Vec<String>) -> Value {
    let Some(obj) = schema.as_object() else {
        return schema.clone();
    };
    if let Some(name) = obj
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        if stack.iter().any(|s| s == name) {
            return json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        }
        let Some(def) = defs.get(name) else {
            return json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        };
        stack.push(name.to_string());
        let mut out = structural(def, defs, stack);
        stack.pop();
        if let (Some(d), Some(o)) = (obj.get("description"), out.as_object_mut()) {
            o.insert("description".into(), d.clone());
        }
        return out;
    }
    // `Option<Struct>` is `anyOf: [X, {type: null}]`: keep X.
    if let Some(branches) = obj.get("anyOf").and_then(Value::as_array) {
        let non_null: Vec<&Value> = branches
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if non_null.len() == 1 && non_null.len() < branches.len() {
            let mut out = structural(non_null[0], defs, stack);
            if let (Some(d), Some(o)) = (obj.get("description"), out.as_object_mut()) {
                o.insert("description".into(), d.clone());
            }
            return out;
        }
    }
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "$schema" | "$defs" | "title" | "default" | "additionalProperties" => {}
            "format" => {
                if value.as_str().is_some_and(|f| K8S_FORMATS.contains(&f)) {
                    out.insert(key.clone(), value.clone());
                }
            }
            // `type: [string, null]` for `Option<String>`.
            "type" => {
                let t = match value {
                    Value::Array(types) => types
                        .iter()
                        .find(|t| t.as_str() != Some("null"))
                        .cloned()
                        .unwrap_or(Value::Null),
                    other => other.clone(),
                };
                out.insert(key.clone(), t);
            }
            "properties" => {
                let props: Map<String, Value> = value
                    .as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(k, v)| (k.clone(), structural(v, defs, stack)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(key.clone(), structural(value, defs, stack));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(out)
}
