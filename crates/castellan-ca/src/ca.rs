//! CA certificates ([`CaCert`]) and CA signing keys ([`CaKey`]).
//!
//! A CA is an ECDSA P-256 key with a self-signed certificate:
//! subject `CN=Castellan CA <trust domain> <serial prefix>`, one URI SAN
//! `spiffe://<trust domain>` (the CA is itself an SVID, X509-SVID §3.2),
//! basicConstraints `CA:true, pathlen:0` (critical), keyUsage
//! `keyCertSign, cRLSign` (critical), a subject key identifier, validity
//! `[now - 60 s, now + lifetime]`.
//!
//! No name constraints: rcgen cannot write a URI name constraint, and
//! rustls-webpki 0.103 fails closed on any URI name constraint (every leaf
//! below such a CA is refused), so one would break the gate. Trust domain
//! scoping is enforced by [`CaKey::issue_svid`] at issuance and by the
//! verifier's trust-domain check after the handshake.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ECDSA_WITH_SHA256, OID_X509_COMMON_NAME,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::error::CaError;
use crate::pem;
use crate::spiffe::TrustDomain;
use crate::{random_serial, to_datetime};

/// Shortest CA lifetime [`CaKey::generate`] accepts: one hour.
pub const MIN_CA_LIFETIME_SECS: u64 = 3600;
/// Longest CA lifetime [`CaKey::generate`] accepts: ten years.
pub const MAX_CA_LIFETIME_SECS: u64 = 10 * 366 * 24 * 3600;
/// How far a new CA's validity starts before `now`, for clock skew.
pub const CA_BACKDATE_SECS: i64 = 60;
/// Largest certificate [`CaCert::from_der`] parses.
pub const MAX_CERT_BYTES: usize = 16 * 1024;
/// Longest X.520 common name (ub-common-name).
const MAX_CN_CHARS: usize = 64;
/// Length of an uncompressed P-256 point (`04 || x || y`).
pub(crate) const P256_POINT_LEN: usize = 65;

/// A CA certificate: public, safe to publish. Loaded from DER or taken from
/// a [`CaKey`]; what the trust bundle is made of.
#[derive(Clone)]
pub struct CaCert {
    der: CertificateDer<'static>,
    trust_domain: TrustDomain,
    id: String,
    not_before: i64,
    not_after: i64,
    /// Uncompressed P-256 public point.
    public_point: Vec<u8>,
    ski: Vec<u8>,
    /// The subject's common name, when the subject is exactly one UTF8String CN.
    common_name: Option<String>,
}

