//! One test per validation rule, each asserting the exact field path.

use wisp_profiles::validate::{validate_document_with, ValidateOptions};
use wisp_profiles::validate_document;

const SP: &str = "sp.yaml: ServiceProfile default/web.default.svc.cluster.local";
const TS: &str = "ts.yaml: TrafficSplit default/split";

fn profile(spec: &str) -> String {
    format!(
        "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata:\n  name: web.default.svc.cluster.local\n  namespace: default\nspec:\n{spec}"
    )
}

fn split(version: &str, spec: &str) -> String {
    format!("apiVersion: split.smi-spec.io/{version}\nkind: TrafficSplit\nmetadata:\n  name: split\n  namespace: default\nspec:\n{spec}")
}

fn sp_problems(spec: &str) -> Vec<String> {
    problems(&profile(spec), "sp.yaml")
}

fn problems(text: &str, file: &str) -> Vec<String> {
    validate_document(text, Some(file))
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn at(prefix: &str, rest: &str) -> Vec<String> {
    vec![format!("{prefix}: {rest}")]
}

const ROUTES_OK: &str = "  routes:\n  - name: a\n    condition: {method: GET, pathRegex: /a}\n  - name: b\n    condition: {pathRegex: /b}\n";

#[test]
fn valid_profile_has_no_problems() {
    assert_eq!(sp_problems(ROUTES_OK), Vec::<String>::new());
}

#[test]
fn bad_regex() {
    let spec = format!("{ROUTES_OK}  - name: c\n    condition: {{pathRegex: '/books/(\\d+'}}\n");
    assert_eq!(
        sp_problems(&spec),
        at(
            SP,
            "spec.routes[2].condition.pathRegex: unclosed group at position 7"
        )
    );
}

#[test]
fn nested_bad_regex() {
    let spec = "  routes:\n  - name: a\n    condition:\n      any:\n      - method: GET\n      - not: {pathRegex: 'a[b'}\n";
    assert_eq!(
        sp_problems(spec),
        at(
            SP,
            "spec.routes[0].condition.any[1].not.pathRegex: unclosed character class at position 1"
        )
    );
}

#[test]
fn methods_registered_unregistered_and_invalid() {
    // Enum names and other tokens (Linkerd's documented `OPTION`, `PURGE`) are fine.
    let ok = "  routes:\n  - {name: a, condition: {method: patch}}\n  - {name: b, condition: {method: OPTION}}\n  - {name: c, condition: {method: PURGE}}\n";
    assert_eq!(sp_problems(ok), Vec::<String>::new());
    let bad = "  routes:\n  - {name: a, condition: {method: 'GET POST'}}\n";
    assert_eq!(
        sp_problems(bad),
        at(
            SP,
            "spec.routes[0].condition.method: \"GET POST\" is not an HTTP method (not a token)"
        )
    );
}

#[test]
fn empty_request_condition() {
    let spec = "  routes:\n  - name: a\n    condition: {}\n";
    assert_eq!(
        sp_problems(spec),
        at(
            SP,
            "spec.routes[0].condition: a request match must have a field set"
        )
    );
}

#[test]
fn route_without_condition_or_name() {
    let spec = "  routes:\n  - name: a\n  - condition: {method: GET}\n";
    assert_eq!(
        sp_problems(spec),
        vec![
            format!("{SP}: spec.routes[0].condition: missing required field"),
            format!("{SP}: spec.routes[1].name: missing required field"),
        ]
    );
}

#[test]
fn response_class_without_condition() {
    let spec = "  routes:\n  - name: a\n    condition: {method: GET}\n    responseClasses:\n    - isFailure: true\n";
    assert_eq!(
        sp_problems(spec),
        at(
            SP,
            "spec.routes[0].responseClasses[0].condition: missing required field"
        )
    );
}

#[test]
fn empty_response_condition() {
    let spec = "  routes:\n  - name: a\n    condition: {method: GET}\n    responseClasses:\n    - condition: {}\n";
    assert_eq!(
        sp_problems(spec),
        at(
            SP,
            "spec.routes[0].responseClasses[0].condition: a response match must have a field set"
        )
    );
}

#[test]
fn status_out_of_range() {
    let spec = "  routes:\n  - name: a\n    condition: {method: GET}\n    responseClasses:\n    - condition: {status: {min: 500, max: 600}}\n";
    assert_eq!(
        sp_problems(spec),
        at(
            SP,
            "spec.routes[0].responseClasses[0].condition.status.max: 600 is outside 100..599"
        )
    );
    let spec = "  routes:\n  - name: a\n    condition: {method: GET}\n    responseClasses:\n    - condition: {status: {min: 99}}\n";
    assert_eq!(
        sp_problems(spec),
        at(
            SP,
            "spec.routes[0].responseClasses[0].condition.status.min: 99 is outside 100..599"
        )
    );
}

#[test]
fn status_min_above_max() {
    let spec = "  routes:\n  - name: a\n    condition: {method: GET}\n    responseClasses:\n    - condition: {status: {min: 500, max: 400}}\n";
    assert_eq!(
        sp_problems(spec),
        at(
            SP,
            "spec.routes[0].responseClasses[0].condition.status: min 500 is greater than max 400"
        )
    );
}

#[test]
fn negative_status_is_a_type_error() {
    let spec = "  routes:\n  - name: a\n    condition: {method: GET}\n    responseClasses:\n    - condition: {status: {min: -1}}\n";
    assert_eq!(
        sp_problems(spec),
        at(
            SP,
            "spec.routes[0].responseClasses[0].condition.status.min: must be at least 0"
        )
    );
}

#[test]
fn bad_timeout() {
    let spec = "  routes:\n  - name: a\n    condition: {method: GET}\n    timeout: 10 seconds\n";
    assert_eq!(
        sp_problems(spec),
        at(
            SP,
            "spec.routes[0].timeout: unknown unit \" seconds\" in duration \"10 seconds\""
        )
    );
    let spec = "  routes:\n  - name: a\n    condition: {method: GET}\n    timeout: '100'\n";
    assert_eq!(
        sp_problems(spec),
        at(SP, "spec.routes[0].timeout: invalid duration \"100\" (expected Go syntax such as 250ms, 1.5s, 1h30m)")
    );
}

#[test]
fn go_durations_accepted() {
    let spec = "  routes:\n  - {name: a, condition: {method: GET}, timeout: 250ms}\n  - {name: b, condition: {method: GET}, timeout: 1.5s}\n  - {name: c, condition: {method: GET}, timeout: 2m}\n  - {name: d, condition: {method: GET}, timeout: 1h30m}\n";
    assert_eq!(sp_problems(spec), Vec::<String>::new());
}

#[test]
fn negative_retry_ratio() {
    let spec = "  retryBudget: {retryRatio: -0.5, minRetriesPerSecond: 10, ttl: 10s}\n";
    assert_eq!(
        sp_problems(spec),
        at(SP, "spec.retryBudget.retryRatio: -0.5 must not be negative")
    );
}

#[test]
fn missing_ttl() {
    let spec = "  retryBudget: {retryRatio: 0.2, minRetriesPerSecond: 10}\n";
    assert_eq!(
        sp_problems(spec),
        at(SP, "spec.retryBudget.ttl: missing required field")
    );
}

#[test]
fn unparsable_ttl() {
    let spec = "  retryBudget: {retryRatio: 0.2, minRetriesPerSecond: 10, ttl: soon}\n";
    assert_eq!(
        sp_problems(spec),
        at(SP, "spec.retryBudget.ttl: invalid duration \"soon\" (expected Go syntax such as 250ms, 1.5s, 1h30m)")
    );
}

#[test]
fn bad_profile_name() {
    let text = "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {name: web.default, namespace: default}\nspec: {}\n";
    assert_eq!(
        problems(text, "sp.yaml"),
        at(
            "sp.yaml: ServiceProfile default/web.default",
            "metadata.name: \"web.default\" must be the service's name <service>.<namespace>.svc.cluster.local"
        )
    );
    let text = "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {name: Web_1, namespace: default}\nspec: {}\n";
    assert_eq!(
        problems(text, "sp.yaml"),
        at(
            "sp.yaml: ServiceProfile default/Web_1",
            "metadata.name: \"Web_1\" is not a valid DNS-1123 subdomain"
        )
    );
}

#[test]
fn cluster_domain_parameter() {
    let text = profile(ROUTES_OK);
    let opts = ValidateOptions {
        cluster_domain: "example.org".into(),
    };
    let found: Vec<String> = validate_document_with(&text, None, &opts)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        vec!["ServiceProfile default/web.default.svc.cluster.local: metadata.name: \"web.default.svc.cluster.local\" must be the service's name <service>.<namespace>.svc.example.org".to_string()]
    );
}

