//! Integration tests of the internal CA: issuance end to end, the leaf's
//! fields read back with x509-parser, chain verification with rustls's
//! webpki (the gate's verifier) and with the `openssl` command, and every
//! bad-input story with its precise error.
//!
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use castellan_ca::{
    bundle_pem, certs_from_pem, generate_workload_key, generate_workload_key_for, parse_svid_peer, spiffe_bundle_json,
    CaCert, CaError, CaKey, KeyAlgorithm, SpiffeId, TrustDomain, MAX_CSR_BYTES,
};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, SanType, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_SIG_ECDSA_WITH_SHA256, OID_X509_EXT_SUBJECT_ALT_NAME};
use x509_parser::prelude::{FromDer, X509Certificate};

const NOW: i64 = 1_700_000_000;
const DAY: u64 = 24 * 3600;
/// `openssl req -new -newkey rsa:1024 -nodes -keyout /dev/null -subj "/"
///  -addext "subjectAltName=URI:spiffe://example.org/a"`
const RSA_1024_CSR: &str = include_str!("data/rsa1024.csr.pem");

fn td() -> TrustDomain {
    TrustDomain::new("example.org").unwrap()
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn ca() -> CaKey {
    CaKey::generate(&td(), 30 * DAY, NOW).unwrap()
}

fn unix(t: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(t).unwrap()))
}

/// A CSR built with rcgen directly, for shapes our own helper never makes.
fn custom_csr(key: &KeyPair, sans: Vec<SanType>, subject: DistinguishedName) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.subject_alt_names = sans;
    params.serialize_request(key).unwrap().der().to_vec()
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

fn client_verifier(cas: &[&CaCert]) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(bundle_pem(cas).as_bytes()).unwrap() {
        roots.add(cert).unwrap();
    }
    WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .build()
    .unwrap()
}

// ---- round trips -----------------------------------------------------------

#[test]
fn issue_and_read_back_every_field() {
    let ca = ca();
    let me = id("spiffe://example.org/payments/api");
    let wk = generate_workload_key(&me).unwrap();
    let svid = ca.issue_svid(wk.csr_der(), &me, 3600, NOW).unwrap();

    assert_eq!(svid.spiffe_id, me);
    assert_eq!(svid.not_before, NOW - 30);
    assert_eq!(svid.not_after, NOW + 3600);
    assert_eq!(svid.renew_at(), NOW - 30 + (3600 + 30) / 2);
    assert_eq!(svid.chain, vec![svid.cert_der.clone(), ca.cert_der().clone()]);
    assert_eq!(svid.ca_id, ca.id());
    assert_eq!(svid.serial.len(), 32);

    let (rest, leaf) = X509Certificate::from_der(&svid.cert_der).unwrap();
    assert!(rest.is_empty());
    assert_eq!(leaf.version().0, 2, "x509 v3");
    assert_eq!(leaf.raw_serial().len(), 16);
    assert_eq!(leaf.raw_serial_as_string().replace(':', ""), svid.serial);
    assert_eq!(leaf.signature_algorithm.algorithm, OID_SIG_ECDSA_WITH_SHA256);
    assert_eq!(leaf.validity().not_before.timestamp(), NOW - 30);
    assert_eq!(leaf.validity().not_after.timestamp(), NOW + 3600);
    assert_eq!(leaf.subject().iter().count(), 0, "empty subject");

    let (_, ca_x509) = X509Certificate::from_der(ca.cert_der()).unwrap();
    assert_eq!(leaf.issuer().as_raw(), ca_x509.subject().as_raw());

    // Exactly one SAN, a URI, critical because the subject is empty.
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert!(san.critical);
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::URI("spiffe://example.org/payments/api")]
    );
    let bc = leaf.basic_constraints().unwrap().unwrap();
    assert!(bc.critical);
    assert!(!bc.value.ca);
    let ku = leaf.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert_eq!(ku.value.flags, 1, "digitalSignature only");
    let eku = leaf.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.server_auth && eku.value.client_auth);
    assert!(!eku.value.any && !eku.value.code_signing && !eku.value.email_protection);
    assert!(eku.value.other.is_empty());
    assert!(!eku.value.time_stamping && !eku.value.ocsp_signing);
    let san_extensions = leaf
        .iter_extensions()
        .filter(|e| e.oid == OID_X509_EXT_SUBJECT_ALT_NAME)
        .count();
    assert_eq!(san_extensions, 1, "one SAN extension");

    // AKI = the CA's SKI; the leaf has its own SKI.
    let ski_of = |c: &X509Certificate<'_>| {
        c.iter_extensions().find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
    };
    let aki = leaf
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(Some(aki), ski_of(&ca_x509));
    assert!(ski_of(&leaf).is_some());

    // The leaf carries the CSR's key.
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(wk.csr_der()).unwrap();
    assert_eq!(leaf.public_key().raw, csr.certification_request_info.subject_pki.raw);

    assert_eq!(parse_svid_peer(&svid.cert_der).unwrap(), me);
}

