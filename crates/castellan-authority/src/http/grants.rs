//! The grants people's apps use: `authorization_code` (with PKCE) and
//! `refresh_token` (rotating, with replay detection that ends the session).

use super::error::ApiError;
use super::form::Form;
use crate::tokens::{Grant, IdTokenClaims};
use crate::Authority;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use castellan_store::{ClientRecord, Redeemed, RefreshTokenRecord, SessionRecord, StoreError, UserRecord};
use serde_json::json;

fn store_err(e: StoreError) -> ApiError {
    ApiError::server_error(&e)
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `BASE64URL(SHA256(verifier))`, compared in constant time.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
    aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_ok()
}

async fn revoke_family(auth: &Authority, sid: &str, why: &'static str) -> Result<(), ApiError> {
    let seq = auth.end_session(sid).await?;
    metrics::counter!("castellan_grant_replays_total", "kind" => why).increment(1);
    tracing::warn!(%sid, seq = ?seq, why, "session revoked");
    Ok(())
}

async fn live_session(auth: &Authority, sid: &str, now: i64) -> Result<SessionRecord, ApiError> {
    match auth.store().get_session(sid).await.map_err(store_err)? {
        Some(s) if s.ended_at.is_none() && s.expires_at > now => Ok(s),
        Some(s) if s.ended_at.is_none() => {
            auth.end_session(&s.sid).await?;
            Err(ApiError::invalid_grant(
                "the session reached its absolute lifetime; sign in again",
            ))
        }
        _ => Err(ApiError::invalid_grant("the session has ended; sign in again")),
    }
}

async fn active_user(auth: &Authority, user_id: &str) -> Result<UserRecord, ApiError> {
    match auth.store().get_user(user_id).await.map_err(store_err)? {
        Some(u) if !u.suspended => Ok(u),
        _ => Err(ApiError::invalid_grant("the account is suspended or deleted")),
    }
}

fn new_refresh_token(
    auth: &Authority,
    session: &SessionRecord,
    now: i64,
) -> Result<(String, RefreshTokenRecord), ApiError> {
    let bytes = crate::secrets::random_bytes::<32>().map_err(|e| ApiError::server_error(&e))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let idle = auth.config().sessions.idle_timeout.secs();
    let record = RefreshTokenRecord {
        token_hash: auth.master().hash_secret(&token),
        sid: session.sid.clone(),
        client_id: session.client_id.clone(),
        user_id: session.user_id.clone(),
        created_at: now,
        expires_at: now.saturating_add(idle).min(session.expires_at),
        used_at: None,
    };
    Ok((token, record))
}

fn has_scope(scope: Option<&str>, wanted: &str) -> bool {
    scope.is_some_and(|s| s.split(' ').any(|x| x == wanted))
}

struct Minted<'a> {
    client: &'a ClientRecord,
    session: &'a SessionRecord,
    user: &'a UserRecord,
    scope: Option<String>,
    nonce: Option<String>,
    refresh_token: String,
    grant: &'static str,
    bound_to: Option<&'a str>,
}

fn respond(auth: &Authority, m: Minted<'_>) -> Result<Response, ApiError> {
    let ttl = auth.config().tokens.lifetime_for(m.client.access_token_ttl);
    let issued = auth.issue_access_token_in(
        Grant {
            kind: m.grant,
            client_id: &m.client.client_id,
            sub: &m.user.user_id,
            aud: &m.session.audience,
            sid: &m.session.sid,
            act: None,
            bound_to: m.bound_to,
        },
        m.scope.clone(),
        ttl,
    )?;
    let now = issued.claims.iat;
    let id_token = auth.issue_id_token(&IdTokenClaims {
        iss: auth.issuer().to_owned(),
        sub: m.user.user_id.clone(),
        aud: m.client.client_id.clone(),
        exp: now.saturating_add(ttl),
        iat: now,
        auth_time: m.session.auth_time,
        nonce: m.nonce,
        sid: m.session.sid.clone(),
        azp: m.client.client_id.clone(),
        preferred_username: has_scope(m.scope.as_deref(), "profile").then(|| m.user.username.clone()),
    })?;
    let mut body = json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "refresh_token": m.refresh_token,
        "id_token": id_token,
    });
    if let (Some(scope), Some(obj)) = (m.scope, body.as_object_mut()) {
        obj.insert("scope".to_owned(), json!(scope));
    }
    tracing::info!(client_id = %m.client.client_id, user_id = %m.user.user_id, sid = %m.session.sid, grant = m.grant, "tokens issued");
    Ok(Json(body).into_response())
}

