//! Small builders shared by the inbound and outbound answers.

use std::collections::HashMap;
use std::time::Duration;

use linkerd2_proxy_api::http_route::{path_match, HttpRouteMatch, PathMatch};
use linkerd2_proxy_api::meta::{metadata, Metadata};

/// A protobuf `Duration`.
pub fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// `Metadata{default: name}`.
pub fn default_meta(name: &str) -> Metadata {
    Metadata {
        kind: Some(metadata::Kind::Default(name.to_string())),
    }
}

/// The labels Linkerd sends for a default (synthesized) object:
/// `{group:"", kind:"default", name}`.
pub fn default_labels(name: &str) -> HashMap<String, String> {
    HashMap::from([
        ("group".to_string(), String::new()),
        ("kind".to_string(), "default".to_string()),
        ("name".to_string(), name.to_string()),
    ])
}

/// A match on every request: `path.prefix = "/"`.
pub fn match_all() -> HttpRouteMatch {
    HttpRouteMatch {
        path: Some(PathMatch {
            kind: Some(path_match::Kind::Prefix("/".to_string())),
        }),
        ..Default::default()
    }
}