impl CaCert {
    /// Parses and checks a CA certificate: X.509 v3, `CA:true`, keyUsage
    /// with `keyCertSign`, an ECDSA P-256 key, a subject key identifier,
    /// exactly one URI SAN naming a trust domain (`spiffe://<td>`), issuer
    /// equal to subject and a valid self-signature.
    ///
    /// # Errors
    /// [`CaError::TooLarge`], [`CaError::MalformedCertificate`] or
    /// [`CaError::NotCaCertificate`].
    pub fn from_der(der: &[u8]) -> Result<Self, CaError> {
        if der.len() > MAX_CERT_BYTES {
            return Err(CaError::TooLarge {
                what: "certificate",
                len: der.len(),
                limit: MAX_CERT_BYTES,
            });
        }
        let (rest, x509) = X509Certificate::from_der(der).map_err(|_| CaError::MalformedCertificate {
            reason: "not a der-encoded x509 certificate",
        })?;
        if !rest.is_empty() {
            return Err(CaError::MalformedCertificate {
                reason: "trailing bytes after the certificate",
            });
        }
        let not_ca = |reason| CaError::NotCaCertificate { reason };
        if x509.version().0 != 2 {
            return Err(not_ca("not an x509 v3 certificate"));
        }
        match x509.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            Ok(_) => return Err(not_ca("basic constraints do not say ca:true")),
            Err(_) => return Err(not_ca("basic constraints are malformed or repeated")),
        }
        match x509.key_usage() {
            Ok(Some(ku)) if ku.value.key_cert_sign() => {}
            Ok(_) => return Err(not_ca("key usage does not allow keyCertSign")),
            Err(_) => return Err(not_ca("key usage is malformed or repeated")),
        }
        let spki = x509.public_key();
        let is_p256 = spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
            && spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|curve| curve == OID_EC_P256);
        let public_point = spki.subject_public_key.data.to_vec();
        if !is_p256 || public_point.len() != P256_POINT_LEN || public_point.first() != Some(&0x04) {
            return Err(not_ca("the key is not an uncompressed ecdsa p-256 key"));
        }
        let ski = x509
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .ok_or(not_ca("the subject key identifier is missing"))?;
        let trust_domain = ca_trust_domain(&x509)?;
        if x509.issuer().as_raw() != x509.subject().as_raw() {
            return Err(not_ca("not self-signed: issuer differs from subject"));
        }
        if x509.signature_algorithm.algorithm != OID_SIG_ECDSA_WITH_SHA256 {
            return Err(not_ca("not signed with ecdsa-with-sha256"));
        }
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &public_point)
            .verify(x509.tbs_certificate.as_ref(), &x509.signature_value.data)
            .map_err(|_| not_ca("the self-signature does not verify"))?;
        let common_name = single_utf8_common_name(&x509);
        let id = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, spki.raw));
        let not_before = x509.validity().not_before.timestamp();
        let not_after = x509.validity().not_after.timestamp();
        Ok(Self {
            der: CertificateDer::from(der.to_vec()),
            trust_domain,
            id,
            not_before,
            not_after,
            public_point,
            ski,
            common_name,
        })
    }

    /// Parses the first `CERTIFICATE` block of PEM text with [`CaCert::from_der`].
    ///
    /// # Errors
    /// As [`CaCert::from_der`], and [`CaError::MalformedPem`].
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, CaError> {
        let certs = pem::certs_from_pem(pem_text)?;
        let first = certs.first().ok_or(CaError::MalformedPem {
            what: "certificate",
            reason: "no matching section found",
        })?;
        Self::from_der(first)
    }

    /// The certificate, DER.
    #[must_use]
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The certificate, PEM.
    #[must_use]
    pub fn pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der)
    }

    /// The trust domain named by the certificate's URI SAN.
    #[must_use]
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// A stable id: base64url (no padding) of the SHA-256 of the
    /// certificate's SubjectPublicKeyInfo. Same key, same id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Start of validity, unix seconds.
    #[must_use]
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// End of validity, unix seconds.
    #[must_use]
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// True when `not_before <= now <= not_after`.
    #[must_use]
    pub fn is_valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// The uncompressed P-256 public point (`04 || x || y`).
    #[must_use]
    pub fn public_point(&self) -> &[u8] {
        &self.public_point
    }
}

