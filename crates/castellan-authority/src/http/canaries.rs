//! Canary tokens for `castellan probe`: tokens the authority really signs
//! that every correct verifier must refuse (expired, not yet valid, another
//! issuer, another audience, another type, a revoked session) — plus the
//! genuine control it must accept. Admin only; a recognisable subject, no
//! scopes, a short life; every mint is an audit line.

use super::admin::{json_body, require_admin};
use super::error::ApiError;
use crate::secrets::random_id;
use crate::Authority;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use castellan_core::AccessTokenClaims;
use castellan_store::RevocationKind;
use serde::Deserialize;
use std::sync::Arc;

/// The subject of every canary.
pub const CANARY_SUBJECT: &str = "castellan-probe-canary";
/// The client id of every canary.
pub const CANARY_CLIENT: &str = "castellan-probe";
/// How long a canary that is not meant to be expired lives, seconds.
pub const CANARY_TTL: i64 = 60;
/// The issuer of `wrong-issuer` canaries.
pub const WRONG_ISSUER: &str = "https://wrong-issuer.castellan.invalid";
/// The audience of `wrong-audience` canaries.
pub const WRONG_AUDIENCE: &str = "castellan-canary-wrong-audience";

/// Admin routes, nested under `/admin/v1`.
pub fn admin_router() -> Router<Arc<Authority>> {
    Router::new().route("/canaries", post(mint))
}

/// `POST /admin/v1/canaries` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mint {
    /// The target's audience.
    pub audience: String,
    /// The probe check id the canary is for.
    pub check: String,
}

async fn mint(State(auth): State<Arc<Authority>>, req: Request) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, req.headers()).await?;
    let body: Mint = json_body(&auth, req, false)
        .await?
        .ok_or_else(|| ApiError::invalid_request("body required"))?;
    let aud = body.audience.as_str();
    if aud.is_empty() || aud.len() > 256 || aud.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::invalid_request(
            "audience must be 1 to 256 characters without spaces",
        ));
    }
    let check = body.check.as_str();
    let now = auth.now();
    let sid = random_id("canary-").map_err(|e| ApiError::server_error(&e))?;
    let mut claims = AccessTokenClaims {
        iss: auth.issuer().to_owned(),
        sub: CANARY_SUBJECT.to_owned(),
        aud: aud.to_owned(),
        exp: now.saturating_add(CANARY_TTL),
        iat: now,
        jti: random_id("").map_err(|e| ApiError::server_error(&e))?,
        client_id: CANARY_CLIENT.to_owned(),
        sid: sid.clone(),
        scope: None,
        act: None,
        cnf: None,
    };
    let mut typ = castellan_core::claims::ACCESS_TOKEN_TYP;
    // Well past any leeway a verifier may configure (at most 120 s).
    let far = 600;
    match check {
        "genuine" | "revoked-session" => {}
        "expired" => {
            claims.iat = now.saturating_sub(far + CANARY_TTL);
            claims.exp = now.saturating_sub(far);
        }
        "not-yet-valid" => {
            claims.iat = now.saturating_add(far);
            claims.exp = now.saturating_add(far + CANARY_TTL);
        }
        "wrong-issuer" => WRONG_ISSUER.clone_into(&mut claims.iss),
        "wrong-audience" => WRONG_AUDIENCE.clone_into(&mut claims.aud),
        "wrong-token-type" => typ = "JWT",
        "removed-key" => {}
        other => {
            return Err(ApiError::invalid_request(format!(
                "`{}` is not a canary check: genuine, expired, not-yet-valid, wrong-issuer, wrong-audience, \
                 wrong-token-type, removed-key, revoked-session",
                other.chars().take(64).collect::<String>()
            )))
        }
    }
    let keys = auth.keys().current();
    let (token, kid) = if check == "removed-key" {
        auth.keys()
            .sign_with_removed_key(typ, &claims)
            .await
            .map_err(|e| match e {
                crate::keys::KeyError::Store(s) => ApiError::server_error(&s),
                other => ApiError::server_error(&other),
            })?
            .ok_or_else(|| {
                ApiError::conflict(
                    "no withdrawn or removed signing key is kept to sign a `removed-key` canary \
                     (see keys.keep_removed_for)",
                )
            })?
    } else {
        let token = keys
            .active
            .sign_compact(typ, &claims)
            .map_err(|e| ApiError::server_error(&e))?;
        (token, keys.active.kid().to_owned())
    };
    let mut revocation_seq = None;
    if check == "revoked-session" {
        let event = auth
            .record_revocation(RevocationKind::Session, &sid, now)
            .await
            .map_err(|e| ApiError::server_error(&e))?;
        revocation_seq = Some(event.seq);
    }
    auth.audit(
        crate::audit::AuditEntry::new(
            crate::audit::client_actor(&caller.client_id),
            "canary.mint",
            format!("canary:{sid}"),
        )
        .detail(serde_json::json!({
            "check": check,
            "audience": aud,
            "sid": sid,
            "jti": claims.jti,
            "kid": kid,
            "exp": claims.exp,
            "revocation_seq": revocation_seq,
        })),
    )
    .await;
    metrics::counter!("castellan_canaries_minted_total").increment(1);
    let body = serde_json::json!({
        "check": check,
        "token": token,
        "sid": sid,
        "jti": claims.jti,
        "kid": kid,
        "exp": claims.exp,
        "revocation_seq": revocation_seq,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
