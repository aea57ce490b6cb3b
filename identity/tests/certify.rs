//! Identity.Certify over real sockets: plaintext and TLS on one port, the
//! issued certificate's properties, and every rejection path.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use linkerd2_proxy_api::identity::CertifyRequest;
use rcgen::{KeyPair, SanType, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384};
use tokio::io::AsyncWriteExt;
use tonic::Code;
use wisp_identity::TokenKey;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

#[tokio::test]
async fn certify_over_plaintext_issues_a_chaining_leaf() {
    let dir = common::init_dir();
    let server = common::start(dir.path()).await;
    let mut client = common::plain_client(server.addr).await;

    let req = common::good_request(dir.path(), "web", "shop");
    let id = req.identity.clone();
    let before = SystemTime::now();
    let resp = client.certify(req).await.expect("certify").into_inner();

    // Chain: leaf -> [issuer] -> trust anchor.
    let issuer = std::fs::read(dir.path().join("issuer.crt")).expect("issuer");
    let issuer_der = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(&issuer)
            .expect("pem")
            .to_vec()
    };
    assert_eq!(resp.intermediate_certificates, vec![issuer_der]);
    common::verify_chain(&common::anchors(dir.path()), &resp, &id);

    let (_, leaf) = X509Certificate::from_der(&resp.leaf_certificate).expect("leaf parses");
    let sans: Vec<String> = leaf
        .subject_alternative_name()
        .expect("san ok")
        .expect("san present")
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(sans, vec![id.clone()]);
    let cn = leaf
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok());
    assert_eq!(cn, Some(id.as_str()));
    assert!(!leaf.is_ca());
    let ku = leaf.key_usage().expect("ku").expect("present").value;
    assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
    let eku = leaf
        .extended_key_usage()
        .expect("eku")
        .expect("present")
        .value;
    assert!(eku.server_auth && eku.client_auth);

    // Validity: NotBefore = now - 20s, NotAfter = now + 24h + 20s; valid_until = NotAfter.
    let now = before.duration_since(UNIX_EPOCH).expect("epoch").as_secs() as i64;
    let not_before = leaf.validity().not_before.timestamp();
    let not_after = leaf.validity().not_after.timestamp();
    assert!(
        (now - 20 - 2..=now - 20 + 2).contains(&not_before),
        "{not_before} vs {now}"
    );
    let expected = now + 24 * 3600 + 20;
    assert!(
        (expected - 2..=expected + 5).contains(&not_after),
        "{not_after} vs {expected}"
    );
    let valid_until = resp.valid_until.expect("valid_until");
    assert_eq!((valid_until.seconds, valid_until.nanos), (not_after, 0));

    // Serials increase.
    let serial1 = leaf.raw_serial().to_vec();
    let resp2 = client
        .certify(common::good_request(dir.path(), "web", "shop"))
        .await
        .expect("certify again")
        .into_inner();
    let (_, leaf2) = X509Certificate::from_der(&resp2.leaf_certificate).expect("parses");
    assert!(
        leaf2.serial > leaf.serial,
        "{:?} then {:?}",
        serial1,
        leaf2.raw_serial()
    );
    server.stop().await;
}

