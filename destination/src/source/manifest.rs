//! Parsing of Kubernetes-style YAML manifests into index objects.
//!
//! An object of a kind the index stores is either accepted whole or comes
//! back as [`Document::Invalid`] naming the offending fields; the
//! directory source then skips it whole and keeps its last good version.
//! An EndpointSlice with one unusable address is treated like a Service
//! with one unusable port: the whole slice is invalid (not just the
//! address), so the served endpoint set is never a silently trimmed one.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use wisp_profiles::validate::{parse_service_profile, parse_traffic_split};
use wisp_profiles::{ObjectId, Problem, ValidateOptions};

use crate::index::{EndpointSliceSummary, Kind, Object, ObjectKey, PodSummary};

/// A manifest file that could not be read as YAML at all.
#[derive(Debug, thiserror::Error)]
#[error("invalid YAML: {0}")]
pub struct ManifestError(#[from] serde_yaml_ng::Error);

/// Why an object of a kind the index stores was not accepted; the
/// message names the offending field.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The document does not deserialize as the typed Kubernetes object
    /// (the message gives the field path and line).
    #[error("{0}")]
    Deserialize(#[source] serde_yaml_ng::Error),
    /// ServiceProfile or TrafficSplit problems from the `wisp-profiles`
    /// validator, each as `FILE: KIND NS/NAME: PATH: MESSAGE`, shown
    /// separated by `; `.
    #[error("{}", join(.0))]
    Problems(Vec<String>),
    /// Fields whose values the index cannot use, each as `PATH: MESSAGE`
    /// (e.g. `endpoints[0].addresses[1]: "999.1.1.1" is not an IP
    /// address`), shown separated by `; `.
    #[error("{}", join(.0))]
    Fields(Vec<String>),
    /// An object from the Kubernetes API does not deserialize as the typed
    /// Kubernetes object (the message gives the field).
    #[error("{0}")]
    Json(#[source] serde_json::Error),
    /// `metadata.name` is missing.
    #[error("metadata.name: missing")]
    MissingName,
    /// The document could not be found again for typed parsing.
    #[error("document vanished while parsing")]
    Vanished,
    /// A ServiceProfile or TrafficSplit was handed to the core-object
    /// parser (a bug: they go through `wisp-profiles`).
    #[error("{0} is not a core object")]
    NotCore(Kind),
}

impl ObjectError {
    /// Every problem, one line each (the `; `-separated parts of the
    /// message).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ObjectError::Problems(lines) | ObjectError::Fields(lines) => lines.clone(),
            other => vec![other.to_string()],
        }
    }
}

fn join(lines: &[String]) -> String {
    lines.join("; ")
}

/// One document of a manifest file.
#[derive(Debug)]
pub enum Document {
    /// A valid object of a kind the index stores.
    Object(Object),
    /// An object of a known kind that is not valid.
    Invalid {
        /// Kind of the object.
        kind: Kind,
        /// Its namespace/name as far as it could be read.
        key: ObjectKey,
        /// What was wrong, including the offending field.
        error: ObjectError,
    },
    /// A document of a kind the index does not store: see [`indexed_kind`].
    Skipped {
        /// `apiVersion` of the document.
        api_version: String,
        /// `kind` of the document.
        kind: String,
    },
}

/// The index kind of `(apiVersion, kind)`, or `None` for a kind wisp does
/// not act on: `v1` Service and Pod, `discovery.k8s.io/v1` EndpointSlice,
/// `linkerd.io/*` ServiceProfile and `split.smi-spec.io/*` TrafficSplit.
pub fn indexed_kind(api_version: &str, kind: &str) -> Option<Kind> {
    match (api_version, kind) {
        ("v1", "Service") => Some(Kind::Service),
        ("v1", "Pod") => Some(Kind::Pod),
        ("discovery.k8s.io/v1", "EndpointSlice") => Some(Kind::EndpointSlice),
        (v, "ServiceProfile") if v.starts_with("linkerd.io/") => Some(Kind::ServiceProfile),
        (v, "TrafficSplit") if v.starts_with("split.smi-spec.io/") => Some(Kind::TrafficSplit),
        _ => None,
    }
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
        let Some(kind) = indexed_kind(&api_version, &kind_name) else {
            docs.push(Document::Skipped {
                api_version,
                kind: kind_name,
            });
            continue;
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
                None => Err(ObjectError::Vanished),
            },
        };
        match typed {
            Ok(_) if key.name.is_empty() => docs.push(Document::Invalid {
                kind,
                key,
                error: ObjectError::MissingName,
            }),
            Ok(object) => docs.push(Document::Object(object)),
            Err(error) => docs.push(Document::Invalid { kind, key, error }),
        }
    }
    Ok(docs)
}

