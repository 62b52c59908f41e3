//! OpenID Connect endpoints beside the login flow: `userinfo` and
//! RP-initiated logout (end session).

use super::authorize::redirect_with;
use super::error::ApiError;
use super::form::{read_body, Form};
use super::pages::{error_page, html, MessagePage};
use crate::Authority;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

fn bearer(req: &Request) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(ApiError::bearer_required)?
        .to_str()
        .map_err(|_| ApiError::invalid_token("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => Ok(t.trim().to_owned()),
        _ => Err(ApiError::invalid_token("Authorization must be `Bearer <token>`")),
    }
}

/// `GET|POST /oauth2/userinfo`: who the person behind an access token is.
/// Any of our access tokens from a person's session with scope `openid`.
pub async fn userinfo(State(auth): State<Arc<Authority>>, req: Request) -> Response {
    let token = bearer(&req);
    let presented = req
        .extensions()
        .get::<castellan_workload::PresentedCertificate>()
        .cloned();
    drop(req);
    let result: Result<Response, ApiError> = async {
        let token = token?;
        let claims = match auth.check_access_token(&token).await {
            Ok((c, _)) => c,
            Err(crate::tokens::TokenRejection::Store(e)) => return Err(ApiError::server_error(&e)),
            Err(e) => return Err(ApiError::invalid_token(e.to_string())),
        };
        if !crate::tokens::binding_holds(&claims, presented.as_ref()) {
            return Err(ApiError::invalid_token(
                "token is bound to a client certificate this connection did not present",
            ));
        }
        let scopes: Vec<&str> = claims.scope.as_deref().unwrap_or("").split(' ').collect();
        if !scopes.contains(&"openid") {
            return Err(ApiError::insufficient_scope("openid"));
        }
        let user = match auth.store().get_user(&claims.sub).await {
            Ok(Some(u)) if !u.suspended => u,
            Ok(_) => return Err(ApiError::invalid_token("the token's subject is not an active person")),
            Err(e) => return Err(ApiError::server_error(&e)),
        };
        let mut body = json!({ "sub": user.user_id });
        if let (true, Some(obj)) = (scopes.contains(&"profile"), body.as_object_mut()) {
            obj.insert("preferred_username".to_owned(), json!(user.username));
        }
        Ok(super::oauth::no_store(Json(body).into_response()))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET|POST /oauth2/logout`: ends the session named by `id_token_hint`
/// everywhere (a session revocation every verifier receives), then returns
/// to a registered `post_logout_redirect_uri` or shows a signed-out page.
pub async fn logout(State(auth): State<Arc<Authority>>, req: Request) -> Response {
    let form = if req.method() == Method::POST {
        let (parts, body) = req.into_parts();
        let bytes = match read_body(body, auth.config().limits.max_body_bytes).await {
            Ok(b) => b,
            Err(e) => return error_page(e.status(), e.description()),
        };
        Form::parse(&parts.headers, &bytes)
    } else {
        Form::from_urlencoded(req.uri().query().unwrap_or("").as_bytes())
    };
    let form = match form {
        Ok(f) => f,
        Err(e) => return error_page(e.status(), e.description()),
    };
    let Some(hint) = form.get("id_token_hint") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Sign-out needs the app to name the session (id_token_hint).",
        );
    };
    let claims = match auth.check_id_token_hint(hint) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(reason = %e, "logout: id_token_hint refused");
            return error_page(StatusCode::BAD_REQUEST, "The sign-out request is not valid.");
        }
    };
    if form.get("client_id").is_some_and(|c| c != claims.aud) {
        return error_page(StatusCode::BAD_REQUEST, "The sign-out request names another app.");
    }
    let client = match auth.client(&claims.aud).await {
        Ok(c) => c,
        Err(e) => return error_page(e.status(), "Sign-out is unavailable right now."),
    };
    let target = match form.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => match &client {
            Some(c) if c.post_logout_redirect_uris.iter().any(|r| r == uri) => Some(uri),
            _ => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "The app asked to return to an address it has not registered.",
                )
            }
        },
    };
    match auth.store().get_session(&claims.sid).await {
        Ok(Some(s)) if s.user_id == claims.sub && s.ended_at.is_none() => {
            if let Err(e) = auth.end_session(&s.sid).await {
                return error_page(e.status(), "Sign-out is unavailable right now.");
            }
            tracing::info!(sid = %s.sid, user_id = %s.user_id, "signed out");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "logout: store unavailable");
            return error_page(StatusCode::SERVICE_UNAVAILABLE, "Sign-out is unavailable right now.");
        }
    }
    match target {
        Some(uri) => {
            let mut params = Vec::new();
            if let Some(s) = form.get("state") {
                params.push(("state", s));
            }
            redirect_with(uri, &params)
        }
        None => html(
            StatusCode::OK,
            &MessagePage {
                title: "Signed out",
                message: "You are signed out. You can close this window.",
            },
        ),
    }
}
