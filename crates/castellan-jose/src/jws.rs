//! Strict compact JWS verification.

use crate::{b64, strict_json, Algorithm, JoseError, VerifyingKey};
use serde_json::{Map, Value};

/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Header members that point at or carry keys, or demand extensions; refused.
const FORBIDDEN_HEADERS: [&str; 9] = ["jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64", "zip"];

/// What a verification must also check beyond the signature.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// Required `typ` (compared case-insensitively, `application/` optional).
    pub expected_typ: Option<&'a str>,
    /// Size cap in bytes.
    pub max_len: usize,
}

impl Default for VerifyOptions<'_> {
    fn default() -> Self {
        Self {
            expected_typ: None,
            max_len: MAX_TOKEN_BYTES,
        }
    }
}

/// A JWS whose signature verified.
#[derive(Debug, Clone)]
pub struct VerifiedJws {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The payload, a JSON object.
    pub claims: Map<String, Value>,
    /// The kid of the key that verified it.
    pub kid: String,
    /// The key's algorithm.
    pub alg: Algorithm,
}

struct Parts<'t> {
    signing_input: &'t str,
    header: Map<String, Value>,
    payload_b64: &'t str,
    sig_b64: &'t str,
}

fn split(token: &str, max_len: usize) -> Result<Parts<'_>, JoseError> {
    if token.len() > max_len {
        return Err(JoseError::TooLarge {
            len: token.len(),
            max: max_len,
        });
    }
    let segments = token.split('.').count();
    let (signing_input, sig_b64) = token.rsplit_once('.').ok_or(JoseError::SegmentCount(segments))?;
    let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(JoseError::SegmentCount(segments))?;
    if segments != 3 {
        return Err(JoseError::SegmentCount(segments));
    }
    let header_bytes = b64::decode(header_b64).ok_or(JoseError::Base64("header"))?;
    let header =
        strict_json::parse_object(&header_bytes).map_err(|reason| JoseError::Json { part: "header", reason })?;
    Ok(Parts {
        signing_input,
        header,
        payload_b64,
        sig_b64,
    })
}

fn parse_payload(payload_b64: &str) -> Result<Map<String, Value>, JoseError> {
    let bytes = b64::decode(payload_b64).ok_or(JoseError::Base64("payload"))?;
    strict_json::parse_object(&bytes).map_err(|reason| JoseError::Json {
        part: "payload",
        reason,
    })
}

fn header_str<'h>(header: &'h Map<String, Value>, name: &str) -> Result<Option<&'h str>, JoseError> {
    match header.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JoseError::Json {
            part: "header",
            reason: format!("`{name}` is not a string"),
        }),
    }
}

fn typ_matches(actual: &str, expected: &str) -> bool {
    // RFC 7515 §4.1.9: media types compare case-insensitively, `application/` may be omitted.
    fn strip(s: &str) -> &str {
        match s.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => s.get(12..).unwrap_or(""),
            _ => s,
        }
    }
    strip(actual).eq_ignore_ascii_case(strip(expected))
}

/// Reads the header without verifying anything but its form.
pub fn decode_unverified_header(token: &str) -> Result<Map<String, Value>, JoseError> {
    split(token, MAX_TOKEN_BYTES).map(|p| p.header)
}

/// Reads the claims without verifying the signature, to find which key
/// should verify it (for example the client of a `private_key_jwt`
/// assertion). Never trust what this returns until [`verify_compact`] passes.
pub fn decode_unverified_claims(token: &str) -> Result<Map<String, Value>, JoseError> {
    let parts = split(token, MAX_TOKEN_BYTES)?;
    parse_payload(parts.payload_b64)
}