#[test]
fn ed25519_csr_and_pem_csr_are_accepted() {
    let ca = ca();
    let me = id("spiffe://example.org/ed");
    let wk = generate_workload_key_for(&me, KeyAlgorithm::Ed25519).unwrap();
    let svid = ca.issue_svid(wk.csr_pem().as_bytes(), &me, 600, NOW).unwrap();
    assert_eq!(parse_svid_peer(&svid.cert_der).unwrap(), me);
    client_verifier(&[ca.cert()])
        .verify_client_cert(&svid.cert_der, &[], unix(NOW))
        .unwrap();
}

#[test]
fn csr_without_sans_gets_the_expected_id() {
    let ca = ca();
    let me = id("spiffe://example.org/no-san");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = custom_csr(&key, vec![], DistinguishedName::new());
    let svid = ca.issue_svid(&csr, &me, 600, NOW).unwrap();
    assert_eq!(parse_svid_peer(&svid.cert_der).unwrap(), me);

    // A subject holding only CN=<the id> is accepted too.
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, me.as_str());
    let csr = custom_csr(&key, vec![uri(me.as_str())], dn);
    ca.issue_svid(&csr, &me, 600, NOW).unwrap();
}

#[test]
fn requested_extensions_do_not_reach_the_leaf() {
    let ca = ca();
    let me = id("spiffe://example.org/wants-to-be-a-ca");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![uri(me.as_str())];
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
    let csr = params.serialize_request(&key).unwrap();
    let svid = ca.issue_svid(csr.der(), &me, 600, NOW).unwrap();
    let (_, leaf) = X509Certificate::from_der(&svid.cert_der).unwrap();
    assert!(!leaf.basic_constraints().unwrap().unwrap().value.ca);
    assert_eq!(leaf.key_usage().unwrap().unwrap().value.flags, 1);
    let eku = leaf.extended_key_usage().unwrap().unwrap();
    assert!(!eku.value.code_signing && eku.value.server_auth && eku.value.client_auth);
}

#[test]
fn ca_round_trips_through_pkcs8_and_keeps_issuing() {
    let ca = ca();
    let pkcs8 = ca.private_key_pkcs8_der();
    let reloaded = CaKey::from_pkcs8_der(&pkcs8, ca.cert_der()).unwrap();
    assert_eq!(reloaded.id(), ca.id());
    assert_eq!(reloaded.not_after(), ca.not_after());
    let me = id("spiffe://example.org/a");
    let wk = generate_workload_key(&me).unwrap();
    let svid = reloaded.issue_svid(wk.csr_der(), &me, 600, NOW).unwrap();
    // Verified against the original CA's certificate.
    client_verifier(&[ca.cert()])
        .verify_client_cert(&svid.cert_der, &[], unix(NOW))
        .unwrap();
}

#[test]
fn validity_is_clamped_to_the_ca() {
    let ca = CaKey::generate(&td(), 7200, NOW).unwrap();
    let me = id("spiffe://example.org/a");
    let wk = generate_workload_key(&me).unwrap();
    // Issued an hour and a half in: the CA has 30 minutes left.
    let later = NOW + 5400;
    let svid = ca.issue_svid(wk.csr_der(), &me, DAY, later).unwrap();
    assert_eq!(svid.not_after, ca.not_after());
    assert_eq!(svid.not_after, NOW + 7200);
    let (_, leaf) = X509Certificate::from_der(&svid.cert_der).unwrap();
    assert_eq!(leaf.validity().not_after.timestamp(), NOW + 7200);
    // Backdating never precedes the CA.
    let early = ca.issue_svid(wk.csr_der(), &me, 60, NOW - 60).unwrap();
    assert_eq!(early.not_before, ca.not_before());
}

