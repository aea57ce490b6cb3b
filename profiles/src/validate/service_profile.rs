//! Semantic rules of ServiceProfiles (Linkerd's sp-validator and more).

use super::problem::{field, index, Problems};
use super::syntax::{
    check_regex, is_dns1123_label, is_dns1123_subdomain, is_http_token, split_authority,
};
use super::ValidateOptions;
use crate::types::{
    parse_go_duration, RequestMatch, ResponseMatch, RetryBudget, ServiceProfile, WeightedDst,
};

/// Checks every rule on a typed ServiceProfile; problems carry field paths
/// but no file/object (the caller attaches them).
pub(crate) fn check(sp: &ServiceProfile, opts: &ValidateOptions, out: &mut Problems) {
    check_name(
        sp.metadata.name.as_deref().unwrap_or_default(),
        &opts.cluster_domain,
        out,
    );
    for (i, route) in sp.spec.routes.iter().enumerate() {
        let path = index("spec.routes", i);
        if route.name.trim().is_empty() {
            out.push(field(&path, "name"), "a route must have a name");
        }
        request_match(&route.condition, &field(&path, "condition"), out);
        for (j, class) in route.response_classes.iter().enumerate() {
            let class_path = index(&field(&path, "responseClasses"), j);
            response_match(&class.condition, &field(&class_path, "condition"), out);
        }
        if let Some(timeout) = &route.timeout {
            duration(timeout, &field(&path, "timeout"), out);
        }
    }
    if let Some(budget) = &sp.spec.retry_budget {
        retry_budget(budget, "spec.retryBudget", out);
    }
    for (i, dst) in sp.spec.dst_overrides.iter().enumerate() {
        dst_override(dst, &index("spec.dstOverrides", i), out);
    }
}

fn check_name(name: &str, cluster_domain: &str, out: &mut Problems) {
    let path = "metadata.name";
    if name.is_empty() {
        return out.push(path, "missing required field");
    }
    if !is_dns1123_subdomain(name) {
        return out.push(path, format!("{name:?} is not a valid DNS-1123 subdomain"));
    }
    let suffix = format!(".svc.{cluster_domain}");
    let ok = name
        .strip_suffix(&suffix)
        .and_then(|prefix| prefix.split_once('.'))
        .is_some_and(|(svc, ns)| is_dns1123_label(svc) && is_dns1123_label(ns));
    if !ok {
        out.push(
            path,
            format!("{name:?} must be the service's name <service>.<namespace>{suffix}"),
        );
    }
}

fn request_match(m: &RequestMatch, path: &str, out: &mut Problems) {
    let set = m.all.is_some()
        || m.any.is_some()
        || m.not.is_some()
        || m.path_regex.is_some()
        || m.method.is_some();
    if !set {
        return out.push(path, "a request match must have a field set");
    }
    if let Some(regex) = &m.path_regex {
        if let Err(e) = check_regex(regex) {
            out.push(field(path, "pathRegex"), e.to_string());
        }
    }
    if let Some(method) = &m.method {
        if !is_http_token(method) {
            out.push(
                field(path, "method"),
                format!("{method:?} is not an HTTP method (not a token)"),
            );
        }
    }
    for (key, list) in [("all", &m.all), ("any", &m.any)] {
        for (i, child) in list.iter().flatten().enumerate() {
            request_match(child, &index(&field(path, key), i), out);
        }
    }
    if let Some(not) = &m.not {
        request_match(not, &field(path, "not"), out);
    }
}

fn response_match(m: &ResponseMatch, path: &str, out: &mut Problems) {
    let set = m.all.is_some() || m.any.is_some() || m.not.is_some() || m.status.is_some();
    if !set {
        return out.push(path, "a response match must have a field set");
    }
    if let Some(range) = &m.status {
        let status = field(path, "status");
        if range.min == 0 && range.max == 0 {
            out.push(&status, "a status range must set min or max");
        }
        for (key, v) in [("min", range.min), ("max", range.max)] {
            if v != 0 && !(100..=599).contains(&v) {
                out.push(field(&status, key), format!("{v} is outside 100..599"));
            }
        }
        if range.min != 0 && range.max != 0 && range.min > range.max {
            out.push(
                &status,
                format!("min {} is greater than max {}", range.min, range.max),
            );
        }
    }
    for (key, list) in [("all", &m.all), ("any", &m.any)] {
        if let Some(list) = list {
            if list.is_empty() {
                out.push(
                    field(path, key),
                    "an empty list never matches (the proxy drops it)",
                );
            }
            for (i, child) in list.iter().enumerate() {
                response_match(child, &index(&field(path, key), i), out);
            }
        }
    }
    if let Some(not) = &m.not {
        response_match(not, &field(path, "not"), out);
    }
}

fn duration(text: &str, path: &str, out: &mut Problems) {
    match parse_go_duration(text) {
        Err(e) => out.push(path, e.to_string()),
        Ok(n) if n < 0 => out.push(path, format!("duration {text:?} must not be negative")),
        Ok(_) => {}
    }
}

fn retry_budget(budget: &RetryBudget, path: &str, out: &mut Problems) {
    let ratio = budget.retry_ratio;
    if !ratio.is_finite() || ratio < 0.0 {
        out.push(
            field(path, "retryRatio"),
            format!("{ratio} must not be negative"),
        );
    } else if ratio > 1000.0 {
        out.push(
            field(path, "retryRatio"),
            format!("{ratio} is above 1000 (the proxy ignores the budget)"),
        );
    }
    if budget.min_retries_per_second > i32::MAX as u32 {
        out.push(
            field(path, "minRetriesPerSecond"),
            "must be at most 2147483647",
        );
    }
    if budget.ttl.is_empty() {
        out.push(field(path, "ttl"), "missing required field");
    } else {
        duration(&budget.ttl, &field(path, "ttl"), out);
    }
}

fn dst_override(dst: &WeightedDst, path: &str, out: &mut Problems) {
    if let Err(e) = split_authority(&dst.authority) {
        out.push(field(path, "authority"), e.to_string());
    }
    match dst.weight.milli_value() {
        Err(e) => out.push(field(path, "weight"), e.to_string()),
        Ok(n) if n < 0 => out.push(
            field(path, "weight"),
            format!("{} must not be negative", dst.weight),
        ),
        Ok(_) => {}
    }
}
