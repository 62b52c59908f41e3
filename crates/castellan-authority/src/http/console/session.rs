//! The console session: a cookie sealed with the master key (as the login
//! page's pending request is) naming the person, their OIDC session, a CSRF
//! token and two deadlines. Every request checks it again against the store:
//! the session still live, the person not suspended and still an admin.

use super::{render, MessagePage, CONSOLE_PATH};
use crate::http::authorize::{cookie_value, cross_site};
use crate::http::form::{read_body, Form};
use crate::Authority;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use castellan_store::UserRecord;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The session cookie.
pub const SESSION_COOKIE: &str = "castellan_console";
/// The cookie that carries a sign-in under way (state and PKCE verifier).
pub const FLOW_COOKIE: &str = "castellan_console_signin";
/// The longest a console session lasts, seconds.
pub const MAX_LIFETIME: i64 = 8 * 3_600;
/// A console session unused this long ends, seconds.
pub const IDLE_TIMEOUT: i64 = 30 * 60;
/// The form field and header that carry the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// The header htmx requests carry the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
const SESSION_CONTEXT: &str = "castellan/console-session/v1";
const FLOW_CONTEXT: &str = "castellan/console-signin/v1";
const MAX_COOKIE: usize = 4 * 1024;

/// What the session cookie holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleSession {
    /// The person.
    pub user_id: String,
    /// Their OIDC session at the authority (ended on sign-out).
    pub sid: String,
    /// Every state-changing request carries it.
    pub csrf: String,
    /// Absolute end.
    pub exp: i64,
    /// Last request (the idle timeout counts from here).
    pub seen: i64,
}

/// A sign-in under way: what `/admin/callback` checks the answer against.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignInFlow {
    /// The `state` sent to the authorization endpoint.
    pub state: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// The flow expires.
    pub exp: i64,
}

fn seal<T: Serialize>(auth: &Authority, context: &str, value: &T) -> Option<String> {
    let json = serde_json::to_vec(value).ok()?;
    let sealed = auth.master().seal(context, &json).ok()?;
    Some(URL_SAFE_NO_PAD.encode(sealed))
}

fn open<T: DeserializeOwned>(auth: &Authority, context: &str, text: &str) -> Option<T> {
    if text.len() > MAX_COOKIE {
        return None;
    }
    let sealed = URL_SAFE_NO_PAD.decode(text).ok()?;
    let json = auth.master().open(context, &sealed).ok()?;
    serde_json::from_slice(&json).ok()
}

/// A `Set-Cookie` value for a console cookie: `HttpOnly`, `SameSite=Lax`,
/// `Path=/admin`, `Secure` when the issuer is https; `max_age` 0 clears it.
pub fn cookie(auth: &Authority, name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    let secure = if auth.issuer().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={CONSOLE_PATH}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        max_age.max(0)
    ))
    .ok()
}

/// The cookie for a sign-in under way.
pub fn flow_cookie(auth: &Authority, flow: &SignInFlow) -> Option<HeaderValue> {
    let value = seal(auth, FLOW_CONTEXT, flow)?;
    cookie(auth, FLOW_COOKIE, &value, flow.exp.saturating_sub(auth.now()))
}

/// The sign-in under way, if the browser holds a valid, unexpired one.
pub fn flow_of(auth: &Authority, headers: &HeaderMap) -> Option<SignInFlow> {
    let flow: SignInFlow = open(auth, FLOW_CONTEXT, &cookie_value(headers, FLOW_COOKIE)?)?;
    (flow.exp > auth.now()).then_some(flow)
}

/// The session cookie.
pub fn session_cookie(auth: &Authority, session: &ConsoleSession) -> Option<HeaderValue> {
    let value = seal(auth, SESSION_CONTEXT, session)?;
    let now = auth.now();
    let max_age = session.exp.min(now.saturating_add(IDLE_TIMEOUT)).saturating_sub(now);
    cookie(auth, SESSION_COOKIE, &value, max_age)
}

/// Both console cookies cleared.
pub fn clear_cookies(auth: &Authority, resp: &mut Response) {
    for name in [SESSION_COOKIE, FLOW_COOKIE] {
        if let Some(v) = cookie(auth, name, "", 0) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
}

/// A signed-in console admin, checked against the store on this request.
pub struct Admin {
    /// The person.
    pub user: UserRecord,
    /// Their console session, `seen` moved to now.
    pub session: ConsoleSession,
}

impl Admin {
    /// The audit actor, `user:<id>`.
    pub fn actor(&self) -> String {
        crate::audit::user_actor(&self.user.user_id)
    }

    /// `resp` with the session cookie renewed (the idle timeout restarts).
    pub fn respond(&self, auth: &Authority, mut resp: Response) -> Response {
        if let Some(v) = session_cookie(auth, &self.session) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    }
}

/// Sends the browser to sign in (htmx requests get `HX-Redirect`), dropping the session cookie.
pub fn to_sign_in(auth: &Authority, headers: &HeaderMap) -> Response {
    let target = format!("{CONSOLE_PATH}/login");
    let mut resp = if headers.contains_key("hx-request") {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            r.headers_mut().insert("hx-redirect", v);
        }
        r
    } else {
        let mut r = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    };
    if let Some(v) = cookie(auth, SESSION_COOKIE, "", 0) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Why a console session is no longer good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No cookie, a forged or expired one, or its OIDC session has ended.
    NoSession,
    /// The console session is fine but must end (idle, suspended, no longer admin).
    End,
    /// The store could not answer: nothing is known, nothing changes.
    Unavailable,
}