#[test]
fn unknown_fields() {
    let spec = "  routes:\n  - name: a\n    condition: {method: GET, path: /a}\n    retries: 3\n  extra: true\n";
    assert_eq!(
        sp_problems(spec),
        vec![
            format!("{SP}: spec.routes[0].condition.path: unknown field"),
            format!("{SP}: spec.routes[0].retries: unknown field"),
            format!("{SP}: spec.extra: unknown field"),
        ]
    );
}

#[test]
fn wrong_types() {
    let spec = "  routes:\n  - name: a\n    condition: {method: GET}\n    isRetryable: maybe\n";
    assert_eq!(
        sp_problems(spec),
        at(
            SP,
            "spec.routes[0].isRetryable: expected a boolean, found a string"
        )
    );
}

#[test]
fn all_problems_are_returned() {
    let spec = "  routes:\n  - name: a\n    condition: {pathRegex: '('}\n    timeout: x\n  - name: b\n    condition: {}\n    bogus: 1\n  retryBudget: {retryRatio: -1, minRetriesPerSecond: 1, ttl: y}\n";
    let found = sp_problems(spec);
    let paths: Vec<&str> = found
        .iter()
        .map(|p| p.split(": ").nth(2).unwrap_or_default())
        .collect();
    assert_eq!(
        paths,
        vec![
            "spec.routes[1].bogus",
            "spec.routes[0].condition.pathRegex",
            "spec.routes[0].timeout",
            "spec.routes[1].condition",
            "spec.retryBudget.retryRatio",
            "spec.retryBudget.ttl",
        ],
        "{found:#?}"
    );
}

