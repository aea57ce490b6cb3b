//! Multi-document YAML: split, dispatch on `apiVersion`/`kind`, check.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::problem::{ObjectId, Problem, Problems};
use super::{service_profile, structure, tag, traffic_split, ValidateOptions};
use crate::schema::{object_schema, ObjectKind};
use crate::types::{ServiceProfile, ServiceProfileSpec, TrafficSplit, TrafficSplitSpec};

/// A ServiceProfile or a TrafficSplit.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// A ServiceProfile.
    ServiceProfile(ServiceProfile),
    /// A TrafficSplit.
    TrafficSplit(TrafficSplit),
}

/// What became of one document.
#[derive(Clone, Debug, PartialEq)]
pub enum DocumentStatus {
    /// A known kind without problems.
    Valid(Box<Object>),
    /// A known kind with problems (never empty).
    Invalid(Vec<Problem>),
    /// A kind this crate does not know (left to the caller).
    Unknown,
}

/// One non-empty document of a YAML stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Position among the non-empty documents, from 0.
    pub index: usize,
    /// `apiVersion` as written ("" when missing).
    pub api_version: String,
    /// Kind, namespace (default `default`) and name as written.
    pub id: ObjectId,
    /// The document as YAML.
    pub value: Value,
    /// The outcome.
    pub status: DocumentStatus,
}

/// Splits `text` into documents and checks those of known kinds.
/// Fails (with one problem) only when the text is not YAML.
pub fn parse_documents(
    text: &str,
    file: Option<&str>,
    opts: &ValidateOptions,
) -> Result<Vec<Document>, Box<Problem>> {
    let mut docs = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(de).map_err(|e| {
            Box::new(Problem {
                file: file.map(str::to_string),
                object: None,
                path: String::new(),
                message: format!("invalid YAML: {e}"),
            })
        })?;
        if value.is_null() {
            continue;
        }
        let str_at = |keys: &[&str]| {
            let mut v = &value;
            for k in keys {
                match v.get(k) {
                    Some(next) => v = next,
                    None => return String::new(),
                }
            }
            v.as_str().unwrap_or_default().to_string()
        };
        let api_version = str_at(&["apiVersion"]);
        let namespace = str_at(&["metadata", "namespace"]);
        let id = ObjectId {
            kind: str_at(&["kind"]),
            namespace: if namespace.is_empty() {
                "default".into()
            } else {
                namespace
            },
            name: str_at(&["metadata", "name"]),
        };
        let status = match ObjectKind::from_kind(&id.kind) {
            None if value.is_mapping() => DocumentStatus::Unknown,
            None => DocumentStatus::Invalid(vec![Problem {
                file: file.map(str::to_string),
                object: None,
                path: String::new(),
                message: format!("document {} is not a map", docs.len() + 1),
            }]),
            Some(ObjectKind::ServiceProfile) => match parse_service_profile(&value, opts) {
                Ok(sp) => DocumentStatus::Valid(Box::new(Object::ServiceProfile(sp))),
                Err(problems) => DocumentStatus::Invalid(tag(problems, file, &id)),
            },
            Some(ObjectKind::TrafficSplit) => match parse_traffic_split(&value) {
                Ok(ts) => DocumentStatus::Valid(Box::new(Object::TrafficSplit(ts))),
                Err(problems) => DocumentStatus::Invalid(tag(problems, file, &id)),
            },
        };
        docs.push(Document {
            index: docs.len(),
            api_version,
            id,
            value,
            status,
        });
    }
    Ok(docs)
}

/// Every problem of the ServiceProfiles and TrafficSplits in a
/// multi-document YAML text (other kinds are ignored), with the default
/// cluster domain `cluster.local`.
pub fn validate_document(text: &str, file: Option<&str>) -> Vec<Problem> {
    validate_document_with(text, file, &ValidateOptions::default())
}

/// [`validate_document`] with options.
pub fn validate_document_with(
    text: &str,
    file: Option<&str>,
    opts: &ValidateOptions,
) -> Vec<Problem> {
    match parse_documents(text, file, opts) {
        Err(problem) => vec![*problem],
        Ok(docs) => docs
            .into_iter()
            .flat_map(|d| match d.status {
                DocumentStatus::Invalid(problems) => problems,
                _ => Vec::new(),
            })
            .collect(),
    }
}

