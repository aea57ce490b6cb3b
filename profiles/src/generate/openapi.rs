//! Routes from a Swagger 2 or OpenAPI 3 document (JSON or YAML).

use serde_yaml_ng::Value;

use super::{profile_with_routes, GenerateError};
use crate::types::{Range, RequestMatch, ResponseClass, ResponseMatch, RouteSpec, ServiceProfile};

/// Operation keys of a path item, in Linkerd's order.
const METHODS: [&str; 7] = ["delete", "get", "head", "options", "patch", "post", "put"];

/// One route per path and operation, named `<METHOD> <path>`, with an
/// anchored path regex ([`path_regex`]); paths sorted, operations in the
/// order DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT. Swagger 2's
/// `basePath` prefixes every path. Each numeric response code becomes a
/// response class (`isFailure` for 5xx; OpenAPI 3 `5XX` ranges too), and
/// the vendor extensions `x-linkerd-retryable` / `x-linkerd-timeout` set
/// `isRetryable` / `timeout`.
pub fn from_openapi(
    text: &str,
    service: &str,
    namespace: &str,
    cluster_domain: &str,
) -> Result<ServiceProfile, GenerateError> {
    let doc: Value = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(json) => {
            serde_yaml_ng::to_value(json).map_err(|e| GenerateError::Parse(e.to_string()))?
        }
        Err(_) => serde_yaml_ng::from_str(text).map_err(|e| GenerateError::Parse(e.to_string()))?,
    };
    let base = if doc.get("swagger").is_some() {
        doc.get("basePath")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string()
    } else if doc.get("openapi").is_some() {
        String::new()
    } else {
        return Err(GenerateError::NotOpenApi(
            "no `swagger` or `openapi` field".into(),
        ));
    };
    let paths = doc
        .get("paths")
        .and_then(Value::as_mapping)
        .ok_or_else(|| GenerateError::NotOpenApi("no `paths` map".into()))?;
    let mut sorted: Vec<(&str, &Value)> = paths
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?, v)))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut routes = Vec::new();
    for (path, item) in sorted {
        let full = format!("{base}{path}");
        for method in METHODS {
            if let Some(op) = item.get(method) {
                routes.push(route(&full, method, op));
            }
        }
    }
    Ok(profile_with_routes(
        service,
        namespace,
        cluster_domain,
        routes,
    ))
}

fn route(path: &str, method: &str, op: &Value) -> RouteSpec {
    let upper = method.to_ascii_uppercase();
    let mut classes: Vec<(u32, u32)> = op
        .get("responses")
        .and_then(Value::as_mapping)
        .map(|responses| {
            responses
                .keys()
                .filter_map(|k| status_range(&key_text(k)))
                .collect()
        })
        .unwrap_or_default();
    classes.sort();
    let retryable = op
        .get("x-linkerd-retryable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let timeout = op
        .get("x-linkerd-timeout")
        .and_then(Value::as_str)
        .map(str::to_string);
    RouteSpec {
        name: format!("{upper} {path}"),
        condition: RequestMatch {
            path_regex: Some(path_regex(path)),
            method: Some(upper),
            ..Default::default()
        },
        response_classes: classes
            .into_iter()
            .map(|(min, max)| ResponseClass {
                condition: ResponseMatch {
                    status: Some(Range { min, max }),
                    ..Default::default()
                },
                is_failure: min >= 500,
            })
            .collect(),
        is_retryable: retryable,
        timeout,
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// `404` → 404..404; `5XX` → 500..599; `default` → none.
fn status_range(code: &str) -> Option<(u32, u32)> {
    if let Ok(n) = code.parse::<u32>() {
        return (100..=599).contains(&n).then_some((n, n));
    }
    let first = code
        .strip_suffix("XX")
        .or_else(|| code.strip_suffix("xx"))?;
    let d: u32 = first.parse().ok().filter(|d| (1..=5).contains(d))?;
    Some((d * 100, d * 100 + 99))
}

/// The anchored regex of a path template: literal text escaped, each
/// `{param}` replaced by `[^/]*` (`/pets/{petId}` → `^/pets/[^/]*$`).
pub fn path_regex(path: &str) -> String {
    let mut out = String::from("^");
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        match rest[open..].find('}') {
            Some(close) => {
                out.push_str(&regex::escape(&rest[..open]));
                out.push_str("[^/]*");
                rest = &rest[open + close + 1..];
            }
            None => break,
        }
    }
    out.push_str(&regex::escape(rest));
    out.push('$');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_templates() {
        assert_eq!(path_regex("/pets/{petId}"), "^/pets/[^/]*$");
        assert_eq!(path_regex("/books/{id}.json"), "^/books/[^/]*\\.json$");
        assert_eq!(path_regex("/a+b/{x}/{y}"), "^/a\\+b/[^/]*/[^/]*$");
        assert_eq!(status_range("5XX"), Some((500, 599)));
        assert_eq!(status_range("default"), None);
    }
}
