//! The controller's state as the admin server reports it: per-role
//! readiness and the counters rendered at `/metrics` (Prometheus text
//! format 0.0.4).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use wisp_identity::k8s::KubeCa;

/// A control-plane role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Destination + policy APIs.
    Destination,
    /// Identity.Certify.
    Identity,
    /// The proxy-injector webhook.
    Injector,
}

impl Role {
    /// The role's name in logs and metric labels.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Destination => "destination",
            Role::Identity => "identity",
            Role::Injector => "injector",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Webhook requests by result.
#[derive(Debug, Default)]
pub(crate) struct WebhookCounts {
    /// Pods patched.
    pub(crate) injected: AtomicU64,
    /// Admitted unchanged.
    pub(crate) skipped: AtomicU64,
    /// Denied or answered with an error status.
    pub(crate) error: AtomicU64,
}

/// What the admin server reports.
#[derive(Debug)]
pub(crate) struct State {
    roles: Vec<(Role, AtomicBool)>,
    kube_ca: OnceLock<Arc<KubeCa>>,
    /// The injector's webhook counters.
    pub(crate) webhook: WebhookCounts,
    /// Namespace-watch restarts of the injector's cluster view.
    pub(crate) injector_watch_restarts: AtomicU64,
    start_time: f64,
}

impl State {
    /// Every role in `enabled` starts not ready.
    pub(crate) fn new(enabled: &[Role]) -> Self {
        Self {
            roles: enabled
                .iter()
                .map(|r| (*r, AtomicBool::new(false)))
                .collect(),
            kube_ca: OnceLock::new(),
            webhook: WebhookCounts::default(),
            injector_watch_restarts: AtomicU64::new(0),
            start_time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
        }
    }

    /// Marks `role` as having its initial state.
    pub(crate) fn set_ready(&self, role: Role) {
        for (r, ready) in &self.roles {
            if *r == role {
                ready.store(true, Ordering::Release);
                tracing::info!(%role, "role ready");
            }
        }
    }

    /// The enabled roles not ready yet.
    pub(crate) fn not_ready(&self) -> Vec<Role> {
        self.roles
            .iter()
            .filter(|(_, ready)| !ready.load(Ordering::Acquire))
            .map(|(r, _)| *r)
            .collect()
    }

    /// Records the identity CA watch (for its counters and issuer expiry).
    pub(crate) fn set_kube_ca(&self, ca: Arc<KubeCa>) {
        let _ = self.kube_ca.set(ca);
    }

    /// Why the issuer is not (or no longer) loaded, if it is not.
    pub(crate) fn issuer_error(&self) -> Option<String> {
        self.kube_ca.get().and_then(|c| c.stats().last_error())
    }

    /// The Prometheus text exposition of the controller's metrics.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "wisp_controller_role_ready",
            "gauge",
            "Whether a role has its initial state (1) or not yet (0).",
        );
        for (role, ready) in &self.roles {
            let v = u8::from(ready.load(Ordering::Acquire));
            let _ = writeln!(out, "wisp_controller_role_ready{{role=\"{role}\"}} {v}");
        }
        if let Some(kube_ca) = self.kube_ca.get() {
            let stats = kube_ca.stats();
            let ca = kube_ca.current();
            family(
                &mut out,
                "wisp_identity_certificates_issued_total",
                "counter",
                "Certificates issued (workloads and the controller's own).",
            );
            let issued = ca.as_ref().map_or(0, |c| c.issued_count());
            let _ = writeln!(out, "wisp_identity_certificates_issued_total {issued}");
            family(
                &mut out,
                "wisp_identity_issuer_updates_total",
                "counter",
                "Changes of the issuer Secret or trust-roots ConfigMap, by result.",
            );
            let loaded = stats.loads.load(Ordering::Relaxed);
            let rejected = stats.rejected.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "wisp_identity_issuer_updates_total{{result=\"loaded\"}} {loaded}"
            );
            let _ = writeln!(
                out,
                "wisp_identity_issuer_updates_total{{result=\"rejected\"}} {rejected}"
            );
            if let Some(ca) = ca {
                family(
                    &mut out,
                    "wisp_identity_issuer_expiry_timestamp_seconds",
                    "gauge",
                    "When the issuer chain (issuer or its trust anchor) expires.",
                );
                let expiry = ca
                    .chain_not_after()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "wisp_identity_issuer_expiry_timestamp_seconds {expiry}"
                );
            }
            family(
                &mut out,
                "wisp_kube_watch_restarts_total",
                "counter",
                "Watch streams re-listed after a failure or expiry, by watch.",
            );
            let restarts = stats.watch_restarts.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "wisp_kube_watch_restarts_total{{watch=\"identity-issuer\"}} {restarts}"
            );
            if self.roles.iter().any(|(r, _)| *r == Role::Injector) {
                let restarts = self.injector_watch_restarts.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "wisp_kube_watch_restarts_total{{watch=\"namespaces\"}} {restarts}"
                );
            }
            family(
                &mut out,
                "wisp_kube_watch_errors_total",
                "counter",
                "Watch stream errors (each retried with backoff), by watch.",
            );
            let errors = stats.watch_errors.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "wisp_kube_watch_errors_total{{watch=\"identity-issuer\"}} {errors}"
            );
        }
        if self.roles.iter().any(|(r, _)| *r == Role::Injector) {
            family(
                &mut out,
                "wisp_injector_webhook_requests_total",
                "counter",
                "Admission requests answered by the injector webhook, by result.",
            );
            for (result, n) in [
                ("injected", &self.webhook.injected),
                ("skipped", &self.webhook.skipped),
                ("error", &self.webhook.error),
            ] {
                let n = n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "wisp_injector_webhook_requests_total{{result=\"{result}\"}} {n}"
                );
            }
        }
        family(
            &mut out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
        );
        let _ = writeln!(out, "process_start_time_seconds {:.3}", self.start_time);
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_and_rendering() {
        let state = State::new(&[Role::Identity, Role::Injector]);
        assert_eq!(state.not_ready(), vec![Role::Identity, Role::Injector]);
        state.set_ready(Role::Identity);
        state.webhook.injected.fetch_add(2, Ordering::Relaxed);
        assert_eq!(state.not_ready(), vec![Role::Injector]);
        let text = state.render();
        let ready = |role: &str| {
            wisp_common::prometheus::sum(&text, "wisp_controller_role_ready", &[("role", role)])
        };
        assert_eq!(ready("identity"), 1.0);
        assert_eq!(ready("injector"), 0.0);
        assert_eq!(
            wisp_common::prometheus::sum(
                &text,
                "wisp_injector_webhook_requests_total",
                &[("result", "injected")]
            ),
            2.0
        );
        assert!(wisp_common::prometheus::value(&text, "process_start_time_seconds").is_some());
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(wisp_common::prometheus::parse_line(line).is_ok(), "{line}");
        }
    }
}
