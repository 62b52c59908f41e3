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
    /// Who acts for the subject, after token exchange (RFC 8693 §4.1): the
    /// current actor, with the previous one nested inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

/// One link of a delegation chain (RFC 8693 `act`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting party: a client id or a SPIFFE ID.
    pub sub: String,
    /// The actor before this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// Links in the chain, this one included.
    pub fn depth(&self) -> usize {
        let mut n = 1;
        let mut at = self;
        while let Some(next) = at.act.as_deref() {
            n += 1;
            at = next;
        }
        n
    }

    /// The actors from the current one back to the first.
    pub fn chain(&self) -> Vec<&str> {
        let mut out = vec![self.sub.as_str()];
        let mut at = self;
        while let Some(next) = at.act.as_deref() {
            out.push(next.sub.as_str());
            at = next;
        }
        out
    }
}
