//! The OAuth endpoints: token (RFC 6749 `client_credentials`), introspection
//! (RFC 7662) and revocation (RFC 7009).

use super::client_auth::{authenticate, authenticate_allowing_public, Peer};
use super::error::ApiError;
use super::form::{read_body, Form};
use super::paths;
use crate::Authority;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use castellan_store::ClientRecord;
use serde_json::json;
use std::sync::Arc;

pub(super) fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

pub(super) async fn read_form(auth: &Authority, req: Request) -> Result<(axum::http::HeaderMap, Form), ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, auth.config().limits.max_body_bytes).await?;
    let form = Form::parse(&parts.headers, &bytes)?;
    Ok((parts.headers, form))
}

/// RFC 6749 §3.3 scope-token characters.
fn valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// The audiences a client may ask for; admin clients may also address the authority itself.
fn allowed_audience(auth: &Authority, client: &ClientRecord, aud: &str) -> bool {
    client.audiences.iter().any(|a| a == aud) || (client.admin && aud == auth.issuer())
}

fn choose_audience(auth: &Authority, client: &ClientRecord, form: &Form) -> Result<String, ApiError> {
    choose_audience_from(auth, client, &form.audiences())
}

/// The one audience of a token: the requested one if allowed, else the
/// client's only one.
pub fn choose_audience_from(auth: &Authority, client: &ClientRecord, requested: &[&str]) -> Result<String, ApiError> {
    let mut requested = requested.to_vec();
    requested.dedup();
    let aud = match requested.as_slice() {
        [] => match client.audiences.as_slice() {
            [only] => only.clone(),
            [] if client.admin => auth.issuer().to_owned(),
            _ => {
                return Err(ApiError::invalid_target(
                    "name the service with `audience` or `resource`; this client may call several",
                ))
            }
        },
        [one] => (*one).to_owned(),
        _ => return Err(ApiError::invalid_target("a token is for exactly one audience")),
    };
    if !allowed_audience(auth, client, &aud) {
        return Err(ApiError::invalid_target("audience not allowed for this client"));
    }
    Ok(aud)
}

fn choose_scope(client: &ClientRecord, form: &Form) -> Result<Option<String>, ApiError> {
    let Some(requested) = form.get("scope") else {
        return Ok(None);
    };
    let mut granted: Vec<&str> = Vec::new();
    for s in requested.split(' ') {
        if !valid_scope_token(s) {
            return Err(ApiError::invalid_scope("scope is malformed"));
        }
        if !client.scopes.iter().any(|c| c == s) {
            let shown: String = s.chars().take(64).collect();
            return Err(ApiError::invalid_scope(format!(
                "scope `{shown}` not allowed for this client"
            )));
        }
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    Ok(Some(granted.join(" ")))
}

/// `POST /oauth2/token`.
pub async fn token(State(auth): State<Arc<Authority>>, req: Request) -> Response {
    match token_inner(&auth, req).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(error = e.code(), "token request refused");
            e.into_response()
        }
    }
}

/// The console's sign-in client has no tokens of its own: its codes are
/// redeemed in-process by the console's callback, never here, and it has
/// nothing to revoke.
fn refuse_console_client(client: &castellan_store::ClientRecord) -> Result<(), ApiError> {
    if client.client_id == super::console::CLIENT_ID {
        return Err(ApiError::unauthorized_client(
            "the console's sign-in client cannot use the token or revocation endpoints",
        ));
    }
    Ok(())
}

async fn token_inner(auth: &Authority, req: Request) -> Result<Response, ApiError> {
    let peer = Peer::of(&req);
    let (headers, form) = read_form(auth, req).await?;
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| ApiError::invalid_request("grant_type is required"))?;
    let endpoint = format!("{}{}", auth.issuer(), paths::TOKEN);
    let client = authenticate_allowing_public(auth, &headers, &form, &endpoint, &peer).await?;
    refuse_console_client(&client)?;
    // RFC 8705 §3: tokens for a client that authenticated with its
    // certificate are bound to that certificate.
    let bound_to = peer.binding_for(&client);
    let bound_to = bound_to.as_deref();
    match grant_type {
        "client_credentials" if client.public => {
            return Err(ApiError::unauthorized_client(
                "a public client cannot use client_credentials",
            ))
        }
        "client_credentials" => {}
        "authorization_code" => {
            return super::grants::authorization_code(auth, &client, &form, bound_to)
                .await
                .map(no_store)
        }
        "refresh_token" => {
            return super::grants::refresh_token(auth, &client, &form, bound_to)
                .await
                .map(no_store)
        }
        super::exchange::TOKEN_EXCHANGE => {
            return super::exchange::token_exchange(auth, &client, &form, bound_to)
                .await
                .map(no_store)
        }
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(ApiError::unsupported_grant_type(format!(
                "grant_type `{shown}` is not supported"
            )));
        }
    }
    let aud = choose_audience(auth, &client, &form)?;
    let scope = choose_scope(&client, &form)?;
    let ttl = auth.config().tokens.lifetime_for(client.access_token_ttl);
    let sid = crate::secrets::random_id("").map_err(|e| ApiError::server_error(&e))?;
    let issued = auth.issue_access_token_in(
        crate::tokens::Grant {
            kind: "client_credentials",
            client_id: &client.client_id,
            sub: &client.client_id,
            aud: &aud,
            sid: &sid,
            act: None,
            bound_to,
        },
        scope.clone(),
        ttl,
    )?;
    let mut body = json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    });
    if let (Some(scope), Some(obj)) = (scope, body.as_object_mut()) {
        obj.insert("scope".to_owned(), json!(scope));
    }
    tracing::info!(client_id = %client.client_id, aud = %aud, sid = %issued.claims.sid, "access token issued");
    Ok(no_store(Json(body).into_response()))
}

