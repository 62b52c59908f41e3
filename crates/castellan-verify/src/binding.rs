//! Certificate-bound access tokens (RFC 8705 §3): the `cnf` claim's
//! `x5t#S256` thumbprint and the client certificate of the connection.

use crate::Rejection;
use aws_lc_rs::digest::{digest, SHA256};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;

/// The one confirmation method Castellan checks (RFC 8705 §3.1).
const X5T_S256: &str = "x5t#S256";

/// The `x5t#S256` thumbprint of a certificate (RFC 8705 §3.1): unpadded
/// base64url of the SHA-256 of its DER encoding. Always 43 characters.
pub fn x5t_s256(cert_der: &[u8]) -> String {
    castellan_jose::b64::encode(digest(&SHA256, cert_der).as_ref())
}

/// The leaf certificate the TLS peer presented on the connection a token
/// arrived on. Whatever terminates TLS puts it into the request extensions
/// (`req.extensions_mut().insert(..)`), once per request, from the
/// connection itself; [`VerifyLayer`](crate::VerifyLayer) and the
/// [`VerifiedToken`](crate::VerifiedToken) extractor read it from there.
///
/// It is not parsed or validated here: authenticating the peer (chain,
/// expiry, identity) is the TLS terminator's job. Only its thumbprint is
/// compared with a token's `cnf`. Cheap to clone (one reference count).
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedCertificate(Arc<Presented>);

#[derive(PartialEq, Eq)]
struct Presented {
    der: Box<[u8]>,
    x5t_s256: String,
}

impl PresentedCertificate {
    /// The certificate, DER-encoded as it came in the TLS handshake.
    pub fn from_der(der: &[u8]) -> Self {
        Self(Arc::new(Presented {
            x5t_s256: x5t_s256(der),
            der: der.into(),
        }))
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.0.der
    }

    /// Its `x5t#S256` thumbprint.
    pub fn x5t_s256(&self) -> &str {
        &self.0.x5t_s256
    }
}

impl fmt::Debug for PresentedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedCertificate")
            .field("x5t_s256", &self.0.x5t_s256)
            .finish_non_exhaustive()
    }
}

/// Reads a `cnf` claim: an object whose only member is `x5t#S256`, a
/// canonical base64url SHA-256. Any other confirmation method, alone or
/// beside it, is refused: a binding this verifier cannot check must not be
/// mistaken for no binding.
pub(crate) fn confirmation(cnf: &Value) -> Result<String, Rejection> {
    let malformed = || Rejection::MissingClaim("cnf".to_owned());
    let obj: &Map<String, Value> = cnf.as_object().ok_or_else(malformed)?;
    if obj.keys().any(|k| k != X5T_S256) {
        return Err(Rejection::UnsupportedConfirmation);
    }
    match obj.get(X5T_S256) {
        Some(Value::String(t)) if is_sha256_thumbprint(t) => Ok(t.clone()),
        _ => Err(malformed()),
    }
}

/// 43 characters of canonical unpadded base64url decoding to 32 bytes.
fn is_sha256_thumbprint(t: &str) -> bool {
    t.len() == 43 && castellan_jose::b64::decode(t).is_some_and(|d| d.len() == 32)
}

/// The RFC 8705 §3 check: a token bound to a certificate is good only with
/// that certificate presented; a token without `cnf` is good either way.
pub(crate) fn check(bound_to: Option<&str>, presented: Option<&PresentedCertificate>) -> Result<(), Rejection> {
    let Some(expected) = bound_to else { return Ok(()) };
    let Some(presented) = presented else {
        return Err(Rejection::BoundTokenWithoutCertificate);
    };
    aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), presented.x5t_s256().as_bytes())
        .map_err(|_| Rejection::CertificateMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Expected values from an independent tool:
    //   printf 'castellan test certificate' | openssl dgst -sha256 -binary | basenc --base64url
    //   printf '' | openssl dgst -sha256 -binary | basenc --base64url
    // (with the trailing `=` dropped).
    #[test]
    fn thumbprint_matches_known_vectors() {
        assert_eq!(
            x5t_s256(b"castellan test certificate"),
            "thbqhTn-NgSunJ-Djay6BwUqH4_q6KFufC3NBjVMMmg"
        );
        assert_eq!(x5t_s256(b""), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
        let p = PresentedCertificate::from_der(b"castellan test certificate");
        assert_eq!(p.x5t_s256(), "thbqhTn-NgSunJ-Djay6BwUqH4_q6KFufC3NBjVMMmg");
        assert_eq!(p.der(), b"castellan test certificate");
        assert!(format!("{p:?}").contains("thbqhTn"));
    }

    #[test]
    fn confirmation_accepts_only_a_well_formed_x5t_s256() {
        let good = "thbqhTn-NgSunJ-Djay6BwUqH4_q6KFufC3NBjVMMmg";
        assert_eq!(confirmation(&json!({"x5t#S256": good})).unwrap(), good);
        let missing = Rejection::MissingClaim("cnf".to_owned());
        for bad in [
            json!({}),
            json!("x"),
            json!([good]),
            json!({"x5t#S256": null}),
            json!({"x5t#S256": 7}),
            json!({"x5t#S256": ""}),
            json!({"x5t#S256": &good[..42]}),
            json!({"x5t#S256": format!("{good}A")}),
            json!({"x5t#S256": format!("{good}=")}),
            json!({"x5t#S256": good.replace('-', "+")}),
            // Non-zero trailing bits: not the canonical encoding of any digest.
            json!({"x5t#S256": format!("{}h", &good[..42])}),
        ] {
            assert_eq!(confirmation(&bad).unwrap_err(), missing, "{bad}");
        }
        for other in [
            json!({"jkt": good}),
            json!({"x5t#S256": good, "jkt": good}),
            json!({"x5t": good}),
            json!({"X5T#S256": good}),
        ] {
            assert_eq!(
                confirmation(&other).unwrap_err(),
                Rejection::UnsupportedConfirmation,
                "{other}"
            );
        }
    }

    #[test]
    fn check_compares_with_the_presented_certificate() {
        let cert = PresentedCertificate::from_der(b"one");
        let other = PresentedCertificate::from_der(b"two");
        assert_eq!(check(None, None), Ok(()));
        assert_eq!(check(None, Some(&cert)), Ok(()));
        assert_eq!(check(Some(cert.x5t_s256()), Some(&cert)), Ok(()));
        assert_eq!(
            check(Some(cert.x5t_s256()), None),
            Err(Rejection::BoundTokenWithoutCertificate)
        );
        assert_eq!(
            check(Some(cert.x5t_s256()), Some(&other)),
            Err(Rejection::CertificateMismatch)
        );
    }
}
