//! Renders the embedded chart as `helm template` does: every template file
//! not starting with `_` is executed with `.Values`, `.Release`, `.Chart`
//! and `.Template`; `<no value>` becomes empty; the output is split into
//! YAML documents, empty ones dropped, and ordered by kind as Helm
//! installs them (namespaces first, webhooks last).

use std::collections::HashMap;

use gtmpl::Context;
use gtmpl_value::Value;

use super::chart;
use super::funcs::{self, from_yaml, new_template};

/// Why the chart could not be rendered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    /// The embedded Chart.yaml is not YAML: a build defect.
    #[error("the embedded Chart.yaml is unreadable")]
    ChartYaml(#[source] serde_yaml_ng::Error),
    /// A template does not parse: a chart defect.
    #[error("cannot parse chart template {file}")]
    Parse {
        /// The template's path in the chart.
        file: String,
        /// The parser's error.
        #[source]
        source: Box<gtmpl::error::ParseError>,
    },
    /// A helper file does not parse: a chart defect.
    #[error("cannot parse chart helpers {file}")]
    Helper {
        /// The helper's path in the chart.
        file: String,
        /// The parser's error.
        #[source]
        source: Box<gtmpl::TemplateError>,
    },
    /// Executing a template failed, e.g. a `required` value is missing:
    /// usually the values' fault.
    #[error("cannot render chart template {file}")]
    Exec {
        /// The template's path in the chart.
        file: String,
        /// The executor's error (carries the template's message).
        #[source]
        source: Box<gtmpl::error::ExecError>,
    },
    /// A rendered document is not YAML: a chart defect or a value that
    /// broke the YAML.
    #[error("chart template {file} rendered invalid YAML")]
    Yaml {
        /// The template's path in the chart.
        file: String,
        /// The YAML error.
        #[source]
        source: serde_yaml_ng::Error,
    },
}

/// The Helm release the chart is rendered for.
#[derive(Debug, Clone)]
pub(crate) struct Release {
    /// `.Release.Name`.
    pub(crate) name: String,
    /// `.Release.Namespace`.
    pub(crate) namespace: String,
}

/// One rendered manifest.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    /// The template it came from (`templates/rbac.yaml`).
    pub(crate) source: String,
    /// Its `kind`.
    pub(crate) kind: String,
    /// The YAML text (no `---`, trimmed).
    pub(crate) text: String,
}

/// Helm's install order of kinds (`releaseutil.InstallOrder`); other
/// kinds come after these.
const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn chart_object() -> Result<Value, RenderError> {
    let chart: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(chart::CHART_YAML).map_err(RenderError::ChartYaml)?;
    let field = |key: &str| Value::String(chart[key].as_str().unwrap_or_default().to_string());
    Ok(Value::Map(HashMap::from([
        ("Name".to_string(), field("name")),
        ("Version".to_string(), field("version")),
        ("AppVersion".to_string(), field("appVersion")),
        ("Description".to_string(), field("description")),
        ("Type".to_string(), field("type")),
        ("APIVersion".to_string(), field("apiVersion")),
    ])))
}

fn root(values: &serde_yaml_ng::Value, release: &Release, chart: &Value, file: &str) -> Value {
    let release = Value::Map(HashMap::from([
        ("Name".to_string(), Value::String(release.name.clone())),
        (
            "Namespace".to_string(),
            Value::String(release.namespace.clone()),
        ),
        ("Service".to_string(), Value::String("Helm".into())),
        ("IsInstall".to_string(), Value::Bool(true)),
        ("IsUpgrade".to_string(), Value::Bool(false)),
        ("Revision".to_string(), Value::from(1i64)),
    ]));
    let template = Value::Map(HashMap::from([
        ("Name".to_string(), Value::String(format!("wisp/{file}"))),
        (
            "BasePath".to_string(),
            Value::String("wisp/templates".into()),
        ),
    ]));
    Value::Map(HashMap::from([
        ("Values".to_string(), from_yaml(values)),
        ("Release".to_string(), release),
        ("Chart".to_string(), chart.clone()),
        ("Template".to_string(), template),
    ]))
}

