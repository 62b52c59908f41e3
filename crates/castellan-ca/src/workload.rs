//! The workload side: a fresh key and a CSR naming the workload's SPIFFE ID.

use std::fmt;

use rcgen::{
    CertificateParams, DistinguishedName, KeyPair, SanType, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

use crate::error::CaError;
use crate::pem;
use crate::spiffe::SpiffeId;

/// The key types a workload may hold (and the CA accepts in CSRs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA P-256 with SHA-256 (the default; every TLS stack speaks it).
    #[default]
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    fn rcgen(self) -> &'static SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
            Self::Ed25519 => &PKCS_ED25519,
        }
    }
}

/// A workload's new private key and the CSR to send to the authority.
///
/// `Debug` shows the CSR's length only, never the key.
pub struct WorkloadKey {
    pkcs8_der: Zeroizing<Vec<u8>>,
    csr_der: Vec<u8>,
}

impl WorkloadKey {
    /// The private key, PKCS#8 DER.
    #[must_use]
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8_der
    }

    /// The private key as `PRIVATE KEY` PEM: what `svid_key.pem` holds.
    #[must_use]
    pub fn key_pem(&self) -> Zeroizing<String> {
        pem::key_pem(&self.pkcs8_der)
    }

    /// The CSR, DER.
    #[must_use]
    pub fn csr_der(&self) -> &[u8] {
        &self.csr_der
    }

    /// The CSR as `CERTIFICATE REQUEST` PEM.
    #[must_use]
    pub fn csr_pem(&self) -> String {
        pem::encode("CERTIFICATE REQUEST", &self.csr_der)
    }

    /// Both halves: (PKCS#8 DER private key, CSR DER).
    #[must_use]
    pub fn into_parts(self) -> (Zeroizing<Vec<u8>>, Vec<u8>) {
        (self.pkcs8_der, self.csr_der)
    }
}

impl fmt::Debug for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadKey")
            .field("csr_len", &self.csr_der.len())
            .finish_non_exhaustive()
    }
}

/// Generates an ECDSA P-256 key and a CSR for `id`: empty subject, one URI
/// SAN (`id`).
///
/// # Errors
/// [`CaError::Generation`] on a crypto fault.
pub fn generate_workload_key(id: &SpiffeId) -> Result<WorkloadKey, CaError> {
    generate_workload_key_for(id, KeyAlgorithm::EcdsaP256)
}

/// As [`generate_workload_key`], with the key type chosen.
///
/// # Errors
/// [`CaError::Generation`] on a crypto fault.
pub fn generate_workload_key_for(id: &SpiffeId, algorithm: KeyAlgorithm) -> Result<WorkloadKey, CaError> {
    let key = KeyPair::generate_for(algorithm.rcgen()).map_err(CaError::generation)?;
    let csr_der = csr_with(&key, Some(id))?;
    Ok(WorkloadKey {
        pkcs8_der: Zeroizing::new(key.serialize_der()),
        csr_der,
    })
}

/// Generates an ECDSA P-256 key and a CSR that names nothing: empty subject,
/// no SAN. For a workload that does not know its SPIFFE ID yet (it holds only
/// a join token): the CA puts the registered ID in. Check the ID of what
/// comes back.
///
/// # Errors
/// [`CaError::Generation`] on a crypto fault.
pub fn generate_workload_key_unnamed() -> Result<WorkloadKey, CaError> {
    let key = KeyPair::generate_for(KeyAlgorithm::EcdsaP256.rcgen()).map_err(CaError::generation)?;
    let csr_der = csr_with(&key, None)?;
    Ok(WorkloadKey {
        pkcs8_der: Zeroizing::new(key.serialize_der()),
        csr_der,
    })
}

/// A CSR for `id` signed by an existing PKCS#8 key (ECDSA P-256 or Ed25519).
///
/// # Errors
/// [`CaError::InvalidPrivateKey`] when the key does not load;
/// [`CaError::Generation`] on a crypto fault.
pub fn csr_for_key(pkcs8_der: &[u8], id: &SpiffeId) -> Result<Vec<u8>, CaError> {
    let der = PrivatePkcs8KeyDer::from(pkcs8_der);
    let key = KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_ECDSA_P256_SHA256)
        .or_else(|_| KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_ED25519))
        .map_err(|_| CaError::InvalidPrivateKey {
            reason: "not a pkcs#8 ecdsa p-256 or ed25519 private key",
        })?;
    csr_with(&key, Some(id))
}

fn csr_with(key: &KeyPair, id: Option<&SpiffeId>) -> Result<Vec<u8>, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(id) = id {
        params.subject_alt_names = vec![SanType::URI(id.as_str().try_into().map_err(CaError::generation)?)];
    }
    let csr = params.serialize_request(key).map_err(CaError::generation)?;
    Ok(csr.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let id = SpiffeId::parse("spiffe://example.org/a").unwrap();
        let wk = generate_workload_key(&id).unwrap();
        assert!(format!("{wk:?}").starts_with("WorkloadKey { csr_len: "));
        assert!(wk.key_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(wk.csr_pem().starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
    }

    #[test]
    fn an_unnamed_csr_gets_the_registered_id() {
        let td = crate::TrustDomain::new("example.org").unwrap();
        let ca = crate::CaKey::generate(&td, 30 * 24 * 3600, 1_700_000_000).unwrap();
        let id = SpiffeId::parse("spiffe://example.org/a").unwrap();
        let wk = generate_workload_key_unnamed().unwrap();
        let svid = ca
            .issue_svid(wk.csr_pem().as_bytes(), &id, 3600, 1_700_000_000)
            .unwrap();
        assert_eq!(crate::parse_svid_peer(&svid.cert_der).unwrap(), id);
    }

    #[test]
    fn csr_for_key_refuses_garbage() {
        let id = SpiffeId::parse("spiffe://example.org/a").unwrap();
        assert_eq!(
            csr_for_key(b"nope", &id).unwrap_err(),
            CaError::InvalidPrivateKey {
                reason: "not a pkcs#8 ecdsa p-256 or ed25519 private key"
            }
        );
    }
}
