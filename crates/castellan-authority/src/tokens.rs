//! Issuing access tokens and checking the ones we issued.

use crate::secrets::random_id;
use crate::Authority;
use castellan_core::claims::ACCESS_TOKEN_TYP;
use castellan_core::AccessTokenClaims;
use castellan_jose::{verify_compact, VerifyOptions};
use castellan_store::{RevocationKind, StoreError};
use serde_json::Value;

/// Why a token is not active. Shown to operators and admin callers, never
/// to anonymous ones beyond `active:false`.
#[derive(Debug, thiserror::Error)]
pub enum TokenRejection {
    /// Signature, structure, type or unknown key.
    #[error("{0}")]
    Jose(#[from] castellan_jose::JoseError),
    /// Claims missing or malformed.
    #[error("claims are malformed: {0}")]
    Claims(String),
    /// Not issued by this authority.
    #[error("issuer does not match")]
    WrongIssuer,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// `iat` in the future.
    #[error("token issued in the future")]
    NotYetValid,
    /// Revoked by session, subject, client or key.
    #[error("token revoked ({0})")]
    Revoked(&'static str),
    /// The revocation state could not be read.
    #[error("revocation state unavailable: {0}")]
    Store(#[from] StoreError),
}

/// The `typ` of our ID tokens.
pub const ID_TOKEN_TYP: &str = "JWT";

/// Who a token is for and within which grant.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    /// The grant type, as metrics label it.
    pub kind: &'static str,
    /// The client it is issued to.
    pub client_id: &'a str,
    /// The subject: a person's user id, or the client itself.
    pub sub: &'a str,
    /// The one service it is for.
    pub aud: &'a str,
    /// The session or grant id.
    pub sid: &'a str,
    /// The delegation chain, after token exchange.
    pub act: Option<&'a castellan_core::Actor>,
    /// RFC 8705 binding: the `x5t#S256` of the client certificate the
    /// token is bound to (`cnf`), for `tls_client_auth` clients.
    pub bound_to: Option<&'a str>,
}

/// Whether a token's RFC 8705 binding (if any) holds on this connection:
/// unbound tokens always; bound ones only with the very certificate
/// (thumbprints compared in constant time). A `cnf` without `x5t#S256`
/// never holds.
pub fn binding_holds(claims: &AccessTokenClaims, presented: Option<&castellan_workload::PresentedCertificate>) -> bool {
    let Some(cnf) = &claims.cnf else {
        return true;
    };
    match (cnf.x5t_s256.as_deref(), presented) {
        (Some(bound), Some(cert)) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(bound.as_bytes(), cert.x5t_s256().as_bytes()).is_ok()
        }
        _ => false,
    }
}

/// Claims of an OpenID Connect ID token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// The person.
    pub sub: String,
    /// The client.
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the person authenticated.
    pub auth_time: i64,
    /// The value the client sent to the authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The sign-in session.
    pub sid: String,
    /// Authorized party: the client.
    pub azp: String,
    /// The sign-in name (with scope `profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

/// A freshly issued token.
#[derive(Debug)]
pub struct Issued {
    /// The compact JWT.
    pub token: String,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// Its claims.
    pub claims: AccessTokenClaims,
}

impl Authority {
    /// Signs a `client_credentials` access token for `client` to call `aud`,
    /// in a fresh grant `sid`.
    pub fn issue_access_token(
        &self,
        client_id: &str,
        sub: &str,
        aud: &str,
        scope: Option<String>,
        ttl: i64,
    ) -> Result<Issued, crate::http::error::ApiError> {
        let sid = random_id("").map_err(|e| crate::http::error::ApiError::server_error(&e))?;
        self.issue_access_token_in(
            Grant {
                kind: "client_credentials",
                client_id,
                sub,
                aud,
                sid: &sid,
                act: None,
                bound_to: None,
            },
            scope,
            ttl,
        )
    }

