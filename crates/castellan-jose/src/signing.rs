//! Signing keys: generated and held by aws-lc-rs, exported only as PKCS#8 for
//! encryption at rest, published only as public JWK.

use crate::jwk::{thumbprint, PublicJwk};
use crate::{b64, Algorithm, JoseError};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde::Serialize;

enum Inner {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key with its `kid` (the RFC 7638 thumbprint).
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    jwk: PublicJwk,
    inner: Inner,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn rejected(e: impl std::fmt::Display) -> JoseError {
    JoseError::BadKey(format!("private key rejected: {e}"))
}

impl SigningKey {
    /// Generates a new key; returns it with its PKCS#8 encoding (to be
    /// encrypted before it is stored anywhere).
    pub fn generate(alg: Algorithm) -> Result<(Self, Vec<u8>), JoseError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Algorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| JoseError::Signing)?
                .as_ref()
                .to_vec(),
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| JoseError::Signing)?
                .as_ref()
                .to_vec(),
            Algorithm::RS256 | Algorithm::PS256 => loop {
                let kp = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| JoseError::Signing)?;
                // About one sound modulus in 2^28 carries the ROCA fingerprint by chance;
                // verifiers refuse such keys, so never publish one.
                let n = kp.public_key().modulus().big_endian_without_leading_zero().to_vec();
                if crate::jwk::has_roca_fingerprint(&n) {
                    continue;
                }
                let der: Pkcs8V1Der<'static> = kp.as_der().map_err(|_| JoseError::Signing)?;
                break der.as_ref().to_vec();
            },
        };
        let key = Self::from_pkcs8(alg, &pkcs8)?;
        Ok((key, pkcs8))
    }

    /// Loads a key from PKCS#8.
    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, JoseError> {
        let (inner, jwk) = match alg {
            Algorithm::ES256 => {
                let kp =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(rejected)?;
                let point = kp.public_key().as_ref();
                let (x, y) = match point {
                    [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                    _ => return Err(JoseError::BadKey("unexpected EC point".to_owned())),
                };
                let jwk = PublicJwk {
                    kty: "EC".into(),
                    kid: String::new(),
                    alg: alg.as_str().into(),
                    use_: "sig".into(),
                    crv: Some("P-256".into()),
                    x: Some(b64::encode(x)),
                    y: Some(b64::encode(y)),
                    n: None,
                    e: None,
                };
                (Inner::Ec(kp), jwk)
            }
            Algorithm::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(rejected)?;
                let jwk = PublicJwk {
                    kty: "OKP".into(),
                    kid: String::new(),
                    alg: alg.as_str().into(),
                    use_: "sig".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(b64::encode(kp.public_key().as_ref())),
                    y: None,
                    n: None,
                    e: None,
                };
                (Inner::Ed(kp), jwk)
            }
            Algorithm::RS256 | Algorithm::PS256 => {
                let kp = RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?;
                let public = kp.public_key();
                let jwk = PublicJwk {
                    kty: "RSA".into(),
                    kid: String::new(),
                    alg: alg.as_str().into(),
                    use_: "sig".into(),
                    crv: None,
                    x: None,
                    y: None,
                    n: Some(b64::encode(public.modulus().big_endian_without_leading_zero())),
                    e: Some(b64::encode(public.exponent().big_endian_without_leading_zero())),
                };
                (Inner::Rsa(kp), jwk)
            }
        };
        let kid = thumbprint(&jwk);
        let jwk = PublicJwk {
            kid: kid.clone(),
            ..jwk
        };
        Ok(Self {
            kid,
            alg,
            jwk,
            inner,
            rng: SystemRandom::new(),
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public half as JWK.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// Signs raw bytes with this key's algorithm (JOSE signature encoding).
    pub fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        match &self.inner {
            Inner::Ec(kp) => kp
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| JoseError::Signing),
            Inner::Ed(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Inner::Rsa(kp) => {
                let padding: &'static dyn signature::RsaEncoding = if self.alg == Algorithm::RS256 {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PSS_SHA256
                };
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(padding, &self.rng, message, &mut sig)
                    .map_err(|_| JoseError::Signing)?;
                Ok(sig)
            }
        }
    }

    /// Produces a compact JWS with header `{"alg","kid","typ"}` over `claims`.
    pub fn sign_compact<C: Serialize>(&self, typ: &str, claims: &C) -> Result<String, JoseError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'static str,
            kid: &'a str,
            typ: &'a str,
        }
        let header = serde_json::to_vec(&Header {
            alg: self.alg.as_str(),
            kid: &self.kid,
            typ,
        })
        .map_err(|_| JoseError::Signing)?;
        let payload = serde_json::to_vec(claims).map_err(|_| JoseError::Signing)?;
        let mut out = b64::encode(&header);
        out.push('.');
        out.push_str(&b64::encode(&payload));
        let sig = self.sign_raw(out.as_bytes())?;
        out.push('.');
        out.push_str(&b64::encode(&sig));
        Ok(out)
    }
}
