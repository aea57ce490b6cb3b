//! Removing what injection added: the `linkerd-proxy`, `linkerd-init` and
//! `linkerd-debug` containers, the three identity/iptables volumes, and the
//! `linkerd.io/*` labels and annotations (except `linkerd.io/inject:
//! disabled` and `linkerd.io/inject: ingress`, which are the user's
//! decisions; Linkerd keeps only the former, which loses ingress mode on
//! re-injection). Maps and lists left empty by the
//! removal are dropped, so inject followed by uninject gives back the
//! original template. `config.linkerd.io/*` annotations stay: they are
//! configuration, not injection output. Control-plane pods keep their
//! metadata, as with Linkerd.

use serde_json::{Map, Value};

use crate::names;

/// Drops `key` from `obj` when it is an empty map or list.
fn drop_if_empty(obj: &mut Map<String, Value>, key: &str) {
    let empty = match obj.get(key) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    if empty {
        obj.remove(key);
    }
}

/// Removes the injected containers and volumes from a pod spec; true when
/// something was removed.
fn spec(spec: &mut Map<String, Value>) -> bool {
    let mut removed = false;
    let name_of = |c: &Value| {
        c.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    for (key, names) in [
        (
            "initContainers",
            &[names::INIT_CONTAINER, names::PROXY_CONTAINER][..],
        ),
        (
            "containers",
            &[names::PROXY_CONTAINER, names::DEBUG_CONTAINER][..],
        ),
        (
            "volumes",
            &[
                names::VOLUME_XTABLES,
                names::VOLUME_END_ENTITY,
                names::VOLUME_TOKEN,
            ][..],
        ),
    ] {
        if let Some(Value::Array(items)) = spec.get_mut(key) {
            let before = items.len();
            items.retain(|c| !names.contains(&name_of(c).as_str()));
            if items.len() != before {
                removed = true;
                if key != "containers" {
                    drop_if_empty(spec, key);
                }
            }
        }
    }
    removed
}

/// Strips `linkerd.io/*` labels and annotations from an object's metadata;
/// true when something was removed.
pub fn metadata(meta: &mut Map<String, Value>) -> bool {
    let control_plane = meta
        .get("labels")
        .and_then(|l| l.get(names::LABEL_CONTROL_PLANE_COMPONENT))
        .is_some();
    if control_plane {
        return false;
    }
    let mut removed = false;
    if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
        let before = ann.len();
        ann.retain(|k, v| {
            !k.starts_with(names::LINKERD_PREFIX)
                || (k == names::ANN_INJECT
                    && matches!(v.as_str(), Some("disabled") | Some("ingress")))
        });
        if ann.len() != before {
            removed = true;
            drop_if_empty(meta, "annotations");
        }
    }
    if let Some(Value::Object(labels)) = meta.get_mut("labels") {
        let before = labels.len();
        labels.retain(|k, _| !k.starts_with(names::LINKERD_PREFIX));
        if labels.len() != before {
            removed = true;
            drop_if_empty(meta, "labels");
        }
    }
    removed
}

/// Uninjects a pod template (`metadata` + `spec`) in place; true when
/// something was removed.
pub fn template(template: &mut Value) -> bool {
    let Some(obj) = template.as_object_mut() else {
        return false;
    };
    let mut removed = false;
    if let Some(Value::Object(s)) = obj.get_mut("spec") {
        removed |= spec(s);
    }
    if let Some(Value::Object(m)) = obj.get_mut("metadata") {
        if metadata(m) {
            removed = true;
            drop_if_empty(obj, "metadata");
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_user_metadata_and_disabled() {
        let mut t = json!({
            "metadata": {"annotations": {"linkerd.io/inject": "disabled", "linkerd.io/created-by": "x",
                                          "config.linkerd.io/proxy-uid": "1"},
                         "labels": {"app": "a", "linkerd.io/workload-ns": "n"}},
            "spec": {"containers": [{"name": "linkerd-proxy"}, {"name": "app"}],
                     "initContainers": [{"name": "linkerd-init"}],
                     "volumes": [{"name": "data"}, {"name": "linkerd-identity-token"}]}
        });
        assert!(template(&mut t));
        assert_eq!(
            t,
            json!({
                "metadata": {"annotations": {"linkerd.io/inject": "disabled", "config.linkerd.io/proxy-uid": "1"},
                             "labels": {"app": "a"}},
                "spec": {"containers": [{"name": "app"}], "volumes": [{"name": "data"}]}
            })
        );
        assert!(!template(&mut t));
    }
}