impl fmt::Debug for CaCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaCert")
            .field("id", &self.id)
            .field("trust_domain", &self.trust_domain.as_str())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CaCert {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for CaCert {}

/// A CA signing key with its certificate: issues SVIDs.
///
/// `Debug` prints the id, trust domain and validity, never the key.
pub struct CaKey {
    cert: CaCert,
    issuer: Issuer<'static, KeyPair>,
}

impl CaKey {
    /// Generates a new P-256 CA key and self-signed CA certificate for
    /// `trust_domain`, valid `[now - 60 s, now + lifetime_secs]`.
    ///
    /// # Errors
    /// [`CaError::InvalidCaLifetime`] when `lifetime_secs` is outside
    /// 1 hour..=10 years; [`CaError::TimeOutOfRange`];
    /// [`CaError::Generation`] or [`CaError::Rng`] on a crypto fault.
    pub fn generate(trust_domain: &TrustDomain, lifetime_secs: u64, now: i64) -> Result<Self, CaError> {
        if !(MIN_CA_LIFETIME_SECS..=MAX_CA_LIFETIME_SECS).contains(&lifetime_secs) {
            return Err(CaError::InvalidCaLifetime {
                lifetime_secs,
                min_secs: MIN_CA_LIFETIME_SECS,
                max_secs: MAX_CA_LIFETIME_SECS,
            });
        }
        let lifetime = i64::try_from(lifetime_secs).map_err(|_| CaError::TimeOutOfRange { unix_secs: i64::MAX })?;
        let not_after = now
            .checked_add(lifetime)
            .ok_or(CaError::TimeOutOfRange { unix_secs: now })?;
        let not_before = now
            .checked_sub(CA_BACKDATE_SECS)
            .ok_or(CaError::TimeOutOfRange { unix_secs: now })?;

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CaError::generation)?;
        let serial = random_serial()?;
        let serial_hex = crate::hex(&serial);
        let mut params = CertificateParams::default();
        params.not_before = to_datetime(not_before)?;
        params.not_after = to_datetime(not_after)?;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        params.distinguished_name = ca_distinguished_name(&ca_common_name(
            trust_domain,
            serial_hex.get(..8).unwrap_or(&serial_hex),
        ));
        params.subject_alt_names = vec![SanType::URI(
            trust_domain
                .id_uri()
                .try_into()
                .map_err(|e: rcgen::Error| CaError::generation(e))?,
        )];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params.self_signed(&key).map_err(CaError::generation)?;
        let pkcs8 = Zeroizing::new(key.serialize_der());
        Self::from_pkcs8_der(&pkcs8, cert.der())
    }

    /// Loads a CA from its PKCS#8 private key and its certificate, both DER,
    /// as exported by [`CaKey::private_key_pkcs8_der`] and [`CaKey::cert_der`].
    ///
    /// # Errors
    /// As [`CaCert::from_der`]; [`CaError::NotCaCertificate`] when the
    /// subject is not one UTF8String common name (this crate's layout);
    /// [`CaError::InvalidPrivateKey`] when the key is not a P-256 PKCS#8 key;
    /// [`CaError::KeyMismatch`] when it is not the certificate's key.
    pub fn from_pkcs8_der(pkcs8_der: &[u8], cert_der: &[u8]) -> Result<Self, CaError> {
        let cert = CaCert::from_der(cert_der)?;
        let common_name = cert.common_name.clone().ok_or(CaError::NotCaCertificate {
            reason: "the subject is not a single utf8 common name",
        })?;
        let key = KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8_der), &PKCS_ECDSA_P256_SHA256)
            .map_err(|_| CaError::InvalidPrivateKey {
                reason: "not a pkcs#8 ecdsa p-256 private key",
            })?;
        if key.public_key_raw() != cert.public_point.as_slice() {
            return Err(CaError::KeyMismatch { ca_id: cert.id.clone() });
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = ca_distinguished_name(&common_name);
        params.key_identifier_method = KeyIdMethod::PreSpecified(cert.ski.clone());
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ok(Self {
            cert,
            issuer: Issuer::new(params, key),
        })
    }

    /// The private key as PKCS#8 DER, for the authority to seal with its
    /// master key. Wiped from memory when dropped.
    #[must_use]
    pub fn private_key_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.issuer.key().serialize_der())
    }

    /// The CA certificate.
    #[must_use]
    pub fn cert(&self) -> &CaCert {
        &self.cert
    }

    /// The CA certificate, DER.
    #[must_use]
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        self.cert.der()
    }

    /// The CA certificate, PEM.
    #[must_use]
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA's stable id (see [`CaCert::id`]).
    #[must_use]
    pub fn id(&self) -> &str {
        self.cert.id()
    }

    /// The trust domain the CA issues for.
    #[must_use]
    pub fn trust_domain(&self) -> &TrustDomain {
        self.cert.trust_domain()
    }

    /// Start of the CA's validity, unix seconds.
    #[must_use]
    pub fn not_before(&self) -> i64 {
        self.cert.not_before()
    }

    /// End of the CA's validity, unix seconds.
    #[must_use]
    pub fn not_after(&self) -> i64 {
        self.cert.not_after()
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }
}

impl fmt::Debug for CaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaKey")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

/// `Castellan CA <td> <serial prefix>`, or without the trust domain when
/// that would pass the 64-character limit of a common name.
fn ca_common_name(trust_domain: &TrustDomain, serial_prefix: &str) -> String {
    let full = format!("Castellan CA {trust_domain} {serial_prefix}");
    if full.chars().count() <= MAX_CN_CHARS {
        full
    } else {
        format!("Castellan CA {serial_prefix}")
    }
}

