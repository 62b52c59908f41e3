//! Every reason a token is refused. Exhaustive on purpose: callers handle
//! each outcome, and a new reason is a breaking change.

use castellan_jose::JoseError;

/// Which revocation caught the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedBy {
    /// Its session (`sid`).
    Session,
    /// Its subject, revoked after it was issued.
    Subject,
    /// Its client, revoked after it was issued.
    Client,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No bearer token in the request.
    #[error("no bearer token")]
    Missing,
    /// Over the size cap; nothing was decoded.
    #[error("token too large")]
    TooLarge,
    /// Not a compact JWS we can read: segments, base64url, JSON, duplicates, nesting.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// A header member we never accept (`jwk`, `jku`, `x5u`, `x5c`, `crit`, ...).
    #[error("header member `{0}` not accepted")]
    ForbiddenHeader(String),
    /// `alg` is not allowed by the profile, or does not match the key.
    #[error("algorithm not accepted")]
    AlgorithmNotAllowed,
    /// No key with this kid (after a refetch).
    #[error("unknown signing key")]
    UnknownKey,
    /// The key was withdrawn in an emergency.
    #[error("signing key withdrawn")]
    KeyWithdrawn,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `typ` is not `at+jwt`.
    #[error("not an access token")]
    WrongType,
    /// Another issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// Not for this service.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is absent or of the wrong type.
    #[error("claim `{0}` missing or malformed")]
    MissingClaim(String),
    /// Past `exp` (plus leeway).
    #[error("token expired")]
    Expired,
    /// Before `nbf` (minus leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` in the future (beyond leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `exp - iat` longer than the profile allows.
    #[error("token lifetime exceeds the maximum")]
    LifetimeTooLong,
    /// The delegation chain (`act`) is longer than allowed.
    #[error("delegation chain too long")]
    DelegationTooDeep,
    /// This service accepts only exchanged tokens, and this one has no `act`.
    #[error("token carries no delegation (`act`)")]
    DelegationRequired,
    /// `cnf` names a confirmation method other than `x5t#S256` (RFC 8705),
    /// alone or beside it: a binding this verifier cannot check.
    #[error("token bound by an unsupported confirmation method")]
    UnsupportedConfirmation,
    /// The token is bound to a client certificate (`cnf` `x5t#S256`) and the
    /// connection presented none.
    #[error("token is bound to a client certificate and none was presented")]
    BoundTokenWithoutCertificate,
    /// The token is bound to another client certificate than the one presented.
    #[error("client certificate does not match the token's binding")]
    CertificateMismatch,
    /// Revoked.
    #[error("token revoked")]
    Revoked(RevokedBy),
    /// The revocation stream has been away longer than the staleness window
    /// and the verifier fails closed.
    #[error("revocation state is stale")]
    Stale,
    /// The verifier has no keys yet.
    #[error("verifier not ready")]
    NotReady,
}

impl Rejection {
    /// True when the token itself is at fault (RFC 6750 `invalid_token`);
    /// false when the verifier cannot decide (answer 503) or no token came.
    pub fn is_invalid_token(&self) -> bool {
        !matches!(self, Self::Missing | Self::Stale | Self::NotReady)
    }

    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::TooLarge => "too_large",
            Self::Malformed(_) => "malformed",
            Self::ForbiddenHeader(_) => "forbidden_header",
            Self::AlgorithmNotAllowed => "algorithm",
            Self::UnknownKey => "unknown_key",
            Self::KeyWithdrawn => "key_withdrawn",
            Self::BadSignature => "bad_signature",
            Self::WrongType => "wrong_type",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim(_) => "missing_claim",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::LifetimeTooLong => "lifetime",
            Self::DelegationTooDeep => "delegation_depth",
            Self::DelegationRequired => "delegation_required",
            Self::UnsupportedConfirmation => "unsupported_confirmation",
            Self::BoundTokenWithoutCertificate => "bound_without_certificate",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::Revoked(_) => "revoked",
            Self::Stale => "stale",
            Self::NotReady => "not_ready",
        }
    }
}

impl From<JoseError> for Rejection {
    fn from(e: JoseError) -> Self {
        match e {
            JoseError::TooLarge { .. } => Self::TooLarge,
            JoseError::ForbiddenHeader(h) => Self::ForbiddenHeader(h),
            JoseError::AlgorithmRefused(_) | JoseError::AlgorithmMismatch { .. } => Self::AlgorithmNotAllowed,
            JoseError::MissingKid | JoseError::UnknownKid(_) => Self::UnknownKey,
            JoseError::WrongType { .. } => Self::WrongType,
            JoseError::BadSignature => Self::BadSignature,
            other => Self::Malformed(other.to_string()),
        }
    }
}
