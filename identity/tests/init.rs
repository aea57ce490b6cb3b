//! `init` writes a trust anchor and an issuer that chains to it.

mod common;

use std::path::Path;

use wisp_identity::init::{init, InitError, InitOptions};
use wisp_identity::{Ca, Validity};
use x509_parser::prelude::{FromDer, X509Certificate};

fn pem_certs(path: &Path) -> Vec<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_file_iter(path)
        .expect("read")
        .map(|c| c.expect("pem").to_vec())
        .collect()
}

#[test]
fn init_writes_a_verifying_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("id");
    let written = init(&InitOptions {
        out: out.clone(),
        trust_domain: "example.org".into(),
        control_plane_ns: "wisp".into(),
        force: false,
    })
    .expect("init");
    assert_eq!(written.len(), 4);

    let anchors = pem_certs(&out.join("ca.crt"));
    let issuers = pem_certs(&out.join("issuer.crt"));
    assert_eq!((anchors.len(), issuers.len()), (1, 1));
    let (_, anchor) = X509Certificate::from_der(&anchors[0]).expect("anchor parses");
    let (_, issuer) = X509Certificate::from_der(&issuers[0]).expect("issuer parses");

    let cn = |c: &X509Certificate<'_>| {
        c.subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string)
    };
    assert_eq!(cn(&anchor).as_deref(), Some("root.linkerd.example.org"));
    assert_eq!(cn(&issuer).as_deref(), Some("identity.wisp.example.org"));
    assert!(anchor.is_ca() && issuer.is_ca());
    let bc = issuer
        .basic_constraints()
        .expect("bc")
        .expect("present")
        .value;
    assert_eq!(bc.path_len_constraint, Some(0));

    // Self-signed anchor, issuer signed by it.
    anchor
        .verify_signature(None)
        .expect("anchor is self-signed");
    issuer
        .verify_signature(Some(anchor.public_key()))
        .expect("issuer is signed by the anchor");
    assert_eq!(issuer.issuer(), anchor.subject());

    let years = |c: &X509Certificate<'_>| {
        let v = c.validity();
        (v.not_after.timestamp() - v.not_before.timestamp()) / (365 * 24 * 3600)
    };
    assert_eq!(years(&anchor), 10);
    assert_eq!(years(&issuer), 1);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for secret in ["issuer.key", "token.key"] {
            let mode = std::fs::metadata(out.join(secret))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{secret}");
        }
    }
    let token_key = std::fs::read_to_string(out.join("token.key")).expect("token.key");
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token_key.trim())
        .expect("base64");
    assert_eq!(raw.len(), 32);

    // And the CA accepts what init wrote.
    Ca::load_dir(&out, Validity::default()).expect("CA loads");
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = common::init_dir();
    let before = std::fs::read(dir.path().join("ca.crt")).expect("read");
    let opts = InitOptions {
        out: dir.path().to_path_buf(),
        trust_domain: "cluster.local".into(),
        control_plane_ns: "linkerd".into(),
        force: false,
    };
    match init(&opts) {
        Err(InitError::Exists(path)) => assert!(path.ends_with("ca.crt")),
        other => panic!("expected Exists, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(dir.path().join("ca.crt")).expect("read"),
        before
    );
    init(&InitOptions {
        force: true,
        ..opts
    })
    .expect("force overwrites");
    assert_ne!(
        std::fs::read(dir.path().join("ca.crt")).expect("read"),
        before
    );
}

#[test]
fn init_rejects_bad_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (td, ns) in [
        ("Cluster.Local", "linkerd"),
        ("cluster.local", "a.b"),
        ("", "linkerd"),
    ] {
        let result = init(&InitOptions {
            out: dir.path().to_path_buf(),
            trust_domain: td.into(),
            control_plane_ns: ns.into(),
            force: false,
        });
        assert!(
            matches!(result, Err(InitError::Invalid(_))),
            "{td:?} {ns:?}"
        );
    }
}

#[test]
fn ca_load_names_the_bad_file() {
    let dir = common::init_dir();
    let other = common::init_dir();
    // An issuer from another init does not chain to this trust anchor.
    std::fs::copy(
        other.path().join("issuer.crt"),
        dir.path().join("issuer.crt"),
    )
    .expect("copy");
    let err = Ca::load_dir(dir.path(), Validity::default()).expect_err("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("issuer.crt") && msg.contains("does not chain"),
        "{msg}"
    );

    // The issuer key of another CA does not match the certificate.
    let dir = common::init_dir();
    std::fs::copy(
        other.path().join("issuer.key"),
        dir.path().join("issuer.key"),
    )
    .expect("copy");
    let msg = Ca::load_dir(dir.path(), Validity::default())
        .expect_err("must fail")
        .to_string();
    assert!(
        msg.contains("issuer.key") && msg.contains("does not belong"),
        "{msg}"
    );

    // Garbage trust anchors.
    let dir = common::init_dir();
    std::fs::write(dir.path().join("ca.crt"), "not pem").expect("write");
    let msg = Ca::load_dir(dir.path(), Validity::default())
        .expect_err("must fail")
        .to_string();
    assert!(
        msg.contains("ca.crt") && msg.contains("no CERTIFICATE"),
        "{msg}"
    );

    // A leaf (not a CA) as issuer is refused.
    let dir = common::init_dir();
    let ca = Ca::load_dir(dir.path(), Validity::default()).expect("load");
    let id = common::identity("web", "shop");
    let leaf = ca.issue(&id, &common::csr(&id)).expect("issue").leaf;
    std::fs::write(dir.path().join("issuer.crt"), common::pem_cert(&leaf)).expect("write");
    let msg = Ca::load_dir(dir.path(), Validity::default())
        .expect_err("must fail")
        .to_string();
    assert!(
        msg.contains("issuer.crt") && msg.contains("not a CA"),
        "{msg}"
    );
}

#[test]
fn sec1_issuer_key_from_openssl_is_accepted() {
    if !common::have_openssl() {
        eprintln!("skipping: openssl is not on PATH");
        return;
    }
    let dir = common::init_dir();
    // Re-encode the PKCS#8 issuer key as SEC1 ("EC PRIVATE KEY"), as step writes it.
    let status = std::process::Command::new("openssl")
        .args(["ec", "-in"])
        .arg(dir.path().join("issuer.key"))
        .arg("-out")
        .arg(dir.path().join("issuer-sec1.key"))
        .status()
        .expect("openssl ec");
    assert!(status.success());
    let sec1 = std::fs::read_to_string(dir.path().join("issuer-sec1.key")).expect("read");
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"), "{sec1}");
    std::fs::write(dir.path().join("issuer.key"), sec1).expect("write");
    let ca = Ca::load_dir(dir.path(), Validity::default()).expect("SEC1 key loads");
    let id = common::identity("web", "shop");
    ca.issue(&id, &common::csr(&id))
        .expect("issues with the SEC1 key");
}
