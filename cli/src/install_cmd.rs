//! `wisp install`: prints the control plane's manifests, rendered from the
//! embedded `charts/wisp` chart exactly as `helm template` renders it, for
//! `wisp install | kubectl apply -f -` (like `linkerd install`). With
//! `--crds` it prints the CustomResourceDefinitions instead.
//!
//! Certificates the values lack are generated once per run: a trust anchor
//! and issuer (as `wisp identity init` makes them) and the proxy
//! injector's CA and serving certificate. Unless `--ignore-cluster`, it
//! first refuses if the configured cluster already runs the control plane
//! (see `install::cluster`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_yaml_ng::Value;

use crate::install::{certs, chart, render, values};

/// Arguments of `wisp install`.
#[derive(clap::Args)]
pub struct Args {
    /// Print the CustomResourceDefinitions (ServiceProfile, TrafficSplit)
    /// instead of the control plane; apply them first.
    #[arg(long)]
    crds: bool,
    /// Add the chart's values-ha.yaml: three replicas per role in separate
    /// Deployments, anti-affinity, disruption budgets, resource requests.
    #[arg(long)]
    ha: bool,
    /// A values file, as `helm install -f` (repeatable; later files win).
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    values: Vec<PathBuf>,
    /// A value, as `helm install --set key=value[,key=value]` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// A value read from a file, as `helm install --set-file key=path`.
    #[arg(long = "set-file", value_name = "KEY=FILE")]
    set_file: Vec<String>,
    /// Trust anchors (PEM) to use instead of generating a trust anchor.
    #[arg(long, value_name = "FILE")]
    identity_trust_anchors_file: Option<PathBuf>,
    /// Issuer certificate (PEM), signed by the trust anchors.
    #[arg(long, value_name = "FILE", requires_all = ["identity_issuer_key_file", "identity_trust_anchors_file"])]
    identity_issuer_certificate_file: Option<PathBuf>,
    /// Issuer private key (PEM).
    #[arg(
        long,
        value_name = "FILE",
        requires = "identity_issuer_certificate_file"
    )]
    identity_issuer_key_file: Option<PathBuf>,
    /// Do not look at the configured cluster for an existing control plane
    /// (print the manifests even if wisp is installed there).
    #[arg(long)]
    ignore_cluster: bool,
}

/// Runs `wisp install`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let text = if args.crds {
        crds()
    } else {
        let values = computed_values(&args)?;
        if !args.ignore_cluster {
            crate::install::cluster::check_not_installed(&release(&values).namespace)?;
        }
        let values = with_certificates(values, &args)?;
        let manifests = render::render(&values, &release(&values))?;
        render::to_stream(&manifests)
    };
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the manifests to stdout")?;
    Ok(())
}

/// The CRDs as one YAML stream.
fn crds() -> String {
    chart::CRDS
        .iter()
        .map(|(path, text)| format!("---\n# Source: wisp/{path}\n{}\n", text.trim()))
        .collect()
}

/// The chart's defaults, `--ha`, the `-f` files and `--set`s, merged.
fn computed_values(args: &Args) -> anyhow::Result<Value> {
    let mut merged = values::parse(chart::VALUES, Path::new("charts/wisp/values.yaml"))
        .context("the embedded values.yaml is unreadable")?;
    if args.ha {
        let ha = values::parse(chart::VALUES_HA, Path::new("charts/wisp/values-ha.yaml"))
            .context("the embedded values-ha.yaml is unreadable")?;
        values::merge(&mut merged, ha);
    }
    for file in &args.values {
        values::merge(&mut merged, values::read(file)?);
    }
    for expr in &args.set {
        values::set(&mut merged, expr, false)?;
    }
    for expr in &args.set_file {
        values::set(&mut merged, expr, true)?;
    }
    Ok(merged)
}

/// The release: named `wisp`, in the control-plane namespace.
fn release(values: &Value) -> render::Release {
    let namespace = values["controlPlaneNamespace"]
        .as_str()
        .filter(|ns| !ns.is_empty())
        .unwrap_or("linkerd");
    render::Release {
        name: "wisp".into(),
        namespace: namespace.to_string(),
    }
}

fn str_at<'a>(values: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(values, |v, key| v.get(*key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn set_at(values: &mut Value, path: &[&str], text: String) {
    let mut over = Value::String(text);
    for key in path.iter().rev() {
        let mut map = serde_yaml_ng::Mapping::new();
        map.insert(Value::String((*key).to_string()), over);
        over = Value::Mapping(map);
    }
    values::merge(values, over);
}

fn read_pem(path: &Path, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    anyhow::ensure!(
        text.contains("-----BEGIN "),
        "{} is not PEM (the {what} file)",
        path.display()
    );
    Ok(text)
}

