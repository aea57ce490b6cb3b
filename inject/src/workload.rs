//! Offline manifests for `wisp inject` / `wisp uninject`: multi-document
//! YAML streams, `List`s (what `kubectl get -o yaml` prints), and every
//! kind with a pod template — Pod, Deployment, StatefulSet, DaemonSet,
//! ReplicaSet, ReplicationController, Job, CronJob. Namespaces get the
//! `linkerd.io/inject` annotation; other kinds pass through unchanged.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::decision::{Origin, SkipReason};
use crate::injector::{InjectError, Injector, Outcome, PodInput};
use crate::names;
use crate::patch::{self, ApplyError};
use crate::uninject;

/// What `wisp inject` does besides the defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Only add `linkerd.io/inject: enabled` (let the webhook inject).
    pub annotate_only: bool,
    /// `config.linkerd.io/*` annotations from flags, added to every pod
    /// template (and honoured).
    pub annotations: BTreeMap<String, String>,
}

/// What happened to one object.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// The proxy was added.
    Injected,
    /// Only annotations were added.
    Annotated,
    /// Injection-generated parts were removed.
    Uninjected,
    /// Left unchanged, with the reasons (empty for kinds without pods).
    Skipped(Vec<SkipReason>),
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Lowercase kind (`deployment`), empty when the document has none.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// Some container declares a UDP port (not proxied).
    pub udp: bool,
    /// Ignored annotation values.
    pub warnings: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind.is_empty() {
            return f.write_str("document missing \"kind\" field, skipped");
        }
        let what = format!("{} \"{}\"", self.kind, self.name);
        match &self.status {
            Status::Injected => write!(f, "{what} injected"),
            Status::Annotated => write!(f, "{what} annotated"),
            Status::Uninjected => write!(f, "{what} uninjected"),
            Status::Skipped(reasons) if reasons.is_empty() => write!(f, "{what} skipped"),
            Status::Skipped(reasons) => {
                let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
                write!(f, "{what} skipped: {}", why.join(", "))
            }
        }
    }
}

/// Why a manifest stream could not be transformed (the input's fault,
/// except for configuration errors).
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// Not YAML (document number given, counting from 1).
    #[error("document {index} is not valid YAML")]
    Yaml {
        /// Which document.
        index: usize,
        /// The parser's error.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A document that is not a mapping.
    #[error(
        "document {index} is not a Kubernetes object (expected a mapping with apiVersion and kind)"
    )]
    NotAnObject {
        /// Which document.
        index: usize,
    },
    /// A pod template the injector refused.
    #[error("cannot inject {kind} \"{name}\"")]
    Inject {
        /// Lowercase kind.
        kind: String,
        /// Name.
        name: String,
        /// The cause.
        #[source]
        source: InjectError,
    },
    /// The generated patch did not apply.
    #[error("cannot patch {kind} \"{name}\"")]
    Patch {
        /// Lowercase kind.
        kind: String,
        /// Name.
        name: String,
        /// The cause.
        #[source]
        source: ApplyError,
    },
    /// Output serialization failed.
    #[error("cannot write YAML")]
    Write(#[source] serde_yaml_ng::Error),
}

