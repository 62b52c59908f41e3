//! Sign-in through the upstream OpenID Connect provider: the login page's
//! second button posts here, the browser goes upstream, comes back to the
//! callback, and leaves with our own code, as after a password sign-in.
//!
//! The upstream `state` is the pending request sealed with the master key
//! together with our nonce and PKCE verifier; the callback also requires the
//! login cookie the form was bound to, so a callback cannot be replayed into
//! another browser.

use super::authorize::{complete_sign_in, login_cookie, posted_login_form, redirect_with, PendingLogin};
use super::form::Form;
use super::pages::error_page;
use super::paths;
use crate::federation::UpstreamIdentity;
use crate::secrets::{random_bytes, random_id};
use crate::users::normalize_username;
use crate::Authority;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use castellan_store::{StoreError, UserRecord};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const SEAL_CONTEXT: &str = "castellan/federation-state/v1";
const UNAVAILABLE: &str = "Company sign-in is unavailable right now. Try again shortly.";

#[derive(Serialize, Deserialize)]
struct UpstreamState {
    pending: PendingLogin,
    nonce: String,
    verifier: String,
}

fn callback_uri(auth: &Authority) -> String {
    format!("{}{}", auth.issuer(), paths::FEDERATION_CALLBACK)
}

/// `POST /oauth2/federation/start`.
pub async fn start(State(auth): State<Arc<Authority>>, req: Request) -> Response {
    let Some(fed) = auth.federation() else {
        return error_page(StatusCode::NOT_FOUND, "Company sign-in is not configured.");
    };
    let (_form, pending, _client) = match posted_login_form(&auth, req).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let meta = match fed.metadata().await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "federation: upstream unavailable");
            return error_page(StatusCode::BAD_GATEWAY, UNAVAILABLE);
        }
    };
    let (Ok(nonce), Ok(verifier)) = (random_id(""), random_bytes::<32>()) else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
    };
    let verifier = URL_SAFE_NO_PAD.encode(verifier);
    let challenge =
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
    let state = UpstreamState {
        pending,
        nonce: nonce.clone(),
        verifier,
    };
    let sealed = serde_json::to_vec(&state)
        .ok()
        .and_then(|json| auth.master().seal(SEAL_CONTEXT, &json).ok())
        .map(|s| URL_SAFE_NO_PAD.encode(s));
    let Some(sealed) = sealed else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
    };
    let callback = callback_uri(&auth);
    redirect_with(
        &meta.authorization_endpoint,
        &[
            ("response_type", "code"),
            ("client_id", &fed.config().client_id),
            ("redirect_uri", &callback),
            ("scope", "openid profile"),
            ("state", &sealed),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
}

/// `GET /oauth2/federation/callback`.
pub async fn callback(State(auth): State<Arc<Authority>>, req: Request) -> Response {
    let Some(fed) = auth.federation() else {
        return error_page(StatusCode::NOT_FOUND, "Company sign-in is not configured.");
    };
    let query = Form::from_urlencoded(req.uri().query().unwrap_or("").as_bytes());
    let cookie = login_cookie(req.headers());
    drop(req);
    let query = match query {
        Ok(q) => q,
        Err(e) => return error_page(e.status(), e.description()),
    };
    let expired = || {
        error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired. Go back to the app and start again.",
        )
    };
    let state: Option<UpstreamState> = query
        .get("state")
        .filter(|s| s.len() <= 16 * 1024)
        .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        .and_then(|sealed| auth.master().open(SEAL_CONTEXT, &sealed).ok())
        .and_then(|json| serde_json::from_slice(&json).ok());
    let Some(state) = state else {
        return expired();
    };
    if state.pending.exp <= auth.now() {
        return expired();
    }
    let bound = cookie.is_some_and(|c| {
        aws_lc_rs::constant_time::verify_slices_are_equal(c.as_bytes(), state.pending.binding.as_bytes()).is_ok()
    });
    if !bound {
        return error_page(
            StatusCode::FORBIDDEN,
            "This sign-in belongs to another browser session. Go back to the app and start again.",
        );
    }
    if let Some(error) = query.get("error") {
        let shown: String = error.chars().take(64).collect();
        tracing::info!(error = %shown, "federation: upstream refused the sign-in");
        return error_page(StatusCode::UNAUTHORIZED, "Company sign-in did not complete.");
    }
    // RFC 9207: a response naming another issuer is a mix-up attack.
    if let Some(iss) = query.get("iss") {
        if iss.trim_end_matches('/') != fed.config().issuer.trim_end_matches('/') {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The sign-in response came from an unexpected provider.",
            );
        }
    }
    let Some(code) = query.get("code") else {
        return error_page(StatusCode::BAD_REQUEST, "The sign-in response has no code.");
    };
    let identity = match fed
        .exchange(
            code,
            &callback_uri(&auth),
            &state.verifier,
            &state.nonce,
            auth.now(),
            auth.leeway(),
        )
        .await
    {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "federation: upstream sign-in refused");
            metrics::counter!("castellan_signins_total", "outcome" => "federation_failure").increment(1);
            auth.audit(super::authorize::signin_failure(
                "",
                &state.pending.client_id,
                "federation",
                "upstream identity not verified",
                None,
            ))
            .await;
            return error_page(StatusCode::BAD_GATEWAY, "Company sign-in could not be verified.");
        }
    };
    let user = match linked_user(&auth, &identity).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            auth.audit(super::authorize::signin_failure(
                &format!("upstream:{}", identity.subject),
                &state.pending.client_id,
                "federation",
                "no linked account",
                None,
            ))
            .await;
            return error_page(
                StatusCode::FORBIDDEN,
                "No account here is linked to your company identity. Ask an administrator.",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "federation: store unavailable");
            return error_page(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        }
    };
    if user.suspended {
        tracing::info!(user_id = %user.user_id, "federation: suspended account refused");
        auth.audit(super::authorize::signin_failure(
            &crate::audit::user_actor(&user.user_id),
            &state.pending.client_id,
            "federation",
            "suspended",
            None,
        ))
        .await;
        return error_page(StatusCode::FORBIDDEN, "This account cannot sign in.");
    }
    complete_sign_in(&auth, &state.pending, &user, "federation", None).await
}

