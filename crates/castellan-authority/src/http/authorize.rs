//! The authorization endpoint (OAuth 2.1 authorization code with PKCE S256)
//! and the login page it shows.
//!
//! The pending request travels inside the login form, sealed with the
//! master key (so it cannot be forged or altered) and bound to a random
//! value in an `HttpOnly`, `SameSite=Lax` cookie (so another site cannot
//! post the form for the person: CSRF protection without server state).

use super::form::{read_body, Form};
use super::pages::{error_page, html, LoginPage};
use super::paths;
use crate::secrets::{random_bytes, random_id};
use crate::throttle::Verdict;
use crate::Authority;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use castellan_store::{AuthCodeRecord, ClientRecord, SessionRecord, UserRecord};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Name of the cookie that binds a login form to the browser it was shown in.
pub const LOGIN_COOKIE: &str = "castellan_login";
/// The one message for an unknown name, a wrong password or a suspended account.
pub const BAD_CREDENTIALS: &str = "Incorrect username or password.";
const SEAL_CONTEXT: &str = "castellan/login-request/v1";
/// Scopes any app may ask for besides its registered ones.
pub const OIDC_SCOPES: [&str; 3] = ["openid", "profile", "offline_access"];

/// An authorization request waiting for the person to sign in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The app.
    pub client_id: String,
    /// Where the code goes (already matched against the registration).
    pub redirect_uri: String,
    /// Granted scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The app's `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The app's `nonce`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// The service the access tokens are for.
    pub audience: String,
    /// The form expires.
    pub exp: i64,
    /// Must equal the login cookie.
    pub binding: String,
}

impl PendingLogin {
    /// Seals into the hidden form field.
    pub fn seal(&self, auth: &Authority) -> Result<String, String> {
        let json = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        let sealed = auth.master().seal(SEAL_CONTEXT, &json).map_err(|e| e.to_string())?;
        Ok(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Opens the hidden form field; `None` if forged, altered or expired.
    pub fn open(auth: &Authority, field: &str) -> Option<Self> {
        if field.len() > 8 * 1024 {
            return None;
        }
        let sealed = URL_SAFE_NO_PAD.decode(field).ok()?;
        let json = auth.master().open(SEAL_CONTEXT, &sealed).ok()?;
        let p: Self = serde_json::from_slice(&json).ok()?;
        (p.exp > auth.now()).then_some(p)
    }
}

/// The login cookie's value, if the browser sent a well-formed one.
pub fn login_cookie(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, LOGIN_COOKIE).filter(|v| v.len() == 43)
}

/// The value of cookie `name`, if the browser sent one of base64url characters.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

fn set_cookie(auth: &Authority, value: &str) -> Option<HeaderValue> {
    let secure = if auth.issuer().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={value}; Path=/oauth2; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        auth.config().sessions.login_page_ttl.secs()
    ))
    .ok()
}