/// Where a kind keeps its pod template.
pub fn template_prefix(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Parses a YAML stream into documents (empty documents dropped).
pub fn parse_stream(input: &str) -> Result<Vec<Value>, WorkloadError> {
    Ok(parse_docs(input)?.into_iter().map(|d| d.value).collect())
}

/// One document and, when it could be cut out of the input on its own,
/// its original text (written back verbatim when nothing changes, so
/// comments and key order of untouched objects survive).
struct Doc {
    value: Value,
    original: Option<String>,
}

fn parse_docs(input: &str) -> Result<Vec<Doc>, WorkloadError> {
    let mut docs = Vec::new();
    let mut index = 0;
    for chunk in wisp_common::yaml::split_documents(input) {
        let mut values = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(chunk) {
            index += 1;
            let value =
                Value::deserialize(doc).map_err(|source| WorkloadError::Yaml { index, source })?;
            match value {
                Value::Null => {}
                Value::Object(_) => values.push(value),
                _ => return Err(WorkloadError::NotAnObject { index }),
            }
        }
        let single = values.len() == 1;
        for value in values {
            let original = single.then(|| {
                let text = chunk
                    .strip_prefix("---\n")
                    .or_else(|| chunk.strip_prefix("---\r\n"))
                    .unwrap_or(chunk);
                let mut text = text.to_string();
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text
            });
            docs.push(Doc { value, original });
        }
    }
    Ok(docs)
}

/// Writes documents as a YAML stream.
pub fn write_stream(docs: &[Value]) -> Result<String, WorkloadError> {
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml_ng::to_string(doc).map_err(WorkloadError::Write)?);
    }
    Ok(out)
}

/// Transforms each document with `f`; unchanged documents keep their text.
fn transform(
    input: &str,
    mut f: impl FnMut(&mut Value) -> Result<(), WorkloadError>,
) -> Result<String, WorkloadError> {
    let mut out = String::new();
    for (i, mut doc) in parse_docs(input)?.into_iter().enumerate() {
        let before = doc.value.clone();
        f(&mut doc.value)?;
        if i > 0 {
            out.push_str("---\n");
        }
        match doc.original {
            Some(text) if doc.value == before => out.push_str(&text),
            _ => out.push_str(&serde_yaml_ng::to_string(&doc.value).map_err(WorkloadError::Write)?),
        }
    }
    Ok(out)
}

fn is_list(doc: &Value) -> bool {
    doc.get("items").is_some_and(Value::is_array) && str_at(doc, "/kind").ends_with("List")
}

/// Injects every object of a YAML stream (uninjecting first, so a second
/// run gives the same output). Returns the new stream and one report per
/// object.
pub fn inject_stream(
    injector: &Injector,
    input: &str,
    options: &Options,
) -> Result<(String, Vec<Report>), WorkloadError> {
    let mut reports = Vec::new();
    let out = transform(input, |doc| {
        inject_doc(injector, doc, options, &mut reports)
    })?;
    Ok((out, reports))
}