/// One object as the Kubernetes API returns it (JSON), through the same
/// checks as a manifest document: the typed deserialization of core
/// objects, the EndpointSlice address checks and the `wisp-profiles`
/// validator for ServiceProfiles and TrafficSplits. A Pod comes back as
/// its [`PodSummary`] and an EndpointSlice as its [`EndpointSliceSummary`]
/// (checked whole, then summarized), so a list of many never holds them
/// whole.
pub(crate) fn object_from_json(value: serde_json::Value, opts: &ValidateOptions) -> Document {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let api_version = text(&value["apiVersion"]);
    let kind_name = text(&value["kind"]);
    let Some(kind) = indexed_kind(&api_version, &kind_name) else {
        return Document::Skipped {
            api_version,
            kind: kind_name,
        };
    };
    let key = ObjectKey::new(
        non_empty(text(&value["metadata"]["namespace"])).unwrap_or("default".into()),
        text(&value["metadata"]["name"]),
    );
    if key.name.is_empty() {
        return Document::Invalid {
            kind,
            key,
            error: ObjectError::MissingName,
        };
    }
    let typed = match kind {
        Kind::ServiceProfile | Kind::TrafficSplit => match serde_yaml_ng::to_value(&value) {
            Ok(yaml) => profile_object(kind, &yaml, None, opts, &key),
            Err(e) => Err(ObjectError::Deserialize(e)),
        },
        Kind::EndpointSlice => serde_json::from_value::<EndpointSlice>(value)
            .map_err(ObjectError::Json)
            .and_then(|slice| {
                let problems = endpoint_slice_problems(&slice);
                if problems.is_empty() {
                    Ok(Object::EndpointSliceSummary(Box::new(
                        EndpointSliceSummary::from_slice(&slice),
                    )))
                } else {
                    Err(ObjectError::Fields(problems))
                }
            }),
        Kind::Pod => serde_json::from_value::<Pod>(value)
            .map(|p| Object::PodSummary(Box::new(PodSummary::from_pod(&p))))
            .map_err(ObjectError::Json),
        Kind::Service => serde_json::from_value::<Service>(value)
            .map(|s| Object::Service(Box::new(s)))
            .map_err(ObjectError::Json),
    };
    match typed {
        Ok(object) => Document::Object(object),
        Err(error) => Document::Invalid { kind, key, error },
    }
}

/// A ServiceProfile or TrafficSplit through the profiles crate's strict
/// parser and validator; the error lists every problem.
fn profile_object(
    kind: Kind,
    value: &serde_yaml_ng::Value,
    file: Option<&str>,
    opts: &ValidateOptions,
    key: &ObjectKey,
) -> Result<Object, ObjectError> {
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
        ObjectError::Problems(
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
                .collect(),
        )
    })
}

/// A core object (Service, EndpointSlice, Pod) from its document.
fn typed_object(kind: Kind, doc: serde_yaml_ng::Deserializer<'_>) -> Result<Object, ObjectError> {
    fn de<T: DeserializeOwned>(
        doc: serde_yaml_ng::Deserializer<'_>,
    ) -> Result<Box<T>, ObjectError> {
        T::deserialize(doc)
            .map(Box::new)
            .map_err(ObjectError::Deserialize)
    }
    Ok(match kind {
        Kind::EndpointSlice => {
            let slice = de::<EndpointSlice>(doc)?;
            let problems = endpoint_slice_problems(&slice);
            if !problems.is_empty() {
                return Err(ObjectError::Fields(problems));
            }
            Object::EndpointSlice(slice)
        }
        Kind::Pod => Object::Pod(de::<Pod>(doc)?),
        Kind::Service => Object::Service(de::<Service>(doc)?),
        Kind::ServiceProfile | Kind::TrafficSplit => return Err(ObjectError::NotCore(kind)),
    })
}