/// Verifies a compact JWS. `find_key` maps the header's `kid` to a key; the
/// key decides the algorithm, and a header `alg` that differs is refused.
pub fn verify_compact<'k, F>(token: &str, opts: VerifyOptions<'_>, find_key: F) -> Result<VerifiedJws, JoseError>
where
    F: FnOnce(&str) -> Option<&'k VerifyingKey>,
{
    let parts = split(token, opts.max_len)?;
    let header = &parts.header;
    if let Some(bad) = FORBIDDEN_HEADERS.iter().find(|h| header.contains_key(**h)) {
        return Err(JoseError::ForbiddenHeader((*bad).to_owned()));
    }
    let alg_name = header_str(header, "alg")?.ok_or_else(|| JoseError::AlgorithmRefused(String::new()))?;
    let header_alg: Algorithm = alg_name.parse()?;
    if let Some(expected) = opts.expected_typ {
        match header_str(header, "typ")? {
            Some(t) if typ_matches(t, expected) => {}
            _ => {
                return Err(JoseError::WrongType {
                    expected: expected.to_owned(),
                })
            }
        }
    }
    let kid = header_str(header, "kid")?.ok_or(JoseError::MissingKid)?;
    let key = find_key(kid).ok_or_else(|| JoseError::UnknownKid(kid.chars().take(64).collect()))?;
    if key.alg() != header_alg {
        return Err(JoseError::AlgorithmMismatch {
            header: header_alg.as_str().to_owned(),
            key: key.alg().as_str(),
        });
    }
    let sig = b64::decode(parts.sig_b64).ok_or(JoseError::Base64("signature"))?;
    key.verify_signature(parts.signing_input.as_bytes(), &sig)?;
    let claims = parse_payload(parts.payload_b64)?;
    Ok(VerifiedJws {
        header: parts.header,
        claims,
        kid: key.kid().to_owned(),
        alg: key.alg(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use serde_json::json;

    fn opts() -> VerifyOptions<'static> {
        VerifyOptions {
            expected_typ: Some("at+jwt"),
            max_len: MAX_TOKEN_BYTES,
        }
    }

    #[test]
    fn round_trips_every_algorithm() {
        for alg in Algorithm::ALL {
            let (sk, pkcs8) = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &pkcs8).unwrap();
            assert_eq!(sk.kid(), again.kid(), "{alg}: kid is stable across reload");
            let vk = VerifyingKey::from_jwk(sk.public_jwk()).unwrap();
            let token = sk.sign_compact("at+jwt", &json!({"sub": "a"})).unwrap();
            let v = verify_compact(&token, opts(), |kid| (kid == vk.kid()).then_some(&vk)).unwrap();
            assert_eq!(v.claims["sub"], "a");
            assert_eq!(v.alg, alg);
        }
    }

    fn forge(header: &Value, payload: &Value, sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            b64::encode(header.to_string().as_bytes()),
            b64::encode(payload.to_string().as_bytes()),
            b64::encode(sig)
        )
    }

    #[test]
    fn refuses_forgeries() {
        let (sk, _) = SigningKey::generate(Algorithm::ES256).unwrap();
        let vk = VerifyingKey::from_jwk(sk.public_jwk()).unwrap();
        let find = |kid: &str| (kid == vk.kid()).then_some(&vk);
        let kid = sk.kid().to_owned();
        let payload = json!({"sub": "a"});
        let cases = [
            (json!({"alg":"none","kid":kid,"typ":"at+jwt"}), "none"),
            (json!({"alg":"HS256","kid":kid,"typ":"at+jwt"}), "hmac"),
            (json!({"alg":"ES256","kid":"other","typ":"at+jwt"}), "unknown kid"),
            (json!({"alg":"ES256","typ":"at+jwt"}), "no kid"),
            (json!({"alg":"ES256","kid":kid,"typ":"JWT"}), "wrong typ"),
            (json!({"alg":"EdDSA","kid":kid,"typ":"at+jwt"}), "alg mismatch"),
            (json!({"alg":"ES256","kid":kid,"typ":"at+jwt","jku":"http://x"}), "jku"),
            (json!({"alg":"ES256","kid":kid,"typ":"at+jwt","crit":["exp"]}), "crit"),
            (
                json!({"alg":"ES256","kid":kid,"typ":"at+jwt","jwk":sk.public_jwk()}),
                "jwk",
            ),
        ];
        for (header, what) in cases {
            assert!(
                verify_compact(&forge(&header, &payload, &[0; 64]), opts(), find).is_err(),
                "{what} accepted"
            );
        }
        let good = sk.sign_compact("at+jwt", &payload).unwrap();
        assert!(verify_compact(&good, opts(), find).is_ok());
        // Every single-bit flip of the signature fails.
        let (input, sig) = good.rsplit_once('.').unwrap();
        let sig = b64::decode(sig).unwrap();
        for i in 0..sig.len() * 8 {
            let mut s = sig.clone();
            s[i / 8] ^= 1 << (i % 8);
            let t = format!("{input}.{}", b64::encode(&s));
            assert_eq!(verify_compact(&t, opts(), find).unwrap_err(), JoseError::BadSignature);
        }
        // r = s = 0.
        let zero = format!("{input}.{}", b64::encode(&[0u8; 64]));
        assert!(verify_compact(&zero, opts(), find).is_err());
        // Structure.
        assert!(matches!(
            verify_compact("a.b", opts(), find),
            Err(JoseError::SegmentCount(2))
        ));
        assert!(matches!(
            verify_compact(&format!("{good}.x"), opts(), find),
            Err(JoseError::SegmentCount(4))
        ));
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert!(matches!(
            verify_compact(&big, opts(), find),
            Err(JoseError::TooLarge { .. })
        ));
        let padded = format!("{good}=");
        assert!(verify_compact(&padded, opts(), find).is_err());
    }

    #[test]
    fn refuses_duplicate_claims_even_when_signed() {
        let (sk, _) = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let vk = VerifyingKey::from_jwk(sk.public_jwk()).unwrap();
        let header = b64::encode(format!(r#"{{"alg":"EdDSA","kid":"{}","typ":"at+jwt"}}"#, sk.kid()).as_bytes());
        let payload = b64::encode(br#"{"sub":"a","sub":"b"}"#);
        let input = format!("{header}.{payload}");
        let sig = sk.sign_raw(input.as_bytes()).unwrap();
        let token = format!("{input}.{}", b64::encode(&sig));
        let err = verify_compact(&token, opts(), |_| Some(&vk)).unwrap_err();
        assert!(matches!(err, JoseError::Json { part: "payload", .. }), "{err:?}");
    }
}