/// An authorization code redeemed: the session it began and its person.
pub struct RedeemedCode {
    /// The live session.
    pub session: SessionRecord,
    /// The person, not suspended.
    pub user: UserRecord,
    /// The `nonce` of the authorization request.
    pub nonce: Option<String>,
}

/// `grant_type=authorization_code`.
pub async fn authorization_code(
    auth: &Authority,
    client: &ClientRecord,
    form: &Form,
    bound_to: Option<&str>,
) -> Result<Response, ApiError> {
    let RedeemedCode { session, user, nonce } = redeem_code(auth, client, form).await?;
    let now = auth.now();
    let (refresh_token, refresh) = new_refresh_token(auth, &session, now)?;
    auth.store()
        .insert_refresh_token(&refresh, now)
        .await
        .map_err(store_err)?;
    respond(
        auth,
        Minted {
            client,
            session: &session,
            user: &user,
            scope: session.scope.clone(),
            nonce,
            refresh_token,
            grant: "authorization_code",
            bound_to,
        },
    )
}

/// Checks and spends an authorization code (`code`, `redirect_uri` and
/// `code_verifier` in `form`) for `client`: the token endpoint's grant, and
/// the admin console's sign-in, which needs the session but no tokens.
pub async fn redeem_code(auth: &Authority, client: &ClientRecord, form: &Form) -> Result<RedeemedCode, ApiError> {
    let code = form
        .get("code")
        .ok_or_else(|| ApiError::invalid_request("code is required"))?;
    let redirect_uri = form
        .get("redirect_uri")
        .ok_or_else(|| ApiError::invalid_request("redirect_uri is required"))?;
    let verifier = form
        .get("code_verifier")
        .ok_or_else(|| ApiError::invalid_request("code_verifier is required (PKCE)"))?;
    if !valid_verifier(verifier) {
        return Err(ApiError::invalid_request(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
        ));
    }
    if code.len() > 256 {
        return Err(ApiError::invalid_grant("authorization code is invalid or expired"));
    }
    let now = auth.now();
    let hash = auth.master().hash_secret(code);
    let record = match auth.store().redeem_code(&hash, now).await.map_err(store_err)? {
        Redeemed::Unknown => return Err(ApiError::invalid_grant("authorization code is invalid or expired")),
        Redeemed::Replayed(r) => {
            // RFC 6749 §4.1.2: a code used twice revokes what it granted.
            revoke_family(auth, &r.sid, "authorization_code").await?;
            return Err(ApiError::invalid_grant(
                "authorization code was already used; its session is revoked",
            ));
        }
        Redeemed::Fresh(r) => r,
    };
    let mismatch = if record.client_id != client.client_id {
        Some("authorization code was issued to another client")
    } else if record.redirect_uri != redirect_uri {
        Some("redirect_uri does not match the authorization request")
    } else if !pkce_matches(verifier, &record.code_challenge) {
        Some("code_verifier does not match the code_challenge")
    } else {
        None
    };
    if let Some(why) = mismatch {
        // The code is spent; whoever holds it is not the app that asked. End the session.
        auth.end_session(&record.sid).await?;
        tracing::warn!(sid = %record.sid, client_id = %client.client_id, why, "authorization code refused");
        return Err(ApiError::invalid_grant(why));
    }
    let session = live_session(auth, &record.sid, now).await?;
    let user = active_user(auth, &record.user_id).await?;
    Ok(RedeemedCode {
        session,
        user,
        nonce: record.nonce,
    })
}

