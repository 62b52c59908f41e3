//! SVID issuance from a CSR.
//!
//! The leaf: version 3, random 16-byte serial, empty subject, exactly one
//! URI SAN (the SPIFFE ID; critical, since the subject is empty),
//! basicConstraints `CA:false` (critical), keyUsage `digitalSignature`
//! (critical), extendedKeyUsage `serverAuth, clientAuth`, subject and
//! authority key identifiers, signed ECDSA P-256 SHA-256 by the CA, valid
//! `[max(now - 30 s, CA not_before), min(now + ttl, CA not_after)]`.

use std::fmt;

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyUsagePurpose, SanType,
    SerialNumber,
};
use rustls_pki_types::CertificateDer;

use crate::ca::CaKey;
use crate::csr::verify_csr;
use crate::error::CaError;
use crate::pem;
use crate::spiffe::SpiffeId;
use crate::{hex, random_serial, to_datetime};

/// Longest SVID lifetime [`CaKey::issue_svid`] accepts: 30 days. The
/// default the authority should use is an hour.
pub const MAX_SVID_TTL_SECS: u64 = 30 * 24 * 3600;
/// How far an SVID's validity starts before `now`, for clock skew.
pub const SVID_BACKDATE_SECS: i64 = 30;

/// An issued X.509 SVID: the leaf and its chain. Holds no private key.
#[derive(Clone, PartialEq, Eq)]
pub struct Svid {
    /// The SPIFFE ID the leaf carries.
    pub spiffe_id: SpiffeId,
    /// The leaf certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The leaf then the issuing CA certificate, DER.
    pub chain: Vec<CertificateDer<'static>>,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
    /// The leaf's serial number, 32 lowercase hex digits.
    pub serial: String,
    /// The id of the CA that signed it (see [`crate::CaCert::id`]).
    pub ca_id: String,
}

impl Svid {
    /// The chain as PEM, leaf first: what `svid.pem` holds.
    #[must_use]
    pub fn chain_pem(&self) -> String {
        let mut out = String::with_capacity(self.chain.iter().map(|c| c.len() * 2).sum());
        for cert in &self.chain {
            pem::encode_into(&mut out, "CERTIFICATE", cert);
        }
        out
    }

    /// The leaf alone as PEM.
    #[must_use]
    pub fn cert_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.cert_der)
    }

    /// When to renew: half way through the validity.
    #[must_use]
    pub fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) / 2
    }
}

impl fmt::Debug for Svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Svid")
            .field("spiffe_id", &self.spiffe_id.as_str())
            .field("serial", &self.serial)
            .field("ca_id", &self.ca_id)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CaKey {
    /// Issues an X.509 SVID for `expected_id` from a workload's CSR (PEM or
    /// DER, at most [`crate::MAX_CSR_BYTES`]).
    ///
    /// The CSR must be self-signed by an ECDSA P-256 (ecdsa-with-SHA256) or
    /// Ed25519 key and may name nothing but `expected_id` (no SAN at all is
    /// fine: the ID is put in). The lifetime is `ttl_secs`, cut short at the
    /// CA's expiry.
    ///
    /// # Errors
    /// Bad input: [`CaError::ForeignTrustDomain`], [`CaError::InvalidTtl`],
    /// [`CaError::TooLarge`], [`CaError::MalformedPem`],
    /// [`CaError::MalformedCsr`], [`CaError::UnsupportedKey`],
    /// [`CaError::UnsupportedSignatureAlgorithm`],
    /// [`CaError::CsrSignatureInvalid`], [`CaError::CsrNameMismatch`],
    /// [`CaError::CsrTooManyNames`], [`CaError::CsrSubjectNotAllowed`].
    /// CA state: [`CaError::CaNotValid`] when the CA is not valid at `now`
    /// (rotate it); [`CaError::Generation`], [`CaError::Rng`].
    pub fn issue_svid(&self, csr: &[u8], expected_id: &SpiffeId, ttl_secs: u64, now: i64) -> Result<Svid, CaError> {
        if !expected_id.is_member_of(self.trust_domain()) {
            return Err(CaError::ForeignTrustDomain {
                id: expected_id.to_string(),
                trust_domain: self.trust_domain().to_string(),
            });
        }
        if !(1..=MAX_SVID_TTL_SECS).contains(&ttl_secs) {
            return Err(CaError::InvalidTtl {
                ttl_secs,
                max_secs: MAX_SVID_TTL_SECS,
            });
        }
        let ca = self.cert();
        // A CA is usable until one second before it expires.
        if now < ca.not_before() || now >= ca.not_after() {
            return Err(CaError::CaNotValid {
                ca_id: ca.id().to_owned(),
                now,
                not_before: ca.not_before(),
                not_after: ca.not_after(),
            });
        }
        let key = verify_csr(csr, expected_id)?;

        // ttl_secs <= MAX_SVID_TTL_SECS fits in i64; saturate anyway.
        let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX);
        let not_before = now.saturating_sub(SVID_BACKDATE_SECS).max(ca.not_before());
        let not_after = now.saturating_add(ttl).min(ca.not_after());
        let serial = random_serial()?;

        let mut params = CertificateParams::default();
        params.not_before = to_datetime(not_before)?;
        params.not_after = to_datetime(not_after)?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(
            expected_id.as_str().try_into().map_err(CaError::generation)?,
        )];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let leaf = params.signed_by(&key, self.issuer()).map_err(CaError::generation)?;
        let cert_der: CertificateDer<'static> = leaf.into();
        Ok(Svid {
            spiffe_id: expected_id.clone(),
            chain: vec![cert_der.clone(), ca.der().clone()],
            cert_der,
            not_before,
            not_after,
            serial: hex(&serial),
            ca_id: ca.id().to_owned(),
        })
    }
}
