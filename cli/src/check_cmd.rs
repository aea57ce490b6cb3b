//! `wisp check [--pre] [-n linkerd] [-o basic|json]`: is the cluster ready
//! for wisp (`--pre`), and is the installed control plane healthy?
//!
//! One line per check, `linkerd check` style: `√` passed, `‼` warning
//! (with a hint), `×` failed (with the error and a hint). Any failure makes
//! the command exit non-zero; warnings do not. A failure of the API checks
//! stops there (nothing else can be asked). `docs/kubernetes.md` §7 lists
//! every check.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wisp_common::error::chain;

use anyhow::Context;
use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The oldest Kubernetes wisp supports: every API it uses is GA there
/// (`discovery.k8s.io/v1` EndpointSlices, `authentication.k8s.io/v1`
/// TokenReview with audiences, `admissionregistration.k8s.io/v1`,
/// projected ServiceAccount tokens, native sidecars need 1.29 but are optional).
const MIN_KUBERNETES: (u32, u32) = (1, 23);
/// Certificates expiring sooner than this get a warning.
const EXPIRY_WARNING_DAYS: i64 = 30;
/// Per-request timeout (connect and read).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the webhook reachability probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The CRDs wisp's destination reads.
const CRDS: [&str; 2] = [
    "serviceprofiles.linkerd.io",
    "trafficsplits.split.smi-spec.io",
];
/// The controller Deployments: either the all-roles one or the split ones.
const ALL_ROLES_DEPLOYMENT: &str = "wisp-controller";
const SPLIT_DEPLOYMENTS: [&str; 3] = ["wisp-destination", "wisp-identity", "wisp-proxy-injector"];
const INJECTOR_SECRET: &str = "wisp-proxy-injector-k8s-tls";
const WEBHOOK_CONFIG: &str = "linkerd-proxy-injector-webhook-config";
const WEBHOOK_NAME: &str = "linkerd-proxy-injector.linkerd.io";
const INJECTOR_SERVICE: &str = "linkerd-proxy-injector";
const PROXY_VERSION_ANNOTATION: &str = "linkerd.io/proxy-version";

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One line per check.
    Basic,
    /// Linkerd's JSON shape: `{"success", "categories": [{"categoryName", "checks": [...]}]}`.
    Json,
}

/// Arguments of `wisp check`.
#[derive(clap::Args)]
pub struct Args {
    /// Check that the cluster is ready for an install instead of checking
    /// the installed control plane.
    #[arg(long)]
    pre: bool,
    /// Control-plane namespace.
    #[arg(
        short = 'n',
        long = "namespace",
        env = "WISP_CONTROL_PLANE_NS",
        default_value = "linkerd"
    )]
    namespace: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "basic")]
    output: Output,
    /// The proxy version data-plane pods should run (default: this CLI's).
    #[arg(long)]
    proxy_version: Option<String>,
}

/// A check's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Success,
    Warning,
    Error,
}

/// One check line.
#[derive(Debug, Serialize)]
struct CheckResult {
    description: String,
    result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

/// A group of checks.
#[derive(Debug, Serialize)]
struct Category {
    #[serde(rename = "categoryName")]
    name: String,
    checks: Vec<CheckResult>,
}

/// The whole report.
#[derive(Debug, Default, Serialize)]
struct Report {
    success: bool,
    categories: Vec<Category>,
}

impl Report {
    fn category(&mut self, name: &str) -> &mut Category {
        self.categories.push(Category {
            name: name.to_string(),
            checks: Vec::new(),
        });
        let last = self.categories.len() - 1;
        &mut self.categories[last]
    }

    fn failed(&self) -> usize {
        self.categories
            .iter()
            .flat_map(|c| &c.checks)
            .filter(|c| c.result == Outcome::Error)
            .count()
    }
}

impl Category {
    fn ok(&mut self, description: impl Into<String>) {
        self.checks.push(CheckResult {
            description: description.into(),
            result: Outcome::Success,
            error: None,
            hint: None,
        });
    }