#[test]
fn expired_or_not_yet_valid_ca_does_not_issue() {
    let ca = CaKey::generate(&td(), 3600, NOW).unwrap();
    let me = id("spiffe://example.org/a");
    let wk = generate_workload_key(&me).unwrap();
    for at in [NOW + 3600, NOW + 10_000, NOW - 61] {
        let err = ca.issue_svid(wk.csr_der(), &me, 60, at).unwrap_err();
        assert_eq!(
            err,
            CaError::CaNotValid {
                ca_id: ca.id().to_owned(),
                now: at,
                not_before: NOW - 60,
                not_after: NOW + 3600
            }
        );
        assert!(!err.is_bad_input());
    }
}

// ---- chain verification with rustls / webpki ------------------------------

#[test]
fn webpki_client_auth_accepts_the_leaf_and_refuses_others() {
    let other_ca = ca();
    let ca = ca();
    let me = id("spiffe://example.org/a");
    let wk = generate_workload_key(&me).unwrap();
    let svid = ca.issue_svid(wk.csr_der(), &me, 3600, NOW).unwrap();
    let verifier = client_verifier(&[ca.cert()]);

    verifier.verify_client_cert(&svid.cert_der, &[], unix(NOW)).unwrap();
    // Presenting the whole chain (as a TLS client does) works too.
    verifier
        .verify_client_cert(&svid.cert_der, &svid.chain[1..], unix(NOW))
        .unwrap();
    // Expired.
    let err = verifier
        .verify_client_cert(&svid.cert_der, &[], unix(NOW + 3601))
        .unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)) && format!("{err:?}").contains("Expired"),
        "{err:?}"
    );
    // Signed by a CA outside the bundle.
    let foreign = other_ca.issue_svid(wk.csr_der(), &me, 3600, NOW).unwrap();
    let err = verifier
        .verify_client_cert(&foreign.cert_der, &[], unix(NOW))
        .unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ),
        "{err:?}"
    );
    // A CA certificate is no client certificate.
    assert!(verifier.verify_client_cert(ca.cert_der(), &[], unix(NOW)).is_err());
}

#[test]
fn webpki_server_auth_accepts_the_leaf() {
    let ca = ca();
    let me = id("spiffe://example.org/server");
    let wk = generate_workload_key(&me).unwrap();
    let svid = ca.issue_svid(wk.csr_der(), &me, 3600, NOW).unwrap();
    let anchor = webpki::anchor_from_trusted_cert(ca.cert_der()).unwrap();
    let leaf = webpki::EndEntityCert::try_from(&svid.cert_der).unwrap();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        unix(NOW),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .unwrap();
}

#[test]
fn rotation_bundle_verifies_leaves_of_both_cas() {
    let old = ca();
    let new = CaKey::generate(&td(), 30 * DAY, NOW + 3600).unwrap();
    let me = id("spiffe://example.org/a");
    let wk = generate_workload_key(&me).unwrap();
    let from_old = old.issue_svid(wk.csr_der(), &me, 3600, NOW + 3600).unwrap();
    let from_new = new.issue_svid(wk.csr_der(), &me, 3600, NOW + 3600).unwrap();
    let verifier = client_verifier(&[old.cert(), new.cert()]);
    for svid in [&from_old, &from_new] {
        verifier
            .verify_client_cert(&svid.cert_der, &[], unix(NOW + 3700))
            .unwrap();
    }
    let json = spiffe_bundle_json(&[old.cert(), new.cert()], 2, 300);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["keys"].as_array().unwrap().len(), 2);
}

// ---- bad input --------------------------------------------------------------

fn issue_err(csr: &[u8]) -> CaError {
    let me = id("spiffe://example.org/a");
    let err = ca().issue_svid(csr, &me, 3600, NOW).unwrap_err();
    assert!(err.is_bad_input(), "{err:?}");
    err
}

