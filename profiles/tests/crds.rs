//! The checked-in CRDs under `charts/wisp/crds/` must be what the types
//! generate; regenerate with `cargo run -p wisp-profiles --example gen-crds`.

use wisp_profiles::crd::crd_files;

#[test]
fn checked_in_crds_match_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/wisp/crds");
    for (name, generated) in crd_files() {
        let path = dir.join(&name);
        let on_disk =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            on_disk == generated,
            "{} drifted from the types: run `cargo run -p wisp-profiles --example gen-crds`",
            path.display()
        );
    }
}

#[test]
fn crds_are_structural() {
    for (name, text) in crd_files() {
        assert!(!text.contains("$ref"), "{name}");
        assert!(!text.contains("additionalProperties"), "{name}");
        assert!(
            !text.contains("- 'null'") && !text.contains("- null"),
            "{name}"
        );
        let crd: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
        let versions = crd["spec"]["versions"].as_sequence().expect("versions");
        let storage = versions
            .iter()
            .filter(|v| v["storage"].as_bool() == Some(true))
            .count();
        assert_eq!(storage, 1, "{name}");
    }
}