    /// Signs an access token within an existing grant or sign-in session.
    pub fn issue_access_token_in(
        &self,
        grant: Grant<'_>,
        scope: Option<String>,
        ttl: i64,
    ) -> Result<Issued, crate::http::error::ApiError> {
        let err = |e: &dyn std::fmt::Display| crate::http::error::ApiError::internal(e);
        let now = self.now();
        let claims = AccessTokenClaims {
            iss: self.issuer().to_owned(),
            sub: grant.sub.to_owned(),
            aud: grant.aud.to_owned(),
            exp: now.saturating_add(ttl),
            iat: now,
            jti: random_id("").map_err(|e| err(&e))?,
            client_id: grant.client_id.to_owned(),
            sid: grant.sid.to_owned(),
            scope,
            act: grant.act.cloned(),
            cnf: grant.bound_to.map(|x5t| castellan_core::Confirmation {
                x5t_s256: Some(x5t.to_owned()),
            }),
        };
        let keys = self.keys().current();
        let token = keys
            .active
            .sign_compact(ACCESS_TOKEN_TYP, &claims)
            .map_err(|e| err(&e))?;
        metrics::counter!("castellan_tokens_issued_total", "grant_type" => grant.kind).increment(1);
        Ok(Issued {
            token,
            expires_in: ttl,
            claims,
        })
    }

    /// Signs an OpenID Connect ID token (`typ: JWT`, `aud` = the client).
    pub fn issue_id_token(&self, claims: &IdTokenClaims) -> Result<String, crate::http::error::ApiError> {
        self.keys()
            .current()
            .active
            .sign_compact(ID_TOKEN_TYP, claims)
            .map_err(|e| crate::http::error::ApiError::server_error(&e))
    }

    /// Checks an ID token we issued, for `id_token_hint`: our signature with
    /// a key that is still published, our issuer, `typ: JWT`. Expiry is not
    /// checked (an expired hint still names the session to end).
    pub fn check_id_token_hint(&self, token: &str) -> Result<IdTokenClaims, TokenRejection> {
        let keys = self.keys().current();
        let verified = verify_compact(
            token,
            VerifyOptions {
                expected_typ: Some(ID_TOKEN_TYP),
                ..VerifyOptions::default()
            },
            |kid| keys.verifying.get(kid),
        )?;
        let claims: IdTokenClaims = serde_json::from_value(Value::Object(verified.claims))
            .map_err(|e| TokenRejection::Claims(e.to_string()))?;
        if claims.iss != self.issuer() {
            return Err(TokenRejection::WrongIssuer);
        }
        Ok(claims)
    }

    /// Checks a token as introspection sees it: our signature with a key
    /// that is active or retired (never withdrawn), `typ: at+jwt`, our
    /// issuer, unexpired, and not revoked by session, subject, client or key.
    pub async fn check_access_token(&self, token: &str) -> Result<(AccessTokenClaims, String), TokenRejection> {
        let keys = self.keys().current();
        let verified = verify_compact(
            token,
            VerifyOptions {
                expected_typ: Some(ACCESS_TOKEN_TYP),
                ..VerifyOptions::default()
            },
            |kid| keys.verifying.get(kid),
        )?;
        let claims: AccessTokenClaims = serde_json::from_value(Value::Object(verified.claims))
            .map_err(|e| TokenRejection::Claims(e.to_string()))?;
        if claims.iss != self.issuer() {
            return Err(TokenRejection::WrongIssuer);
        }
        let now = self.now();
        if claims.exp <= now {
            return Err(TokenRejection::Expired);
        }
        if claims.iat > now.saturating_add(self.leeway()) {
            return Err(TokenRejection::NotYetValid);
        }
        // The four lookups in one store call (one round trip on PostgreSQL).
        let found = self
            .store()
            .find_revocations(
                &[
                    (RevocationKind::Key, verified.kid.as_str()),
                    (RevocationKind::Session, claims.sid.as_str()),
                    (RevocationKind::Subject, claims.sub.as_str()),
                    (RevocationKind::Client, claims.client_id.as_str()),
                ],
                now,
            )
            .await?;
        match found.as_slice() {
            [key, session, subject, client] => {
                if key.is_some() {
                    return Err(TokenRejection::Revoked("key withdrawn"));
                }
                if session.is_some() {
                    return Err(TokenRejection::Revoked("session"));
                }
                for (ev, what) in [(subject, "subject"), (client, "client")] {
                    if ev.as_ref().is_some_and(|ev| claims.iat <= ev.not_before) {
                        return Err(TokenRejection::Revoked(what));
                    }
                }
            }
            // The store answers one entry per pair asked; anything else is refused.
            _ => return Err(TokenRejection::Revoked("revocation state unreadable")),
        }
        Ok((claims, verified.kid))
    }
}
