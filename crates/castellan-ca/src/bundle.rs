//! Trust bundles: PEM (`bundle.pem`) and SPIFFE bundle JSON (SPIFFE Trust
//! Domain and Bundle §4, X509-SVID §6).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::ca::CaCert;
use crate::pem;

/// The CA certificates as concatenated PEM, in the order given: what
/// `bundle.pem` holds and what `openssl verify -CAfile` reads.
#[must_use]
pub fn bundle_pem(cas: &[&CaCert]) -> String {
    let mut out = String::with_capacity(cas.iter().map(|c| c.der().len() * 2).sum());
    for ca in cas {
        pem::encode_into(&mut out, "CERTIFICATE", ca.der());
    }
    out
}

/// The CA certificates as a SPIFFE bundle (a JWK Set), one JWK per CA in
/// the order given:
///
/// ```json
/// {"keys":[{"use":"x509-svid","kty":"EC","crv":"P-256","x":"..","y":"..",
///   "x5c":["<base64 DER>"]}],
///  "spiffe_sequence":7,"spiffe_refresh_hint":300}
/// ```
///
/// No `kid` (X509-SVID §6.1 forbids it). `sequence` must grow whenever the
/// set of CAs changes; `refresh_hint_secs` tells consumers how often to
/// poll.
#[must_use]
pub fn spiffe_bundle_json(cas: &[&CaCert], sequence: u64, refresh_hint_secs: u64) -> String {
    let keys = cas.iter().map(|ca| Value::Object(jwk(ca))).collect();
    let mut set = Map::new();
    set.insert("keys".into(), Value::Array(keys));
    set.insert("spiffe_sequence".into(), Value::from(sequence));
    set.insert("spiffe_refresh_hint".into(), Value::from(refresh_hint_secs));
    Value::Object(set).to_string()
}

fn jwk(ca: &CaCert) -> Map<String, Value> {
    // public_point is `04 || x || y`, 32 bytes each (checked at load).
    let point = ca.public_point();
    let x = point.get(1..33).unwrap_or_default();
    let y = point.get(33..65).unwrap_or_default();
    let mut key = Map::new();
    key.insert("use".into(), Value::from("x509-svid"));
    key.insert("kty".into(), Value::from("EC"));
    key.insert("crv".into(), Value::from("P-256"));
    key.insert("x".into(), Value::from(URL_SAFE_NO_PAD.encode(x)));
    key.insert("y".into(), Value::from(URL_SAFE_NO_PAD.encode(y)));
    key.insert("x5c".into(), Value::Array(vec![Value::from(STANDARD.encode(ca.der()))]));
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CaKey, TrustDomain};

    #[test]
    fn json_shape() {
        let td = TrustDomain::new("example.org").unwrap();
        let a = CaKey::generate(&td, 86_400, 1_700_000_000).unwrap();
        let b = CaKey::generate(&td, 86_400, 1_700_000_000).unwrap();
        let text = spiffe_bundle_json(&[a.cert(), b.cert()], 7, 300);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["spiffe_sequence"], 7);
        assert_eq!(v["spiffe_refresh_hint"], 300);
        let keys = v["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        let k = &keys[0];
        assert_eq!(k["use"], "x509-svid");
        assert_eq!(k["kty"], "EC");
        assert_eq!(k["crv"], "P-256");
        assert!(k.get("kid").is_none());
        let x = URL_SAFE_NO_PAD.decode(k["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(k["y"].as_str().unwrap()).unwrap();
        assert_eq!([&[4u8][..], &x, &y].concat(), a.cert().public_point());
        let x5c = k["x5c"].as_array().unwrap();
        assert_eq!(x5c.len(), 1);
        let der = STANDARD.decode(x5c[0].as_str().unwrap()).unwrap();
        assert_eq!(der.as_slice(), a.cert_der().as_ref());
    }

    #[test]
    fn pem_holds_every_ca_in_order() {
        let td = TrustDomain::new("example.org").unwrap();
        let a = CaKey::generate(&td, 86_400, 1_700_000_000).unwrap();
        let b = CaKey::generate(&td, 86_400, 1_700_000_000).unwrap();
        let text = bundle_pem(&[a.cert(), b.cert()]);
        let certs = crate::certs_from_pem(text.as_bytes()).unwrap();
        assert_eq!(certs, vec![a.cert_der().clone(), b.cert_der().clone()]);
        assert_eq!(bundle_pem(&[]), "");
    }
}
