//! The typed identity step after a TLS handshake: which SPIFFE ID does the
//! peer's (already chain-verified) leaf carry?

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::MAX_CERT_BYTES;
use crate::error::CaError;
use crate::spiffe::SpiffeId;

/// Extracts the SPIFFE ID of a peer's X.509 SVID leaf (X509-SVID §5.2).
///
/// Refuses CA certificates (`CA:true`, or keyUsage `keyCertSign` /
/// `cRLSign`), leaves with no URI SAN or with more than one, and URI SANs
/// that are not workload SPIFFE IDs.
///
/// This does **not** verify the chain or the validity period: call it after
/// rustls has verified the peer against the trust bundle, then check the ID
/// (its [`SpiffeId::trust_domain`] first: CA certificates carry no name
/// constraints) against the allow-list.
///
/// # Errors
/// [`CaError::TooLarge`], [`CaError::MalformedCertificate`],
/// [`CaError::NotAnSvid`], or [`CaError::InvalidSpiffeId`] for a URI SAN
/// that is not a valid SPIFFE ID.
pub fn parse_svid_peer(cert_der: &[u8]) -> Result<SpiffeId, CaError> {
    if cert_der.len() > MAX_CERT_BYTES {
        return Err(CaError::TooLarge {
            what: "certificate",
            len: cert_der.len(),
            limit: MAX_CERT_BYTES,
        });
    }
    let (rest, x509) = X509Certificate::from_der(cert_der).map_err(|_| CaError::MalformedCertificate {
        reason: "not a der-encoded x509 certificate",
    })?;
    if !rest.is_empty() {
        return Err(CaError::MalformedCertificate {
            reason: "trailing bytes after the certificate",
        });
    }
    let not_svid = |reason: &str| CaError::NotAnSvid {
        reason: reason.to_owned(),
    };
    match x509.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => return Err(not_svid("it is a ca certificate")),
        Ok(_) => {}
        Err(_) => return Err(not_svid("basic constraints are malformed or repeated")),
    }
    match x509.key_usage() {
        Ok(Some(ku)) if ku.value.key_cert_sign() || ku.value.crl_sign() => {
            return Err(not_svid("its key usage allows certificate or crl signing"));
        }
        Ok(_) => {}
        Err(_) => return Err(not_svid("key usage is malformed or repeated")),
    }
    let san = match x509.subject_alternative_name() {
        Ok(Some(san)) => san,
        Ok(None) => return Err(not_svid("it has no uri san")),
        Err(_) => return Err(not_svid("the subject alternative name is malformed or repeated")),
    };
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [uri] => SpiffeId::parse(uri),
        [] => Err(not_svid("it has no uri san")),
        many => Err(CaError::NotAnSvid {
            reason: format!("it has {} uri sans, an svid carries exactly one", many.len()),
        }),
    }
}

/// The validity window `(not_before, not_after)` of a certificate, unix
/// seconds: when a workload should renew its SVID.
///
/// # Errors
/// [`CaError::TooLarge`] or [`CaError::MalformedCertificate`].
pub fn cert_validity(cert_der: &[u8]) -> Result<(i64, i64), CaError> {
    if cert_der.len() > MAX_CERT_BYTES {
        return Err(CaError::TooLarge {
            what: "certificate",
            len: cert_der.len(),
            limit: MAX_CERT_BYTES,
        });
    }
    let (_, x509) = X509Certificate::from_der(cert_der).map_err(|_| CaError::MalformedCertificate {
        reason: "not a der-encoded x509 certificate",
    })?;
    let v = x509.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}