/// A narrower scope on refresh (RFC 6749 §6); never a wider one.
fn narrow_scope(granted: Option<&str>, requested: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(requested) = requested else {
        return Ok(granted.map(str::to_owned));
    };
    let mut out: Vec<&str> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !has_scope(granted, s) {
            let shown: String = s.chars().take(64).collect();
            return Err(ApiError::invalid_scope(format!(
                "scope `{shown}` was not granted to this session"
            )));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok((!out.is_empty()).then(|| out.join(" ")))
}

/// `grant_type=refresh_token`: one use each; the answer carries the next one.
pub async fn refresh_token(
    auth: &Authority,
    client: &ClientRecord,
    form: &Form,
    bound_to: Option<&str>,
) -> Result<Response, ApiError> {
    let presented = form
        .get("refresh_token")
        .ok_or_else(|| ApiError::invalid_request("refresh_token is required"))?;
    let invalid = || ApiError::invalid_grant("refresh token is invalid or expired");
    if presented.len() > 256 {
        return Err(invalid());
    }
    let now = auth.now();
    let hash = auth.master().hash_secret(presented);
    let old = auth
        .store()
        .get_refresh_token(&hash)
        .await
        .map_err(store_err)?
        .ok_or_else(invalid)?;
    if old.client_id != client.client_id {
        return Err(ApiError::invalid_grant("refresh token was issued to another client"));
    }
    if old.used_at.is_some() {
        revoke_family(auth, &old.sid, "refresh_token").await?;
        return Err(ApiError::invalid_grant(
            "refresh token was already used; the session is revoked",
        ));
    }
    if old.expires_at <= now {
        return Err(invalid());
    }
    let session = live_session(auth, &old.sid, now).await?;
    let idle = auth.config().sessions.idle_timeout.secs();
    if now.saturating_sub(session.last_used_at) > idle {
        auth.end_session(&session.sid).await?;
        return Err(ApiError::invalid_grant("the session was idle too long; sign in again"));
    }
    let user = active_user(auth, &old.user_id).await?;
    let scope = narrow_scope(session.scope.as_deref(), form.get("scope"))?;
    let (refresh_token, next) = new_refresh_token(auth, &session, now)?;
    match auth
        .store()
        .rotate_refresh_token(&hash, &next, now)
        .await
        .map_err(store_err)?
    {
        Redeemed::Fresh(_) => {}
        Redeemed::Replayed(_) => {
            revoke_family(auth, &old.sid, "refresh_token").await?;
            return Err(ApiError::invalid_grant(
                "refresh token was already used; the session is revoked",
            ));
        }
        Redeemed::Unknown => return Err(invalid()),
    }
    respond(
        auth,
        Minted {
            client,
            session: &session,
            user: &user,
            scope,
            nonce: None,
            refresh_token,
            grant: "refresh_token",
            bound_to,
        },
    )
}

/// RFC 7009 for refresh tokens: ends the session it belongs to. `Ok(false)`
/// when `token` is not one of our refresh tokens.
pub async fn revoke_refresh_token(auth: &Authority, caller: &ClientRecord, token: &str) -> Result<bool, ApiError> {
    if token.contains('.') || token.len() > 256 {
        return Ok(false);
    }
    let hash = auth.master().hash_secret(token);
    let Some(rt) = auth.store().get_refresh_token(&hash).await.map_err(store_err)? else {
        return Ok(false);
    };
    if rt.client_id != caller.client_id && !caller.admin {
        return Err(ApiError::unauthorized_client("token was issued to another client"));
    }
    auth.end_session(&rt.sid).await?;
    tracing::info!(sid = %rt.sid, by = %caller.client_id, "session revoked by its refresh token");
    auth.audit(
        crate::audit::AuditEntry::new(
            crate::audit::client_actor(&caller.client_id),
            "token.revoke",
            format!("session:{}", rt.sid),
        )
        .detail(serde_json::json!({ "token_type": "refresh_token", "user_id": rt.user_id })),
    )
    .await;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(valid_verifier(verifier));
        assert!(pkce_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!pkce_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn refresh_scope_only_narrows() {
        assert_eq!(
            narrow_scope(Some("openid read"), None).unwrap().as_deref(),
            Some("openid read")
        );
        assert_eq!(
            narrow_scope(Some("openid read"), Some("read")).unwrap().as_deref(),
            Some("read")
        );
        assert!(narrow_scope(Some("openid read"), Some("write")).is_err());
        assert!(narrow_scope(None, Some("read")).is_err());
    }
}