#[tokio::test]
async fn certify_over_tls_with_the_service_identity() {
    let dir = common::init_dir();
    let server = common::start(dir.path()).await;
    let anchors = common::anchors(dir.path());
    assert_eq!(
        server.service_name,
        "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local"
    );
    let mut client = common::tls_client(server.addr, &anchors, &server.service_name)
        .await
        .expect("TLS connect");
    let req = common::good_request(dir.path(), "web", "shop");
    let id = req.identity.clone();
    let resp = client
        .certify(req)
        .await
        .expect("certify over TLS")
        .into_inner();
    common::verify_chain(&anchors, &resp, &id);

    // A client presenting a mesh certificate (mTLS) is accepted too.
    let web = common::identity("web", "shop");
    let key = rcgen::KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let dns = SanType::DnsName(web.as_str().try_into().expect("ia5"));
    let issued = server
        .ca
        .issue(&web, &common::csr_for(&web, &[dns], &key))
        .expect("issue client cert");
    let mut chain = vec![issued.leaf];
    chain.extend(issued.intermediates);
    let client_key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut mtls = common::tls_client_with_cert(
        server.addr,
        &anchors,
        &server.service_name,
        Some((chain, client_key)),
    )
    .await
    .expect("mTLS connect");
    mtls.certify(common::good_request(dir.path(), "web", "shop"))
        .await
        .expect("certify over mTLS");

    // The same port still speaks plaintext, even after garbage from someone.
    let mut junk = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n\x16\x03garbage")
        .await
        .expect("write");
    drop(junk);
    let mut plain = common::plain_client(server.addr).await;
    plain
        .certify(common::good_request(dir.path(), "db", "shop"))
        .await
        .expect("plaintext still works");

    // A client expecting another name fails the handshake.
    let wrong = common::tls_client(
        server.addr,
        &anchors,
        "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
    )
    .await;
    let failed = match wrong {
        Err(_) => true,
        Ok(mut c) => c
            .certify(common::good_request(dir.path(), "web", "shop"))
            .await
            .is_err(),
    };
    assert!(
        failed,
        "a client expecting another identity must not get through"
    );

    // A client trusting other anchors fails too.
    let other = common::init_dir();
    let wrong = common::tls_client(
        server.addr,
        &common::anchors(other.path()),
        &server.service_name,
    )
    .await;
    let failed = match wrong {
        Err(_) => true,
        Ok(mut c) => c
            .certify(common::good_request(dir.path(), "web", "shop"))
            .await
            .is_err(),
    };
    assert!(
        failed,
        "a client with other trust anchors must not get through"
    );
    server.stop().await;
}

/// Sends `req`, expects `code` with a message containing `needle`, and
/// checks nothing was issued.
async fn expect_rejected(server: &common::Running, req: CertifyRequest, code: Code, needle: &str) {
    let mut client = common::plain_client(server.addr).await;
    let issued = server.ca.issued_count();
    let status = client.certify(req).await.expect_err("must be rejected");
    assert_eq!(status.code(), code, "{}", status.message());
    assert!(
        status.message().contains(needle),
        "{:?} should mention {needle:?}",
        status.message()
    );
    assert_eq!(server.ca.issued_count(), issued, "nothing may be issued");
}

