//! The token endpoint's form parser never panics on any body.
#![no_main]
use axum::http::{header, HeaderMap, HeaderValue};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
    let _ = castellan_authority::http::form::Form::parse(&headers, data);
});