/// Every endpoint address of `slice` that is not an address of its
/// `addressType`, as `endpoints[I].addresses[J]: MESSAGE`. `IPv4` and
/// `IPv6` slices need addresses of that family; `FQDN` slices are not
/// checked (the resolver only serves IP endpoints and ignores them); any
/// other type needs IP addresses.
fn endpoint_slice_problems(slice: &EndpointSlice) -> Vec<String> {
    let mut problems = Vec::new();
    let family = slice.address_type.as_str();
    if family == "FQDN" {
        return problems;
    }
    for (i, endpoint) in slice.endpoints.iter().flatten().enumerate() {
        for (j, address) in endpoint.addresses.iter().enumerate() {
            let path = format!("endpoints[{i}].addresses[{j}]");
            match (address.parse::<IpAddr>(), family) {
                (Err(_), _) => problems.push(format!("{path}: {address:?} is not an IP address")),
                (Ok(IpAddr::V6(_)), "IPv4") | (Ok(IpAddr::V4(_)), "IPv6") => {
                    problems.push(format!(
                        "{path}: {address:?} is not an {family} address (addressType {family})"
                    ))
                }
                (Ok(_), _) => {}
            }
        }
    }
    problems
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
                assert!(error.to_string().contains("spec.ports"), "{error}");
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
                    error.to_string().starts_with("m/sp.yaml: ServiceProfile default/web.default.svc.cluster.local: spec.routes[0].condition.pathRegex: "),
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
    fn endpoint_slice_addresses_must_be_ips_of_the_address_type() {
        let slice = |ty: &str, addrs: &str| {
            format!("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-1}}\naddressType: {ty}\nendpoints:\n- addresses: [10.0.0.1]\n- addresses: {addrs}\n")
        };
        let docs =
            parse_documents(&slice("IPv4", r#"["not-an-ip", "999.1.1.1", "::1"]"#)).expect("yaml");
        match &docs[0] {
            Document::Invalid { kind, key, error } => {
                assert_eq!(*kind, Kind::EndpointSlice);
                assert_eq!(key.to_string(), "default/web-1");
                assert_eq!(
                    error.lines(),
                    [
                        r#"endpoints[1].addresses[0]: "not-an-ip" is not an IP address"#,
                        r#"endpoints[1].addresses[1]: "999.1.1.1" is not an IP address"#,
                        r#"endpoints[1].addresses[2]: "::1" is not an IPv4 address (addressType IPv4)"#,
                    ]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let docs = parse_documents(&slice("IPv6", "[\"fd00::1\"]")).expect("yaml");
        match &docs[0] {
            Document::Invalid { error, .. } => assert_eq!(
                error.to_string(),
                r#"endpoints[0].addresses[0]: "10.0.0.1" is not an IPv6 address (addressType IPv6)"#
            ),
            other => panic!("unexpected {other:?}"),
        }
        for ok in [
            slice("IPv4", "[10.0.0.2]"),
            slice("FQDN", "[web.example.com]"),
        ] {
            let docs = parse_documents(&ok).expect("yaml");
            assert!(
                matches!(docs[0], Document::Object(Object::EndpointSlice(_))),
                "{docs:?}"
            );
        }
    }

    /// From the Kubernetes API, a valid slice comes back summarized and an
    /// invalid one with the same field errors as from a manifest.
    #[test]
    fn api_endpoint_slices_are_checked_then_summarized() {
        let slice = |addr: &str| {
            serde_json::json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "web-1", "namespace": "ns",
                    "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [addr], "conditions": {"ready": true}}]})
        };
        let opts = ValidateOptions::default();
        match object_from_json(slice("10.0.0.1"), &opts) {
            Document::Object(Object::EndpointSliceSummary(s)) => {
                assert_eq!(s.key().to_string(), "ns/web-1");
                assert_eq!(s.service_name(), Some("web"));
                assert_eq!(s.endpoints().len(), 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        match object_from_json(slice("::1"), &opts) {
            Document::Invalid { kind, key, error } => {
                assert_eq!(kind, Kind::EndpointSlice);
                assert_eq!(key.to_string(), "ns/web-1");
                assert_eq!(
                    error.to_string(),
                    r#"endpoints[0].addresses[0]: "::1" is not an IPv4 address (addressType IPv4)"#
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn broken_yaml_fails() {
        assert!(parse_documents("a: [1, 2\n").is_err());
    }
}
