//! RFC 7520 §4 JWS examples and the RFC 8037 Ed25519 example, from the
//! ietf-jose cookbook, as positive interop vectors.
//!
//! Castellan accepts ES256, EdDSA, RS256 and PS256 only, in compact form,
//! with the key found by a protected `kid`. The cookbook's keys carry no
//! `alg`; each example names its algorithm in `input.alg`, which is what an
//! operator would configure for that key, so the key gets that `alg`
//! (private members removed) and the example's header must agree with it.
//! The RFC 8037 key has no `kid`: it gets its RFC 7638 thumbprint, checked
//! against the value published in RFC 8037 §A.3.
//!
//! For every signature with an accepted algorithm:
//! - the primitive verifies it (`verify_signature` over the signing input);
//! - a one-bit change to the signature is refused;
//! - the compact form, where the example has one, goes through
//!   `verify_compact`: with a protected `kid` it must verify (the payload is
//!   prose, so see `Outcome::SignatureOnly`); without one it must be refused
//!   for the missing `kid` alone.
//!
//! Every other signature (HS256, PS384, ES512) must be refused by policy: its
//! key cannot be built, and its compact form is refused. The JSON
//! serializations must be refused by `verify_compact` (compact only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use crate::common::{conformance_dir, load, obj, public_part, report, run, str_of, Outcome};
use castellan_jose::jwk::thumbprint;
use castellan_jose::{b64, Algorithm, JoseError, PublicJwk, VerifyingKey};
use serde_json::{Map, Value};

const EXAMPLES: [&str; 9] = [
    "jws/4_1.rsa_v15_signature.json",
    "jws/4_2.rsa-pss_signature.json",
    "jws/4_3.ecdsa_signature.json",
    "jws/4_4.hmac-sha2_integrity_protection.json",
    "jws/4_5.signature_with_detached_content.json",
    "jws/4_6.protecting_specific_header_fields.json",
    "jws/4_7.protecting_content_only.json",
    "jws/4_8.multiple_signatures.json",
    "curve25519/jws.json",
];

/// RFC 8037 §A.3: the thumbprint of the Ed25519 example key.
const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

#[derive(Debug, Default)]
struct Counts {
    signatures_verified: usize,
    compact_verified: usize,
    compact_refused_no_kid: usize,
    tampered_refused: usize,
    policy_refused: usize,
    json_serialization_refused: usize,
}