#[test]
fn garbage_and_truncated_input() {
    assert_eq!(
        issue_err(b"hello, I am not a csr"),
        CaError::MalformedCsr {
            reason: "not a der-encoded pkcs#10 certificate request"
        }
    );
    assert_eq!(
        issue_err(b""),
        CaError::MalformedCsr {
            reason: "not a der-encoded pkcs#10 certificate request"
        }
    );
    let me = id("spiffe://example.org/a");
    let wk = generate_workload_key(&me).unwrap();
    let der = wk.csr_der();
    assert_eq!(
        issue_err(&der[..der.len() - 5]),
        CaError::MalformedCsr {
            reason: "not a der-encoded pkcs#10 certificate request"
        }
    );
    let mut trailing = der.to_vec();
    trailing.extend_from_slice(b"xx");
    assert_eq!(
        issue_err(&trailing),
        CaError::MalformedCsr {
            reason: "trailing bytes after the certificate request"
        }
    );
    let pem = wk.csr_pem();
    let cut = &pem[..pem.len() - 40];
    assert_eq!(
        issue_err(cut.as_bytes()),
        CaError::MalformedPem {
            what: "csr",
            reason: "a section has no end line (truncated?)"
        }
    );
    let wrong_label = pem.replace("CERTIFICATE REQUEST", "CERTIFICATE");
    assert_eq!(
        issue_err(wrong_label.as_bytes()),
        CaError::MalformedPem {
            what: "csr",
            reason: "no matching section found"
        }
    );
    let bad_base64 = pem.replacen("-----\nMI", "-----\nM!", 1);
    assert_ne!(bad_base64, *pem);
    assert_eq!(
        issue_err(bad_base64.as_bytes()),
        CaError::MalformedPem {
            what: "csr",
            reason: "the base64 body does not decode"
        }
    );
    let two = format!("{pem}{pem}");
    assert_eq!(
        issue_err(two.as_bytes()),
        CaError::MalformedPem {
            what: "csr",
            reason: "more than one certificate request"
        }
    );
}

#[test]
fn oversize_input_is_refused_before_parsing() {
    let mut big = vec![b' '; MAX_CSR_BYTES + 1];
    big[0] = 0x30;
    let err = issue_err(&big);
    assert_eq!(
        err,
        CaError::TooLarge {
            what: "csr",
            len: MAX_CSR_BYTES + 1,
            limit: MAX_CSR_BYTES
        }
    );
    assert_eq!(err.to_string(), "csr is too large: 8193 bytes (limit 8192)");
}

#[test]
fn csr_signed_by_another_key_is_refused() {
    let me = id("spiffe://example.org/a");
    let a = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let b = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    // CSR carrying A's public key but signed by B: swap B's key in for A's
    // in a CSR B signed.
    let csr_b = custom_csr(&b, vec![uri(me.as_str())], DistinguishedName::new());
    let b_point = b.public_key_raw();
    let a_point = a.public_key_raw();
    let at = csr_b.windows(b_point.len()).position(|w| w == b_point).unwrap();
    let mut forged = csr_b.clone();
    forged[at..at + a_point.len()].copy_from_slice(a_point);
    let err = issue_err(&forged);
    assert_eq!(err, CaError::CsrSignatureInvalid);
    assert_eq!(
        err.to_string(),
        "csr signature does not verify with the csr's public key"
    );

    // Tampering with the signed SPIFFE ID breaks the signature as well.
    let wk = generate_workload_key(&id("spiffe://example.org/b")).unwrap();
    let mut tampered = wk.csr_der().to_vec();
    let name = b"spiffe://example.org/b";
    let at = tampered.windows(name.len()).position(|w| w == name).unwrap();
    tampered[at + name.len() - 1] = b'a';
    assert_eq!(issue_err(&tampered), CaError::CsrSignatureInvalid);
}

#[test]
fn csr_naming_anything_else_is_refused() {
    let me = id("spiffe://example.org/a");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();

    let other = generate_workload_key(&id("spiffe://example.org/b")).unwrap();
    let err = issue_err(other.csr_der());
    assert_eq!(
        err,
        CaError::CsrNameMismatch {
            name: "spiffe://example.org/b".into(),
            expected: "spiffe://example.org/a".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "csr requests name `spiffe://example.org/b`, but only `spiffe://example.org/a` may be issued"
    );

    let dns = custom_csr(
        &key,
        vec![
            uri(me.as_str()),
            SanType::DnsName("evil.example.com".try_into().unwrap()),
        ],
        DistinguishedName::new(),
    );
    assert_eq!(
        issue_err(&dns),
        CaError::CsrNameMismatch {
            name: "dns:evil.example.com".into(),
            expected: me.to_string()
        }
    );

    let ip = custom_csr(
        &key,
        vec![SanType::IpAddress("10.0.0.1".parse().unwrap())],
        DistinguishedName::new(),
    );
    assert_eq!(
        issue_err(&ip),
        CaError::CsrNameMismatch {
            name: "ip:10.0.0.1".into(),
            expected: me.to_string()
        }
    );

    let twice = custom_csr(&key, vec![uri(me.as_str()), uri(me.as_str())], DistinguishedName::new());
    assert_eq!(issue_err(&twice), CaError::CsrTooManyNames { count: 2 });

    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Evil Corp");
    let subject = custom_csr(&key, vec![uri(me.as_str())], dn);
    let err = issue_err(&subject);
    assert_eq!(
        err,
        CaError::CsrSubjectNotAllowed {
            subject: "O=Evil Corp".into(),
            expected: me.to_string()
        }
    );
    assert_eq!(
        err.to_string(),
        "csr subject `O=Evil Corp` is not allowed: leave it empty or set only cn=`spiffe://example.org/a`"
    );

    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "spiffe://example.org/admin");
    let cn = custom_csr(&key, vec![], dn);
    assert!(matches!(issue_err(&cn), CaError::CsrSubjectNotAllowed { .. }));
}

