//! The parsers on the sign-in path never panic: the authorization request's
//! query, redirect URIs, usernames, and the login cookie header.
#![no_main]
use axum::http::{header, HeaderMap, HeaderValue};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = castellan_authority::http::form::Form::from_urlencoded(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = castellan_authority::http::admin::valid_redirect_uri(text);
        let _ = castellan_authority::users::normalize_username(text);
        if let Ok(v) = HeaderValue::from_str(text) {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, v);
            let _ = castellan_authority::http::authorize::login_cookie(&headers);
        }
    }
});
