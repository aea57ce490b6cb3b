//! Translation to the proxy API's `DestinationProfile` (Linkerd's
//! `profile_translator.go`, see docs/proxy-api.md §3.3), with TrafficSplits
//! merged in as weighted `dst_overrides`.

use std::collections::HashMap;

use linkerd2_proxy_api::destination as pb;
use linkerd2_proxy_api::http_types::{http_method, HttpMethod};
use linkerd2_proxy_api::meta::{metadata, Metadata, Resource};

use crate::types::{
    parse_go_duration, to_proto_duration, Quantity, RequestMatch, ResponseMatch, RetryBudget,
    RouteSpec, ServiceProfile, TrafficSplit, TrafficSplitVersion,
};
use crate::validate::{is_http_token, split_authority};

/// The Service a profile lookup resolved to (`parent_ref`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    /// Service name.
    pub name: String,
    /// Service namespace.
    pub namespace: String,
}

/// Default retry budget: 20% extra, 10 retries/s minimum, 10 s window.
pub fn default_retry_budget() -> pb::RetryBudget {
    pb::RetryBudget {
        retry_ratio: 0.2,
        min_retries_per_second: 10,
        ttl: Some(prost_types::Duration {
            seconds: 10,
            nanos: 0,
        }),
    }
}

/// Builds the `DestinationProfile` for the lookup of `fqn:port`.
///
/// - `service`: the Service behind `fqn` (sets `parent_ref`); when `None`
///   the apex name/namespace for TrafficSplits is read from `fqn`.
/// - `profile`: its ServiceProfile, if any (sets routes, budget,
///   `dstOverrides`, `profile_ref`). Without one: no routes, default budget.
/// - `splits`: TrafficSplits to consider; the first (by namespace/name) whose
///   namespace is the service's and whose `spec.service` is the service's
///   name replaces the profile's `dstOverrides` with its backends
///   (`<backend>.<ns>.svc.<cluster_domain>:<port>`, zero weights dropped).
///
/// `opaque_protocol` is left false: it comes from the Service's annotations,
/// which the caller knows.
pub fn destination_profile(
    fqn: &str,
    port: u16,
    service: Option<&ServiceRef>,
    profile: Option<&ServiceProfile>,
    splits: &[&TrafficSplit],
    cluster_domain: &str,
) -> pb::DestinationProfile {
    let mut out = pb::DestinationProfile {
        fully_qualified_name: fqn.to_string(),
        retry_budget: Some(default_retry_budget()),
        ..Default::default()
    };
    let apex = service.cloned().or_else(|| {
        let mut labels = fqn.split('.');
        Some(ServiceRef {
            name: labels.next()?.to_string(),
            namespace: labels.next()?.to_string(),
        })
    });
    if let Some(svc) = service {
        out.parent_ref = Some(resource_ref(
            "core",
            "Service",
            &svc.name,
            &svc.namespace,
            u32::from(port),
        ));
    }
    if let Some(sp) = profile {
        out.profile_ref = Some(resource_ref(
            "linkerd.io",
            "ServiceProfile",
            sp.name(),
            sp.namespace(),
            0,
        ));
        out.routes = sp.spec.routes.iter().filter_map(route).collect();
        if let Some(budget) = sp.spec.retry_budget.as_ref().and_then(retry_budget) {
            out.retry_budget = Some(budget);
        }
        out.dst_overrides = sp
            .spec
            .dst_overrides
            .iter()
            .map(|d| pb::WeightedDst {
                authority: with_port(&d.authority, port),
                weight: quantity_weight(&d.weight),
                backend_ref: None,
            })
            .collect();
    }
    if let Some(apex) = apex {
        let mut candidates: Vec<&&TrafficSplit> = splits
            .iter()
            .filter(|ts| ts.namespace() == apex.namespace && ts.spec.service == apex.name)
            .collect();
        candidates.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
        if let Some(ts) = candidates.first() {
            let overrides = split_overrides(ts, port, cluster_domain);
            if !overrides.is_empty() {
                out.dst_overrides = overrides;
            }
        }
    }
    out
}

fn resource_ref(group: &str, kind: &str, name: &str, namespace: &str, port: u32) -> Metadata {
    Metadata {
        kind: Some(metadata::Kind::Resource(Resource {
            group: group.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            namespace: namespace.to_string(),
            section: String::new(),
            port,
        })),
    }
}

/// `weight = milli × 10`, so `1` → 10000 and `900m` → 9000.
fn quantity_weight(q: &Quantity) -> u32 {
    let milli = q.milli_value().unwrap_or(0).max(0);
    u32::try_from(milli.saturating_mul(10)).unwrap_or(u32::MAX)
}