#[test]
fn foreign_trust_domain_and_bad_ttl_are_refused() {
    let ca = ca();
    let foreign = id("spiffe://other.org/a");
    let wk = generate_workload_key(&foreign).unwrap();
    let err = ca.issue_svid(wk.csr_der(), &foreign, 60, NOW).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spiffe id `spiffe://other.org/a` is outside trust domain `example.org`"
    );
    let me = id("spiffe://example.org/a");
    let wk = generate_workload_key(&me).unwrap();
    for ttl in [0, castellan_ca::MAX_SVID_TTL_SECS + 1] {
        assert!(matches!(
            ca.issue_svid(wk.csr_der(), &me, ttl, NOW),
            Err(CaError::InvalidTtl { .. })
        ));
    }
}

#[test]
fn unsupported_keys_are_refused() {
    let err = issue_err(RSA_1024_CSR.as_bytes());
    assert_eq!(err, CaError::UnsupportedKey { key: "rsa-1024".into() });
    assert_eq!(
        err.to_string(),
        "unsupported csr key `rsa-1024`: only ecdsa p-256 and ed25519 keys are accepted"
    );

    let me = id("spiffe://example.org/a");
    let rsa = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let csr = custom_csr(&rsa, vec![uri(me.as_str())], DistinguishedName::new());
    assert_eq!(issue_err(&csr), CaError::UnsupportedKey { key: "rsa-2048".into() });

    let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let csr = custom_csr(&p384, vec![uri(me.as_str())], DistinguishedName::new());
    assert_eq!(
        issue_err(&csr),
        CaError::UnsupportedKey {
            key: "ecdsa p-384".into()
        }
    );
}

#[test]
fn p256_key_with_sha384_signature_is_refused() {
    let me = id("spiffe://example.org/a");
    // rcgen signs a P-256 key with SHA-256 only; rewrite the outer
    // algorithm OID to ecdsa-with-SHA384 (1.2.840.10045.4.3.3).
    let wk = generate_workload_key(&me).unwrap();
    let mut der = wk.csr_der().to_vec();
    let sha256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let at = der.windows(sha256.len()).rposition(|w| w == sha256).unwrap();
    der[at + sha256.len() - 1] = 0x03;
    assert_eq!(
        issue_err(&der),
        CaError::UnsupportedSignatureAlgorithm {
            algorithm: "1.2.840.10045.4.3.3".into(),
            key: "ecdsa p-256"
        }
    );
}

// ---- the peer step ----------------------------------------------------------

#[test]
fn parse_svid_peer_refuses_non_svids() {
    let ca = ca();
    assert_eq!(
        parse_svid_peer(ca.cert_der()).unwrap_err(),
        CaError::NotAnSvid {
            reason: "it is a ca certificate".into()
        }
    );
    assert_eq!(
        parse_svid_peer(b"junk").unwrap_err(),
        CaError::MalformedCertificate {
            reason: "not a der-encoded x509 certificate"
        }
    );

    // Leaves made with rcgen directly (self-signed: the peer step reads
    // names only; rustls has verified the chain before it runs).
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let make = |sans: Vec<SanType>| -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.self_signed(&leaf_key).unwrap().into()
    };
    let two = make(vec![uri("spiffe://example.org/a"), uri("spiffe://example.org/b")]);
    assert_eq!(
        parse_svid_peer(&two).unwrap_err(),
        CaError::NotAnSvid {
            reason: "it has 2 uri sans, an svid carries exactly one".into()
        }
    );
    let dns_only = make(vec![SanType::DnsName("a.example.org".try_into().unwrap())]);
    assert_eq!(
        parse_svid_peer(&dns_only).unwrap_err(),
        CaError::NotAnSvid {
            reason: "it has no uri san".into()
        }
    );
    let root_id = make(vec![uri("spiffe://example.org")]);
    assert!(matches!(
        parse_svid_peer(&root_id).unwrap_err(),
        CaError::InvalidSpiffeId { .. }
    ));
    let https = make(vec![uri("https://example.org/a")]);
    assert!(matches!(
        parse_svid_peer(&https).unwrap_err(),
        CaError::InvalidSpiffeId { .. }
    ));
    // A DNS SAN beside the one URI SAN is allowed (X509-SVID §2).
    let mixed = make(vec![
        SanType::DnsName("a.example.org".try_into().unwrap()),
        uri("spiffe://example.org/a"),
    ]);
    assert_eq!(parse_svid_peer(&mixed).unwrap(), id("spiffe://example.org/a"));
}

