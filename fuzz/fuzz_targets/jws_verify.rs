//! Compact JWS verification never panics and never accepts a token not
//! signed by the one key it knows.
#![no_main]
use castellan_jose::{verify_compact, Algorithm, SigningKey, VerifyOptions, VerifyingKey};
use std::sync::OnceLock;

fn key() -> &'static VerifyingKey {
    static KEY: OnceLock<VerifyingKey> = OnceLock::new();
    KEY.get_or_init(|| {
        // A fixed key: the fuzzer cannot sign with it.
        let (sk, _) = SigningKey::generate(Algorithm::ES256).expect("key");
        VerifyingKey::from_jwk(sk.public_jwk()).expect("public key")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let k = key();
        let r = verify_compact(token, VerifyOptions::default(), |kid| (kid == k.kid()).then_some(k));
        assert!(r.is_err(), "accepted a token nobody signed");
    }
});
