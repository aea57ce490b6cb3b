//! `wisp profile`, `wisp validate`, `wisp apply`, `wisp delete`, run as the
//! real binary.

use std::path::Path;
use std::process::{Command, Output};

fn wisp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run wisp")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture(name: &str) -> String {
    format!(
        "{}/../profiles/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

const PROFILE: &str = "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata:\n  name: web.demo.svc.cluster.local\n  namespace: demo\nspec:\n  routes:\n  - name: GET /\n    condition: {method: GET, pathRegex: /}\n";
const SPLIT: &str = "apiVersion: split.smi-spec.io/v1alpha1\nkind: TrafficSplit\nmetadata:\n  name: web-split\n  namespace: demo\nspec:\n  service: web\n  backends:\n  - {service: web-v1, weight: 900m}\n  - {service: web-v2, weight: 100m}\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: demo\nspec:\n  ports: [{name: http, port: 80}]\n";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn profile_template_openapi_proto() {
    let out = wisp(&["profile", "--template", "web", "-n", "books"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("name: web.books.svc.cluster.local"));

    let out = wisp(&[
        "profile",
        "--open-api",
        &fixture("petstore-v3.yaml"),
        "petstore",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("name: petstore.default.svc.cluster.local"),
        "{text}"
    );
    assert!(text.contains("name: GET /pets/{petId}"), "{text}");
    assert!(text.contains("pathRegex: ^/pets/[^/]*$"), "{text}");

    let out = wisp(&[
        "profile",
        "--proto",
        &fixture("emojivoto.proto"),
        "emoji-svc",
        "-n",
        "emojivoto",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("POST /emojivoto.v1.EmojiService/ListAll"));
}

/// `--tap` needs the pods of its target (tests/tests/tap_cli.rs taps a
/// real proxy): without a manifest directory it fails, naming it.
#[test]
fn profile_tap_without_manifests_fails_clearly() {
    let out = wisp(&[
        "profile",
        "--tap",
        "deploy/web",
        "--source",
        "dir:/nonexistent/wisp-manifests",
        "web",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("manifest directory /nonexistent/wisp-manifests does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn validate_reports_every_problem_with_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(
        dir.path(),
        "bad.yaml",
        &format!(
            "{}  - name: x\n    condition: {{pathRegex: '/books/(\\d+'}}\n---\n{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: api, namespace: demo}}\nspec:\n  ports: [{{port: notanumber}}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\n",
            PROFILE,
            SPLIT.replace("100m", "-100m")
        ),
    );
    let out = wisp(&["validate", &bad]);
    assert!(!out.status.success());
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(
        lines[0],
        format!("{bad}: ServiceProfile demo/web.demo.svc.cluster.local: spec.routes[1].condition.pathRegex: unclosed group at position 7")
    );
    assert_eq!(lines[1], format!("{bad}: TrafficSplit demo/web-split: spec.backends[1].weight: -100m must not be negative"));
    assert!(
        lines[2].starts_with(&format!("{bad}: Service demo/api: ")),
        "{}",
        lines[2]
    );
    assert!(lines[2].contains("spec.ports"), "{}", lines[2]);
    // A kind wisp does not act on is a problem, not a skipped note.
    assert!(
        lines[3].starts_with(&format!(
            "{bad}: ConfigMap default/cm: wisp does not act on kind"
        )),
        "{}",
        lines[3]
    );

    let good = write(
        dir.path(),
        "good.yaml",
        &format!("{PROFILE}---\n{SPLIT}---\n{SERVICE}"),
    );
    let out = wisp(&["validate", &good]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn apply_then_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).expect("mkdir");
    write(&manifests, "a.yaml", &format!("{PROFILE}---\n{SERVICE}"));
    write(&manifests, "b.yaml", SPLIT);
    let out = wisp(&[
        "apply",
        "-f",
        &manifests.display().to_string(),
        "--dir",
        &source.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        listing(&source),
        vec![
            "service-demo-web.yaml",
            "serviceprofile-demo-web.demo.svc.cluster.local.yaml",
            "trafficsplit-demo-web-split.yaml",
        ]
    );
    let written =
        std::fs::read_to_string(source.join("trafficsplit-demo-web-split.yaml")).expect("read");
    let problems = wisp_profiles::validate_document(&written, None);
    assert!(
        problems.is_empty() && written.contains("weight: 900m"),
        "{written}"
    );

    let b = manifests.join("b.yaml").display().to_string();
    let out = wisp(&["delete", "-f", &b, "--dir", &source.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("TrafficSplit demo/web-split deleted"));
    assert_eq!(listing(&source).len(), 2);
}

#[test]
fn an_invalid_file_aborts_the_whole_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source");
    let good = write(dir.path(), "good.yaml", PROFILE);
    let bad = write(
        dir.path(),
        "bad.yaml",
        &SPLIT.replace("backends:", "backends: []\n  extra:"),
    );
    let out = wisp(&[
        "apply",
        "-f",
        &good,
        "-f",
        &bad,
        "--dir",
        &source.display().to_string(),
    ]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("TrafficSplit demo/web-split: spec"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("nothing applied"), "{}", stderr(&out));
    assert!(listing(&source).is_empty(), "{:?}", listing(&source));
}
