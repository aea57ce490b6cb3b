//! `wisp inject` and `wisp uninject`: the injector's transformation on
//! manifests, offline, like `linkerd inject --manual` / `linkerd uninject`.
//!
//! Input: files, directories (their `.yaml`/`.yml`/`.json` files, sorted,
//! recursively) or `-` for stdin; multi-document YAML and `List`s (what
//! `kubectl get -o yaml` prints). Output: the transformed YAML on stdout,
//! so `kubectl get deploy -o yaml | wisp inject - | kubectl apply -f -`
//! works; a report per object on stderr. By default the proxy is added;
//! `--annotate-only` only adds `linkerd.io/inject: enabled` for the webhook
//! to act on. Proxy flags become `config.linkerd.io/*` annotations on the
//! pod templates (and take effect), as with `linkerd inject`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use wisp_inject::names::{self, config as ann};
use wisp_inject::workload::{self, Options, Report, Status};
use wisp_inject::{InjectConfig, Injector};

/// Arguments of `wisp inject`.
#[derive(clap::Args)]
pub struct InjectArgs {
    /// Manifests: files, directories, or `-` for stdin.
    #[arg(value_name = "FILE")]
    files: Vec<String>,
    /// More manifests (same as the positional FILE).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    filename: Vec<String>,
    /// Proxy defaults (`inject.yaml`, as in ConfigMap `wisp-config`).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// PEM trust anchors written into the proxies (default: the config's
    /// identityTrustAnchorsPEM).
    #[arg(long, value_name = "FILE")]
    trust_anchors: Option<PathBuf>,
    /// Only annotate pod templates with `linkerd.io/inject: enabled`.
    #[arg(long)]
    annotate_only: bool,
    /// Accepted for `linkerd inject --manual` compatibility (the default here).
    #[arg(long, hide = true)]
    manual: bool,
    /// Proxy image repository.
    #[arg(long)]
    proxy_image: Option<String>,
    /// Proxy image tag.
    #[arg(long)]
    proxy_version: Option<String>,
    /// Proxy image pull policy.
    #[arg(long)]
    image_pull_policy: Option<String>,
    /// Proxy user id.
    #[arg(long)]
    proxy_uid: Option<i64>,
    /// Proxy group id.
    #[arg(long)]
    proxy_gid: Option<i64>,
    /// Proxy log filter.
    #[arg(long)]
    proxy_log_level: Option<String>,
    /// Inbound ports (and ranges) not redirected to the proxy.
    #[arg(long)]
    skip_inbound_ports: Option<String>,
    /// Outbound ports (and ranges) not redirected to the proxy.
    #[arg(long)]
    skip_outbound_ports: Option<String>,
    /// Opaque ports (no protocol detection).
    #[arg(long)]
    opaque_ports: Option<String>,
    /// Proxy CPU request.
    #[arg(long)]
    proxy_cpu_request: Option<String>,
    /// Proxy CPU limit.
    #[arg(long)]
    proxy_cpu_limit: Option<String>,
    /// Proxy memory request.
    #[arg(long)]
    proxy_memory_request: Option<String>,
    /// Proxy memory limit.
    #[arg(long)]
    proxy_memory_limit: Option<String>,
    /// Default inbound policy.
    #[arg(long)]
    default_inbound_policy: Option<String>,
    /// Ingress mode (`linkerd.io/inject: ingress`).
    #[arg(long)]
    ingress: bool,
    /// Inject the proxy as a native sidecar (`--native-sidecar=false` for a
    /// regular container).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    native_sidecar: Option<bool>,
    /// Whether app containers wait for the proxy (`--await=false`).
    #[arg(long = "await", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    wait: Option<bool>,
}

/// Arguments of `wisp uninject`.
#[derive(clap::Args)]
pub struct UninjectArgs {
    /// Manifests: files, directories, or `-` for stdin.
    #[arg(value_name = "FILE")]
    files: Vec<String>,
    /// More manifests (same as the positional FILE).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    filename: Vec<String>,
}

