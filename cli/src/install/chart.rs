//! The `charts/wisp` files, embedded at build time so that `wisp install`
//! renders exactly the chart Helm installs.

/// `Chart.yaml`.
pub(crate) const CHART_YAML: &str = include_str!("../../../charts/wisp/Chart.yaml");

/// `values.yaml`: the defaults.
pub(crate) const VALUES: &str = include_str!("../../../charts/wisp/values.yaml");

/// `values-ha.yaml`: what `--ha` adds.
pub(crate) const VALUES_HA: &str = include_str!("../../../charts/wisp/values-ha.yaml");

/// `templates/*`, as (path inside the chart, text). Files starting with
/// `_` only define named templates; the others render manifests.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    (
        "templates/_helpers.tpl",
        include_str!("../../../charts/wisp/templates/_helpers.tpl"),
    ),
    (
        "templates/_controller.tpl",
        include_str!("../../../charts/wisp/templates/_controller.tpl"),
    ),
    (
        "templates/_proxy-injector.tpl",
        include_str!("../../../charts/wisp/templates/_proxy-injector.tpl"),
    ),
    (
        "templates/namespace.yaml",
        include_str!("../../../charts/wisp/templates/namespace.yaml"),
    ),
    (
        "templates/rbac.yaml",
        include_str!("../../../charts/wisp/templates/rbac.yaml"),
    ),
    (
        "templates/identity.yaml",
        include_str!("../../../charts/wisp/templates/identity.yaml"),
    ),
    (
        "templates/config.yaml",
        include_str!("../../../charts/wisp/templates/config.yaml"),
    ),
    (
        "templates/services.yaml",
        include_str!("../../../charts/wisp/templates/services.yaml"),
    ),
    (
        "templates/controller.yaml",
        include_str!("../../../charts/wisp/templates/controller.yaml"),
    ),
    (
        "templates/proxy-injector.yaml",
        include_str!("../../../charts/wisp/templates/proxy-injector.yaml"),
    ),
];

/// `crds/*`: generated from the wisp-profiles types; Helm installs them
/// before the templates, `wisp install --crds` prints them.
pub(crate) const CRDS: &[(&str, &str)] = &[
    (
        "crds/serviceprofile.yaml",
        include_str!("../../../charts/wisp/crds/serviceprofile.yaml"),
    ),
    (
        "crds/trafficsplit.yaml",
        include_str!("../../../charts/wisp/crds/trafficsplit.yaml"),
    ),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every file in the chart's templates/ and crds/ is embedded, so a
    /// new template cannot be forgotten by `wisp install`.
    #[test]
    fn every_chart_file_is_embedded() {
        let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/wisp");
        for (dir, embedded) in [("templates", TEMPLATES), ("crds", CRDS)] {
            let mut on_disk: Vec<String> = std::fs::read_dir(chart.join(dir))
                .unwrap()
                .map(|e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
                .collect();
            on_disk.sort();
            let mut names: Vec<String> = embedded.iter().map(|(p, _)| p.to_string()).collect();
            names.sort();
            assert_eq!(on_disk, names, "update cli/src/install/chart.rs");
        }
    }
}
