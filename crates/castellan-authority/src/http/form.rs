//! Strict `application/x-www-form-urlencoded` request bodies.

use super::error::ApiError;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use std::collections::HashMap;

/// Reads at most `limit` bytes of body.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))
}

fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// Checks the body is JSON by its content type.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    if content_type_is(headers, "application/json") {
        Ok(())
    } else {
        Err(ApiError::unsupported_media("application/json"))
    }
}

/// Form parameters. Empty values count as absent (RFC 6749 §3.1); a repeated
/// parameter is an error (RFC 6749 §3.2), except those listed as multi.
#[derive(Debug, Default)]
pub struct Form {
    single: HashMap<String, String>,
    multi: HashMap<String, Vec<String>>,
}

/// Parameters that may legitimately repeat (RFC 8707 `resource`, token exchange `audience`).
const MULTI: [&str; 2] = ["resource", "audience"];

impl Form {
    /// Parses a form body, checking the content type first.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, ApiError> {
        if !content_type_is(headers, "application/x-www-form-urlencoded") {
            return Err(ApiError::unsupported_media("application/x-www-form-urlencoded"));
        }
        Self::from_urlencoded(body)
    }

    /// Parses a query string (or any urlencoded bytes) with the same rules.
    pub fn from_urlencoded(body: &[u8]) -> Result<Self, ApiError> {
        if std::str::from_utf8(body).is_err() {
            return Err(ApiError::invalid_request("body is not UTF-8"));
        }
        let mut form = Self::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
                return Err(ApiError::invalid_request(
                    "parameter is not valid percent-encoded UTF-8",
                ));
            }
            if v.is_empty() {
                continue;
            }
            let name = k.into_owned();
            if MULTI.contains(&name.as_str()) {
                form.multi.entry(name).or_default().push(v.into_owned());
            } else {
                match form.single.entry(name) {
                    std::collections::hash_map::Entry::Occupied(e) => {
                        let shown: String = e.key().chars().take(40).collect();
                        return Err(ApiError::invalid_request(format!("parameter `{shown}` is repeated")));
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(v.into_owned());
                    }
                }
            }
        }
        Ok(form)
    }

    /// One parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.single.get(name).map(String::as_str)
    }

    /// The requested audiences: every `audience` then every `resource`
    /// (RFC 8693 and RFC 8707 name the target service either way).
    pub fn audiences(&self) -> Vec<&str> {
        self.all("audience")
            .iter()
            .chain(self.all("resource"))
            .map(String::as_str)
            .collect()
    }

    /// Every value of a repeatable parameter.
    pub fn all(&self, name: &str) -> &[String] {
        self.multi.get(name).map_or(&[], Vec::as_slice)
    }
}
