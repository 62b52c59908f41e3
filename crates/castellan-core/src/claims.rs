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
    /// Proof-of-possession confirmation (RFC 7800 `cnf`): the token is bound
    /// to a TLS client certificate (RFC 8705 §3.1) and is good only on a
    /// connection whose peer presented that certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim (RFC 7800 §3.1). Castellan binds tokens to a TLS client
/// certificate only; any other confirmation method is refused on reading
/// (a binding nobody can check must not be dropped silently), as the verifier does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// base64url (no padding) SHA-256 of the DER client certificate (RFC 8705 §3.1).
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(cnf: Option<Confirmation>) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://auth.test".into(),
            sub: "svc".into(),
            aud: "orders".into(),
            exp: 2,
            iat: 1,
            jti: "j".into(),
            client_id: "svc".into(),
            sid: "s".into(),
            scope: None,
            act: None,
            cnf,
        }
    }

    #[test]
    fn cnf_is_written_as_rfc_8705_says_and_left_out_when_absent() {
        let bound = claims(Some(Confirmation {
            x5t_s256: Some("thbqhTn-NgSunJ-Djay6BwUqH4_q6KFufC3NBjVMMmg".into()),
        }));
        let v = serde_json::to_value(&bound).unwrap();
        assert_eq!(
            v["cnf"],
            json!({"x5t#S256": "thbqhTn-NgSunJ-Djay6BwUqH4_q6KFufC3NBjVMMmg"})
        );
        assert_eq!(serde_json::from_value::<AccessTokenClaims>(v).unwrap(), bound);
        let v = serde_json::to_value(claims(None)).unwrap();
        assert!(v.get("cnf").is_none());
        assert_eq!(serde_json::from_value::<AccessTokenClaims>(v).unwrap().cnf, None);
    }

    #[test]
    fn other_confirmation_methods_are_refused() {
        let mut v = serde_json::to_value(claims(None)).unwrap();
        v["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
        assert!(serde_json::from_value::<AccessTokenClaims>(v.clone()).is_err());
        v["cnf"] = json!({"x5t#S256": "thbqhTn-NgSunJ-Djay6BwUqH4_q6KFufC3NBjVMMmg", "jkt": "x"});
        assert!(serde_json::from_value::<AccessTokenClaims>(v).is_err());
    }
}