/// The verifying JWK for a cookbook key: public members, the example's
/// algorithm, and a `kid` (the thumbprint where the key has none).
fn verifying_jwk(key: &Map<String, Value>, alg: &str) -> Map<String, Value> {
    let mut jwk = public_part(key);
    assert!(
        !jwk.contains_key("alg") || jwk["alg"] == alg,
        "key alg disagrees with the example"
    );
    jwk.insert("alg".into(), alg.into());
    if !jwk.contains_key("kid") {
        let s = |n: &str| jwk.get(n).and_then(Value::as_str).map(str::to_owned);
        let tp = thumbprint(&PublicJwk {
            kty: s("kty").unwrap(),
            kid: String::new(),
            alg: alg.to_owned(),
            use_: "sig".to_owned(),
            crv: s("crv"),
            x: s("x"),
            y: s("y"),
            n: s("n"),
            e: s("e"),
        });
        jwk.insert("kid".into(), tp.into());
    }
    jwk
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

#[test]
fn rfc7520_and_rfc8037_signatures() {
    let Some(dir) = conformance_dir("rfc7520 jws") else {
        return;
    };
    let mut c = Counts::default();
    let mut failures: Vec<String> = Vec::new();

    for name in EXAMPLES {
        let ex = load(&dir, &format!("rfc7520/{name}"));
        let input = &ex["input"];
        let payload_b64 = b64::encode(str_of(input, "payload").as_bytes());
        let keys = as_list(&input["key"]);
        let algs = as_list(&input["alg"]);
        let signings = as_list(&ex["signing"]);
        assert_eq!(keys.len(), signings.len(), "{name}");
        assert_eq!(algs.len(), signings.len(), "{name}");
        let compact = ex["output"].get("compact").and_then(Value::as_str);
        if let Some(compact) = compact {
            assert_eq!(signings.len(), 1, "{name}: compact with several signatures");
            let detached = name.contains("detached");
            let (h, rest) = compact.split_once('.').unwrap();
            let (p, _) = rest.split_once('.').unwrap();
            assert_eq!(h, str_of(&signings[0], "protected_b64u"), "{name}");
            assert_eq!(p, if detached { "" } else { payload_b64.as_str() }, "{name}");
        }

        for ((key, alg), signing) in keys.iter().zip(&algs).zip(&signings) {
            let alg = alg.as_str().unwrap();
            let header_alg = signing
                .get("protected")
                .and_then(|p| p.get("alg"))
                .or_else(|| signing["unprotected"].get("alg"))
                .and_then(Value::as_str)
                .unwrap();
            assert_eq!(header_alg, alg, "{name}: header and example disagree on alg");
            let jwk = verifying_jwk(obj(key), alg);
            let built = VerifyingKey::from_jwk_object(&jwk);
            let sig = b64::decode(str_of(signing, "sig")).unwrap();
            let signing_input = str_of(signing, "sig-input");

            if alg.parse::<Algorithm>().is_err() {
                // HS256, PS384, ES512: refused by policy, at the key and at the token.
                let key_refused = built.is_err();
                let token_refused = compact.is_none_or(|t| !run(t, &[]).accepted());
                if key_refused && token_refused {
                    c.policy_refused += 1;
                } else {
                    failures.push(format!("{name} {alg}: not refused by policy ({built:?})"));
                }
                continue;
            }

            let Ok(vk) = built else {
                failures.push(format!("{name} {alg}: key refused: {built:?}"));
                continue;
            };
            if name.starts_with("curve25519") {
                assert_eq!(vk.kid(), RFC8037_THUMBPRINT, "RFC 8037 §A.3 thumbprint");
            }
            match vk.verify_signature(signing_input.as_bytes(), &sig) {
                Ok(()) => c.signatures_verified += 1,
                Err(e) => failures.push(format!("{name} {alg}: signature refused: {e:?}")),
            }
            let mut bad = sig.clone();
            bad[sig.len() / 2] ^= 0x01;
            if vk.verify_signature(signing_input.as_bytes(), &bad).is_err() {
                c.tampered_refused += 1;
            } else {
                failures.push(format!("{name} {alg}: tampered signature accepted"));
            }

            // The compact form: the example's own, or (multiple signatures)
            // the one this signature's protected header would give.
            let rebuilt;
            let token = match compact {
                Some(t) => t,
                None => match signing.get("protected_b64u").and_then(Value::as_str) {
                    Some(h) => {
                        rebuilt = format!("{h}.{payload_b64}.{}", str_of(signing, "sig"));
                        &rebuilt
                    }
                    None => continue,
                },
            };
            let protected_kid = signing.get("protected").and_then(|p| p.get("kid")).is_some();
            let outcome = run(token, std::slice::from_ref(&vk));
            match (protected_kid, &outcome) {
                (true, Outcome::Verified | Outcome::SignatureOnly) => c.compact_verified += 1,
                (false, Outcome::Refused(JoseError::MissingKid)) => c.compact_refused_no_kid += 1,
                _ => failures.push(format!(
                    "{name} {alg}: compact form (protected kid: {protected_kid}): {outcome:?}"
                )),
            }
        }

        for form in ["json", "json_flat"] {
            if let Some(v) = ex["output"].get(form) {
                let text = serde_json::to_string(v).unwrap();
                if run(&text, &[]).accepted() {
                    failures.push(format!("{name}: {form} serialization accepted"));
                } else {
                    c.json_serialization_refused += 1;
                }
            }
        }
    }

    // RFC 7520 §3 keys: only the RSA public key is usable (given an alg);
    // private and symmetric keys are never accepted as verifying keys.
    for (file, alg, usable) in [
        ("jwk/3_1.ec_public_key.json", "ES512", false),
        ("jwk/3_2.ec_private_key.json", "ES512", false),
        ("jwk/3_3.rsa_public_key.json", "RS256", true),
        ("jwk/3_3.rsa_public_key.json", "PS256", true),
        ("jwk/3_4.rsa_private_key.json", "RS256", false),
        ("jwk/3_5.symmetric_key_mac_computation.json", "HS256", false),
        ("jwk/3_6.symmetric_key_encryption.json", "HS256", false),
    ] {
        let mut jwk = obj(&load(&dir, &format!("rfc7520/{file}"))).clone();
        jwk.insert("alg".into(), alg.into());
        let built = VerifyingKey::from_jwk_object(&jwk);
        if built.is_ok() != usable {
            failures.push(format!("{file} as {alg}: expected usable={usable}, got {built:?}"));
        }
    }

    report(&format!("rfc7520/rfc8037 jws: {c:?}"));
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // 4.1 RS256, 4.8's RS256 signature, RFC 8037 EdDSA.
    assert_eq!(c.signatures_verified, 3, "{c:?}");
    assert_eq!(c.tampered_refused, 3, "{c:?}");
    // 4.1 has a protected kid; RFC 8037's header and 4.8's protected header have none.
    assert_eq!(c.compact_verified, 1, "{c:?}");
    assert_eq!(c.compact_refused_no_kid, 2, "{c:?}");
    // 4.2 PS384, 4.3 ES512, 4.4-4.7 HS256, 4.8 ES512 and HS256.
    assert_eq!(c.policy_refused, 8, "{c:?}");
    assert!(c.json_serialization_refused >= 15, "{c:?}");
}
