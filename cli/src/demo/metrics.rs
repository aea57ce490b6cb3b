//! The end-of-demo summary read from the client proxy's own `/metrics`:
//! outbound `request_total` summed per `dst_pod`.

use std::collections::BTreeMap;

/// Sums `request_total{direction="outbound",...}` per `dst_pod` label
/// (series without one are summed under `"(none)"`).
pub fn outbound_requests_by_pod(text: &str) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("request_total{") else {
            continue;
        };
        let Some((labels, value)) = split_series(rest) else {
            continue;
        };
        let labels = parse_labels(labels);
        if labels.get("direction").map(String::as_str) != Some("outbound") {
            continue;
        }
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let pod = labels
            .get("dst_pod")
            .cloned()
            .unwrap_or_else(|| "(none)".into());
        *sums.entry(pod).or_default() += value as u64;
    }
    sums
}

/// Splits `labels} value` at the closing brace (outside quotes).
fn split_series(rest: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some((&rest[..i], &rest[i + 1..])),
            _ => {}
        }
    }
    None
}

/// Parses `k="v",k2="v2"` (Prometheus text escapes `\\`, `\"`, `\n`).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = chars
            .by_ref()
            .skip_while(|c| *c == ',' || c.is_whitespace())
            .take_while(|c| *c != '=')
            .collect();
        if key.is_empty() || chars.next() != Some('"') {
            return labels;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                c => value.push(c),
            }
        }
        labels.insert(key.trim().to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_outbound_per_pod() {
        let text = r#"# HELP request_total Total count of HTTP requests.
# TYPE request_total counter
request_total{direction="outbound",authority="web.default.svc.cluster.local:80",dst_pod="web-a",tls="disabled"} 10
request_total{direction="outbound",authority="a\"},b",dst_pod="web-a"} 5
request_total{direction="outbound",dst_pod="web-c"} 2
request_total{direction="inbound",dst_pod="web-b"} 7
request_total{direction="outbound"} 1
response_total{direction="outbound",dst_pod="web-a"} 99
"#;
        let sums = outbound_requests_by_pod(text);
        assert_eq!(sums.get("web-a"), Some(&15));
        assert_eq!(sums.get("web-c"), Some(&2));
        assert_eq!(sums.get("web-b"), None);
        assert_eq!(sums.get("(none)"), Some(&1));
    }
}