/// Fills in the certificates the values lack: from the `--identity-*`
/// files, else generated (once).
fn with_certificates(mut values: Value, args: &Args) -> anyhow::Result<Value> {
    let ns = release(&values).namespace;
    let cluster_domain = match str_at(&values, &["clusterDomain"]) {
        "" => "cluster.local".to_string(),
        cd => cd.to_string(),
    };
    let trust_domain = match str_at(&values, &["identityTrustDomain"]) {
        "" => cluster_domain.clone(),
        td => td.to_string(),
    };

    if let Some(file) = &args.identity_trust_anchors_file {
        let pem = read_pem(file, "trust anchors")?;
        set_at(&mut values, &["identityTrustAnchorsPEM"], pem);
    }
    if let (Some(crt), Some(key)) = (
        &args.identity_issuer_certificate_file,
        &args.identity_issuer_key_file,
    ) {
        let crt = read_pem(crt, "issuer certificate")?;
        let key = read_pem(key, "issuer key")?;
        set_at(&mut values, &["identity", "issuer", "tls", "crtPEM"], crt);
        set_at(&mut values, &["identity", "issuer", "tls", "keyPEM"], key);
    }
    let external_ca = values["identity"]["externalCA"].as_bool() == Some(true);
    let nothing_given = str_at(&values, &["identityTrustAnchorsPEM"]).is_empty()
        && str_at(&values, &["identity", "issuer", "tls", "crtPEM"]).is_empty()
        && str_at(&values, &["identity", "issuer", "tls", "keyPEM"]).is_empty()
        && str_at(&values, &["identity", "issuer", "existingSecret"]).is_empty();
    if !external_ca && nothing_given {
        let id = certs::identity(&trust_domain, &ns)?;
        set_at(&mut values, &["identityTrustAnchorsPEM"], id.trust_anchors);
        set_at(
            &mut values,
            &["identity", "issuer", "tls", "crtPEM"],
            id.issuer.cert,
        );
        set_at(
            &mut values,
            &["identity", "issuer", "tls", "keyPEM"],
            id.issuer.key,
        );
    }

    let (anchors, issuer, key) = (
        str_at(&values, &["identityTrustAnchorsPEM"]),
        str_at(&values, &["identity", "issuer", "tls", "crtPEM"]),
        str_at(&values, &["identity", "issuer", "tls", "keyPEM"]),
    );
    if !anchors.is_empty() && !issuer.is_empty() && !key.is_empty() {
        check_issuer(anchors, issuer, key).context(
            "the identity issuer does not fit the trust anchors (your certificates, not wisp's)",
        )?;
    }

    if str_at(&values, &["proxyInjector", "existingSecret"]).is_empty()
        && str_at(&values, &["proxyInjector", "crtPEM"]).is_empty()
    {
        let days = values["proxyInjector"]["certValidityDays"]
            .as_u64()
            .and_then(|d| u32::try_from(d).ok())
            .filter(|d| (1..=36_500).contains(d))
            .context("proxyInjector.certValidityDays must be a number of days (1 to 36500)")?;
        let (ca, serving) = certs::injector(&ns, &cluster_domain, days)?;
        set_at(&mut values, &["proxyInjector", "caBundlePEM"], ca.cert);
        set_at(&mut values, &["proxyInjector", "crtPEM"], serving.cert);
        set_at(&mut values, &["proxyInjector", "keyPEM"], serving.key);
    }
    Ok(values)
}

/// Checks what `linkerd install` checks of given identity material: the
/// issuer is a valid CA certificate signed by one of the trust anchors,
/// and the key is its key.
fn check_issuer(anchors: &str, issuer: &str, key: &str) -> anyhow::Result<()> {
    use x509_parser::pem::Pem;
    let mut roots = Vec::new();
    for pem in Pem::iter_from_buffer(anchors.as_bytes()) {
        let pem = pem.context("the trust anchors are not PEM")?;
        if pem.label == "CERTIFICATE" {
            roots.push(pem);
        }
    }
    anyhow::ensure!(!roots.is_empty(), "the trust anchors hold no certificate");
    let issuer_pem = Pem::iter_from_buffer(issuer.as_bytes())
        .next()
        .context("the issuer certificate is empty")?
        .context("the issuer certificate is not PEM")?;
    let issuer = issuer_pem
        .parse_x509()
        .context("the issuer certificate is not an X.509 certificate")?;
    anyhow::ensure!(
        issuer.is_ca(),
        "the issuer certificate is not a CA certificate"
    );
    anyhow::ensure!(
        issuer.validity().is_valid(),
        "the issuer certificate is not valid now (not before {}, not after {})",
        issuer.validity().not_before,
        issuer.validity().not_after
    );
    let signed = roots.iter().any(|root| {
        root.parse_x509()
            .is_ok_and(|root| issuer.verify_signature(Some(root.public_key())).is_ok())
    });
    anyhow::ensure!(
        signed,
        "the issuer certificate is not signed by any trust anchor"
    );
    let key = rcgen::KeyPair::from_pem(key).context("the issuer key is not a PKCS#8 PEM key")?;
    anyhow::ensure!(
        rcgen::PublicKeyData::der_bytes(&key) == &*issuer.public_key().subject_public_key.data,
        "the issuer key does not belong to the issuer certificate"
    );
    Ok(())
}