/// Backends of a split as weighted destinations. v1alpha1 weights are
/// quantities (milli × 10); later versions' whole numbers are × 10000, the
/// same scale as a quantity of that many units, so ratios are preserved.
fn split_overrides(ts: &TrafficSplit, port: u16, cluster_domain: &str) -> Vec<pb::WeightedDst> {
    let quantity = ts
        .version()
        .is_none_or(TrafficSplitVersion::quantity_weights);
    ts.spec
        .backends
        .iter()
        .filter_map(|b| {
            let weight = if quantity {
                quantity_weight(&b.weight)
            } else {
                let n = b.weight.as_integer().unwrap_or(0).max(0);
                u32::try_from(n.saturating_mul(10_000)).unwrap_or(u32::MAX)
            };
            (weight > 0).then(|| pb::WeightedDst {
                authority: format!(
                    "{}.{}.svc.{cluster_domain}:{port}",
                    b.service,
                    ts.namespace()
                ),
                weight,
                backend_ref: None,
            })
        })
        .collect()
}

fn with_port(authority: &str, port: u16) -> String {
    match split_authority(authority) {
        Ok((_, Some(_))) => authority.to_string(),
        _ => format!("{authority}:{port}"),
    }
}

fn route(r: &RouteSpec) -> Option<pb::Route> {
    Some(pb::Route {
        condition: Some(request_match(&r.condition)?),
        response_classes: r
            .response_classes
            .iter()
            .filter_map(|c| {
                Some(pb::ResponseClass {
                    condition: Some(response_match(&c.condition)?),
                    is_failure: c.is_failure,
                })
            })
            .collect(),
        metrics_labels: HashMap::from([("route".to_string(), r.name.clone())]),
        is_retryable: r.is_retryable,
        timeout: r
            .timeout
            .as_deref()
            .and_then(|t| parse_go_duration(t).ok())
            .filter(|n| *n >= 0)
            .map(to_proto_duration),
    })
}

/// The proto method for a manifest method: upper-cased; a name of the proto
/// enum is `registered`, any other HTTP token `unregistered`.
pub fn http_method(method: &str) -> Option<HttpMethod> {
    let upper = method.trim().to_ascii_uppercase();
    if !is_http_token(&upper) {
        return None;
    }
    let kind = match http_method::Registered::from_str_name(&upper) {
        Some(registered) => http_method::Type::Registered(registered as i32),
        None => http_method::Type::Unregistered(upper),
    };
    Some(HttpMethod { r#type: Some(kind) })
}

fn request_match(m: &RequestMatch) -> Option<pb::RequestMatch> {
    use pb::request_match::{Match, Seq};
    let seq = |list: &Vec<RequestMatch>| Seq {
        matches: list.iter().filter_map(request_match).collect(),
    };
    let mut parts = Vec::new();
    if let Some(all) = &m.all {
        parts.push(Match::All(seq(all)));
    }
    if let Some(any) = &m.any {
        parts.push(Match::Any(seq(any)));
    }
    if let Some(not) = &m.not {
        if let Some(inner) = request_match(not) {
            parts.push(Match::Not(Box::new(inner)));
        }
    }
    if let Some(regex) = &m.path_regex {
        parts.push(Match::Path(pb::PathMatch {
            regex: regex.clone(),
        }));
    }
    if let Some(method) = m.method.as_deref().and_then(http_method) {
        parts.push(Match::Method(method));
    }
    combine(
        parts,
        |matches| Match::All(Seq { matches }),
        |m| pb::RequestMatch { r#match: Some(m) },
    )
}

fn response_match(m: &ResponseMatch) -> Option<pb::ResponseMatch> {
    use pb::response_match::{Match, Seq};
    let seq = |list: &Vec<ResponseMatch>| Seq {
        matches: list.iter().filter_map(response_match).collect(),
    };
    let mut parts = Vec::new();
    if let Some(all) = &m.all {
        parts.push(Match::All(seq(all)));
    }
    if let Some(any) = &m.any {
        parts.push(Match::Any(seq(any)));
    }
    if let Some(not) = &m.not {
        if let Some(inner) = response_match(not) {
            parts.push(Match::Not(Box::new(inner)));
        }
    }
    if let Some(range) = &m.status {
        // The proxy drops a range with a zero bound: always send both.
        let (min, max) = match (range.min, range.max) {
            (0, 0) => (0, 0),
            (0, max) => (max, max),
            (min, 0) => (min, min),
            (min, max) => (min, max),
        };
        if min != 0 {
            parts.push(Match::Status(pb::HttpStatusRange { min, max }));
        }
    }
    combine(
        parts,
        |matches| Match::All(Seq { matches }),
        |m| pb::ResponseMatch { r#match: Some(m) },
    )
}

/// One part stays as is; several are wrapped in `all`; none is no match.
fn combine<M, P>(mut parts: Vec<P>, all: impl Fn(Vec<M>) -> P, wrap: impl Fn(P) -> M) -> Option<M> {
    match parts.len() {
        0 => None,
        1 => parts.pop().map(wrap),
        _ => Some(wrap(all(parts.into_iter().map(&wrap).collect()))),
    }
}

fn retry_budget(b: &RetryBudget) -> Option<pb::RetryBudget> {
    let ttl = parse_go_duration(&b.ttl).ok().filter(|n| *n >= 0)?;
    Some(pb::RetryBudget {
        retry_ratio: b.retry_ratio,
        min_retries_per_second: b.min_retries_per_second,
        ttl: Some(to_proto_duration(ttl)),
    })
}
