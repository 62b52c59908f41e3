//! CSR checks: the only way a workload's key reaches a certificate.
//!
//! In order, cheapest first: size cap, PEM or DER, PKCS#10 structure, key
//! type, signature algorithm, requested names, then the self-signature
//! (verified here with aws-lc-rs, from the CSR's own SubjectPublicKeyInfo).
//!
//! Accepted keys: ECDSA P-256 (uncompressed point) signed with
//! ecdsa-with-SHA256, and Ed25519. Everything else is refused, RSA of any
//! size included.
//!
//! Accepted names: no SAN at all, or exactly one URI SAN equal to the
//! SPIFFE ID being issued; subject empty or a single CN equal to that ID.
//! Requested extensions other than the SAN are ignored: the CA decides
//! every extension of the leaf.

use aws_lc_rs::signature::{UnparsedPublicKey, VerificationAlgorithm, ECDSA_P256_SHA256_ASN1, ED25519};
use rcgen::{PublicKeyData, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateSigningRequestDer;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    Oid, OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ED25519, OID_SIG_ED448, OID_X509_COMMON_NAME, OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use crate::ca::P256_POINT_LEN;
use crate::error::{echo, CaError};
use crate::pem::{looks_like_pem, pem_error};
use crate::spiffe::SpiffeId;

/// Largest CSR accepted, PEM or DER, in bytes.
pub const MAX_CSR_BYTES: usize = 8 * 1024;
const ED25519_KEY_LEN: usize = 32;

/// A CSR's public key, checked and proven (the CSR's signature verified).
pub(crate) struct CsrKey {
    alg: &'static SignatureAlgorithm,
    raw: Vec<u8>,
}

impl PublicKeyData for CsrKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// Which key a CSR holds.
#[derive(Clone, Copy)]
enum KeyKind {
    EcdsaP256,
    Ed25519,
}

impl KeyKind {
    fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa p-256",
            Self::Ed25519 => "ed25519",
        }
    }

    fn expected_signature(self) -> Oid<'static> {
        match self {
            Self::EcdsaP256 => OID_SIG_ECDSA_WITH_SHA256,
            Self::Ed25519 => OID_SIG_ED25519,
        }
    }

    fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Self::EcdsaP256 => &ECDSA_P256_SHA256_ASN1,
            Self::Ed25519 => &ED25519,
        }
    }

    fn rcgen_alg(self) -> &'static SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
            Self::Ed25519 => &PKCS_ED25519,
        }
    }
}

/// Checks a CSR (PEM or DER) for `expected` and returns its proven key.
pub(crate) fn verify_csr(input: &[u8], expected: &SpiffeId) -> Result<CsrKey, CaError> {
    if input.len() > MAX_CSR_BYTES {
        return Err(CaError::TooLarge {
            what: "csr",
            len: input.len(),
            limit: MAX_CSR_BYTES,
        });
    }
    if looks_like_pem(input) {
        let mut blocks = CertificateSigningRequestDer::pem_slice_iter(input);
        let der = match blocks.next() {
            Some(Ok(der)) => der,
            Some(Err(e)) => return Err(pem_error("csr", &e)),
            None => return Err(pem_error("csr", &rustls_pki_types::pem::Error::NoItemsFound)),
        };
        if blocks.next().is_some() {
            return Err(CaError::MalformedPem {
                what: "csr",
                reason: "more than one certificate request",
            });
        }
        verify_der(&der, expected)
    } else {
        verify_der(input, expected)
    }
}

fn verify_der(der: &[u8], expected: &SpiffeId) -> Result<CsrKey, CaError> {
    let malformed = |reason| CaError::MalformedCsr { reason };
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|_| malformed("not a der-encoded pkcs#10 certificate request"))?;
    if !rest.is_empty() {
        return Err(malformed("trailing bytes after the certificate request"));
    }
    let info = &csr.certification_request_info;
    if info.version.0 != 0 {
        return Err(malformed("unknown pkcs#10 version"));
    }
    let kind = key_kind(&info.subject_pki)?;
    check_signature_algorithm(&csr, kind)?;
    check_names(&csr, expected)?;
    if csr.signature_value.unused_bits != 0 {
        return Err(malformed("the signature bit string has unused bits"));
    }
    let raw = info.subject_pki.subject_public_key.data.to_vec();
    UnparsedPublicKey::new(kind.verification(), &raw)
        .verify(info.raw, &csr.signature_value.data)
        .map_err(|_| CaError::CsrSignatureInvalid)?;
    Ok(CsrKey {
        alg: kind.rcgen_alg(),
        raw,
    })
}

