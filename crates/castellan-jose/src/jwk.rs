//! Public keys as JWK (RFC 7517), their thumbprints (RFC 7638), and the
//! parsed verifying keys built from them once and kept.

use crate::{b64, strict_json, Algorithm, JoseError};
use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A public JWK as Castellan publishes it: always `kid`, `alg` and `use: sig`,
/// never a private member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// Key type: `EC`, `OKP` or `RSA`.
    pub kty: String,
    /// Key id: the RFC 7638 thumbprint.
    pub kid: String,
    /// The one algorithm this key is used with.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Curve for `EC` and `OKP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// X coordinate (`EC`) or public key (`OKP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Y coordinate (`EC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// A JWK Set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<PublicJwk>,
}

/// Members that only a private JWK carries.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Largest JWK Set we parse.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

impl Jwks {
    /// Parses a JWK Set strictly: no duplicate members, no private members,
    /// every key with `kid` and `alg`, no two keys with one `kid`.
    pub fn parse_strict(bytes: &[u8]) -> Result<Vec<VerifyingKey>, JoseError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JoseError::BadKey(format!(
                "key set is {} bytes, more than {MAX_JWKS_BYTES}",
                bytes.len()
            )));
        }
        let obj = strict_json::parse_object(bytes).map_err(|reason| JoseError::Json {
            part: "key set",
            reason,
        })?;
        let keys = match obj.get("keys") {
            Some(Value::Array(keys)) => keys,
            _ => return Err(JoseError::BadKey("key set has no `keys` array".to_owned())),
        };
        let mut out: Vec<VerifyingKey> = Vec::with_capacity(keys.len());
        for key in keys {
            let Value::Object(map) = key else {
                return Err(JoseError::BadKey("a key is not an object".to_owned()));
            };
            let vk = VerifyingKey::from_jwk_object(map)?;
            if out.iter().any(|k| k.kid == vk.kid) {
                return Err(JoseError::BadKey(format!("duplicate kid `{}`", vk.kid)));
            }
            out.push(vk);
        }
        Ok(out)
    }
}

fn member<'a>(map: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, JoseError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JoseError::BadKey(format!("`{name}` is not a string"))),
    }
}

fn required<'a>(map: &'a Map<String, Value>, name: &str) -> Result<&'a str, JoseError> {
    member(map, name)?.ok_or_else(|| JoseError::BadKey(format!("missing `{name}`")))
}

fn fixed_len(map: &Map<String, Value>, name: &str, len: usize) -> Result<Vec<u8>, JoseError> {
    let bytes =
        b64::decode(required(map, name)?).ok_or_else(|| JoseError::BadKey(format!("`{name}` is not base64url")))?;
    if bytes.len() != len {
        return Err(JoseError::BadKey(format!("`{name}` must be {len} bytes")));
    }
    Ok(bytes)
}

/// RFC 7638 thumbprint of a public key given by its required members.
pub fn thumbprint(jwk: &PublicJwk) -> String {
    // Members in lexicographic order, no whitespace, as RFC 7638 §3 demands.
    let canonical = match jwk.kty.as_str() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk.crv.as_deref().unwrap_or_default(),
            jwk.x.as_deref().unwrap_or_default(),
            jwk.y.as_deref().unwrap_or_default()
        ),
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            jwk.crv.as_deref().unwrap_or_default(),
            jwk.x.as_deref().unwrap_or_default()
        ),
        _ => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            jwk.e.as_deref().unwrap_or_default(),
            jwk.n.as_deref().unwrap_or_default()
        ),
    };
    b64::encode(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
}

/// A public key parsed once, bound to the one algorithm its JWK names.
pub struct VerifyingKey {
    kid: String,
    alg: Algorithm,
    key: ParsedPublicKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The algorithm this key verifies, and the only one.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Verifies a raw signature over `message` with this key's algorithm.
    pub fn verify_signature(&self, message: &[u8], sig: &[u8]) -> Result<(), JoseError> {
        self.key.verify_sig(message, sig).map_err(|_| JoseError::BadSignature)
    }

    /// Builds a verifying key from a published JWK.
    pub fn from_jwk(jwk: &PublicJwk) -> Result<Self, JoseError> {
        let value = serde_json::to_value(jwk).map_err(|e| JoseError::BadKey(e.to_string()))?;
        match value {
            Value::Object(map) => Self::from_jwk_object(&map),
            _ => Err(JoseError::BadKey("not an object".to_owned())),
        }
    }

    /// Builds a verifying key from one JWK object; refuses private members,
    /// missing `kid`/`alg`, a `use` other than `sig`, and weak or malformed keys.
    pub fn from_jwk_object(map: &Map<String, Value>) -> Result<Self, JoseError> {
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| map.contains_key(**m)) {
            return Err(JoseError::BadKey(format!("private member `{m}` in a public key")));
        }
        let kid = required(map, "kid")?;
        if kid.is_empty() || kid.len() > 128 {
            return Err(JoseError::BadKey("`kid` must be 1 to 128 characters".to_owned()));
        }
        let alg: Algorithm = required(map, "alg")?
            .parse()
            .map_err(|_| JoseError::BadKey("`alg` is not an accepted algorithm".to_owned()))?;
        if let Some(u) = member(map, "use")? {
            if u != "sig" {
                return Err(JoseError::BadKey("`use` must be `sig`".to_owned()));
            }
        }
        let kty = required(map, "kty")?;
        let key = match (alg, kty) {
            (Algorithm::ES256, "EC") => {
                if required(map, "crv")? != "P-256" {
                    return Err(JoseError::BadKey("ES256 needs crv P-256".to_owned()));
                }
                let mut point = vec![0x04];
                point.extend(fixed_len(map, "x", 32)?);
                point.extend(fixed_len(map, "y", 32)?);
                ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            }
            (Algorithm::EdDSA, "OKP") => {
                if required(map, "crv")? != "Ed25519" {
                    return Err(JoseError::BadKey("EdDSA needs crv Ed25519".to_owned()));
                }
                ParsedPublicKey::new(&signature::ED25519, fixed_len(map, "x", 32)?)
            }
            (Algorithm::RS256 | Algorithm::PS256, "RSA") => {
                let n = b64::decode(required(map, "n")?)
                    .ok_or_else(|| JoseError::BadKey("`n` is not base64url".to_owned()))?;
                let e = b64::decode(required(map, "e")?)
                    .ok_or_else(|| JoseError::BadKey("`e` is not base64url".to_owned()))?;
                if n.first() == Some(&0) || e.first() == Some(&0) {
                    return Err(JoseError::BadKey("RSA integers have leading zeros".to_owned()));
                }
                if n.len() < 256 {
                    return Err(JoseError::BadKey("RSA modulus under 2048 bits".to_owned()));
                }
                let params = if alg == Algorithm::RS256 {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PSS_2048_8192_SHA256
                };
                RsaPublicKeyComponents { n: &n, e: &e }.to_parsed_public_key(params)
            }
            _ => {
                return Err(JoseError::BadKey(format!(
                    "kty `{}` does not fit alg `{alg}`",
                    kty.chars().take(16).collect::<String>()
                )))
            }
        }
        .map_err(|e| JoseError::BadKey(format!("key rejected: {e}")))?;
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            key,
        })
    }
}