/// One input and its name for messages.
struct Input {
    name: String,
    text: String,
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_dir(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

fn read_inputs(files: &[String], filename: &[String]) -> anyhow::Result<Vec<Input>> {
    let all: Vec<&String> = files.iter().chain(filename).collect();
    if all.is_empty() {
        bail!("no input: give manifest files, directories, or - for stdin");
    }
    let mut inputs = Vec::new();
    for arg in all {
        if arg == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read stdin")?;
            inputs.push(Input {
                name: "stdin".into(),
                text,
            });
            continue;
        }
        let path = Path::new(arg);
        let mut paths = Vec::new();
        if path.is_dir() {
            collect_dir(path, &mut paths)?;
        } else {
            paths.push(path.to_path_buf());
        }
        for p in paths {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            inputs.push(Input {
                name: p.display().to_string(),
                text,
            });
        }
    }
    Ok(inputs)
}

fn flag_annotations(args: &InjectArgs) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            a.insert(key.to_string(), v);
        }
    };
    put(ann::PROXY_IMAGE, args.proxy_image.clone());
    put(ann::PROXY_VERSION, args.proxy_version.clone());
    put(ann::IMAGE_PULL_POLICY, args.image_pull_policy.clone());
    put(ann::PROXY_UID, args.proxy_uid.map(|v| v.to_string()));
    put(ann::PROXY_GID, args.proxy_gid.map(|v| v.to_string()));
    put(ann::LOG_LEVEL, args.proxy_log_level.clone());
    put(ann::SKIP_INBOUND_PORTS, args.skip_inbound_ports.clone());
    put(ann::SKIP_OUTBOUND_PORTS, args.skip_outbound_ports.clone());
    put(ann::OPAQUE_PORTS, args.opaque_ports.clone());
    put(ann::CPU_REQUEST, args.proxy_cpu_request.clone());
    put(ann::CPU_LIMIT, args.proxy_cpu_limit.clone());
    put(ann::MEMORY_REQUEST, args.proxy_memory_request.clone());
    put(ann::MEMORY_LIMIT, args.proxy_memory_limit.clone());
    put(
        ann::DEFAULT_INBOUND_POLICY,
        args.default_inbound_policy.clone(),
    );
    put(
        ann::NATIVE_SIDECAR,
        args.native_sidecar.map(|b| b.to_string()),
    );
    put(
        ann::PROXY_AWAIT,
        args.wait
            .map(|b| if b { "enabled" } else { "disabled" }.to_string()),
    );
    if args.ingress {
        put(names::ANN_INJECT, Some("ingress".into()));
    }
    a
}

fn print_report(reports: &[Report]) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err);
    for r in reports {
        if r.udp {
            let _ = writeln!(
                err,
                "‼ {}/{} uses \"protocol: UDP\" (not proxied)",
                r.kind, r.name
            );
        }
        for w in &r.warnings {
            let _ = writeln!(err, "‼ {}/{}: {w}", r.kind, r.name);
        }
    }
    for r in reports {
        let _ = writeln!(err, "{r}");
    }
    let _ = writeln!(err);
}

fn write_out(outputs: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for (i, text) in outputs.iter().filter(|t| !t.is_empty()).enumerate() {
        if i > 0 {
            out.write_all(b"---\n")?;
        }
        out.write_all(text.as_bytes())?;
    }
    out.flush().context("cannot write to stdout")
}

/// Runs `wisp inject`.
pub fn run_inject(args: InjectArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => InjectConfig::load(path)?,
        None => InjectConfig::default(),
    };
    if let Some(path) = &args.trust_anchors {
        config.identity_trust_anchors_pem = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read trust anchors {}", path.display()))?;
        if !config
            .identity_trust_anchors_pem
            .contains("-----BEGIN CERTIFICATE-----")
        {
            bail!("{} holds no PEM certificate", path.display());
        }
    }
    if !args.annotate_only && config.identity_trust_anchors_pem.trim().is_empty() {
        bail!(
            "no trust anchors: pass --trust-anchors FILE (the linkerd-identity-trust-roots bundle) or set identityTrustAnchorsPEM in --config"
        );
    }
    let _ = args.manual;
    let injector = Injector::for_cli(config);
    let options = Options {
        annotate_only: args.annotate_only,
        annotations: flag_annotations(&args),
    };
    let inputs = read_inputs(&args.files, &args.filename)?;
    let mut outputs = Vec::new();
    let mut reports = Vec::new();
    for input in inputs {
        let (out, mut r) = workload::inject_stream(&injector, &input.text, &options)
            .with_context(|| input.name.clone())?;
        outputs.push(out);
        reports.append(&mut r);
    }
    write_out(&outputs)?;
    if !reports.is_empty()
        && !reports
            .iter()
            .any(|r| matches!(r.status, Status::Injected | Status::Annotated))
    {
        let _ = writeln!(std::io::stderr(), "\n‼ no supported objects found");
    }
    print_report(&reports);
    Ok(())
}

/// Runs `wisp uninject`.
pub fn run_uninject(args: UninjectArgs) -> anyhow::Result<()> {
    let inputs = read_inputs(&args.files, &args.filename)?;
    let mut outputs = Vec::new();
    let mut reports = Vec::new();
    for input in inputs {
        let (out, mut r) =
            workload::uninject_stream(&input.text).with_context(|| input.name.clone())?;
        outputs.push(out);
        reports.append(&mut r);
    }
    write_out(&outputs)?;
    print_report(&reports);
    Ok(())
}