/// Reads and checks one ServiceProfile document. Problems carry paths but
/// no file or object.
pub fn parse_service_profile(
    value: &Value,
    opts: &ValidateOptions,
) -> Result<ServiceProfile, Vec<Problem>> {
    let mut out = Problems::default();
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let version = api_version.strip_prefix("linkerd.io/").unwrap_or("");
    let schema = object_schema(ObjectKind::ServiceProfile, version).or_else(|| {
        out.push("apiVersion", format!("unsupported apiVersion {api_version:?} (expected linkerd.io/v1alpha2 or linkerd.io/v1alpha1)"));
        object_schema(ObjectKind::ServiceProfile, "v1alpha2")
    });
    let (metadata, spec, repaired_paths) =
        typed_parts::<ServiceProfileSpec>(schema, value, &mut out);
    let sp = ServiceProfile {
        api_version: api_version.to_string(),
        kind: "ServiceProfile".into(),
        metadata,
        spec,
    };
    let mut semantic = Problems::default();
    service_profile::check(&sp, opts, &mut semantic);
    finish(sp, out, semantic, &repaired_paths)
}

/// Reads and checks one TrafficSplit document (any of v1alpha1..v1alpha4).
pub fn parse_traffic_split(value: &Value) -> Result<TrafficSplit, Vec<Problem>> {
    let mut out = Problems::default();
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let version = api_version.strip_prefix("split.smi-spec.io/").unwrap_or("");
    // An unknown version is reported by the semantic rules.
    let schema = object_schema(ObjectKind::TrafficSplit, version)
        .or_else(|| object_schema(ObjectKind::TrafficSplit, "v1alpha4"));
    let (metadata, spec, repaired_paths) = typed_parts::<TrafficSplitSpec>(schema, value, &mut out);
    let ts = TrafficSplit {
        api_version: api_version.to_string(),
        kind: "TrafficSplit".into(),
        metadata,
        spec,
    };
    let mut semantic = Problems::default();
    traffic_split::check(&ts, &mut semantic);
    finish(ts, out, semantic, &repaired_paths)
}

/// Structural check, then the typed metadata and spec of the repaired value.
fn typed_parts<S: DeserializeOwned + Default>(
    schema: Option<serde_json::Value>,
    value: &Value,
    out: &mut Problems,
) -> (ObjectMeta, S, Vec<String>) {
    let (repaired, repaired_paths) = match schema {
        Some(schema) => {
            let checked = structure::check(&schema, value, out);
            (checked.repaired, checked.repaired_paths)
        }
        None => (value.clone(), Vec::new()),
    };
    let metadata = match repaired.get("metadata").cloned() {
        Some(m) => ObjectMeta::deserialize(m).unwrap_or_else(|e| {
            out.push("metadata", e.to_string());
            ObjectMeta::default()
        }),
        None => ObjectMeta::default(),
    };
    let spec = match repaired.get("spec").cloned() {
        Some(s) => S::deserialize(s).unwrap_or_else(|e| {
            out.push("spec", e.to_string());
            S::default()
        }),
        None => S::default(),
    };
    (metadata, spec, repaired_paths)
}

fn finish<T>(
    object: T,
    mut out: Problems,
    semantic: Problems,
    repaired: &[String],
) -> Result<T, Vec<Problem>> {
    // `a` is `b` or lies under it.
    let under = |a: &str, b: &str| {
        a == b
            || a.strip_prefix(b)
                .is_some_and(|rest| rest.starts_with(['.', '[']))
    };
    // A semantic problem in or around an invented value is a consequence of
    // the structural problem already reported there.
    let is_consequence = |path: &str| repaired.iter().any(|r| under(path, r) || under(r, path));
    out.0
        .extend(semantic.0.into_iter().filter(|p| !is_consequence(&p.path)));
    if out.0.is_empty() {
        Ok(object)
    } else {
        Err(out.0)
    }
}