/// The local person linked to the upstream identity; created on first
/// sign-in when `federation.create_users` is on.
async fn linked_user(auth: &Authority, id: &UpstreamIdentity) -> Result<Option<UserRecord>, String> {
    if let Some(u) = auth
        .store()
        .get_user_by_federated(&id.issuer, &id.subject)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(Some(u));
    }
    if !auth.federation().is_some_and(|f| f.config().create_users) {
        return Ok(None);
    }
    let base = id
        .preferred_username
        .as_deref()
        .and_then(normalize_username)
        .unwrap_or_else(|| "user".to_owned());
    for attempt in 0..5 {
        let username = if attempt == 0 {
            base.clone()
        } else {
            let suffix = random_id("").map_err(|e| e.to_string())?;
            let mut name: String = base.chars().take(48).collect();
            name.push('-');
            name.extend(suffix.chars().take(8).map(|c| c.to_ascii_lowercase()));
            name
        };
        let user = UserRecord {
            user_id: random_id("u-").map_err(|e| e.to_string())?,
            username,
            password_hash: None,
            suspended: false,
            created_at: auth.now(),
            federated_issuer: Some(id.issuer.clone()),
            federated_subject: Some(id.subject.clone()),
        };
        match auth.store().insert_user(&user).await {
            Ok(()) => {
                tracing::info!(user_id = %user.user_id, username = %user.username, "federated person created");
                return Ok(Some(user));
            }
            Err(StoreError::Conflict { .. }) => {
                // Same upstream identity created concurrently, or the name is taken.
                if let Some(u) = auth
                    .store()
                    .get_user_by_federated(&id.issuer, &id.subject)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Ok(Some(u));
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(None)
}
