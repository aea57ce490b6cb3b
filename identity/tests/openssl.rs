//! An independent check: `openssl verify` accepts an issued leaf.

mod common;

use std::process::Command;

#[tokio::test]
async fn openssl_verifies_an_issued_leaf() {
    if !common::have_openssl() {
        eprintln!("skipping: openssl is not on PATH");
        return;
    }
    let dir = common::init_dir();
    let server = common::start(dir.path()).await;
    let mut client = common::plain_client(server.addr).await;
    let req = common::good_request(dir.path(), "web", "shop");
    let id = req.identity.clone();
    let resp = client.certify(req).await.expect("certify").into_inner();
    server.stop().await;

    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&leaf, common::pem_cert(&resp.leaf_certificate)).expect("write leaf");
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(dir.path().join("ca.crt"))
        .arg("-untrusted")
        .arg(dir.path().join("issuer.crt"))
        .args(["-purpose", "sslserver", "-verify_hostname", &id])
        .arg(&leaf)
        .output()
        .expect("run openssl");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(": OK"),
        "openssl verify failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(dir.path().join("ca.crt"))
        .arg("-untrusted")
        .arg(dir.path().join("issuer.crt"))
        .args(["-purpose", "sslclient"])
        .arg(&leaf)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "client purpose: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn openssl_s_client_sees_tls13_only_with_the_service_identity() {
    if !common::have_openssl() {
        eprintln!("skipping: openssl is not on PATH");
        return;
    }
    let dir = common::init_dir();
    let server = common::start(dir.path()).await;
    let connect = server.addr.to_string();
    let ca = dir.path().join("ca.crt");
    let s_client = |extra: &'static [&'static str]| {
        let connect = connect.clone();
        let ca = ca.clone();
        let name = server.service_name.clone();
        tokio::task::spawn_blocking(move || {
            Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &connect,
                    "-servername",
                    &name,
                    "-verify_hostname",
                    &name,
                    "-verify_return_error",
                    "-CAfile",
                ])
                .arg(&ca)
                .args(extra)
                .stdin(std::process::Stdio::null())
                .output()
                .expect("run openssl")
        })
    };
    let ok = s_client(&["-tls1_3", "-alpn", "h2"]).await.expect("join");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "TLS 1.3: {stdout} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("TLSv1.3"), "{stdout}");
    assert!(stdout.contains("ALPN protocol: h2"), "{stdout}");
    assert!(stdout.contains("Verify return code: 0 (ok)"), "{stdout}");
    let tls12 = s_client(&["-tls1_2"]).await.expect("join");
    assert!(!tls12.status.success(), "TLS 1.2 must be refused");
    server.stop().await;
}