    fn warn(&mut self, description: impl Into<String>, error: impl Into<String>, hint: &str) {
        self.checks.push(CheckResult {
            description: description.into(),
            result: Outcome::Warning,
            error: Some(error.into()),
            hint: Some(hint.to_string()),
        });
    }

    fn fail(&mut self, description: impl Into<String>, error: impl Into<String>, hint: &str) {
        self.checks.push(CheckResult {
            description: description.into(),
            result: Outcome::Error,
            error: Some(error.into()),
            hint: Some(hint.to_string()),
        });
    }

    /// `Ok` passes, `Err` fails with `hint`.
    fn check(&mut self, description: &str, result: Result<(), String>, hint: &str) -> bool {
        match result {
            Ok(()) => {
                self.ok(description);
                true
            }
            Err(e) => {
                self.fail(description, e, hint);
                false
            }
        }
    }
}

/// Runs `wisp check`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(checks(&args));
    drop(runtime);
    match args.output {
        Output::Json => {
            let json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
            println!("{json}");
        }
        Output::Basic => print!("{}", render(&report)),
    }
    match report.failed() {
        0 => Ok(()),
        n => anyhow::bail!("{n} check(s) failed"),
    }
}

fn render(report: &Report) -> String {
    let mut out = String::new();
    for category in &report.categories {
        let _ = writeln!(out, "{}", category.name);
        let _ = writeln!(out, "{}", "-".repeat(category.name.chars().count()));
        for check in &category.checks {
            let mark = match check.result {
                Outcome::Success => "√",
                Outcome::Warning => "‼",
                Outcome::Error => "×",
            };
            let _ = writeln!(out, "{mark} {}", check.description);
            if let Some(error) = &check.error {
                for line in error.lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
            if let Some(hint) = &check.hint {
                let _ = writeln!(out, "    see: {hint}");
            }
        }
        out.push('\n');
    }
    let mark = if report.success { "√" } else { "×" };
    let _ = writeln!(out, "Status check results are {mark}");
    out
}

async fn checks(args: &Args) -> Report {
    let mut report = Report::default();
    let Some(client) = api_checks(&mut report).await else {
        report.success = false;
        return report;
    };
    let ns = args.namespace.as_str();
    if args.pre {
        pre_checks(&mut report, &client, ns).await;
    } else {
        rbac_post(&mut report, &client, ns).await;
        crd_checks(&mut report, &client).await;
        control_plane_checks(&mut report, &client, ns).await;
        identity_checks(&mut report, &client, ns).await;
        webhook_checks(&mut report, &client, ns).await;
        let want = args
            .proxy_version
            .clone()
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
        data_plane_checks(&mut report, &client, &want).await;
    }
    report.success = report.failed() == 0;
    report
}

/// `kubernetes-api` and `kubernetes-version`; the client when reachable.
async fn api_checks(report: &mut Report) -> Option<Client> {
    let category = report.category("kubernetes-api");
    let config = match kube::Config::infer().await {
        Ok(mut config) => {
            config.connect_timeout = Some(REQUEST_TIMEOUT);
            config.read_timeout = Some(REQUEST_TIMEOUT);
            config
        }
        Err(e) => {
            category.fail(
                "can initialize the client",
                chain(&e),
                "set KUBECONFIG or run inside the cluster",
            );
            return None;
        }
    };
    let client = match Client::try_from(config) {
        Ok(client) => client,
        Err(e) => {
            category.fail(
                "can initialize the client",
                chain(&e),
                "check the kubeconfig's cluster and credentials",
            );
            return None;
        }
    };
    category.ok("can initialize the client");
    let version = match client.apiserver_version().await {
        Ok(v) => v,
        Err(e) => {
            category.fail(
                "can query the Kubernetes API",
                chain(&e),
                "is the API server reachable from here, and are the credentials valid?",
            );
            return None;
        }
    };
    category.ok("can query the Kubernetes API");
    let category = report.category("kubernetes-version");
    let (min_major, min_minor) = MIN_KUBERNETES;
    let description = "is running the minimum Kubernetes API version";
    match parse_version(&version.major, &version.minor) {
        Some(v) if v >= MIN_KUBERNETES => category.ok(format!("{description} (v{}.{})", v.0, v.1)),
        Some(v) => category.fail(
            description,
            format!(
                "Kubernetes is v{}.{}; wisp needs v{min_major}.{min_minor} or later",
                v.0, v.1
            ),
            "upgrade the cluster",
        ),
        None => category.fail(
            description,
            format!(
                "cannot read the version {:?}.{:?} ({})",
                version.major, version.minor, version.git_version
            ),
            "the API server's /version answer is unusual",
        ),
    }
    Some(client)
}

/// `"1"`, `"27+"` → `(1, 27)`.
fn parse_version(major: &str, minor: &str) -> Option<(u32, u32)> {
    let digits = |s: &str| -> Option<u32> {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    Some((digits(major)?, digits(minor)?))
}

/// Asks the API server whether the current user may `verb` `resource`.
async fn can(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> Result<(), String> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_string()),
                group: Some(group.to_string()),
                resource: Some(resource.to_string()),
                namespace: namespace.map(str::to_string),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| format!("SelfSubjectAccessReview failed: {}", chain(&e)))?;
    let status = answer.status.unwrap_or_default();
    if status.allowed {
        Ok(())
    } else {
        let group = if group.is_empty() { "core" } else { group };
        let mut msg = format!("not allowed to {verb} {resource} ({group})");
        if let Some(reason) = status.reason.filter(|r| !r.is_empty()) {
            msg.push_str(&format!(": {reason}"));
        }
        Err(msg)
    }
}