/// Where a sign-in attempt comes from, for the per-source throttle.
pub fn source_ip(auth: &Authority, req: &Request) -> IpAddr {
    if auth.config().signin.trust_forwarded_for {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// A 303 to `uri` with `params` appended to its query.
pub fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else {
        return error_page(StatusCode::BAD_REQUEST, "The app's redirect address is not valid.");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Sends an OAuth error back to the app (RFC 6749 §4.1.2.1, RFC 9207 `iss`).
fn redirect_error(
    auth: &Authority,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    let mut params = vec![
        ("error", error),
        ("error_description", description),
        ("iss", auth.issuer()),
    ];
    if let Some(s) = state {
        params.push(("state", s));
    }
    redirect_with(redirect_uri, &params)
}

fn valid_challenge(c: &str) -> bool {
    c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The scopes granted at the authorization endpoint: the client's own plus
/// the OpenID ones, in request order, without repeats.
pub fn authorize_scope(client: &ClientRecord, requested: Option<&str>) -> Result<Option<String>, String> {
    let Some(requested) = requested else {
        return Ok(None);
    };
    let mut granted: Vec<&str> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        let ok = client.scopes.iter().any(|c| c == s) || OIDC_SCOPES.contains(&s);
        if !ok {
            let shown: String = s.chars().take(64).collect();
            return Err(format!("scope `{shown}` not allowed for this client"));
        }
        if !granted.contains(&s) {
            granted.push(s);
        }
    }
    Ok((!granted.is_empty()).then(|| granted.join(" ")))
}

/// `GET /oauth2/authorize`.
pub async fn authorize(State(auth): State<Arc<Authority>>, req: Request) -> Response {
    let query = req.uri().query().unwrap_or("").to_owned();
    let cookie = login_cookie(req.headers());
    let form = match Form::from_urlencoded(query.as_bytes()) {
        Ok(f) => f,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, e.description()),
    };
    let Some(client_id) = form.get("client_id") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The request names no app (client_id is missing).",
        );
    };
    let client = match auth.client(client_id).await {
        Ok(Some(c)) if !c.redirect_uris.is_empty() => c,
        Ok(_) => return error_page(StatusCode::BAD_REQUEST, "This app is not registered for sign-in."),
        Err(e) => return error_page(e.status(), "Sign-in is unavailable right now. Try again shortly."),
    };
    let Some(redirect_uri) = form.get("redirect_uri") else {
        return error_page(StatusCode::BAD_REQUEST, "The request has no redirect_uri.");
    };
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The app asked to return to an address it has not registered.",
        );
    }
    // From here on, errors go back to the app.
    let state = form.get("state");
    let fail = |error: &str, description: &str| redirect_error(&auth, redirect_uri, state, error, description);
    if state.is_some_and(|s| s.len() > 1024) || form.get("nonce").is_some_and(|n| n.len() > 256) {
        return fail("invalid_request", "state or nonce is too long");
    }
    match form.get("response_type") {
        Some("code") => {}
        Some(_) => return fail("unsupported_response_type", "only response_type=code is supported"),
        None => return fail("invalid_request", "response_type is required"),
    }
    if form.get("request").is_some() || form.get("request_uri").is_some() {
        return fail("request_not_supported", "request objects are not supported");
    }
    let Some(challenge) = form.get("code_challenge") else {
        return fail("invalid_request", "code_challenge is required (PKCE with S256)");
    };
    if form.get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if !valid_challenge(challenge) {
        return fail("invalid_request", "code_challenge must be 43 base64url characters");
    }
    let scope = match authorize_scope(&client, form.get("scope")) {
        Ok(s) => s,
        Err(d) => return fail("invalid_scope", &d),
    };
    let audience = match super::oauth::choose_audience_from(&auth, &client, &form.audiences()) {
        Ok(a) => a,
        Err(e) => return fail("invalid_target", e.description()),
    };
    if form.get("prompt").is_some_and(|p| p.split(' ').any(|p| p == "none")) {
        return fail("login_required", "the person must sign in");
    }
    let binding = match cookie {
        Some(c) => c,
        None => match random_bytes::<32>() {
            Ok(b) => URL_SAFE_NO_PAD.encode(b),
            Err(_) => return error_page(StatusCode::SERVICE_UNAVAILABLE, "Sign-in is unavailable right now."),
        },
    };
    let pending = PendingLogin {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: state.map(str::to_owned),
        nonce: form.get("nonce").map(str::to_owned),
        code_challenge: challenge.to_owned(),
        audience,
        exp: auth.now().saturating_add(auth.config().sessions.login_page_ttl.secs()),
        binding: binding.clone(),
    };
    login_page(&auth, &client, &pending, StatusCode::OK, "", "", Some(&binding))
}