fn ca_distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The trust domain from the CA's single URI SAN, which must have no path.
fn ca_trust_domain(x509: &X509Certificate<'_>) -> Result<TrustDomain, CaError> {
    let not_ca = |reason| CaError::NotCaCertificate { reason };
    let san = match x509.subject_alternative_name() {
        Ok(Some(san)) => san,
        Ok(None) => return Err(not_ca("no uri san names the trust domain")),
        Err(_) => return Err(not_ca("the subject alternative name is malformed or repeated")),
    };
    let mut uris = san.value.general_names.iter().filter_map(|name| match name {
        GeneralName::URI(uri) => Some(*uri),
        _ => None,
    });
    let (Some(uri), None) = (uris.next(), uris.next()) else {
        return Err(not_ca("it must have exactly one uri san"));
    };
    if !uri.starts_with("spiffe://") {
        return Err(not_ca("its uri san is not a spiffe trust domain id"));
    }
    TrustDomain::new(uri).map_err(|_| not_ca("its uri san is not a spiffe trust domain id"))
}

/// The CN when the subject is exactly one RDN holding one UTF8String CN,
/// the layout [`CaKey::generate`] writes and [`CaKey::from_pkcs8_der`]
/// re-creates byte for byte for the issuer field of leaves.
fn single_utf8_common_name(x509: &X509Certificate<'_>) -> Option<String> {
    let subject = x509.subject();
    let mut rdns = subject.iter();
    let (Some(rdn), None) = (rdns.next(), rdns.next()) else {
        return None;
    };
    let mut attrs = rdn.iter();
    let (Some(attr), None) = (attrs.next(), attrs.next()) else {
        return None;
    };
    if attr.attr_type() != &OID_X509_COMMON_NAME
        || attr.attr_value().tag() != x509_parser::der_parser::asn1_rs::Tag::Utf8String
    {
        return None;
    }
    let cn = attr.as_str().ok()?;
    // rcgen re-encodes the name; refuse anything whose DER would differ.
    (expected_name_der(cn).as_slice() == subject.as_raw()).then(|| cn.to_owned())
}

