//! Identity names: how service accounts and the identity service are named.

/// The identity of a workload running as service account `sa` in namespace
/// `ns`: `<sa>.<ns>.serviceaccount.identity.<control_ns>.<trust_domain>`.
pub fn workload_identity(sa: &str, ns: &str, control_ns: &str, trust_domain: &str) -> String {
    format!(
        "{sa}.{ns}.serviceaccount.identity.{control_ns}.{}",
        trust_domain.trim_matches('.')
    )
}

/// The identity the identity service itself presents (and the SNI proxies
/// send): `linkerd-identity.<control_ns>.serviceaccount.identity.<control_ns>.<trust_domain>`.
pub fn identity_service_name(control_ns: &str, trust_domain: &str) -> String {
    workload_identity("linkerd-identity", control_ns, control_ns, trust_domain)
}

/// The trust anchor's common name written by `wisp identity init`.
pub fn trust_anchor_cn(trust_domain: &str) -> String {
    format!("root.linkerd.{}", trust_domain.trim_matches('.'))
}

/// The issuer's common name written by `wisp identity init`.
pub fn issuer_cn(control_ns: &str, trust_domain: &str) -> String {
    format!("identity.{control_ns}.{}", trust_domain.trim_matches('.'))
}

/// True if `s` is a DNS-1123 label: 1–63 characters of `[a-z0-9-]`,
/// starting and ending with an alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    !bytes.is_empty()
        && bytes.len() <= 63
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// True if `s` is a DNS-1123 subdomain made of labels (a trust domain).
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            workload_identity("web", "emojivoto", "linkerd", "cluster.local."),
            "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(
            identity_service_name("linkerd", "cluster.local"),
            "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(
            trust_anchor_cn("cluster.local"),
            "root.linkerd.cluster.local"
        );
        assert_eq!(
            issuer_cn("linkerd", "cluster.local"),
            "identity.linkerd.cluster.local"
        );
    }

    #[test]
    fn labels() {
        assert!(is_dns_label("default"));
        assert!(is_dns_label("a-1"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("a-"));
        assert!(!is_dns_label("A"));
        assert!(!is_dns_label("a.b"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_name("cluster.local"));
        assert!(!is_dns_name("cluster..local"));
    }
}
