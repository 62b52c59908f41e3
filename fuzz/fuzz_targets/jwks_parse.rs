//! JWK Set parsing (client-registered keys, the authority's JWKS) never panics.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = castellan_jose::Jwks::parse_strict(data);
});