fn inject_doc(
    injector: &Injector,
    doc: &mut Value,
    options: &Options,
    reports: &mut Vec<Report>,
) -> Result<(), WorkloadError> {
    if is_list(doc) {
        if let Some(Value::Array(items)) = doc.get_mut("items") {
            for item in items {
                inject_doc(injector, item, options, reports)?;
            }
        }
        return Ok(());
    }
    let kind = str_at(doc, "/kind").to_string();
    let name = match str_at(doc, "/metadata/name") {
        "" => str_at(doc, "/metadata/generateName").to_string(),
        n => n.to_string(),
    };
    let namespace = str_at(doc, "/metadata/namespace").to_string();
    let mut report = Report {
        kind: kind.to_ascii_lowercase(),
        name: name.clone(),
        status: Status::Skipped(Vec::new()),
        udp: false,
        warnings: Vec::new(),
    };
    let Some(prefix) = template_prefix(&kind) else {
        if kind == "Namespace" {
            let mut annotations = options.annotations.clone();
            annotations
                .entry(names::ANN_INJECT.into())
                .or_insert_with(|| "enabled".into());
            let ops = patch::metadata_ops("", doc, &annotations, &BTreeMap::new());
            apply(doc, &ops, &report)?;
            report.status = Status::Annotated;
        }
        reports.push(report);
        return Ok(());
    };
    // Start from a clean template so re-injecting updates rather than
    // doubles the proxy.
    if let Some(template) = doc.pointer_mut(if prefix.is_empty() { "" } else { prefix }) {
        uninject::template(template);
    }
    if !prefix.is_empty() {
        if let Some(Value::Object(meta)) = doc.get_mut("metadata") {
            uninject::metadata(meta);
        }
    }
    let empty = Value::Object(Default::default());
    let template = doc.pointer(prefix).unwrap_or(&empty).clone();
    let owner = (!prefix.is_empty()).then(|| (kind.to_ascii_lowercase(), name.clone()));
    let mut extra = options.annotations.clone();
    if options.annotate_only {
        extra
            .entry(names::ANN_INJECT.into())
            .or_insert_with(|| "enabled".into());
    }
    let input = PodInput {
        template: &template,
        prefix,
        namespace: &namespace,
        owner,
        namespace_meta: None,
        origin: Origin::Cli,
        extra_annotations: extra.clone(),
    };
    let err = |source| WorkloadError::Inject {
        kind: report.kind.clone(),
        name: name.clone(),
        source,
    };
    let decision = crate::decision::decide(
        Origin::Cli,
        &serde_json::from_value(template.get("metadata").cloned().unwrap_or(Value::Null))
            .unwrap_or_default(),
        &serde_json::from_value(template.get("spec").cloned().unwrap_or(Value::Null))
            .map_err(|e| err(InjectError::BadPod(e)))?,
        None,
        injector.config().identity.service_account_token_projection,
    );
    report.udp = decision.udp;
    if !decision.inject() {
        report.status = Status::Skipped(decision.reasons);
        reports.push(report);
        return Ok(());
    }
    if options.annotate_only {
        let ops = patch::metadata_ops(prefix, &template, &extra, &BTreeMap::new());
        apply(doc, &ops, &report)?;
        report.status = Status::Annotated;
        reports.push(report);
        return Ok(());
    }
    match injector.plan(&input).map_err(err)? {
        Outcome::Injected {
            patch, warnings, ..
        } => {
            apply(doc, &patch, &report)?;
            report.status = Status::Injected;
            report.warnings = warnings;
        }
        Outcome::Skipped(decision) => report.status = Status::Skipped(decision.reasons),
    }
    reports.push(report);
    Ok(())
}

fn apply(doc: &mut Value, ops: &[Value], report: &Report) -> Result<(), WorkloadError> {
    patch::apply(doc, ops).map_err(|source| WorkloadError::Patch {
        kind: report.kind.clone(),
        name: report.name.clone(),
        source,
    })
}

/// Uninjects every object of a YAML stream.
pub fn uninject_stream(input: &str) -> Result<(String, Vec<Report>), WorkloadError> {
    let mut reports = Vec::new();
    let out = transform(input, |doc| {
        uninject_doc(doc, &mut reports);
        Ok(())
    })?;
    Ok((out, reports))
}

fn uninject_doc(doc: &mut Value, reports: &mut Vec<Report>) {
    if is_list(doc) {
        if let Some(Value::Array(items)) = doc.get_mut("items") {
            for item in items {
                uninject_doc(item, reports);
            }
        }
        return;
    }
    let kind = str_at(doc, "/kind").to_string();
    let name = match str_at(doc, "/metadata/name") {
        "" => str_at(doc, "/metadata/generateName").to_string(),
        n => n.to_string(),
    };
    let mut removed = false;
    if let Some(prefix) = template_prefix(&kind) {
        if let Some(t) = doc.pointer_mut(prefix) {
            removed |= uninject::template(t);
        }
        if !prefix.is_empty() {
            if let Some(Value::Object(meta)) = doc.get_mut("metadata") {
                removed |= uninject::metadata(meta);
            }
        }
    } else if kind == "Namespace" || kind == "Service" {
        if let Some(Value::Object(meta)) = doc.get_mut("metadata") {
            removed |= uninject::metadata(meta);
        }
    }
    reports.push(Report {
        kind: kind.to_ascii_lowercase(),
        name,
        status: if removed {
            Status::Uninjected
        } else {
            Status::Skipped(Vec::new())
        },
        udp: false,
        warnings: Vec::new(),
    });
}
