//! Translation details: dstOverrides, split versions, methods, budgets.

use linkerd2_proxy_api::http_types::http_method;
use wisp_profiles::translate::http_method;
use wisp_profiles::validate::{parse_service_profile, parse_traffic_split, ValidateOptions};
use wisp_profiles::{destination_profile, ServiceProfile, TrafficSplit};

fn sp(spec: &str) -> ServiceProfile {
    let text = format!("apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {{name: web.ns.svc.cluster.local, namespace: ns}}\nspec:\n{spec}");
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    parse_service_profile(&value, &ValidateOptions::default()).expect("valid")
}

fn ts(version: &str, backends: &str) -> TrafficSplit {
    let text = format!("apiVersion: split.smi-spec.io/{version}\nkind: TrafficSplit\nmetadata: {{name: s, namespace: ns}}\nspec:\n  service: web\n  backends:\n{backends}");
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    parse_traffic_split(&value).expect("valid")
}

fn overrides(p: &linkerd2_proxy_api::destination::DestinationProfile) -> Vec<(String, u32)> {
    p.dst_overrides
        .iter()
        .map(|d| (d.authority.clone(), d.weight))
        .collect()
}

#[test]
fn profile_dst_overrides_get_ports_and_weights() {
    let profile = sp("  dstOverrides:\n  - {authority: web-v1.ns.svc.cluster.local, weight: 500m}\n  - {authority: 'web-v2.ns.svc.cluster.local:9090', weight: 1}\n");
    let got = destination_profile(
        "web.ns.svc.cluster.local",
        8080,
        None,
        Some(&profile),
        &[],
        "cluster.local",
    );
    assert_eq!(
        overrides(&got),
        vec![
            ("web-v1.ns.svc.cluster.local:8080".to_string(), 5000),
            ("web-v2.ns.svc.cluster.local:9090".to_string(), 10000),
        ]
    );
}

#[test]
fn integer_split_weights_keep_ratios_and_drop_zeros() {
    let split = ts("v1alpha2", "  - {service: web-v1, weight: 90}\n  - {service: web-v2, weight: 10}\n  - {service: web-v3, weight: 0}\n");
    let profile = sp("  dstOverrides:\n  - {authority: other, weight: 1}\n");
    let got = destination_profile(
        "web.ns.svc.cluster.local",
        80,
        None,
        Some(&profile),
        &[&split],
        "cluster.local",
    );
    assert_eq!(
        overrides(&got),
        vec![
            ("web-v1.ns.svc.cluster.local:80".to_string(), 900_000),
            ("web-v2.ns.svc.cluster.local:80".to_string(), 100_000),
        ]
    );
}

#[test]
fn splits_of_other_services_or_namespaces_are_ignored() {
    let split = ts("v1alpha3", "  - {service: web-v1, weight: 1}\n");
    let got = destination_profile(
        "web.other.svc.cluster.local",
        80,
        None,
        None,
        &[&split],
        "cluster.local",
    );
    assert!(got.dst_overrides.is_empty());
    let got = destination_profile(
        "api.ns.svc.cluster.local",
        80,
        None,
        None,
        &[&split],
        "cluster.local",
    );
    assert!(got.dst_overrides.is_empty());
}

#[test]
fn no_profile_is_the_default_profile() {
    let got = destination_profile(
        "web.ns.svc.cluster.local",
        80,
        None,
        None,
        &[],
        "cluster.local",
    );
    assert!(got.routes.is_empty());
    assert_eq!(got.fully_qualified_name, "web.ns.svc.cluster.local");
    let budget = got.retry_budget.expect("budget");
    assert_eq!(
        (budget.retry_ratio, budget.min_retries_per_second),
        (0.2, 10)
    );
    assert_eq!(got.profile_ref, None);
}

#[test]
fn explicit_budget_and_single_field_conditions() {
    let profile = sp("  routes:\n  - {name: r, condition: {method: purge}, isRetryable: true, timeout: 1.5s}\n  retryBudget: {retryRatio: 0.5, minRetriesPerSecond: 3, ttl: 1m}\n");
    let got = destination_profile(
        "web.ns.svc.cluster.local",
        80,
        None,
        Some(&profile),
        &[],
        "cluster.local",
    );
    let budget = got.retry_budget.expect("budget");
    assert_eq!(
        (budget.retry_ratio, budget.min_retries_per_second),
        (0.5, 3)
    );
    assert_eq!(budget.ttl.map(|d| d.seconds), Some(60));
    let route = &got.routes[0];
    assert!(route.is_retryable);
    assert_eq!(
        route.timeout.map(|d| (d.seconds, d.nanos)),
        Some((1, 500_000_000))
    );
    // A single field stays as is (no `all` wrapper); PURGE is unregistered.
    let expected = http_method("purge").expect("token");
    assert_eq!(
        route.condition.as_ref().and_then(|c| c.r#match.clone()),
        Some(linkerd2_proxy_api::destination::request_match::Match::Method(expected))
    );
}

#[test]
fn methods() {
    let t = |m: &str| http_method(m).and_then(|h| h.r#type);
    assert_eq!(
        t("get"),
        Some(http_method::Type::Registered(
            http_method::Registered::Get as i32
        ))
    );
    assert_eq!(
        t("TRACE"),
        Some(http_method::Type::Registered(
            http_method::Registered::Trace as i32
        ))
    );
    assert_eq!(
        t("OPTION"),
        Some(http_method::Type::Unregistered("OPTION".into()))
    );
    assert_eq!(t("bad method"), None);
}
