//! Signing in to the console through the authority's own authorization
//! endpoint (code flow, PKCE S256), and signing out.

use super::session::{self, ConsoleSession, SignInFlow, MAX_LIFETIME};
use super::{client_record, not_found, render, MessagePage, CALLBACK_PATH, CONSOLE_PATH};
use crate::audit::{user_actor, AuditEntry, Outcome};
use crate::http::authorize::redirect_with;
use crate::http::form::Form;
use crate::http::paths;
use crate::secrets::random_bytes;
use crate::Authority;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::sync::Arc;

fn random_token() -> Option<String> {
    random_bytes::<32>().ok().map(|b| URL_SAFE_NO_PAD.encode(b))
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    render(
        status,
        &MessagePage::bare(title, message, &format!("{CONSOLE_PATH}/login"), "Sign in again"),
    )
}

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Console unavailable",
        "The console cannot sign anyone in right now. Try again shortly.",
    )
}

/// `GET /admin/login`: starts a sign-in at the authorization endpoint.
pub async fn start(State(auth): State<Arc<Authority>>) -> Response {
    let console = &auth.config().console;
    if !console.enabled {
        return not_found();
    }
    if console.admins.is_empty() {
        return render(
            StatusCode::FORBIDDEN,
            &MessagePage::bare(
                "The console has no admins",
                "Nobody may use the admin console yet. Name the people who may in the \
                 authority's configuration, `[console] admins = [\"username\"]` (or \
                 CASTELLAN_CONSOLE__ADMINS=username), and restart it. See docs/console.md.",
                "",
                "",
            ),
        );
    }
    let (Some(state), Some(verifier)) = (random_token(), random_token()) else {
        return unavailable();
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(digest.as_ref());
    let flow = SignInFlow {
        state: state.clone(),
        verifier,
        exp: auth.now().saturating_add(auth.config().sessions.login_page_ttl.secs()),
    };
    let Some(cookie) = session::flow_cookie(&auth, &flow) else {
        return unavailable();
    };
    let client = client_record(&auth);
    let redirect_uri = format!("{}{CALLBACK_PATH}", auth.issuer());
    let mut resp = redirect_with(
        &format!("{}{}", auth.issuer(), paths::AUTHORIZE),
        &[
            ("response_type", "code"),
            ("client_id", &client.client_id),
            ("redirect_uri", &redirect_uri),
            ("scope", "openid"),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

/// `GET /admin/callback`: checks the state, redeems the code in-process
/// (the token endpoint's own code path), checks the person is a console
/// admin, and starts the console session.
pub async fn callback(State(auth): State<Arc<Authority>>, req: Request) -> Response {
    if !auth.config().console.enabled {
        return not_found();
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let Ok(params) = Form::from_urlencoded(query.as_bytes()) else {
        return page(StatusCode::BAD_REQUEST, "Sign-in failed", "The answer was malformed.");
    };
    let Some(flow) = session::flow_of(&auth, req.headers()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in is no longer valid in this browser. Start again.",
        );
    };
    let state_ok = params.get("state").is_some_and(|s| {
        aws_lc_rs::constant_time::verify_slices_are_equal(s.as_bytes(), flow.state.as_bytes()).is_ok()
    });
    if !state_ok {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The answer does not belong to the sign-in this browser started.",
        );
    }
    if params.get("iss").is_some_and(|i| i != auth.issuer()) {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The answer came from another issuer.",
        );
    }
    if let Some(error) = params.get("error") {
        let shown: String = error.chars().take(64).collect();
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            &format!("The authorization endpoint answered `{shown}`."),
        );
    }
    let redirect_uri = format!("{}{CALLBACK_PATH}", auth.issuer());
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", params.get("code").unwrap_or(""))
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("code_verifier", &flow.verifier)
        .finish();
    let Ok(form) = Form::from_urlencoded(body.as_bytes()) else {
        return page(StatusCode::BAD_REQUEST, "Sign-in failed", "The answer was malformed.");
    };
    let redeemed = match crate::http::grants::redeem_code(&auth, &client_record(&auth), &form).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = %e.description(), "console sign-in: code refused");
            return page(
                e.status(),
                "Sign-in failed",
                "The sign-in could not be completed. Start again.",
            );
        }
    };
    let (user, oidc) = (redeemed.user, redeemed.session);
    if !auth.config().console.is_admin_user(&user) {
        if let Err(e) = auth.end_session(&oidc.sid).await {
            tracing::warn!(error = %e.description(), "console sign-in: session not ended");
        }
        auth.audit(AuditEntry::new(user_actor(&user.user_id), "console.signin", "console").outcome(Outcome::Failure))
            .await;
        let mut resp = page(
            StatusCode::FORBIDDEN,
            "Not a console admin",
            &if user.federated_issuer.is_some() {
                format!(
                    "{} signed in through federation. Console admins are local accounts \
                     with a password; federated accounts cannot use the console.",
                    user.username
                )
            } else {
                format!(
                    "{} signed in, but is not one of the console's admins. An admin of this \
                     authority can add the name to `[console] admins`.",
                    user.username
                )
            },
        );
        session::clear_cookies(&auth, &mut resp);
        return resp;
    }
    let Some(csrf) = random_token() else {
        return unavailable();
    };
    let now = auth.now();
    let console = ConsoleSession {
        user_id: user.user_id.clone(),
        sid: oidc.sid.clone(),
        csrf,
        exp: now.saturating_add(MAX_LIFETIME).min(oidc.expires_at),
        seen: now,
    };
    let Some(cookie) = session::session_cookie(&auth, &console) else {
        return unavailable();
    };
    auth.audit(AuditEntry::new(user_actor(&user.user_id), "console.signin", "console"))
        .await;
    tracing::info!(user_id = %user.user_id, sid = %oidc.sid, "console: signed in");
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(CONSOLE_PATH));
    if let Some(clear) = session::cookie(&auth, session::FLOW_COOKIE, "", 0) {
        resp.headers_mut().append(header::SET_COOKIE, clear);
    }
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

/// `POST /admin/logout`: ends the session everywhere and forgets the cookie.
pub async fn logout(State(auth): State<Arc<Authority>>, req: Request) -> Response {
    let (admin, _) = match session::posted(&auth, req).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let outcome = match auth.end_session(&admin.session.sid).await {
        Ok(_) => Outcome::Success,
        Err(e) => {
            tracing::warn!(error = %e.description(), "console sign-out: session not ended");
            Outcome::Failure
        }
    };
    auth.audit(
        AuditEntry::new(
            admin.actor(),
            "console.signout",
            format!("session:{}", admin.session.sid),
        )
        .outcome(outcome),
    )
    .await;
    let mut resp = render(
        StatusCode::OK,
        &MessagePage::bare(
            "Signed out",
            "You have signed out of the console.",
            &format!("{CONSOLE_PATH}/login"),
            "Sign in again",
        ),
    );
    session::clear_cookies(&auth, &mut resp);
    resp
}