/// `POST /oauth2/introspect`: any authenticated client may ask; anything
/// not valid right now is `{"active":false}`.
pub async fn introspect(State(auth): State<Arc<Authority>>, req: Request) -> Response {
    let result: Result<Response, ApiError> = async {
        let peer = Peer::of(&req);
        let (headers, form) = read_form(&auth, req).await?;
        let endpoint = format!("{}{}", auth.issuer(), paths::INTROSPECT);
        authenticate(&auth, &headers, &form, &endpoint, &peer).await?;
        let token = form
            .get("token")
            .ok_or_else(|| ApiError::invalid_request("token is required"))?;
        let body = match auth.check_access_token(token).await {
            Ok((c, _kid)) => {
                let mut v = json!({
                    "active": true,
                    "token_type": "Bearer",
                    "iss": c.iss, "sub": c.sub, "aud": c.aud, "exp": c.exp, "iat": c.iat,
                    "jti": c.jti, "client_id": c.client_id, "sid": c.sid,
                });
                if let (Some(scope), Some(obj)) = (c.scope, v.as_object_mut()) {
                    obj.insert("scope".to_owned(), json!(scope));
                }
                if let (Some(act), Some(obj)) = (c.act, v.as_object_mut()) {
                    obj.insert("act".to_owned(), json!(act));
                }
                if let (Some(cnf), Some(obj)) = (c.cnf, v.as_object_mut()) {
                    obj.insert("cnf".to_owned(), json!(cnf));
                }
                v
            }
            Err(crate::tokens::TokenRejection::Store(e)) => return Err(ApiError::server_error(&e)),
            Err(reason) => {
                tracing::debug!(%reason, "introspection: inactive");
                json!({"active": false})
            }
        };
        Ok(no_store(Json(body).into_response()))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /oauth2/revoke`: revoking an access token revokes its whole `sid`.
/// Only the client it was issued to, or an admin client, may revoke it;
/// tokens that are not ours or already invalid answer 200 (RFC 7009 §2.2).
pub async fn revoke(State(auth): State<Arc<Authority>>, req: Request) -> Response {
    let result: Result<Response, ApiError> = async {
        let peer = Peer::of(&req);
        let (headers, form) = read_form(&auth, req).await?;
        let endpoint = format!("{}{}", auth.issuer(), paths::REVOKE);
        let caller = authenticate_allowing_public(&auth, &headers, &form, &endpoint, &peer).await?;
        refuse_console_client(&caller)?;
        let token = form
            .get("token")
            .ok_or_else(|| ApiError::invalid_request("token is required"))?;
        if let Some(hint) = form.get("token_type_hint") {
            if hint != "access_token" && hint != "refresh_token" {
                return Err(ApiError::new_unsupported_token_type());
            }
        }
        if super::grants::revoke_refresh_token(&auth, &caller, token).await? {
            return Ok(no_store(axum::http::StatusCode::OK.into_response()));
        }
        match auth.check_access_token(token).await {
            Ok((claims, _)) => {
                if claims.client_id != caller.client_id && !caller.admin {
                    return Err(ApiError::unauthorized_client("token was issued to another client"));
                }
                auth.revoke_sid(&claims.sid).await?;
                tracing::info!(sid = %claims.sid, by = %caller.client_id, "session revoked");
                auth.audit(
                    crate::audit::AuditEntry::new(
                        crate::audit::client_actor(&caller.client_id),
                        "token.revoke",
                        format!("session:{}", claims.sid),
                    )
                    .detail(serde_json::json!({ "token_type": "access_token", "sub": claims.sub })),
                )
                .await;
            }
            Err(crate::tokens::TokenRejection::Store(e)) => return Err(ApiError::server_error(&e)),
            Err(_) => {}
        }
        Ok(no_store(axum::http::StatusCode::OK.into_response()))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