#[tokio::test]
async fn rejections_follow_the_reference_table() {
    let dir = common::init_dir();
    let server = common::start(dir.path()).await;
    let good = || common::good_request(dir.path(), "web", "shop");

    // Missing fields and unparsable CSRs: InvalidArgument.
    expect_rejected(
        &server,
        CertifyRequest {
            identity: String::new(),
            ..good()
        },
        Code::InvalidArgument,
        "missing identity",
    )
    .await;
    expect_rejected(
        &server,
        CertifyRequest {
            token: Vec::new(),
            ..good()
        },
        Code::InvalidArgument,
        "missing token",
    )
    .await;
    expect_rejected(
        &server,
        CertifyRequest {
            certificate_signing_request: Vec::new(),
            ..good()
        },
        Code::InvalidArgument,
        "missing certificate_signing_request",
    )
    .await;
    expect_rejected(
        &server,
        CertifyRequest {
            certificate_signing_request: b"garbage".to_vec(),
            ..good()
        },
        Code::InvalidArgument,
        "CSR",
    )
    .await;

    // A CSR whose signature was tampered with.
    let mut tampered = good();
    let last = tampered.certificate_signing_request.len() - 3;
    tampered.certificate_signing_request[last] ^= 0x55;
    expect_rejected(
        &server,
        tampered,
        Code::InvalidArgument,
        "CSR signature does not verify",
    )
    .await;

    // Forged token: InvalidArgument "invalid token".
    let forged = TokenKey::from_bytes(&[1; 32])
        .sign_for("web", "shop", Duration::from_secs(60))
        .expect("sign");
    expect_rejected(
        &server,
        CertifyRequest {
            token: forged.into_bytes(),
            ..good()
        },
        Code::InvalidArgument,
        "invalid token",
    )
    .await;
    expect_rejected(
        &server,
        CertifyRequest {
            token: b"wisp1.garbled".to_vec(),
            ..good()
        },
        Code::InvalidArgument,
        "invalid token",
    )
    .await;

    // Expired token: FailedPrecondition.
    let expired = TokenKey::load(&dir.path().join("token.key"))
        .expect("key")
        .sign(
            "web",
            "shop",
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .expect("sign");
    expect_rejected(
        &server,
        CertifyRequest {
            token: expired.into_bytes(),
            ..good()
        },
        Code::FailedPrecondition,
        "token expired at 2023-11-14T22:13:20Z",
    )
    .await;

    // Token for another identity: FailedPrecondition naming both.
    let db = common::identity("db", "shop");
    let wrong_identity = CertifyRequest {
        identity: db.clone(),
        certificate_signing_request: common::csr(&db),
        ..good()
    };
    let mut client = common::plain_client(server.addr).await;
    let status = client.certify(wrong_identity).await.expect_err("rejected");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains(&db)
            && status.message().contains(&common::identity("web", "shop")),
        "{}",
        status.message()
    );

    // CSR name problems: FailedPrecondition.
    let id = common::identity("web", "shop");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let dns = |s: &str| SanType::DnsName(s.try_into().expect("ia5"));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            common::csr(&common::identity("db", "shop")),
            "does not match the requested identity",
        ),
        (common::csr_for(&id, &[], &key), "no DNS SAN"),
        (
            common::csr_for(&id, &[dns(&id), dns("other.example")], &key),
            "2 DNS SANs",
        ),
        (
            common::csr_for("someone-else", &[dns(&id)], &key),
            "common name",
        ),
        (
            common::csr_for(
                &id,
                &[dns(&id), SanType::IpAddress([127, 0, 0, 1].into())],
                &key,
            ),
            "IP address SANs",
        ),
        (
            common::csr_for(
                &id,
                &[
                    dns(&id),
                    SanType::Rfc822Name("a@b.c".try_into().expect("ia5")),
                ],
                &key,
            ),
            "email SANs",
        ),
        (
            common::csr_for(
                &id,
                &[
                    dns(&id),
                    SanType::URI("spiffe://x/y".try_into().expect("ia5")),
                ],
                &key,
            ),
            "URI SANs",
        ),
    ];
    for (csr, needle) in cases {
        expect_rejected(
            &server,
            CertifyRequest {
                certificate_signing_request: csr,
                ..good()
            },
            Code::FailedPrecondition,
            needle,
        )
        .await;
    }
    // An empty CN is fine.
    let mut ok = common::plain_client(server.addr).await;
    ok.certify(CertifyRequest {
        certificate_signing_request: common::csr_for("", &[dns(&id)], &key),
        ..good()
    })
    .await
    .expect("empty CN is accepted");

    // Non-P-256 keys: Internal (the CA refuses to issue).
    let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("p384");
    expect_rejected(
        &server,
        CertifyRequest {
            certificate_signing_request: common::csr_for(&id, &[dns(&id)], &p384),
            ..good()
        },
        Code::Internal,
        "got ECDSA on curve P-384",
    )
    .await;
    if let Some(rsa) = rsa_key() {
        expect_rejected(
            &server,
            CertifyRequest {
                certificate_signing_request: common::csr_for(&id, &[dns(&id)], &rsa),
                ..good()
            },
            Code::Internal,
            "got RSA",
        )
        .await;
    } else {
        eprintln!("skipping the RSA CSR case: openssl is not on PATH");
    }
    server.stop().await;
}

/// An RSA key generated by openssl (ring cannot generate RSA keys).
fn rsa_key() -> Option<KeyPair> {
    if !common::have_openssl() {
        return None;
    }
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .ok()?;
    assert!(out.status.success(), "openssl genpkey failed");
    let pem = String::from_utf8(out.stdout).expect("utf8");
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("pem");
    Some(KeyPair::from_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256).expect("rsa key"))
}
