//! Semantic rules of TrafficSplits.

use super::problem::{field, index, Problems};
use super::syntax::is_dns1123_label;
use crate::types::{TrafficSplit, TrafficSplitVersion};

/// Checks every rule on a typed TrafficSplit.
pub(crate) fn check(ts: &TrafficSplit, out: &mut Problems) {
    let Some(version) = ts.version() else {
        return out.push(
            "apiVersion",
            format!(
                "unsupported apiVersion {:?} (expected split.smi-spec.io/v1alpha1..v1alpha4)",
                ts.api_version
            ),
        );
    };
    if ts.metadata.name.as_deref().unwrap_or_default().is_empty() {
        out.push("metadata.name", "missing required field");
    }
    service_name(&ts.spec.service, "spec.service", out);
    if ts.spec.backends.is_empty() {
        out.push(
            "spec.backends",
            "a traffic split must have at least one backend",
        );
    }
    let mut total: i64 = 0;
    let mut all_readable = true;
    for (i, backend) in ts.spec.backends.iter().enumerate() {
        let path = index("spec.backends", i);
        service_name(&backend.service, &field(&path, "service"), out);
        let weight_path = field(&path, "weight");
        let weight = if version.quantity_weights() {
            backend.weight.milli_value().map_err(|e| e.to_string())
        } else {
            backend.weight.as_integer().ok_or_else(|| {
                format!(
                    "{} is not a whole number (required since v1alpha2)",
                    backend.weight
                )
            })
        };
        match weight {
            Err(e) => {
                all_readable = false;
                out.push(weight_path, e);
            }
            Ok(n) if n < 0 => {
                all_readable = false;
                out.push(
                    weight_path,
                    format!("{} must not be negative", backend.weight),
                );
            }
            Ok(n) => total = total.saturating_add(n),
        }
    }
    if all_readable && !ts.spec.backends.is_empty() && total == 0 {
        out.push(
            "spec.backends",
            "all weights are zero: no backend would receive traffic",
        );
    }
    if !ts.spec.matches.is_empty() && version < TrafficSplitVersion::V1alpha3 {
        out.push("spec.matches", format!("not part of {}", version.as_str()));
    }
    for (i, m) in ts.spec.matches.iter().enumerate() {
        let path = index("spec.matches", i);
        if m.kind.is_empty() {
            out.push(field(&path, "kind"), "missing required field");
        }
        if m.name.is_empty() {
            out.push(field(&path, "name"), "missing required field");
        }
    }
}

fn service_name(name: &str, path: &str, out: &mut Problems) {
    if name.is_empty() {
        out.push(path, "missing required field");
    } else if !is_dns1123_label(name) {
        out.push(path, format!("{name:?} is not a valid service name"));
    }
}
