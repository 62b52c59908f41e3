//! Why a JOSE operation was refused.

/// A JOSE failure. Messages never contain key material or whole tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    /// The token is longer than the cap.
    #[error("token is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    /// Not three dot-separated segments.
    #[error("token must have exactly three segments, it has {0}")]
    SegmentCount(usize),
    /// A segment is not canonical unpadded base64url.
    #[error("{0} segment is not canonical base64url")]
    Base64(&'static str),
    /// A segment is not a JSON object, has duplicate members, or nests too deeply.
    #[error("{part} is not acceptable JSON: {reason}")]
    Json { part: &'static str, reason: String },
    /// The header names an algorithm we never accept.
    #[error("algorithm `{0}` is not accepted")]
    AlgorithmRefused(String),
    /// The header's `alg` does not match the key's algorithm.
    #[error("header alg `{header}` does not match the key's `{key}`")]
    AlgorithmMismatch { header: String, key: &'static str },
    /// The header lacks a `kid`.
    #[error("header has no `kid`")]
    MissingKid,
    /// No known key has this `kid`.
    #[error("no key with kid `{0}`")]
    UnknownKid(String),
    /// The header carries a member we refuse (`jwk`, `jku`, `x5u`, `x5c`, `crit`, ...).
    #[error("header member `{0}` is not accepted")]
    ForbiddenHeader(String),
    /// `typ` is missing or not the one expected.
    #[error("token type must be `{expected}`")]
    WrongType { expected: String },
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A JWK could not be used.
    #[error("key is not usable: {0}")]
    BadKey(String),
    /// Signing failed in the crypto provider.
    #[error("signing failed")]
    Signing,
}
