//! The admin console at `/admin`: server-rendered pages (askama), improved
//! by htmx when JavaScript runs and complete without it. People sign in
//! through the authority's own authorization-code flow (PKCE) as the
//! virtual public client [`CLIENT_ID`]; the console's power comes from its
//! session cookie and `[console] admins`, never from tokens. See
//! `docs/console.md`.

mod actions;
mod pages;
mod session;
mod signin;

use crate::Authority;
use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use castellan_store::ClientRecord;
use std::sync::{Arc, OnceLock};

/// The id of the console's own sign-in client (virtual: never stored).
pub const CLIENT_ID: &str = "castellan-console";
/// Where the console lives, relative to the issuer.
pub const CONSOLE_PATH: &str = "/admin";
/// Where the authorization endpoint sends the browser back, relative to the issuer.
pub const CALLBACK_PATH: &str = "/admin/callback";

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const HTMX: &str = include_str!("../../../assets/htmx.min.js");
const CSS: &str = include_str!("../../../assets/console.css");
const ICON: &str = include_str!("../../../assets/console-icon.svg");

/// The console's sign-in client: public (PKCE), its one redirect URI the
/// console's callback, its one audience the console itself, no scopes of
/// its own, not an admin client.
pub fn client_record(auth: &Authority) -> ClientRecord {
    ClientRecord {
        client_id: CLIENT_ID.to_owned(),
        name: "Castellan admin console".to_owned(),
        secret_hash: None,
        audiences: vec![format!("{}{CONSOLE_PATH}", auth.issuer())],
        scopes: Vec::new(),
        access_token_ttl: None,
        jwks: None,
        admin: false,
        created_at: 0,
        redirect_uris: vec![format!("{}{CALLBACK_PATH}", auth.issuer())],
        post_logout_redirect_uris: Vec::new(),
        public: true,
        serves: None,
        exchange_audiences: Vec::new(),
        tls_client_auth_san_uri: None,
    }
}

/// Console routes, nested under `/admin`.
pub fn router() -> Router<Arc<Authority>> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(signin::start))
        .route("/callback", get(signin::callback))
        .route("/logout", post(signin::logout))
        .route("/assets/{file}", get(unversioned_asset))
        .route("/assets/{version}/{file}", get(versioned_asset))
        .route("/keys", get(pages::keys))
        .route("/keys/rotate", post(actions::rotate_keys))
        .route("/verifiers", get(pages::verifiers))
        .route("/clients", get(pages::clients))
        .route("/people", get(pages::people))
        .route("/people/{name}", get(pages::person))
        .route("/people/{name}/suspend", post(actions::suspend))
        .route("/people/{name}/resume", post(actions::resume))
        .route("/people/{name}/sessions/{sid}/revoke", post(actions::revoke_session))
        .route("/policies", get(pages::policies))
        .route("/policies/{service}", get(pages::policy))
        .route("/policies/{service}/rollback", post(actions::rollback))
        .route("/decisions", get(pages::decisions))
        .route("/probes", get(pages::probes))
        .route("/audit", get(pages::audit))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Every console answer: no framing, no inline script or style, no referrer.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The console's static files: name, body, content type.
const ASSETS: [(&str, &str, &str); 3] = [
    ("htmx.min.js", HTMX, "text/javascript; charset=utf-8"),
    ("console.css", CSS, "text/css; charset=utf-8"),
    ("icon.svg", ICON, "image/svg+xml"),
];

/// The first 12 hex digits of the SHA-256 of every asset, computed once:
/// the assets' URLs carry it, so a new build's assets get new URLs and may
/// be cached for good.
pub fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for (name, body, _) in ASSETS {
            for part in [name.as_bytes(), body.as_bytes()] {
                ctx.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
                ctx.update(part);
            }
        }
        ctx.finish()
            .as_ref()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// Where the pages link the assets: `/admin/assets/<version>`.
pub fn asset_base() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| format!("{CONSOLE_PATH}/assets/{}", asset_version()))
}

fn asset(auth: &Authority, file: &str, cache: &'static str) -> Response {
    if !auth.config().console.enabled {
        return not_found();
    }
    let Some((_, body, content_type)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return not_found();
    };
    let mut resp = (*body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

/// `GET /admin/assets/{version}/{file}`: cached for good when the version
/// is this build's; another build's version (a page from before an
/// upgrade) gets this build's file, revalidated every time.
async fn versioned_asset(
    State(auth): State<Arc<Authority>>,
    Path((version, file)): Path<(String, String)>,
) -> Response {
    let cache = if version == asset_version() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    asset(&auth, &file, cache)
}

/// `GET /admin/assets/{file}`: the unversioned URL, revalidated every time.
async fn unversioned_asset(State(auth): State<Arc<Authority>>, Path(file): Path<String>) -> Response {
    asset(&auth, &file, "no-cache")
}

/// What every page shows around its content.
#[derive(Debug, Default)]
pub struct Chrome {
    /// The signed-in person; empty on pages shown to nobody in particular.
    pub username: String,
    /// The session's CSRF token, for the forms.
    pub csrf: String,
    /// Which navigation entry is current.
    pub section: &'static str,
    /// A line confirming the last action; empty for none.
    pub notice: String,
}

impl Chrome {
    /// Where the assets are: `/admin/assets/<content hash>`.
    pub fn assets(&self) -> &'static str {
        asset_base()
    }
}

/// A title, a message and one link.
#[derive(Template)]
#[template(path = "console/message.html")]
pub struct MessagePage {
    /// Around it.
    pub c: Chrome,
    /// Heading.
    pub title: String,
    /// Body text.
    pub message: String,
    /// Where the link goes; empty for no link.
    pub link: String,
    /// The link's text.
    pub link_text: String,
}

impl MessagePage {
    /// A message outside a session.
    pub fn bare(title: &str, message: &str, link: &str, link_text: &str) -> Self {
        Self {
            c: Chrome::default(),
            title: title.to_owned(),
            message: message.to_owned(),
            link: link.to_owned(),
            link_text: link_text.to_owned(),
        }
    }
}

/// Renders a page.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => {
            let mut resp = (status, body).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "console page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "page failed to render").into_response()
        }
    }
}

/// The console is switched off.
pub fn not_found() -> Response {
    super::error::ApiError::not_found("no such endpoint").into_response()
}

/// Unix seconds as RFC 3339 UTC; `-` for none.
pub fn when(t: Option<i64>) -> String {
    t.map_or_else(|| "-".to_owned(), castellan_core::clock::rfc3339)
}