fn key_kind(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyKind, CaError> {
    let unsupported = |key: String| CaError::UnsupportedKey { key };
    let alg = &spki.algorithm.algorithm;
    let key = &spki.subject_public_key;
    if key.unused_bits != 0 {
        return Err(CaError::MalformedCsr {
            reason: "the public key bit string has unused bits",
        });
    }
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => {
                if key.data.len() == P256_POINT_LEN && key.data.first() == Some(&0x04) {
                    Ok(KeyKind::EcdsaP256)
                } else {
                    Err(unsupported("ecdsa p-256 with a compressed or malformed point".into()))
                }
            }
            Some(c) if c == OID_NIST_EC_P384 => Err(unsupported("ecdsa p-384".into())),
            Some(c) if c == OID_NIST_EC_P521 => Err(unsupported("ecdsa p-521".into())),
            Some(c) => Err(unsupported(format!("ecdsa curve {c}"))),
            None => Err(unsupported("ecdsa without a named curve".into())),
        };
    }
    if *alg == OID_SIG_ED25519 {
        if spki.algorithm.parameters.is_some() || key.data.len() != ED25519_KEY_LEN {
            return Err(unsupported("ed25519 with parameters or a malformed key".into()));
        }
        return Ok(KeyKind::Ed25519);
    }
    if *alg == OID_PKCS1_RSAENCRYPTION {
        return Err(match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => unsupported(format!("rsa-{}", rsa.key_size())),
            _ => unsupported("rsa".into()),
        });
    }
    if *alg == OID_SIG_ED448 {
        return Err(unsupported("ed448".into()));
    }
    Err(unsupported(format!("key algorithm {alg}")))
}

fn check_signature_algorithm(csr: &X509CertificationRequest<'_>, kind: KeyKind) -> Result<(), CaError> {
    let sig = &csr.signature_algorithm;
    if sig.algorithm == kind.expected_signature() && sig.parameters.is_none() {
        return Ok(());
    }
    let algorithm = if sig.algorithm == OID_SIG_ECDSA_WITH_SHA256 {
        "ecdsa-with-sha256".to_owned()
    } else if sig.algorithm == OID_SIG_ED25519 {
        "ed25519".to_owned()
    } else {
        sig.algorithm.to_id_string()
    };
    let algorithm = if sig.parameters.is_some() {
        format!("{algorithm} with parameters")
    } else {
        algorithm
    };
    Err(CaError::UnsupportedSignatureAlgorithm {
        algorithm,
        key: kind.name(),
    })
}

