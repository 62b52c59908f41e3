//! The full access-token validation path never panics and never accepts a
//! token the fuzzer made up.
#![no_main]
use castellan_jose::{Algorithm, SigningKey, VerifyingKey};
use castellan_verify::{validate, EffectiveProfile, KeyRing, LocalPolicy, RevocationState, ValidationContext, ValidationProfile};
use std::sync::{Arc, OnceLock};

struct Fixture {
    keys: KeyRing,
    profile: EffectiveProfile,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut keys = KeyRing::new();
        for alg in Algorithm::ALL {
            let (sk, _) = SigningKey::generate(alg).expect("key");
            let vk = VerifyingKey::from_jwk(sk.public_jwk()).expect("public key");
            keys.insert(vk.kid().to_owned(), Arc::new(vk));
        }
        let served = ValidationProfile {
            allowed_algorithms: Algorithm::ALL.iter().map(|a| a.as_str().to_owned()).collect(),
            token_type: "at+jwt".into(),
            required_claims: vec![],
            max_leeway_seconds: 30,
            max_token_lifetime_seconds: 3600,
            staleness_window_seconds: 300,
            heartbeat_interval_seconds: Some(5),
            max_delegation_depth: None,
        };
        let profile = EffectiveProfile::new(&served, &LocalPolicy::default()).expect("profile");
        Fixture { keys, profile }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let f = fixture();
        let revocations = RevocationState::default();
        let cx = ValidationContext {
            keys: &f.keys,
            profile: &f.profile,
            issuer: "https://auth.fuzz",
            audience: "orders",
            revocations: &revocations,
            now: 1_800_000_000,
        };
        assert!(validate(token, &cx).is_err(), "accepted a token nobody signed");
    }
});