async fn can_all(
    client: &Client,
    verb: &str,
    resources: &[(&str, &str)],
    namespace: Option<&str>,
) -> Result<(), String> {
    let mut denied = Vec::new();
    for (group, resource) in resources {
        if let Err(e) = can(client, verb, group, resource, namespace).await {
            denied.push(e);
        }
    }
    if denied.is_empty() {
        Ok(())
    } else {
        Err(denied.join("\n"))
    }
}

async fn pre_checks(report: &mut Report, client: &Client, ns: &str) {
    let category = report.category("pre-kubernetes-setup");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.get_opt(ns).await {
        Ok(None) => category.ok("control plane namespace does not already exist"),
        Ok(Some(_)) => category.fail(
            "control plane namespace does not already exist",
            format!("the {ns} namespace already exists"),
            "use --namespace for another namespace, or uninstall the existing control plane",
        ),
        Err(e) => category.fail(
            "control plane namespace does not already exist",
            chain(&e),
            "the current user must be able to read Namespaces",
        ),
    }
    let hint = "the installing user needs cluster-admin (or these permissions)";
    let cluster_scoped = [
        ("", "namespaces"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        ),
    ];
    let result = can_all(client, "create", &cluster_scoped, None).await;
    category.check("can create non-namespaced resources", result, hint);
    for (description, group, resource) in [
        ("can create ServiceAccounts", "", "serviceaccounts"),
        ("can create Services", "", "services"),
        ("can create Deployments", "apps", "deployments"),
        ("can create ConfigMaps", "", "configmaps"),
        ("can create Secrets", "", "secrets"),
        ("can create Roles", "rbac.authorization.k8s.io", "roles"),
        (
            "can create RoleBindings",
            "rbac.authorization.k8s.io",
            "rolebindings",
        ),
    ] {
        let result = can(client, "create", group, resource, Some(ns)).await;
        category.check(description, result, hint);
    }
}

async fn rbac_post(report: &mut Report, client: &Client, ns: &str) {
    let category = report.category("kubernetes-access");
    let hint = "wisp check needs to read the control plane's objects (e.g. the view role plus Secrets in the control-plane namespace)";
    let namespaced = [
        ("", "pods"),
        ("apps", "deployments"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "services"),
    ];
    let mut result = can_all(client, "list", &namespaced, Some(ns)).await;
    if result.is_ok() {
        let cluster = [
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            (
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
            ),
            ("", "pods"),
        ];
        result = can_all(client, "list", &cluster, None).await;
    }
    category.check("can read the control plane's objects", result, hint);
}