fn check_names(csr: &X509CertificationRequest<'_>, expected: &SpiffeId) -> Result<(), CaError> {
    let info = &csr.certification_request_info;
    check_subject(&info.subject, expected)?;
    let mismatch = |name: String| CaError::CsrNameMismatch {
        name: echo(&name),
        expected: expected.to_string(),
    };
    let mut uris = 0usize;
    for attr in info.iter_attributes() {
        let ParsedCriAttribute::ExtensionRequest(request) = attr.parsed_attribute() else {
            continue;
        };
        for ext in &request.extensions {
            if ext.oid != OID_X509_EXT_SUBJECT_ALT_NAME {
                continue;
            }
            let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() else {
                return Err(CaError::MalformedCsr {
                    reason: "the requested subject alternative name does not parse",
                });
            };
            for name in &san.general_names {
                match name {
                    GeneralName::URI(uri) if *uri == expected.as_str() => uris += 1,
                    GeneralName::URI(uri) => return Err(mismatch((*uri).to_owned())),
                    GeneralName::DNSName(dns) => return Err(mismatch(format!("dns:{dns}"))),
                    GeneralName::RFC822Name(mail) => {
                        return Err(mismatch(format!("email:{mail}")));
                    }
                    GeneralName::IPAddress(ip) => return Err(mismatch(format!("ip:{}", ip_text(ip)))),
                    GeneralName::DirectoryName(dn) => {
                        return Err(mismatch(format!("dirname:{dn}")));
                    }
                    GeneralName::OtherName(oid, _) => {
                        return Err(mismatch(format!("othername:{oid}")));
                    }
                    GeneralName::RegisteredID(oid) => {
                        return Err(mismatch(format!("registeredid:{oid}")));
                    }
                    GeneralName::X400Address(_) | GeneralName::EDIPartyName(_) | GeneralName::Invalid(..) => {
                        return Err(mismatch("unsupported general name".to_owned()));
                    }
                }
            }
        }
    }
    if uris > 1 {
        return Err(CaError::CsrTooManyNames { count: uris });
    }
    Ok(())
}

fn check_subject(subject: &X509Name<'_>, expected: &SpiffeId) -> Result<(), CaError> {
    let mut attrs = subject.iter().flat_map(|rdn| rdn.iter());
    let ok = match (attrs.next(), attrs.next()) {
        (None, _) => true,
        (Some(attr), None) => {
            attr.attr_type() == &OID_X509_COMMON_NAME && attr.as_str().is_ok_and(|cn| cn == expected.as_str())
        }
        (Some(_), Some(_)) => false,
    };
    if ok {
        return Ok(());
    }
    let shown = subject
        .to_string_with_registry(x509_parser::objects::oid_registry())
        .unwrap_or_else(|_| "unprintable".to_owned());
    Err(CaError::CsrSubjectNotAllowed {
        subject: echo(&shown),
        expected: expected.to_string(),
    })
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 | 16 => {
            if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
                std::net::Ipv4Addr::from(v4).to_string()
            } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
                std::net::Ipv6Addr::from(v6).to_string()
            } else {
                "malformed".to_owned()
            }
        }
        _ => "malformed".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{csr_for_key, generate_workload_key, generate_workload_key_for, KeyAlgorithm};

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn accepts_own_csrs_in_der_and_pem() {
        let me = id("spiffe://example.org/a");
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519] {
            let wk = generate_workload_key_for(&me, alg).unwrap();
            verify_csr(wk.csr_der(), &me).unwrap();
            verify_csr(wk.csr_pem().as_bytes(), &me).unwrap();
        }
    }

    #[test]
    fn refuses_size_over_limit_before_parsing() {
        let me = id("spiffe://example.org/a");
        let big = vec![0u8; MAX_CSR_BYTES + 1];
        assert_eq!(
            verify_csr(&big, &me).err().unwrap(),
            CaError::TooLarge {
                what: "csr",
                len: MAX_CSR_BYTES + 1,
                limit: MAX_CSR_BYTES
            }
        );
    }

    #[test]
    fn refuses_other_spiffe_id() {
        let me = id("spiffe://example.org/a");
        let other = id("spiffe://example.org/b");
        let wk = generate_workload_key(&other).unwrap();
        assert_eq!(
            verify_csr(wk.csr_der(), &me).err().unwrap(),
            CaError::CsrNameMismatch {
                name: "spiffe://example.org/b".into(),
                expected: "spiffe://example.org/a".into()
            }
        );
    }

    #[test]
    fn csr_for_existing_key_verifies() {
        let me = id("spiffe://example.org/a");
        let wk = generate_workload_key(&me).unwrap();
        let csr = csr_for_key(wk.pkcs8_der(), &me).unwrap();
        verify_csr(&csr, &me).unwrap();
    }

    #[test]
    fn ip_text_formats() {
        assert_eq!(ip_text(&[10, 0, 0, 1]), "10.0.0.1");
        assert_eq!(ip_text(&[0; 16]), "::");
        assert_eq!(ip_text(&[1, 2]), "malformed");
    }
}