/// Renders every manifest template with `values` for `release`.
pub(crate) fn render(
    values: &serde_yaml_ng::Value,
    release: &Release,
) -> Result<Vec<Manifest>, RenderError> {
    let chart = chart_object()?;
    let helpers: Vec<(String, String)> = chart::TEMPLATES
        .iter()
        .filter(|(path, _)| is_helper(path))
        .map(|(path, text)| (path.to_string(), text.to_string()))
        .collect();
    funcs::with_helpers(helpers.clone(), || {
        let mut manifests = Vec::new();
        for (file, text) in chart::TEMPLATES.iter().filter(|(p, _)| !is_helper(p)) {
            let parse_error = |source| RenderError::Parse {
                file: file.to_string(),
                source: Box::new(source),
            };
            let mut template = new_template(file);
            for (helper, helper_text) in &helpers {
                template
                    .add_template(helper.clone(), helper_text.clone())
                    .map_err(|source| RenderError::Helper {
                        file: helper.clone(),
                        source: Box::new(source),
                    })?;
            }
            template.parse(*text).map_err(parse_error)?;
            let out = template
                .render(&Context::from(root(values, release, &chart, file)))
                .map_err(|source| RenderError::Exec {
                    file: file.to_string(),
                    source: Box::new(source),
                })?
                .replace("<no value>", "");
            for doc in split_documents(&out) {
                let parsed: serde_yaml_ng::Value =
                    serde_yaml_ng::from_str(&doc).map_err(|source| RenderError::Yaml {
                        file: file.to_string(),
                        source,
                    })?;
                let kind = parsed["kind"].as_str().unwrap_or_default().to_string();
                manifests.push(Manifest {
                    source: file.to_string(),
                    kind,
                    text: doc,
                });
            }
        }
        let rank = |kind: &str| {
            INSTALL_ORDER
                .iter()
                .position(|k| *k == kind)
                .unwrap_or(INSTALL_ORDER.len())
        };
        manifests.sort_by_key(|m| rank(&m.kind));
        Ok(manifests)
    })
}

fn is_helper(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with('_'))
}

/// Splits rendered text into its documents (without their `---` lines),
/// trimmed; drops documents that are only white space.
pub(crate) fn split_documents(text: &str) -> Vec<String> {
    wisp_common::yaml::split_documents(text)
        .into_iter()
        .map(|d| match d.split_once('\n') {
            Some((first, rest)) if first.starts_with("---") => rest,
            None if d.starts_with("---") => "",
            _ => d,
        })
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect()
}

/// The manifests as one multi-document YAML stream, each preceded by a
/// `# Source:` comment as `helm template` prints.
pub(crate) fn to_stream(manifests: &[Manifest]) -> String {
    let mut out = String::new();
    for m in manifests {
        out.push_str(&format!("---\n# Source: wisp/{}\n{}\n", m.source, m.text));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn values_with_certs() -> serde_yaml_ng::Value {
        let mut values: serde_yaml_ng::Value = serde_yaml_ng::from_str(chart::VALUES).unwrap();
        let pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        let extra = format!(
            "identityTrustAnchorsPEM: {pem:?}\nidentity: {{issuer: {{tls: {{crtPEM: {pem:?}, keyPEM: {pem:?}}}}}}}\nproxyInjector: {{crtPEM: {pem:?}, keyPEM: {pem:?}, caBundlePEM: {pem:?}}}\n"
        );
        super::super::values::merge(&mut values, serde_yaml_ng::from_str(&extra).unwrap());
        values
    }

    #[test]
    fn default_values_render_in_install_order() {
        let release = Release {
            name: "wisp".into(),
            namespace: "linkerd".into(),
        };
        let manifests = render(&values_with_certs(), &release).unwrap();
        let kinds: Vec<&str> = manifests.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds.first(), Some(&"Namespace"));
        assert_eq!(kinds.last(), Some(&"MutatingWebhookConfiguration"));
        assert_eq!(kinds.iter().filter(|k| **k == "Service").count(), 6);
        assert_eq!(kinds.iter().filter(|k| **k == "Deployment").count(), 1);
        let stream = to_stream(&manifests);
        assert!(stream.contains("# Source: wisp/templates/controller.yaml"));
        assert!(!stream.contains("<no value>"));
    }

    #[test]
    fn a_missing_required_value_names_itself() {
        let release = Release {
            name: "wisp".into(),
            namespace: "linkerd".into(),
        };
        let values: serde_yaml_ng::Value = serde_yaml_ng::from_str(chart::VALUES).unwrap();
        let err = render(&values, &release).unwrap_err();
        let text = wisp_common::error::chain(&err);
        assert!(
            text.contains("identityTrustAnchorsPEM is required"),
            "{text}"
        );
    }

    #[test]
    fn documents_split_at_separator_lines_only() {
        let docs = split_documents("\n---\na: 1\n---  \n\n---\nb: '---'\n");
        assert_eq!(docs, vec!["a: 1".to_string(), "b: '---'".to_string()]);
    }
}
