//! The claims of a Castellan access token (RFC 9068).

use serde::{Deserialize, Serialize};

/// The JOSE `typ` of every access token Castellan issues (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims of an RFC 9068 access token. `aud` is always exactly one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer URL.
    pub iss: String,
    /// Subject: the person, or for `client_credentials` the client itself.
    pub sub: String,
    /// The one service this token is for.
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Unique token id.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The session or grant this token belongs to; revocation works by it.
    pub sid: String,
    /// Space-separated granted scopes, when any were granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}
