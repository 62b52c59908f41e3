//! Server-rendered pages: the login form and plain messages. No JavaScript;
//! headers forbid framing and inline script.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The login page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    /// The app's name.
    pub app_name: &'a str,
    /// Shown above the form; empty for none.
    pub error: &'a str,
    /// Where the form posts.
    pub action: &'a str,
    /// The sealed pending request.
    pub request: &'a str,
    /// The username typed last time.
    pub username: &'a str,
    /// Button text of the federated sign-in; empty when not configured.
    pub federation_name: &'a str,
    /// Where the federated button posts.
    pub federation_action: &'a str,
}

/// A page with a title and one message.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    /// Heading.
    pub title: &'a str,
    /// Body text.
    pub message: &'a str,
}

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

/// Renders a template with the page headers.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    let body = match page.render() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "page failed to render");
            return (StatusCode::INTERNAL_SERVER_ERROR, "page failed to render").into_response();
        }
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    resp
}

/// An error page: the browser stays here (never redirected to an unverified URI).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    html(
        status,
        &MessagePage {
            title: "Cannot sign in",
            message,
        },
    )
}
