//! RFC 6902 JSON patches in the order Linkerd's `patch.json` template
//! emits them, and applying them offline.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Escapes one path segment (`~` → `~0`, `/` → `~1`).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// An `add` operation.
pub(crate) fn add(path: String, value: Value) -> Value {
    json!({"op": "add", "path": path, "value": value})
}

/// Whether a JSON value is absent, null, or an empty object/array.
pub(crate) fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// The metadata part of a patch: a root `metadata` (when the template has
/// none), root `annotations`/`labels` maps when missing, then one `add`
/// per key in sorted order.
pub(crate) fn metadata_ops(
    prefix: &str,
    template: &Value,
    annotations: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> Vec<Value> {
    let mut ops = Vec::new();
    let meta = template.get("metadata");
    let meta_empty = match meta {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m
            .iter()
            .all(|(k, v)| k == "annotations" && is_empty(Some(v))),
        Some(_) => false,
    };
    if meta_empty {
        ops.push(add(format!("{prefix}/metadata"), json!({})));
    }
    if !annotations.is_empty() {
        if is_empty(meta.and_then(|m| m.get("annotations"))) {
            ops.push(add(format!("{prefix}/metadata/annotations"), json!({})));
        }
        for (k, v) in annotations {
            ops.push(add(
                format!("{prefix}/metadata/annotations/{}", escape(k)),
                Value::String(v.clone()),
            ));
        }
    }
    if !labels.is_empty() {
        if is_empty(meta.and_then(|m| m.get("labels"))) {
            ops.push(add(format!("{prefix}/metadata/labels"), json!({})));
        }
        for (k, v) in labels {
            ops.push(add(
                format!("{prefix}/metadata/labels/{}", escape(k)),
                Value::String(v.clone()),
            ));
        }
    }
    ops
}

/// Why a patch could not be applied (a bug or a malformed document).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The operations are not a valid RFC 6902 document.
    #[error("invalid JSON patch")]
    Decode(#[source] serde_json::Error),
    /// An operation does not fit the document.
    #[error("cannot apply the JSON patch")]
    Apply(#[source] json_patch::PatchError),
}

/// Applies RFC 6902 `ops` to `doc`.
pub fn apply(doc: &mut Value, ops: &[Value]) -> Result<(), ApplyError> {
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops.to_vec())).map_err(ApplyError::Decode)?;
    json_patch::patch(doc, &patch).map_err(ApplyError::Apply)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn escapes_slashes_and_tildes() {
        assert_eq!(escape("linkerd.io/inject"), "linkerd.io~1inject");
        assert_eq!(escape("a~b/c"), "a~0b~1c");
    }

    #[test]
    fn adds_roots_only_when_missing() {
        let ann = BTreeMap::from([("linkerd.io/x".to_string(), "1".to_string())]);
        let lab = BTreeMap::from([("l".to_string(), "2".to_string())]);
        let bare = json!({"spec": {}});
        let ops = metadata_ops("/spec/template", &bare, &ann, &lab);
        let paths: Vec<&str> = ops.iter().map(|o| o["path"].as_str().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "/spec/template/metadata",
                "/spec/template/metadata/annotations",
                "/spec/template/metadata/annotations/linkerd.io~1x",
                "/spec/template/metadata/labels",
                "/spec/template/metadata/labels/l"
            ]
        );
        let full = json!({"metadata": {"annotations": {"a": "b"}, "labels": {"c": "d"}}});
        let ops = metadata_ops("", &full, &ann, &lab);
        let paths: Vec<&str> = ops.iter().map(|o| o["path"].as_str().unwrap()).collect();
        assert_eq!(
            paths,
            ["/metadata/annotations/linkerd.io~1x", "/metadata/labels/l"]
        );
        let mut doc = full.clone();
        apply(&mut doc, &ops).unwrap();
        assert_eq!(doc["metadata"]["annotations"]["linkerd.io/x"], "1");
    }
}
