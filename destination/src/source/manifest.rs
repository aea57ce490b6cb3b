//! Parsing of Kubernetes-style YAML manifests into index objects.

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use wisp_profiles::validate::{parse_service_profile, parse_traffic_split};
use wisp_profiles::{ObjectId, Problem, ValidateOptions};

use crate::index::{Kind, Object, ObjectKey};

/// A manifest file that could not be read as YAML at all.
#[derive(Debug, thiserror::Error)]
#[error("invalid YAML: {0}")]
pub struct ManifestError(#[from] serde_yaml_ng::Error);

/// One document of a manifest file.
#[derive(Debug)]
pub enum Document {
    /// A valid object of a kind the index stores.
    Object(Object),
    /// An object of a known kind that failed to deserialize.
    Invalid {
        /// Kind of the object.
        kind: Kind,
        /// Its namespace/name as far as it could be read.
        key: ObjectKey,
        /// What was wrong, including the offending field. For
        /// ServiceProfiles and TrafficSplits, every problem as
        /// `FILE: KIND NS/NAME: PATH: MESSAGE`, separated by `; `.
        error: String,
    },
    /// A document of a kind the index does not store (or an empty document).
    Skipped {
        /// `apiVersion` of the document.
        api_version: String,
        /// `kind` of the document.
        kind: String,
    },
}

/// Parses every `---`-separated document of `text`, with the default cluster
/// domain and no file name.
///
/// Fails only if the text is not YAML at all; objects that are YAML but not
/// valid Kubernetes objects come back as [`Document::Invalid`].
pub fn parse_documents(text: &str) -> Result<Vec<Document>, ManifestError> {
    parse_documents_with(text, None, &ValidateOptions::default())
}

/// [`parse_documents`] for the file `file` (named in problems), checking
/// ServiceProfiles and TrafficSplits with the `wisp-profiles` validator
/// (`opts` gives the cluster domain profile names must end with).
pub fn parse_documents_with(
    text: &str,
    file: Option<&str>,
    opts: &ValidateOptions,
) -> Result<Vec<Document>, ManifestError> {
    let mut values = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        values.push(serde_yaml_ng::Value::deserialize(doc)?);
    }
    let mut docs = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        if value.is_null() {
            continue;
        }
        let api_version = str_field(&value, &["apiVersion"]);
        let kind_name = str_field(&value, &["kind"]);
        let kind = match (api_version.as_str(), kind_name.as_str()) {
            ("v1", "Service") => Kind::Service,
            ("v1", "Pod") => Kind::Pod,
            ("discovery.k8s.io/v1", "EndpointSlice") => Kind::EndpointSlice,
            (v, "ServiceProfile") if v.starts_with("linkerd.io/") => Kind::ServiceProfile,
            (v, "TrafficSplit") if v.starts_with("split.smi-spec.io/") => Kind::TrafficSplit,
            _ => {
                docs.push(Document::Skipped {
                    api_version,
                    kind: kind_name,
                });
                continue;
            }
        };
        let key = ObjectKey::new(
            non_empty(str_field(&value, &["metadata", "namespace"])).unwrap_or("default".into()),
            str_field(&value, &["metadata", "name"]),
        );
        let typed = match kind {
            Kind::ServiceProfile | Kind::TrafficSplit => {
                profile_object(kind, &value, file, opts, &key)
            }
            // Deserialize the typed object from the document itself (not from
            // the `Value`) so the error names the offending field path and line.
            _ => match serde_yaml_ng::Deserializer::from_str(text).nth(i) {
                Some(doc) => typed_object(kind, doc),
                None => Err("document vanished while parsing".to_string()),
            },
        };
        match typed {
            Ok(_) if key.name.is_empty() => docs.push(Document::Invalid {
                kind,
                key,
                error: "metadata.name: missing".to_string(),
            }),
            Ok(object) => docs.push(Document::Object(object)),
            Err(error) => docs.push(Document::Invalid { kind, key, error }),
        }
    }
    Ok(docs)
}

/// A ServiceProfile or TrafficSplit through the profiles crate's strict
/// parser and validator; the error lists every problem.
fn profile_object(
    kind: Kind,
    value: &serde_yaml_ng::Value,
    file: Option<&str>,
    opts: &ValidateOptions,
    key: &ObjectKey,
) -> Result<Object, String> {
    let result = match kind {
        Kind::ServiceProfile => {
            parse_service_profile(value, opts).map(|sp| Object::ServiceProfile(Box::new(sp)))
        }
        _ => parse_traffic_split(value).map(|ts| Object::TrafficSplit(Box::new(ts))),
    };
    result.map_err(|problems| {
        let id = ObjectId {
            kind: kind.to_string(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        };
        problems
            .into_iter()
            .map(|p| {
                Problem {
                    file: file.map(str::to_string),
                    object: Some(id.clone()),
                    ..p
                }
                .to_string()
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
}

fn typed_object(kind: Kind, doc: serde_yaml_ng::Deserializer<'_>) -> Result<Object, String> {
    fn de<T: DeserializeOwned>(doc: serde_yaml_ng::Deserializer<'_>) -> Result<Box<T>, String> {
        T::deserialize(doc).map(Box::new).map_err(|e| e.to_string())
    }
    Ok(match kind {
        Kind::Service => Object::Service(de::<Service>(doc)?),
        Kind::EndpointSlice => Object::EndpointSlice(de::<EndpointSlice>(doc)?),
        Kind::Pod => Object::Pod(de::<Pod>(doc)?),
        Kind::ServiceProfile | Kind::TrafficSplit => {
            return Err(format!("{kind} is not a core object"))
        }
    })
}

fn str_field(value: &serde_yaml_ng::Value, path: &[&str]) -> String {
    let mut v = value;
    for p in path {
        match v.get(p) {
            Some(next) => v = next,
            None => return String::new(),
        }
    }
    v.as_str().unwrap_or_default().to_string()
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_field_is_named() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{name: http, port: notanumber}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
        let docs = parse_documents(text).expect("yaml");
        assert_eq!(docs.len(), 2);
        match &docs[0] {
            Document::Invalid { error, key, .. } => {
                assert_eq!(key.name, "web");
                assert!(error.contains("spec.ports"), "{error}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(docs[1], Document::Skipped { .. }));
    }

    #[test]
    fn invalid_profile_names_file_object_and_field() {
        let text = "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {name: web.default.svc.cluster.local, namespace: default}\nspec:\n  routes:\n  - name: a\n    condition: {pathRegex: \"/a(\"}\n---\napiVersion: split.smi-spec.io/v1alpha1\nkind: TrafficSplit\nmetadata: {name: s}\nspec: {service: web, backends: [{service: web-v1, weight: 900m}]}\n";
        let docs = parse_documents_with(text, Some("m/sp.yaml"), &ValidateOptions::default())
            .expect("yaml");
        match &docs[0] {
            Document::Invalid { kind, key, error } => {
                assert_eq!(*kind, Kind::ServiceProfile);
                assert_eq!(key.name, "web.default.svc.cluster.local");
                assert!(
                    error.starts_with("m/sp.yaml: ServiceProfile default/web.default.svc.cluster.local: spec.routes[0].condition.pathRegex: "),
                    "{error}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        match &docs[1] {
            Document::Object(Object::TrafficSplit(ts)) => assert_eq!(ts.spec.service, "web"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn broken_yaml_fails() {
        assert!(parse_documents("a: [1, 2\n").is_err());
    }
}
