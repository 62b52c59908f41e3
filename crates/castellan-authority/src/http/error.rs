//! Error responses: RFC 6749 §5.2 on the OAuth endpoints, RFC 6750 §3 on
//! bearer-protected ones. Every body is `{"error","error_description"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An OAuth-style error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    description: String,
    www_authenticate: Option<String>,
    retry_after: Option<u32>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            www_authenticate: None,
            retry_after: None,
        }
    }

    /// 400 `invalid_grant`: the code or refresh token is invalid, expired,
    /// used, or issued to another client (RFC 6749 §5.2).
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }

    /// The human description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    /// 413 `invalid_request`: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("request body exceeds {limit} bytes"),
        )
    }
    /// 415 `invalid_request`: not form-encoded / not JSON.
    pub fn unsupported_media(expected: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            format!("content type must be {expected}"),
        )
    }
    /// 401 `invalid_client`, with a `WWW-Authenticate: Basic` challenge.
    pub fn invalid_client(d: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d);
        e.www_authenticate = Some(r#"Basic realm="castellan""#.to_owned());
        e
    }
    /// 400 `unauthorized_client`.
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }
    /// 400 `unsupported_grant_type`.
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }
    /// 400 `unsupported_token_type` (RFC 7009 §2.2.1).
    pub fn new_unsupported_token_type() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_token_type",
            "token_type_hint is not supported",
        )
    }
    /// 400 `invalid_scope`.
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }
    /// 400 `invalid_target` (RFC 8707).
    pub fn invalid_target(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", d)
    }
    /// 401 `invalid_token` with an RFC 6750 challenge.
    pub fn invalid_token(d: impl Into<String>) -> Self {
        let d = d.into();
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_token", d.clone());
        e.www_authenticate = Some(format!(
            r#"Bearer realm="castellan", error="invalid_token", error_description="{}""#,
            d.replace(['"', '\\'], "'")
        ));
        e
    }
    /// 401 without `error`: no credentials were sent (RFC 6750 §3.1).
    pub fn bearer_required() -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_token", "bearer token required");
        e.www_authenticate = Some(r#"Bearer realm="castellan""#.to_owned());
        e
    }
    /// 403 `insufficient_scope`.
    pub fn insufficient_scope(scope: &str) -> Self {
        let mut e = Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("scope `{scope}` required"),
        );
        e.www_authenticate = Some(format!(
            r#"Bearer realm="castellan", error="insufficient_scope", scope="{scope}""#
        ));
        e
    }
    /// 403 `access_denied`: authenticated, but not allowed this.
    pub fn access_denied(d: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "access_denied", d)
    }
    /// 503 `temporarily_unavailable`: try again shortly.
    pub fn busy(d: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", d)
    }
    /// 404 `not_found`.
    pub fn not_found(d: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", d)
    }
    /// 405 `invalid_request`: the endpoint exists, the method does not.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "method not allowed on this endpoint",
        )
    }
    /// 409 `conflict`.
    pub fn conflict(d: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", d)
    }
    /// 500 `server_error`: our fault, never the caller's input. The detail is logged, not sent.
    /// A store that cannot be reached (the database down, the pool exhausted,
    /// a statement timed out) is 503 `temporarily_unavailable` instead: the
    /// request may succeed when retried, and nothing was issued meanwhile.
    pub fn server_error<E: std::fmt::Display + 'static>(detail: &E) -> Self {
        let any: &dyn std::any::Any = detail;
        if let Some(e) = any.downcast_ref::<castellan_store::StoreError>() {
            if e.is_unavailable() {
                tracing::warn!(error = %detail, "store unavailable");
                metrics::counter!("castellan_store_unavailable_total").increment(1);
                let mut err = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the authority cannot reach its store; retry shortly",
                );
                err.retry_after = Some(1);
                return err;
            }
        }
        Self::internal(detail)
    }

    /// 500 `server_error` for any error: logged, not sent.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
    }

    /// The `error` code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!("castellan_http_errors_total", "error" => self.code).increment(1);
        let body = serde_json::to_vec(&Body {
            error: self.code,
            error_description: &self.description,
        })
        .unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(v) = self.www_authenticate.and_then(|v| HeaderValue::from_str(&v).ok()) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}
