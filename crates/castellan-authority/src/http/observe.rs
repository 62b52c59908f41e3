//! Request metrics and request ids for every route.
//!
//! - `castellan_http_requests_total{endpoint,method,outcome}` and the
//!   histogram `castellan_http_request_duration_seconds{endpoint,outcome}`.
//!   `endpoint` is the route pattern (`/policies/{service}/bundle`), never
//!   the raw path, so the label set is bounded by the routes; a request no
//!   route matched is `unmatched`. `outcome` is the status class (`2xx` ..
//!   `5xx`). The duration is the time to the response headers, so a
//!   long-lived stream (the revocation stream) counts when it opens, not
//!   when it ends.
//! - Request ids: a caller's `x-request-id` is kept when it is sane (1 to
//!   128 of `A-Z a-z 0-9 . _ -`), otherwise one is made; every log line of
//!   the request carries it (a `request` span) and the response echoes it.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use castellan_core::observe;
use std::time::Instant;
use tracing::Instrument;

/// The endpoint label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The request id a request carries: the caller's when sane, else a new one.
pub fn request_id(headers: &axum::http::HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(observe::HEADER) {
        if observe::is_sane(v.as_bytes()) {
            return v.clone();
        }
    }
    // A generated id is hex and `-`: always a valid header value.
    HeaderValue::from_str(&observe::generate()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The method label: the standard methods by name, anything else `other`
/// (a client may send any token as a method).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status class of a response.
pub fn outcome(status: axum::http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Middleware: measures the request and gives it an id.
pub async fn measure(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let id = request_id(req.headers());
    // Handlers (and anything they call) see the id the caller will see.
    req.headers_mut()
        .insert(HeaderName::from_static(observe::HEADER), id.clone());
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method,
        endpoint = endpoint.as_str()
    );
    let mut resp = next.run(req).instrument(span).await;
    let outcome = outcome(resp.status());
    metrics::histogram!(
        "castellan_http_request_duration_seconds",
        "endpoint" => endpoint.clone(),
        "outcome" => outcome
    )
    .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        "castellan_http_requests_total",
        "endpoint" => endpoint,
        "method" => method,
        "outcome" => outcome
    )
    .increment(1);
    resp.headers_mut().insert(HeaderName::from_static(observe::HEADER), id);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, StatusCode};

    #[test]
    fn a_sane_caller_id_is_kept_and_anything_else_replaced() {
        let mut h = HeaderMap::new();
        h.insert(observe::HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(observe::HEADER, HeaderValue::from_static("no spaces please"));
        let made = request_id(&h);
        assert_ne!(made, "no spaces please");
        assert!(observe::is_sane(made.as_bytes()));
        assert!(observe::is_sane(request_id(&HeaderMap::new()).as_bytes()));
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(outcome(StatusCode::OK), "2xx");
        assert_eq!(outcome(StatusCode::FOUND), "3xx");
        assert_eq!(outcome(StatusCode::UNAUTHORIZED), "4xx");
        assert_eq!(outcome(StatusCode::SERVICE_UNAVAILABLE), "5xx");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap_or_default()), "other");
        assert_eq!(method_label(&Method::POST), "POST");
    }
}
