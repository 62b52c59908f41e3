//! Castellan's internal CA: SPIFFE IDs, short-lived X.509 SVIDs issued from
//! workload CSRs, and trust bundles.
//!
//! A pure library: no HTTP, no storage, no clock. Every function that
//! depends on time takes `now` (unix seconds) from the caller's injected
//! clock. aws-lc-rs is the only crypto provider (through rcgen and directly).
//!
//! ```
//! use castellan_ca::{CaKey, SpiffeId, TrustDomain, generate_workload_key, parse_svid_peer};
//!
//! let now = 1_700_000_000;
//! let td = TrustDomain::new("example.org")?;
//! let ca = CaKey::generate(&td, 30 * 24 * 3600, now)?;
//!
//! // The workload: a key and a CSR, sent to the authority.
//! let id = SpiffeId::parse("spiffe://example.org/payments/api")?;
//! let workload = generate_workload_key(&id)?;
//!
//! // The authority: checks the CSR against the registered ID and issues.
//! let svid = ca.issue_svid(workload.csr_der(), &id, 3600, now)?;
//! assert_eq!(svid.chain.len(), 2);
//!
//! // The gate, after rustls verified the chain: the peer's typed identity.
//! assert_eq!(parse_svid_peer(&svid.cert_der)?, id);
//! # Ok::<(), castellan_ca::CaError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bundle;
mod ca;
mod csr;
mod error;
mod peer;
mod pem;
mod spiffe;
mod svid;
mod workload;

pub use bundle::{bundle_pem, spiffe_bundle_json};
pub use ca::{CaCert, CaKey, CA_BACKDATE_SECS, MAX_CA_LIFETIME_SECS, MAX_CERT_BYTES, MIN_CA_LIFETIME_SECS};
pub use csr::MAX_CSR_BYTES;
pub use error::CaError;
pub use peer::{cert_validity, parse_svid_peer};
pub use pem::{certs_from_pem, key_pem};
pub use rustls_pki_types::CertificateDer;
pub use spiffe::{SpiffeId, TrustDomain, MAX_SPIFFE_ID_BYTES, MAX_TRUST_DOMAIN_BYTES};
pub use svid::{Svid, MAX_SVID_TTL_SECS, SVID_BACKDATE_SECS};
pub use workload::{
    csr_for_key, generate_workload_key, generate_workload_key_for, generate_workload_key_unnamed, KeyAlgorithm,
    WorkloadKey,
};

/// Length of certificate serial numbers, in bytes.
const SERIAL_BYTES: usize = 16;

/// A random positive 16-byte serial whose top byte is 0x40..=0x7f, so the
/// DER INTEGER is always exactly 16 bytes (about 126 bits of entropy).
fn random_serial() -> Result<[u8; SERIAL_BYTES], CaError> {
    let mut serial = [0u8; SERIAL_BYTES];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| CaError::Rng)?;
    if let Some(first) = serial.first_mut() {
        *first = (*first & 0x3f) | 0x40;
    }
    Ok(serial)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn to_datetime(unix_secs: i64) -> Result<time::OffsetDateTime, CaError> {
    time::OffsetDateTime::from_unix_timestamp(unix_secs).map_err(|_| CaError::TimeOutOfRange { unix_secs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_shape() {
        let a = random_serial().unwrap();
        let b = random_serial().unwrap();
        assert_ne!(a, b);
        assert!((0x40..=0x7f).contains(&a[0]));
        assert_eq!(hex(&a).len(), 32);
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0xab, 0x01]), "ab01");
    }
}
