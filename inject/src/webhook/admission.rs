//! AdmissionReview handling: the JSON in, the JSON out. Kept apart from
//! the HTTP server so it can be tested on its own.
//!
//! - Pod `CREATE` that should be injected: `allowed: true` with a base64
//!   RFC 6902 `patch` and `patchType: JSONPatch`.
//! - Pod skipped: `allowed: true`, no patch; the reasons go into the
//!   response's `auditAnnotations` (`injection-skipped`), which the API
//!   server records in its audit log as
//!   `linkerd-proxy-injector.linkerd.io/injection-skipped`.
//! - Service `CREATE` without `config.linkerd.io/opaque-ports`: the
//!   annotation with the default opaque ports it exposes, as Linkerd does.
//! - Anything else: `allowed: true`.
//! - Internal errors (namespace lookup failed, no trust anchors, an
//!   unrenderable pod): `allowed: false` with `status.message`, as Linkerd
//!   answers; the pod is then rejected and its controller retries.
//! - No `request` or `request.uid`, or a body that is not JSON: HTTP 400.

use std::sync::Arc;

use base64::Engine;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{json, Value};
use tracing::Instrument;

use super::cluster::Cluster;
use crate::decision::Origin;
use crate::injector::{Injector, Outcome, PodInput};

/// A request the webhook refuses to read (the caller's fault: HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    /// Not JSON.
    #[error("the body is not an AdmissionReview")]
    NotJson(#[source] serde_json::Error),
    /// No `request`.
    #[error("AdmissionReview has no request")]
    NoRequest,
    /// No `request.uid`.
    #[error("AdmissionReview request has no uid")]
    NoUid,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Resolves a pod's top-level owner: a ReplicaSet or Job with exactly one
/// owner of its own resolves to that owner (Deployment, CronJob). Lookup
/// failures fall back to the direct owner.
async fn owner(cluster: &dyn Cluster, namespace: &str, pod: &Value) -> Option<(String, String)> {
    let refs: Vec<OwnerReference> = pod
        .pointer("/metadata/ownerReferences")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let [parent] = refs.as_slice() else {
        return None;
    };
    if matches!(parent.kind.as_str(), "ReplicaSet" | "Job") {
        match cluster.owner(namespace, &parent.kind, &parent.name).await {
            Ok(Some(ObjectMeta {
                owner_references: Some(grand),
                ..
            })) if grand.len() == 1 => {
                return Some((grand[0].kind.to_ascii_lowercase(), grand[0].name.clone()));
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(
                kind = %parent.kind,
                name = %parent.name,
                error = %wisp_common::error::chain(&error),
                "owner lookup failed; labelling with the direct owner"
            ),
        }
    }
    Some((parent.kind.to_ascii_lowercase(), parent.name.clone()))
}

fn allowed(uid: &Value) -> Value {
    json!({"uid": uid, "allowed": true})
}

fn patched(uid: &Value, ops: &[Value]) -> Value {
    let bytes = serde_json::to_vec(ops).unwrap_or_default();
    json!({
        "uid": uid,
        "allowed": true,
        "patchType": "JSONPatch",
        "patch": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

fn denied(uid: &Value, message: String) -> Value {
    json!({
        "uid": uid,
        "allowed": false,
        "status": {"message": message, "code": 500},
    })
}

/// Answers one AdmissionReview body (`Ok(None)` for an empty body, which
/// gets an empty reply).
pub async fn review(
    body: &[u8],
    injector: &Injector,
    cluster: &Arc<dyn Cluster>,
) -> Result<Option<Value>, BadReview> {
    if body.is_empty() {
        return Ok(None);
    }
    let review: Value = serde_json::from_slice(body).map_err(BadReview::NotJson)?;
    let request = review.get("request").ok_or(BadReview::NoRequest)?;
    let uid = request
        .get("uid")
        .filter(|u| u.is_string())
        .ok_or(BadReview::NoUid)?;
    let api_version = match str_at(&review, "/apiVersion") {
        "" => "admission.k8s.io/v1",
        v => v,
    };
    let span = tracing::info_span!(
        "admit",
        kind = str_at(request, "/kind/kind"),
        namespace = str_at(request, "/namespace"),
        name = match str_at(request, "/object/metadata/name") {
            "" => str_at(request, "/object/metadata/generateName"),
            n => n,
        },
    );
    let response = respond(request, uid, injector, cluster.as_ref())
        .instrument(span)
        .await;
    Ok(Some(json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "response": response,
    })))
}

async fn respond(
    request: &Value,
    uid: &Value,
    injector: &Injector,
    cluster: &dyn Cluster,
) -> Value {
    let kind = str_at(request, "/kind/kind");
    let operation = str_at(request, "/operation");
    let object = request.get("object").unwrap_or(&Value::Null);
    let namespace = match str_at(request, "/namespace") {
        "" => str_at(object, "/metadata/namespace"),
        ns => ns,
    };
    if operation != "CREATE" || !matches!(kind, "Pod" | "Service") {
        return allowed(uid);
    }
    let ns_meta = match cluster.namespace(namespace).await {
        Ok(meta) => meta,
        Err(error) => {
            let message = format!(
                "wisp proxy injector: cannot read namespace {namespace:?}: {}",
                wisp_common::error::chain(&error)
            );
            tracing::error!("{message}");
            return denied(uid, message);
        }
    };
    if kind == "Service" {
        return match injector.service_patch(object, ns_meta.as_ref()) {
            Some(ops) => patched(uid, &ops),
            None => allowed(uid),
        };
    }
    let owner = owner(cluster, namespace, object).await;
    let input = PodInput {
        template: object,
        prefix: "",
        namespace,
        owner,
        namespace_meta: ns_meta.as_ref(),
        origin: Origin::Webhook,
        extra_annotations: Default::default(),
    };
    match injector.plan(&input) {
        Ok(Outcome::Injected { patch, .. }) => {
            tracing::info!("injection patch generated");
            patched(uid, &patch)
        }
        Ok(Outcome::Skipped(decision)) => {
            let reasons: Vec<String> = decision.reasons.iter().map(ToString::to_string).collect();
            let reasons = reasons.join(", ");
            tracing::info!(%reasons, "skipped");
            let mut response = allowed(uid);
            response["auditAnnotations"] = json!({"injection-skipped": reasons});
            response
        }
        Err(error) => {
            let message = format!("wisp proxy injector: {}", wisp_common::error::chain(&error));
            tracing::error!("{message}");
            denied(uid, message)
        }
    }
}