// ---- the openssl command ------------------------------------------------------

fn openssl() -> Option<&'static str> {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("openssl");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the openssl command is required in CI"
    );
    eprintln!("SKIPPED: the openssl command is not installed; openssl checks did not run");
    None
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn openssl_reads_and_verifies_the_svid() {
    let Some(openssl) = openssl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let me = id("spiffe://example.org/payments/api");
    let wk = generate_workload_key(&me).unwrap();
    let svid = ca.issue_svid(wk.csr_der(), &me, 3600, NOW).unwrap();
    let leaf = dir.path().join("leaf.pem");
    let chain = dir.path().join("svid.pem");
    let bundle = dir.path().join("bundle.pem");
    let key = dir.path().join("svid_key.pem");
    std::fs::write(&leaf, svid.cert_pem()).unwrap();
    std::fs::write(&chain, svid.chain_pem()).unwrap();
    std::fs::write(&bundle, bundle_pem(&[ca.cert()])).unwrap();
    std::fs::write(&key, wk.key_pem().as_bytes()).unwrap();

    let text = run(Command::new(openssl)
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&leaf));
    assert!(text.contains("URI:spiffe://example.org/payments/api"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("Digital Signature"), "{text}");
    assert!(!text.contains("Certificate Sign"), "{text}");
    assert!(
        text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "{text}"
    );
    assert!(text.contains("ecdsa-with-SHA256"), "{text}");

    let ca_text = run(Command::new(openssl)
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&bundle));
    assert!(ca_text.contains("CA:TRUE, pathlen:0"), "{ca_text}");
    assert!(ca_text.contains("Certificate Sign, CRL Sign"), "{ca_text}");
    assert!(ca_text.contains("URI:spiffe://example.org"), "{ca_text}");

    let at = NOW.to_string();
    for purpose in ["sslclient", "sslserver"] {
        let out = run(Command::new(openssl)
            .args(["verify", "-attime", &at, "-purpose", purpose, "-CAfile"])
            .arg(&bundle)
            .arg(&leaf));
        assert!(out.contains(": OK"), "{out}");
    }
    // Expired an hour later.
    let late = (NOW + 3601).to_string();
    let out = Command::new(openssl)
        .args(["verify", "-attime", &late, "-CAfile"])
        .arg(&bundle)
        .arg(&leaf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    // svid.pem holds the leaf then the CA; the key matches the leaf.
    let certs = certs_from_pem(&std::fs::read(&chain).unwrap()).unwrap();
    assert_eq!(certs, svid.chain);
    let leaf_pub = run(Command::new(openssl)
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(&leaf));
    let key_pub = run(Command::new(openssl).args(["pkey", "-pubout", "-in"]).arg(&key));
    assert_eq!(leaf_pub, key_pub);
}

#[test]
fn openssl_made_csrs_are_accepted() {
    let Some(openssl) = openssl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let me = id("spiffe://example.org/from-openssl");
    let san = format!("subjectAltName=URI:{me}");
    for (name, newkey) in [
        ("ec", vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        ("ed", vec!["-newkey", "ed25519"]),
    ] {
        let csr = dir.path().join(format!("{name}.csr"));
        run(Command::new(openssl)
            .args(["req", "-new", "-nodes", "-keyout"])
            .arg(dir.path().join(format!("{name}.key")))
            .args(&newkey)
            .args(["-subj", "/", "-addext", &san, "-out"])
            .arg(&csr));
        let pem = std::fs::read(&csr).unwrap();
        let svid = ca.issue_svid(&pem, &me, 600, NOW).unwrap();
        assert_eq!(parse_svid_peer(&svid.cert_der).unwrap(), me);
    }
}