#[test]
fn bad_dst_override() {
    let spec = "  dstOverrides:\n  - {authority: 'web:http', weight: 1}\n  - {authority: web, weight: -5}\n  - {authority: web, weight: lots}\n";
    assert_eq!(
        sp_problems(spec),
        vec![
            format!("{SP}: spec.dstOverrides[0].authority: \"web:http\" has an invalid port"),
            format!("{SP}: spec.dstOverrides[1].weight: -5 must not be negative"),
            format!("{SP}: spec.dstOverrides[2].weight: \"lots\" is not a quantity (expected e.g. 1, 500m, 0.5)"),
        ]
    );
}

#[test]
fn unsupported_api_version() {
    let text = "apiVersion: linkerd.io/v1beta9\nkind: ServiceProfile\nmetadata: {name: web.default.svc.cluster.local}\nspec: {}\n";
    assert_eq!(
        problems(text, "sp.yaml"),
        at(SP, "apiVersion: unsupported apiVersion \"linkerd.io/v1beta9\" (expected linkerd.io/v1alpha2 or linkerd.io/v1alpha1)")
    );
}

#[test]
fn v1alpha1_profile_accepted() {
    let text = profile(ROUTES_OK).replace("v1alpha2", "v1alpha1");
    assert_eq!(problems(&text, "sp.yaml"), Vec::<String>::new());
}

