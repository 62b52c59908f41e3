//! The public key of a JWK as X.509 SubjectPublicKeyInfo (DER and PEM):
//! the bytes a careless service passes to its JWT library as the key, and
//! so the HMAC secret of the `hmac-key-confusion` forgery.

use castellan_jose::{b64, PublicJwk};

/// `len` in DER's definite form.
fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
        return;
    }
    let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
    out.push(0x80 | u8::try_from(bytes.len()).unwrap_or(0));
    out.extend(bytes);
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(content.len(), &mut out);
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER from unsigned big-endian bytes.
fn uint(bytes: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend(trimmed);
    tlv(0x02, &content)
}

fn member(value: Option<&String>) -> Option<Vec<u8>> {
    value.and_then(|v| b64::decode(v))
}

/// The SubjectPublicKeyInfo DER of `jwk` (EC P-256, Ed25519 or RSA);
/// `None` for any other key or a malformed member.
#[must_use]
pub fn spki_der(jwk: &PublicJwk) -> Option<Vec<u8>> {
    const EC_P256: &[u8] = &[
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
        0x03, 0x01, 0x07,
    ];
    const ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
    const RSA: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let (algorithm, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some("P-256")) => {
            let (x, y) = (member(jwk.x.as_ref())?, member(jwk.y.as_ref())?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = vec![0x04];
            point.extend(x);
            point.extend(y);
            (EC_P256, point)
        }
        ("OKP", Some("Ed25519")) => {
            let x = member(jwk.x.as_ref())?;
            if x.len() != 32 {
                return None;
            }
            (ED25519, x)
        }
        ("RSA", _) => {
            let (n, e) = (member(jwk.n.as_ref())?, member(jwk.e.as_ref())?);
            let mut seq = uint(&n);
            seq.extend(uint(&e));
            (RSA, tlv(0x30, &seq))
        }
        _ => return None,
    };
    let mut bits = vec![0x00];
    bits.extend(key);
    let mut content = algorithm.to_vec();
    content.extend(tlv(0x03, &bits));
    Some(tlv(0x30, &content))
}

/// [`spki_der`] as PEM (`-----BEGIN PUBLIC KEY-----`, 64-column base64,
/// a final newline): what `openssl` and most libraries write.
#[must_use]
pub fn spki_pem(jwk: &PublicJwk) -> Option<String> {
    use base64::Engine as _;
    let der = spki_der(jwk)?;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    Some(pem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_jose::{Algorithm, SigningKey};
    use x509_parser::prelude::FromDer;
    use x509_parser::x509::SubjectPublicKeyInfo;

    #[test]
    fn spki_round_trips_for_every_key_type() {
        for (alg, oid) in [
            (Algorithm::ES256, "1.2.840.10045.2.1"),
            (Algorithm::EdDSA, "1.3.101.112"),
            (Algorithm::RS256, "1.2.840.113549.1.1.1"),
        ] {
            let (key, _) = SigningKey::generate(alg).unwrap();
            let der = spki_der(key.public_jwk()).unwrap();
            let (rest, spki) = SubjectPublicKeyInfo::from_der(&der).unwrap();
            assert!(rest.is_empty(), "{alg:?}");
            assert_eq!(spki.algorithm.algorithm.to_id_string(), oid);
            let raw = &spki.subject_public_key.data;
            match alg {
                Algorithm::ES256 => assert_eq!(raw.len(), 65),
                Algorithm::EdDSA => {
                    assert_eq!(raw.as_ref(), b64::decode(key.public_jwk().x.as_ref().unwrap()).unwrap())
                }
                _ => assert!(raw.len() > 256),
            }
            let pem = spki_pem(key.public_jwk()).unwrap();
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n") && pem.ends_with("-----END PUBLIC KEY-----\n"));
            assert!(pem.lines().all(|l| l.len() <= 64));
        }
    }
}