/// Renders the login page for a pending request.
pub fn login_page(
    auth: &Authority,
    client: &ClientRecord,
    pending: &PendingLogin,
    status: StatusCode,
    error: &str,
    username: &str,
    set_binding: Option<&str>,
) -> Response {
    let Ok(sealed) = pending.seal(auth) else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, "Sign-in is unavailable right now.");
    };
    let action = format!("{}{}", auth.issuer(), paths::LOGIN);
    let federation_action = format!("{}{}", auth.issuer(), paths::FEDERATION_START);
    let federation_name = auth
        .config()
        .federation
        .as_ref()
        .map_or("", |f| f.display_name.as_str());
    let mut resp = html(
        status,
        &LoginPage {
            app_name: &client.name,
            error,
            action: &action,
            request: &sealed,
            username,
            federation_name,
            federation_action: &federation_action,
        },
    );
    if let Some(v) = set_binding.and_then(|b| set_cookie(auth, b)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// Refuses posts another site made the browser send. Browsers that send
/// `Sec-Fetch-Site` are judged by it alone (our own page posts `same-origin`);
/// for others an `Origin` other than ours refuses. `Origin: null` is left to
/// the cookie binding, which is the real CSRF defence.
pub(crate) fn cross_site(auth: &Authority, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site != "same-origin";
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == "null" {
        return false;
    }
    let ours = url::Url::parse(auth.issuer()).map(|u| u.origin().ascii_serialization());
    !matches!(ours, Ok(o) if o == origin)
}

/// Opens the sealed request of a posted form and checks its binding cookie.
pub async fn pending_from_form(
    auth: &Authority,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(PendingLogin, ClientRecord), Response> {
    if cross_site(auth, headers) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "This form was sent from another site.",
        ));
    }
    let expired = || {
        error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in page has expired. Go back to the app and start again.",
        )
    };
    let pending = form
        .get("request")
        .and_then(|r| PendingLogin::open(auth, r))
        .ok_or_else(expired)?;
    let cookie = login_cookie(headers).ok_or_else(expired)?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(cookie.as_bytes(), pending.binding.as_bytes()).is_err() {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "This sign-in form belongs to another browser session. Go back to the app and start again.",
        ));
    }
    let client = match auth.client(&pending.client_id).await {
        Ok(Some(c)) if c.redirect_uris.contains(&pending.redirect_uri) => c,
        Ok(_) => {
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                "This app is no longer registered for sign-in.",
            ))
        }
        Err(e) => {
            return Err(error_page(
                e.status(),
                "Sign-in is unavailable right now. Try again shortly.",
            ))
        }
    };
    Ok((pending, client))
}

/// Reads a form posted from the login page (the login itself, or the
/// federated sign-in button) and opens its sealed request. Failures are
/// error pages.
pub async fn posted_login_form(auth: &Authority, req: Request) -> Result<(Form, PendingLogin, ClientRecord), Response> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, auth.config().limits.max_body_bytes)
        .await
        .map_err(|e| error_page(e.status(), e.description()))?;
    let form = Form::parse(&parts.headers, &bytes).map_err(|e| error_page(e.status(), e.description()))?;
    let (pending, client) = pending_from_form(auth, &parts.headers, &form).await?;
    Ok((form, pending, client))
}

/// `POST /oauth2/login`: the login form.
pub async fn login(State(auth): State<Arc<Authority>>, req: Request) -> Response {
    let source = source_ip(&auth, &req);
    let (form, pending, client) = match posted_login_form(&auth, req).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let username = form.get("username").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    let shown_name: String = username.chars().take(64).collect();
    let again = |status: StatusCode, msg: &str| login_page(&auth, &client, &pending, status, msg, &shown_name, None);
    let now = auth.now();
    match auth.throttle().check(source, username, now) {
        Verdict::Allowed => {}
        Verdict::SourceLimited { retry_after }
        | Verdict::AccountDelayed { retry_after }
        | Verdict::AccountLocked { retry_after } => {
            let mut resp = again(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many attempts. Try again in {retry_after} seconds."),
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
    }
    let user = match crate::users::normalize_username(username) {
        Some(name) => match auth.store().get_user_by_name(&name).await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "sign-in: store unavailable");
                return again(StatusCode::SERVICE_UNAVAILABLE, "Sign-in is unavailable right now.");
            }
        },
        None => None,
    };
    let ok = match auth
        .passwords()
        .verify(password, user.as_ref().and_then(|u| u.password_hash.as_deref()))
        .await
    {
        Ok(ok) => ok,
        Err(e) => {
            tracing::error!(error = %e, "sign-in: password check failed");
            return again(StatusCode::SERVICE_UNAVAILABLE, "Sign-in is unavailable right now.");
        }
    };
    let user = match user {
        Some(u) if ok && !u.suspended => u,
        other => {
            auth.throttle().failure(username, now);
            let reason = match other {
                None => "unknown user",
                Some(u) if u.suspended => "suspended",
                Some(_) => "wrong password",
            };
            metrics::counter!("castellan_signins_total", "outcome" => "failure").increment(1);
            tracing::info!(reason, %source, "sign-in refused");
            // The name tried, never the password; text that cannot be a
            // username (a password typed into the wrong field, say) is not kept.
            let tried = match crate::users::normalize_username(username) {
                Some(name) => format!("username:{name}"),
                None => "username:(not a valid username)".to_owned(),
            };
            auth.audit(signin_failure(
                &tried,
                &client.client_id,
                "password",
                reason,
                Some(source),
            ))
            .await;
            return again(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS);
        }
    };
    auth.throttle().success(username);
    complete_sign_in(&auth, &pending, &user, "password", Some(source)).await
}