#[test]
fn negative_split_weight() {
    let text = split("v1alpha1", "  service: web\n  backends:\n  - {service: web-v1, weight: 500m}\n  - {service: web-v2, weight: -100m}\n");
    assert_eq!(
        problems(&text, "ts.yaml"),
        at(TS, "spec.backends[1].weight: -100m must not be negative")
    );
}

#[test]
fn all_zero_split_weights() {
    let text = split("v1alpha2", "  service: web\n  backends:\n  - {service: web-v1, weight: 0}\n  - {service: web-v2, weight: 0}\n");
    assert_eq!(
        problems(&text, "ts.yaml"),
        at(
            TS,
            "spec.backends: all weights are zero: no backend would receive traffic"
        )
    );
}

#[test]
fn empty_backends() {
    let text = split("v1alpha4", "  service: web\n  backends: []\n");
    assert_eq!(
        problems(&text, "ts.yaml"),
        at(
            TS,
            "spec.backends: a traffic split must have at least one backend"
        )
    );
}

#[test]
fn split_weight_types_per_version() {
    // v1alpha1: quantities; v1alpha2+: whole numbers only.
    let ok = split("v1alpha1", "  service: web\n  backends:\n  - {service: a, weight: 0.5}\n  - {service: b, weight: 1}\n  - {service: c, weight: 250m}\n");
    assert_eq!(problems(&ok, "ts.yaml"), Vec::<String>::new());
    let bad = split("v1alpha2", "  service: web\n  backends:\n  - {service: a, weight: 500m}\n  - {service: b, weight: 10}\n");
    assert_eq!(
        problems(&bad, "ts.yaml"),
        at(
            TS,
            "spec.backends[0].weight: expected an integer, found a string"
        )
    );
}

#[test]
fn matches_only_from_v1alpha3() {
    let spec = "  service: web\n  matches:\n  - {kind: HTTPRouteGroup, name: ab-test}\n  backends:\n  - {service: a, weight: 1}\n";
    assert_eq!(
        problems(&split("v1alpha3", spec), "ts.yaml"),
        Vec::<String>::new()
    );
    assert_eq!(
        problems(&split("v1alpha2", spec), "ts.yaml"),
        at(TS, "spec.matches: unknown field")
    );
}

#[test]
fn split_missing_service_and_unknown_version() {
    let text = split("v1alpha2", "  backends:\n  - {service: a, weight: 1}\n");
    assert_eq!(
        problems(&text, "ts.yaml"),
        at(TS, "spec.service: missing required field")
    );
    let text = split(
        "v2",
        "  service: web\n  backends:\n  - {service: a, weight: 1}\n",
    );
    assert_eq!(
        problems(&text, "ts.yaml"),
        at(TS, "apiVersion: unsupported apiVersion \"split.smi-spec.io/v2\" (expected split.smi-spec.io/v1alpha1..v1alpha4)")
    );
}

#[test]
fn multi_document_and_unknown_kinds() {
    let text = format!(
        "{}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n---\n{}",
        profile("  routes:\n  - {name: a, condition: {}}\n"),
        split("v1alpha1", "  service: web\n  backends: []\n")
    );
    assert_eq!(
        problems(&text, "all.yaml"),
        vec![
            "all.yaml: ServiceProfile default/web.default.svc.cluster.local: spec.routes[0].condition: a request match must have a field set".to_string(),
            "all.yaml: TrafficSplit default/split: spec.backends: a traffic split must have at least one backend".to_string(),
        ]
    );
}

#[test]
fn broken_yaml_names_the_file() {
    let found = problems("a: [1, 2\n", "bad.yaml");
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("bad.yaml: invalid YAML: "),
        "{found:?}"
    );
}