/// DER of `SEQUENCE { SET { SEQUENCE { OID cn, UTF8String cn } } }`, for
/// names short enough for one-byte lengths (a CN is at most 64 characters).
fn expected_name_der(cn: &str) -> Vec<u8> {
    let value = cn.as_bytes();
    let Ok(value_len) = u8::try_from(value.len()) else {
        return Vec::new();
    };
    let atv_len = 5 + 2 + u16::from(value_len);
    let set_len = atv_len + 2;
    let seq_len = set_len + 2;
    let (Ok(atv), Ok(set), Ok(seq)) = (u8::try_from(atv_len), u8::try_from(set_len), u8::try_from(seq_len)) else {
        return Vec::new();
    };
    if seq >= 0x80 {
        return Vec::new();
    }
    let mut der = vec![
        0x30, seq, 0x31, set, 0x30, atv, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, value_len,
    ];
    der.extend_from_slice(value);
    der
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn td() -> TrustDomain {
        TrustDomain::new("example.org").unwrap()
    }

    #[test]
    fn generate_and_reload_round_trip() {
        let ca = CaKey::generate(&td(), 86_400, NOW).unwrap();
        assert_eq!(ca.not_before(), NOW - 60);
        assert_eq!(ca.not_after(), NOW + 86_400);
        assert_eq!(ca.trust_domain(), &td());
        let pkcs8 = ca.private_key_pkcs8_der();
        let again = CaKey::from_pkcs8_der(&pkcs8, ca.cert_der()).unwrap();
        assert_eq!(again.id(), ca.id());
        assert_eq!(again.cert(), ca.cert());
        // The id is base64url SHA-256: 43 characters.
        assert_eq!(ca.id().len(), 43);
    }

    #[test]
    fn ca_certificate_fields() {
        let ca = CaKey::generate(&td(), 86_400, NOW).unwrap();
        let (_, x509) = X509Certificate::from_der(ca.cert_der()).unwrap();
        let bc = x509.basic_constraints().unwrap().unwrap();
        assert!(bc.critical);
        assert!(bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = x509.key_usage().unwrap().unwrap();
        assert!(ku.critical);
        assert!(ku.value.key_cert_sign() && ku.value.crl_sign());
        assert!(!ku.value.digital_signature());
        let cn = x509.subject().iter_common_name().next().unwrap().as_str().unwrap();
        assert!(cn.starts_with("Castellan CA example.org "), "{cn}");
        assert_eq!(cn.len(), "Castellan CA example.org ".len() + 8);
        assert!(x509.name_constraints().unwrap().is_none());
    }

    #[test]
    fn long_trust_domain_keeps_common_name_short() {
        let long = TrustDomain::new(&"a".repeat(200)).unwrap();
        let ca = CaKey::generate(&long, 86_400, NOW).unwrap();
        let (_, x509) = X509Certificate::from_der(ca.cert_der()).unwrap();
        let cn = x509.subject().iter_common_name().next().unwrap().as_str().unwrap();
        assert_eq!(cn.len(), "Castellan CA ".len() + 8);
        assert_eq!(ca.trust_domain(), &long);
    }

    #[test]
    fn debug_shows_no_key() {
        let ca = CaKey::generate(&td(), 86_400, NOW).unwrap();
        let shown = format!("{ca:?}");
        assert!(shown.contains(ca.id()));
        let pkcs8 = ca.private_key_pkcs8_der();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&*pkcs8);
        assert!(!shown.contains(&b64[40..60]));
    }

    #[test]
    fn lifetime_bounds() {
        for lifetime in [0, MIN_CA_LIFETIME_SECS - 1, MAX_CA_LIFETIME_SECS + 1] {
            assert!(matches!(
                CaKey::generate(&td(), lifetime, NOW),
                Err(CaError::InvalidCaLifetime { .. })
            ));
        }
    }

    #[test]
    fn reload_refuses_wrong_key_and_garbage() {
        let a = CaKey::generate(&td(), 86_400, NOW).unwrap();
        let b = CaKey::generate(&td(), 86_400, NOW).unwrap();
        let err = CaKey::from_pkcs8_der(&b.private_key_pkcs8_der(), a.cert_der()).unwrap_err();
        assert_eq!(
            err,
            CaError::KeyMismatch {
                ca_id: a.id().to_owned()
            }
        );
        assert_eq!(
            CaKey::from_pkcs8_der(b"not a key", a.cert_der()).unwrap_err(),
            CaError::InvalidPrivateKey {
                reason: "not a pkcs#8 ecdsa p-256 private key"
            }
        );
        assert_eq!(
            CaCert::from_der(b"garbage").unwrap_err(),
            CaError::MalformedCertificate {
                reason: "not a der-encoded x509 certificate"
            }
        );
        let mut trailing = a.cert_der().to_vec();
        trailing.push(0);
        assert_eq!(
            CaCert::from_der(&trailing).unwrap_err(),
            CaError::MalformedCertificate {
                reason: "trailing bytes after the certificate"
            }
        );
    }

    #[test]
    fn tampered_ca_certificate_is_refused() {
        let ca = CaKey::generate(&td(), 86_400, NOW).unwrap();
        let mut der = ca.cert_der().to_vec();
        // Flip the last byte of the serial number (version [0] v3, INTEGER of 16 bytes).
        let head = [0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x10];
        let at = der.windows(head.len()).position(|w| w == head).unwrap() + head.len() + 15;
        der[at] ^= 0x01;
        assert_eq!(
            CaCert::from_der(&der).unwrap_err(),
            CaError::NotCaCertificate {
                reason: "the self-signature does not verify"
            }
        );
    }

    #[test]
    fn pem_round_trip() {
        let ca = CaKey::generate(&td(), 86_400, NOW).unwrap();
        let cert = CaCert::from_pem(ca.cert_pem().as_bytes()).unwrap();
        assert_eq!(&cert, ca.cert());
    }

    #[test]
    fn expected_name_der_matches_rcgen() {
        let ca = CaKey::generate(&td(), 86_400, NOW).unwrap();
        let (_, x509) = X509Certificate::from_der(ca.cert_der()).unwrap();
        let cn = x509.subject().iter_common_name().next().unwrap().as_str().unwrap();
        assert_eq!(expected_name_der(cn), x509.subject().as_raw());
    }
}