async fn check(auth: &Authority, headers: &HeaderMap) -> Result<Admin, (Refusal, Option<String>)> {
    let session: ConsoleSession = cookie_value(headers, SESSION_COOKIE)
        .and_then(|c| open(auth, SESSION_CONTEXT, &c))
        .ok_or((Refusal::NoSession, None))?;
    let now = auth.now();
    let store_failed = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "console: store unavailable");
        (Refusal::Unavailable, None)
    };
    // The store first: a session that has already ended is simply gone, so
    // replaying an old cookie ends (and revokes) nothing a second time.
    let stored = match auth.store().get_session(&session.sid).await {
        Ok(Some(s)) if s.ended_at.is_none() && s.user_id == session.user_id => s,
        Ok(_) => return Err((Refusal::NoSession, None)),
        Err(e) => return Err(store_failed(&e)),
    };
    let end = |why: &'static str| {
        tracing::info!(user_id = %session.user_id, sid = %session.sid, why, "console session ends");
        (Refusal::End, Some(session.sid.clone()))
    };
    if session.exp <= now || stored.expires_at <= now {
        return Err(end("lifetime reached"));
    }
    if now.saturating_sub(session.seen) > IDLE_TIMEOUT {
        return Err(end("idle too long"));
    }
    let user = match auth.store().get_user(&session.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(end("person deleted")),
        Err(e) => return Err(store_failed(&e)),
    };
    if user.suspended {
        return Err(end("person suspended"));
    }
    if !auth.config().console.is_admin_user(&user) {
        return Err(end("no longer a console admin"));
    }
    Ok(Admin {
        user,
        session: ConsoleSession { seen: now, ..session },
    })
}

/// The store cannot answer: a 503 page, the session cookie left alone (the
/// admin is still signed in once the store is back).
pub fn unavailable() -> Response {
    let mut resp = render(
        StatusCode::SERVICE_UNAVAILABLE,
        &MessagePage::bare(
            "Console unavailable",
            "The console cannot check your session right now: its store is not answering. \
             You are still signed in; try again shortly.",
            "",
            "",
        ),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}

/// The console admin of this request, or the answer that sends them to sign in.
pub async fn require(auth: &Authority, headers: &HeaderMap) -> Result<Admin, Response> {
    if !auth.config().console.enabled {
        return Err(super::not_found());
    }
    match check(auth, headers).await {
        Ok(admin) => Ok(admin),
        Err((Refusal::Unavailable, _)) => Err(unavailable()),
        Err((refusal, sid)) => {
            if let (Refusal::End, Some(sid)) = (refusal, sid) {
                if let Err(e) = auth.end_session(&sid).await {
                    tracing::warn!(error = %e.description(), "console: session not ended");
                }
            }
            Err(to_sign_in(auth, headers))
        }
    }
}

/// A forbidden page (the request changed nothing).
pub fn forbidden(message: &str) -> Response {
    render(
        StatusCode::FORBIDDEN,
        &MessagePage::bare("Refused", message, &format!("{CONSOLE_PATH}/"), "Back to the console"),
    )
}

/// A state-changing request: the admin, the form, after the CSRF checks
/// (same-origin request, and the session's token in the form or header,
/// compared in constant time).
pub async fn posted(auth: &Authority, req: Request) -> Result<(Admin, Form), Response> {
    let (parts, body) = req.into_parts();
    let admin = require(auth, &parts.headers).await?;
    if cross_site(auth, &parts.headers) {
        return Err(forbidden("This form was sent from another site."));
    }
    let bytes = read_body(body, auth.config().limits.max_body_bytes)
        .await
        .map_err(|e| render(e.status(), &MessagePage::bare("Refused", e.description(), "", "")))?;
    let form = Form::parse(&parts.headers, &bytes)
        .map_err(|e| render(e.status(), &MessagePage::bare("Refused", e.description(), "", "")))?;
    let presented = form
        .get(CSRF_FIELD)
        .or_else(|| parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    if aws_lc_rs::constant_time::verify_slices_are_equal(presented.as_bytes(), admin.session.csrf.as_bytes()).is_err() {
        tracing::warn!(user_id = %admin.user.user_id, "console: request without the session's CSRF token refused");
        return Err(forbidden(
            "This request did not carry the console's anti-forgery token. Reload the page and try again.",
        ));
    }
    Ok((admin, form))
}