/// The audit event of a refused sign-in: no one is known to have acted.
pub fn signin_failure(
    target: &str,
    client_id: &str,
    method: &str,
    reason: &str,
    source: Option<IpAddr>,
) -> crate::audit::AuditEntry {
    crate::audit::AuditEntry::new("anonymous", "signin", target)
        .outcome(crate::audit::Outcome::Failure)
        .detail(serde_json::json!({
            "client_id": client_id,
            "method": method,
            "reason": reason,
            "source": source.map(|s| s.to_string()),
        }))
}

/// Starts a session for `user` and sends the browser back with a code.
pub async fn complete_sign_in(
    auth: &Authority,
    pending: &PendingLogin,
    user: &UserRecord,
    method: &str,
    source: Option<IpAddr>,
) -> Response {
    let unavailable = || error_page(StatusCode::SERVICE_UNAVAILABLE, "Sign-in is unavailable right now.");
    let (Ok(sid), Ok(code)) = (random_id(""), random_bytes::<32>()) else {
        return unavailable();
    };
    let code = URL_SAFE_NO_PAD.encode(code);
    let now = auth.now();
    let s = &auth.config().sessions;
    let session = SessionRecord {
        sid: sid.clone(),
        user_id: user.user_id.clone(),
        client_id: pending.client_id.clone(),
        audience: pending.audience.clone(),
        scope: pending.scope.clone(),
        auth_time: now,
        created_at: now,
        last_used_at: now,
        expires_at: now.saturating_add(s.absolute_lifetime.secs()),
        ended_at: None,
    };
    let record = AuthCodeRecord {
        code_hash: auth.master().hash_secret(&code),
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        code_challenge: pending.code_challenge.clone(),
        sid: sid.clone(),
        user_id: user.user_id.clone(),
        nonce: pending.nonce.clone(),
        auth_time: now,
        expires_at: now.saturating_add(s.code_ttl.secs()),
    };
    if let Err(e) = auth.store().begin_session(&session, &record).await {
        tracing::error!(error = %e, "sign-in: session not stored");
        return unavailable();
    }
    metrics::counter!("castellan_signins_total", "outcome" => "success").increment(1);
    tracing::info!(user_id = %user.user_id, client_id = %pending.client_id, %sid, "signed in");
    auth.audit(
        crate::audit::AuditEntry::new(
            crate::audit::user_actor(&user.user_id),
            "signin",
            crate::audit::client_actor(&pending.client_id),
        )
        .detail(serde_json::json!({
            "username": user.username,
            "method": method,
            "sid": sid,
            "source": source.map(|s| s.to_string()),
        })),
    )
    .await;
    let mut params = vec![("code", code.as_str()), ("iss", auth.issuer())];
    if let Some(s) = &pending.state {
        params.push(("state", s.as_str()));
    }
    redirect_with(&pending.redirect_uri, &params)
}
