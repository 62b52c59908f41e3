//! What a verified token tells the service.

use serde::Serialize;
use std::ops::Deref;
use std::sync::Arc;

/// A valid access token's identity. Cheap to clone (one reference count);
/// its fields are read through [`Deref`] to [`VerifiedClaims`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken(Arc<VerifiedClaims>);

impl Serialize for VerifiedToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.as_ref().serialize(s)
    }
}

impl VerifiedToken {
    /// Wraps claims.
    pub fn new(claims: VerifiedClaims) -> Self {
        Self(Arc::new(claims))
    }
}

impl Deref for VerifiedToken {
    type Target = VerifiedClaims;
    fn deref(&self) -> &VerifiedClaims {
        &self.0
    }
}

/// The identity a valid access token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: a person, or the client itself for `client_credentials`.
    pub sub: String,
    /// The audience this verifier checks for (one of the token's).
    pub aud: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Session or grant; what revocation acts on.
    pub sid: String,
    /// Token id.
    pub jti: String,
    /// Space-separated scopes, if any.
    pub scope: Option<String>,
    /// Issued at.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// Key that signed it.
    pub kid: String,
    /// The `act` claim (token exchange delegation chain), verbatim.
    pub act: Option<serde_json::Value>,
    /// The client certificate thumbprint the token is bound to (`cnf`
    /// `x5t#S256`, RFC 8705 §3.1). When set, the token was accepted only
    /// because the connection's peer presented that certificate.
    pub cnf_x5t_s256: Option<String>,
}

impl VerifiedClaims {
    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty())
    }
    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}
