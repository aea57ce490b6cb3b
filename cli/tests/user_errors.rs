//! What the user sees when a command fails: objects wisp would not enforce
//! (`--allow-unknown-kinds`), EndpointSlice addresses that are not IPs, and
//! error reports without backtraces. All run the real `wisp` binary.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `wisp ARGS` with `RUST_BACKTRACE=1`, as a user debugging something
/// else might have it set.
fn wisp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("run wisp")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

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

/// Istio's deny-all: a security policy nothing in wisp enforces.
const DENY_ALL: &str = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: deny-all\n  namespace: shop\nspec: {}\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  ports: [{name: http, port: 80}]\n";

/// Asserts a failed run exited with 1 and printed one `wisp: ` line and
/// no backtrace.
fn assert_user_error(out: &Output) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.to_lowercase().contains("backtrace"), "{err}");
    assert!(!err.contains("Error: "), "{err}");
    assert!(err.lines().any(|l| l.starts_with("wisp: ")), "{err}");
}

#[test]
fn unknown_kind_fails_validate_and_apply_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source");
    let file = write(
        dir.path(),
        "policy.yaml",
        &format!("{SERVICE}---\n{DENY_ALL}"),
    );
    let expected = format!(
        "{file}: AuthorizationPolicy shop/deny-all: wisp does not act on kind \"AuthorizationPolicy\" (apiVersion \"security.istio.io/v1\"), so nothing would enforce this object; remove it, or pass --allow-unknown-kinds to store it anyway"
    );

    let out = wisp(&["validate", &file]);
    assert_user_error(&out);
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        [expected.as_str()]
    );

    // Nothing is applied, not even the valid Service.
    let dir_arg = source.display().to_string();
    let out = wisp(&["apply", "-f", &file, "--dir", &dir_arg]);
    assert_user_error(&out);
    assert!(stdout(&out).contains(&expected), "{}", stdout(&out));
    assert!(stderr(&out).contains("nothing applied"), "{}", stderr(&out));
    assert!(listing(&source).is_empty(), "{:?}", listing(&source));

    // Asked for explicitly: stored, and said not to be enforced.
    let out = wisp(&["validate", "--allow-unknown-kinds", &file]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("AuthorizationPolicy shop/deny-all: stored but not enforced"));
    let out = wisp(&[
        "apply",
        "--allow-unknown-kinds",
        "-f",
        &file,
        "--dir",
        &dir_arg,
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("AuthorizationPolicy shop/deny-all stored, not enforced"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("Service shop/web applied"));
    assert_eq!(
        listing(&source),
        [
            "authorizationpolicy-shop-deny-all.yaml",
            "service-shop-web.yaml"
        ]
    );

    // Deleting works for any kind.
    let policy_only = write(dir.path(), "deny.yaml", DENY_ALL);
    let out = wisp(&["delete", "-f", &policy_only, "--dir", &dir_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("AuthorizationPolicy shop/deny-all deleted"));
    assert_eq!(listing(&source), ["service-shop-web.yaml"]);
}

#[test]
fn allow_unknown_kinds_is_documented() {
    for cmd in ["validate", "apply"] {
        let out = wisp(&[cmd, "--help"]);
        assert!(out.status.success());
        let help = stdout(&out);
        assert!(help.contains("--allow-unknown-kinds"), "{help}");
        assert!(help.contains("not enforce"), "{help}");
    }
}

#[test]
fn endpoint_slice_addresses_must_be_ips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "slice.yaml",
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nports: [{port: 8080}]\nendpoints:\n- addresses: [10.0.0.1]\n- addresses: [not-an-ip, 999.1.1.1]\n",
    );
    let out = wisp(&["validate", &file]);
    assert_user_error(&out);
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        [
            format!("{file}: EndpointSlice shop/web-1: endpoints[1].addresses[0]: \"not-an-ip\" is not an IP address"),
            format!("{file}: EndpointSlice shop/web-1: endpoints[1].addresses[1]: \"999.1.1.1\" is not an IP address"),
        ]
    );
    assert!(
        stderr(&out).contains("wisp: 2 problem(s) found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn user_errors_have_no_backtrace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec:\n  ports: [{port: notanumber}]\n",
    );
    let out = wisp(&["validate", &bad]);
    assert_user_error(&out);
    assert_eq!(stderr(&out).trim_end(), "wisp: 1 problem(s) found");

    // A missing file: the message and its cause, on one line.
    let missing = dir.path().join("missing.yaml").display().to_string();
    let out = wisp(&["validate", &missing]);
    assert_user_error(&out);
    assert!(
        stderr(&out).starts_with(&format!("wisp: reading {missing}: No such file")),
        "{}",
        stderr(&out)
    );

    // Usage errors keep clap's exit code 2.
    let out = wisp(&["validate", "--no-such-flag", &bad]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