async fn crd_checks(report: &mut Report, client: &Client) {
    let category = report.category("linkerd-crds");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut missing = Vec::new();
    for name in CRDS {
        match api.get_opt(name).await {
            Ok(Some(crd)) => {
                let not_established = crd
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "False");
                if not_established {
                    missing.push(format!("{name} is not established"));
                }
            }
            Ok(None) => missing.push(format!("missing {name}")),
            Err(e) => missing.push(format!("{name}: {}", chain(&e))),
        }
    }
    category.check(
        "control plane CustomResourceDefinitions exist",
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("\n"))
        },
        "install the CRDs (the wisp chart, or `wisp install --crds`)",
    );
}

async fn control_plane_checks(report: &mut Report, client: &Client, ns: &str) {
    let category = report.category("linkerd-control-plane");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.get_opt(ns).await {
        Ok(Some(_)) => category.ok("control plane namespace exists"),
        Ok(None) => {
            category.fail(
                "control plane namespace exists",
                format!("the {ns} namespace does not exist"),
                "install the control plane, or pass its namespace with -n",
            );
            return;
        }
        Err(e) => {
            category.fail("control plane namespace exists", chain(&e), "check access");
            return;
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut found = Vec::new();
    for name in std::iter::once(ALL_ROLES_DEPLOYMENT).chain(SPLIT_DEPLOYMENTS) {
        match deployments.get_opt(name).await {
            Ok(Some(d)) => found.push(d),
            Ok(None) => {}
            Err(e) => {
                category.fail("controller Deployments exist", chain(&e), "check access");
                return;
            }
        }
    }
    let names: Vec<String> = found
        .iter()
        .map(|d| d.metadata.name.clone().unwrap_or_default())
        .collect();
    let complete = names.iter().any(|n| n == ALL_ROLES_DEPLOYMENT)
        || SPLIT_DEPLOYMENTS
            .iter()
            .all(|s| names.iter().any(|n| n == s));
    if !complete {
        category.fail(
            "controller Deployments exist",
            format!(
                "found {:?}; expected {ALL_ROLES_DEPLOYMENT} or all of {SPLIT_DEPLOYMENTS:?} in {ns}",
                names
            ),
            "install the control plane (the wisp chart or `wisp install`)",
        );
        return;
    }
    category.ok("controller Deployments exist");
    let mut unavailable = Vec::new();
    let mut partial = Vec::new();
    for d in &found {
        let name = d.metadata.name.clone().unwrap_or_default();
        let want = d.spec.replicas.unwrap_or(1);
        let available = d
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        if available < 1 {
            unavailable.push(format!("{name}: no available replicas (wants {want})"));
        } else if available < want {
            partial.push(format!("{name}: {available} of {want} replicas available"));
        }
    }
    let description = "controller Deployments are available";
    if !unavailable.is_empty() {
        category.fail(
            description,
            unavailable.join("\n"),
            "kubectl -n <ns> describe deployment; look at the pods' events and logs",
        );
    } else if !partial.is_empty() {
        category.warn(
            description,
            partial.join("\n"),
            "some replicas are still starting or failing",
        );
    } else {
        category.ok(description);
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let listed = pods
        .list(&ListParams::default().labels("linkerd.io/control-plane-component"))
        .await;
    let description = "control plane pods are ready";
    match listed {
        Err(e) => category.fail(description, chain(&e), "check access"),
        Ok(list) if list.items.is_empty() => category.fail(
            description,
            format!("no pods labelled linkerd.io/control-plane-component in {ns}"),
            "the Deployments have no pods yet",
        ),
        Ok(list) => {
            let not_ready: Vec<String> = list
                .items
                .iter()
                .filter(|p| !pod_ready(p))
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect();
            if not_ready.is_empty() {
                category.ok(description);
            } else {
                category.fail(
                    description,
                    format!("not ready: {}", not_ready.join(", ")),
                    "kubectl -n <ns> describe pod; the controller's /ready says which role waits",
                );
            }
        }
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Days from now until `not_after` (negative when past).
fn days_left(cert: &X509Certificate<'_>) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    (cert.validity().not_after.timestamp() - now).div_euclid(86_400)
}

/// Validity checks of `certs` (named `what`): within their validity period
/// (fail), and for at least [`EXPIRY_WARNING_DAYS`] more (warn).
fn validity_checks(category: &mut Category, what: &str, certs: &[CertificateDer<'_>]) -> bool {
    let mut invalid = Vec::new();
    let mut soon = Vec::new();
    let mut min_days = i64::MAX;
    for der in certs {
        match X509Certificate::from_der(der) {
            Err(e) => invalid.push(format!("does not parse: {e}")),
            Ok((_, cert)) => {
                let subject = cert.subject().to_string();
                if !cert.validity().is_valid() {
                    invalid.push(format!(
                        "{subject} is outside its validity period ({} to {})",
                        cert.validity().not_before,
                        cert.validity().not_after
                    ));
                    continue;
                }
                let days = days_left(&cert);
                min_days = min_days.min(days);
                if days < EXPIRY_WARNING_DAYS {
                    soon.push(format!(
                        "{subject} expires in {days} days ({})",
                        cert.validity().not_after
                    ));
                }
            }
        }
    }
    let ok = category.check(
        &format!("{what} within its validity period"),
        if invalid.is_empty() {
            Ok(())
        } else {
            Err(invalid.join("\n"))
        },
        "replace the certificate (rotate it)",
    );
    if !ok {
        return false;
    }
    let description = format!("{what} valid for at least {EXPIRY_WARNING_DAYS} days");
    if soon.is_empty() {
        category.ok(format!("{description} (expires in {min_days} days)"));
    } else {
        category.warn(
            description,
            soon.join("\n"),
            "rotate the certificate before it expires",
        );
    }
    true
}

async fn identity_checks(report: &mut Report, client: &Client, ns: &str) {
    let category = report.category("linkerd-identity");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let roots_name = wisp_identity::k8s::TRUST_ROOTS_CONFIGMAP;
    let issuer_name = wisp_identity::k8s::ISSUER_SECRET;
    let anchors = match configmaps.get_opt(roots_name).await {
        Ok(Some(cm)) => wisp_identity::k8s::anchors_from_configmap(&cm).map_err(|e| chain(&e)),
        Ok(None) => Err(format!("ConfigMap {ns}/{roots_name} not found")),
        Err(e) => Err(chain(&e)),
    };
    let hint = "the install writes the trust anchors and the issuer; see docs/kubernetes.md §1";
    let anchors = match anchors {
        Ok(a) => {
            category.ok("trust anchors are readable");
            a
        }
        Err(e) => {
            category.fail("trust anchors are readable", e, hint);
            return;
        }
    };
    let anchors_valid = validity_checks(category, "trust anchors are", &anchors);
    let issuer = match secrets.get_opt(issuer_name).await {
        Ok(Some(secret)) => wisp_identity::k8s::issuer_from_secret(&secret).map_err(|e| chain(&e)),
        Ok(None) => Err(format!("Secret {ns}/{issuer_name} not found")),
        Err(e) => Err(chain(&e)),
    };
    let (chain_certs, key) = match issuer {
        Ok(i) => {
            category.ok("issuer certificate is readable");
            i
        }
        Err(e) => {
            category.fail("issuer certificate is readable", e, hint);
            return;
        }
    };
    let issuer_valid = validity_checks(category, "issuer certificate is", &chain_certs[..1]);
    if anchors_valid && issuer_valid {
        let result = wisp_identity::Ca::from_der(
            anchors,
            chain_certs[0].clone(),
            &key,
            wisp_identity::Validity::default(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string());
        category.check(
            "issuer certificate is issued by the trust anchor",
            result,
            "the issuer must be an ECDSA P-256 CA signed by one of the trust anchors, with its key",
        );
    }
}

async fn webhook_checks(report: &mut Report, client: &Client, ns: &str) {
    let category = report.category("linkerd-webhooks");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let serving = match secrets.get_opt(INJECTOR_SECRET).await {
        Ok(Some(secret)) => secret
            .data
            .as_ref()
            .and_then(|d| d.get("tls.crt"))
            .map(|b| b.0.clone())
            .ok_or_else(|| format!("Secret {ns}/{INJECTOR_SECRET} has no tls.crt"))
            .and_then(|pem| {
                CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("tls.crt: bad PEM: {e}"))
            })
            .and_then(|certs| {
                if certs.is_empty() {
                    Err("tls.crt: no CERTIFICATE block".to_string())
                } else {
                    Ok(certs)
                }
            }),
        Ok(None) => Err(format!("Secret {ns}/{INJECTOR_SECRET} not found")),
        Err(e) => Err(chain(&e)),
    };
    let hint = "the install creates the injector's serving certificate";
    let serving = match serving {
        Ok(s) => {
            category.ok("proxy-injector serving certificate is readable");
            Some(s)
        }
        Err(e) => {
            category.fail("proxy-injector serving certificate is readable", e, hint);
            None
        }
    };
    if let Some(serving) = &serving {
        validity_checks(category, "proxy-injector certificate is", &serving[..1]);
    }
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let webhook = match configs.get_opt(WEBHOOK_CONFIG).await {
        Ok(Some(config)) => config
            .webhooks
            .unwrap_or_default()
            .into_iter()
            .find(|w| w.name == WEBHOOK_NAME)
            .ok_or_else(|| format!("{WEBHOOK_CONFIG} has no webhook {WEBHOOK_NAME}")),
        Ok(None) => Err(format!(
            "MutatingWebhookConfiguration {WEBHOOK_CONFIG} not found"
        )),
        Err(e) => Err(chain(&e)),
    };
    let webhook = match webhook {
        Ok(w) => w,
        Err(e) => {
            category.fail(
                "proxy-injector webhook is configured",
                e,
                "the install creates the MutatingWebhookConfiguration",
            );
            return;
        }
    };
    let service = webhook.client_config.service.as_ref();
    let points_right = service.is_some_and(|s| s.name == INJECTOR_SERVICE && s.namespace == ns);
    if !category.check(
        "proxy-injector webhook is configured",
        if points_right {
            Ok(())
        } else {
            Err(format!(
                "the webhook does not call Service {ns}/{INJECTOR_SERVICE}"
            ))
        },
        "reinstall, or fix clientConfig.service",
    ) {
        return;
    }
    let bundle = webhook
        .client_config
        .ca_bundle
        .as_ref()
        .map(|b| b.0.clone())
        .unwrap_or_default();
    let server_name = format!("{INJECTOR_SERVICE}.{ns}.svc");
    let Some(serving) = serving else {
        return;
    };
    let verified = verify_with_bundle(&bundle, &serving, &server_name);
    let ok = category.check(
        "the webhook's caBundle verifies the injector's serving certificate",
        verified.as_ref().map(|_| ()).map_err(Clone::clone),
        "the caBundle and Secret wisp-proxy-injector-k8s-tls were rotated separately: update the caBundle",
    );
    if !ok {
        return;
    }
    let Ok(verifier_roots) = verified else {
        return;
    };
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let cluster_ip = match services.get_opt(INJECTOR_SERVICE).await {
        Ok(Some(svc)) => svc
            .spec
            .and_then(|s| s.cluster_ip)
            .filter(|ip| !ip.is_empty() && ip != "None"),
        Ok(None) => {
            category.fail(
                "proxy-injector Service exists",
                format!("Service {ns}/{INJECTOR_SERVICE} not found"),
                "the install creates it",
            );
            return;
        }
        Err(e) => {
            category.fail("proxy-injector Service exists", chain(&e), "check access");
            return;
        }
    };
    let description = "proxy-injector webhook is reachable";
    let Some(ip) = cluster_ip else {
        category.warn(
            description,
            "the Service has no ClusterIP to probe",
            "the API server reaches the webhook through the Service",
        );
        return;
    };
    let port = webhook
        .client_config
        .service
        .as_ref()
        .and_then(|s| s.port)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(443);
    match probe_tls(&ip, port, &server_name, verifier_roots).await {
        Ok(()) => category.ok(description),
        Err(e) => category.warn(
            description,
            format!("TLS to {ip}:{port} from here: {e}"),
            "the Service's ClusterIP is usually only reachable inside the cluster; the API server may still reach it",
        ),
    }
}

/// Verifies `serving` (leaf first) for `server_name` against the PEM CA
/// bundle; returns the bundle's root store.
fn verify_with_bundle(
    bundle: &[u8],
    serving: &[CertificateDer<'static>],
    server_name: &str,
) -> Result<Arc<rustls::RootCertStore>, String> {
    // The API returns caBundle as base64 of PEM; k8s-openapi decodes the
    // base64, but accept a doubly encoded bundle too.
    let pem = if bundle.starts_with(b"-----") {
        bundle.to_vec()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(bundle.trim_ascii())
            .unwrap_or_else(|_| bundle.to_vec())
    };
    let anchors = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("caBundle: bad PEM: {e}"))?;
    if anchors.is_empty() {
        return Err("the webhook has no caBundle".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    for anchor in anchors {
        roots
            .add(anchor)
            .map_err(|e| format!("caBundle certificate rejected: {e}"))?;
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider)
            .build()
            .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    verifier
        .verify_server_cert(&serving[0], &serving[1..], &name, &[], UnixTime::now())
        .map_err(|e| {
            format!("the injector's certificate does not verify for {server_name}: {e}")
        })?;
    Ok(roots)
}

/// A TLS handshake with the injector Service, verified with the caBundle.
async fn probe_tls(
    ip: &str,
    port: u16,
    server_name: &str,
    roots: Arc<rustls::RootCertStore>,
) -> Result<(), String> {
    let ip: std::net::IpAddr = ip.parse().map_err(|e| format!("bad ClusterIP: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(SocketAddr::new(ip, port))
            .await
            .map_err(|e| e.to_string())?;
        connector
            .connect(name, tcp)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(PROBE_TIMEOUT, handshake)
        .await
        .map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))?
}

async fn data_plane_checks(report: &mut Report, client: &Client, want: &str) {
    let category = report.category("linkerd-data-plane");
    let pods: Api<Pod> = Api::all(client.clone());
    let description = "data plane proxies are up to date";
    let list = match pods.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(e) => {
            category.fail(description, chain(&e), "check access");
            return;
        }
    };
    let want = want.trim_start_matches('v');
    let mut injected = 0;
    let mut stale = Vec::new();
    for pod in &list.items {
        let Some(version) = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PROXY_VERSION_ANNOTATION))
        else {
            continue;
        };
        injected += 1;
        if version.trim_start_matches('v') != want {
            stale.push(format!(
                "{}/{} runs proxy {version}",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default()
            ));
        }
    }
    if stale.is_empty() {
        category.ok(format!("{description} ({injected} injected pods)"));
    } else {
        category.warn(
            description,
            format!("expected proxy {want}:\n{}", stale.join("\n")),
            "restart the workloads (kubectl rollout restart) to re-inject the current proxy",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("1", "27+"), Some((1, 27)));
        assert_eq!(parse_version("1", "34"), Some((1, 34)));
        assert_eq!(parse_version("", "34"), None);
        assert!(parse_version("1", "22").is_some_and(|v| v < MIN_KUBERNETES));
    }

    #[test]
    fn renders_marks_and_hints() {
        let mut report = Report::default();
        let c = report.category("x");
        c.ok("good");
        c.warn("meh", "soon", "rotate");
        c.fail("bad", "broken\ntwo", "fix it");
        report.success = report.failed() == 0;
        let text = render(&report);
        assert!(text.contains("√ good\n"), "{text}");
        assert!(
            text.contains("‼ meh\n    soon\n    see: rotate\n"),
            "{text}"
        );
        assert!(
            text.contains("× bad\n    broken\n    two\n    see: fix it\n"),
            "{text}"
        );
        assert!(text.ends_with("Status check results are ×\n"), "{text}");
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["categories"][0]["checks"][2]["result"], "error");
        assert_eq!(json["categories"][0]["categoryName"], "x");
    }
}
