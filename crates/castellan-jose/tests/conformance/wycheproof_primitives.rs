//! Wycheproof signature vectors through `VerifyingKey::verify_signature`,
//! the primitive each JWS algorithm uses.
//!
//! Keys are built with `VerifyingKey::from_jwk_object`. Where the group gives
//! a JWK it is used, and it is cross-checked against the group's raw key
//! material; where it gives none (some ECDSA edge-case keys) the JWK is built
//! from the raw material: EC uncompressed point to `x`/`y`, RSA modulus and
//! exponent hex to base64url without leading zeros, Ed25519 `pk` to `x`.
//!
//! `alg`: a file holds one algorithm only (its name and `sha`/`mgf`/`sLen`
//! fields say which, and are checked below), so a JWK without `alg` (the
//! ECDSA and Ed25519 ones) gets that algorithm injected; a JWK with an
//! `alg` must already name it. Nothing comes from a signature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use crate::common::{conformance_dir, hex, load, obj, report, str_of};
use castellan_jose::{b64, VerifyingKey};
use serde_json::{json, Map, Value};

#[derive(Debug, Default)]
struct Counts {
    valid_ok: usize,
    invalid_refused: usize,
    acceptable_ok: usize,
    acceptable_refused: usize,
    from_raw: usize,
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The JWK members that define the key, built from the raw material.
fn jwk_from_raw(alg: &str, group: &Value) -> Map<String, Value> {
    let pk = &group["publicKey"];
    let v = match alg {
        "ES256" => {
            assert_eq!(pk["curve"], "secp256r1");
            let point = hex(str_of(pk, "uncompressed"));
            assert_eq!(point.len(), 65, "uncompressed P-256 point");
            assert_eq!(point[0], 4, "uncompressed point marker");
            json!({"kty": "EC", "crv": "P-256", "x": b64::encode(&point[1..33]), "y": b64::encode(&point[33..])})
        }
        "EdDSA" => {
            assert_eq!(pk["curve"], "edwards25519");
            let raw = hex(str_of(pk, "pk"));
            assert_eq!(raw.len(), 32);
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(&raw)})
        }
        "RS256" | "PS256" => {
            let n = hex(str_of(pk, "modulus"));
            let e = hex(str_of(pk, "publicExponent"));
            json!({"kty": "RSA", "n": b64::encode(strip_zeros(&n)), "e": b64::encode(strip_zeros(&e))})
        }
        other => panic!("no raw key form for {other}"),
    };
    obj(&v).clone()
}

/// The key for one group: its JWK (checked against the raw material) or,
/// without one, the JWK built from the raw material.
fn jwk_for_group(alg: &str, group: &Value, counts: &mut Counts) -> Map<String, Value> {
    let raw = jwk_from_raw(alg, group);
    let given = group.get("publicKeyJwk").or_else(|| group.get("keyJwk"));
    let mut jwk = match given {
        Some(j) => {
            let j = obj(j).clone();
            for (name, value) in &raw {
                assert_eq!(
                    j.get(name),
                    Some(value),
                    "the group's JWK disagrees with its raw key on `{name}`"
                );
            }
            j
        }
        None => {
            counts.from_raw += 1;
            let mut j = raw;
            j.insert("kid".into(), "none".into());
            j
        }
    };
    match jwk.get("alg") {
        None => {
            jwk.insert("alg".into(), alg.into());
        }
        Some(a) => assert_eq!(a, alg, "the group's JWK names another algorithm"),
    }
    jwk
}

fn suite(file: &str, alg: &str, check_file: impl Fn(&Value)) -> Counts {
    let Some(dir) = conformance_dir(&format!("wycheproof {file}")) else {
        return Counts::default();
    };
    let data = load(&dir, &format!("wycheproof/{file}"));
    let mut counts = Counts::default();
    let mut failures: Vec<String> = Vec::new();
    let mut total = 0;
    for group in data["testGroups"].as_array().unwrap() {
        check_file(group);
        let jwk = jwk_for_group(alg, group, &mut counts);
        let key = VerifyingKey::from_jwk_object(&jwk);
        for test in group["tests"].as_array().unwrap() {
            total += 1;
            let id = test["tcId"].as_u64().unwrap();
            let label = test["result"].as_str().unwrap();
            let verdict = match &key {
                Ok(k) => k.verify_signature(&hex(str_of(test, "msg")), &hex(str_of(test, "sig"))),
                Err(e) => Err(e.clone()),
            };
            match (label, verdict.is_ok()) {
                ("valid", true) => counts.valid_ok += 1,
                ("invalid", false) => counts.invalid_refused += 1,
                ("acceptable", true) => counts.acceptable_ok += 1,
                ("acceptable", false) => counts.acceptable_refused += 1,
                _ => failures.push(format!(
                    "{file} tcId {id} ({label}, {} {:?}): got {verdict:?}",
                    test["comment"].as_str().unwrap_or_default(),
                    test["flags"]
                )),
            }
        }
    }
    report(&format!("wycheproof {file} as {alg}: {total} vectors; {counts:?}"));
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(total as u64, data["numberOfTests"].as_u64().unwrap());
    counts
}

#[test]
fn wycheproof_ecdsa_p256_sha256_p1363_as_es256() {
    let c = suite("ecdsa_secp256r1_sha256_p1363_test.json", "ES256", |g| {
        assert_eq!(g["type"], "EcdsaP1363Verify");
        assert_eq!(g["sha"], "SHA-256");
    });
    if c.valid_ok + c.invalid_refused > 0 {
        assert!(c.valid_ok >= 170, "{c:?}");
        assert!(c.invalid_refused >= 85, "{c:?}");
        assert!(c.from_raw >= 9, "{c:?}");
    }
}

#[test]
fn wycheproof_ed25519_as_eddsa() {
    let c = suite("ed25519_test.json", "EdDSA", |g| assert_eq!(g["type"], "EddsaVerify"));
    if c.valid_ok + c.invalid_refused > 0 {
        assert!(c.valid_ok >= 85, "{c:?}");
        assert!(c.invalid_refused >= 60, "{c:?}");
    }
}

#[test]
fn wycheproof_rsa_pkcs1_2048_sha256_as_rs256() {
    let c = suite("rsa_signature_2048_sha256_test.json", "RS256", |g| {
        assert_eq!(g["type"], "RsassaPkcs1Verify");
        assert_eq!(g["sha"], "SHA-256");
    });
    if c.valid_ok + c.invalid_refused > 0 {
        assert!(c.valid_ok >= 9, "{c:?}");
        assert!(c.invalid_refused >= 240, "{c:?}");
        // tcId 8 (missing NULL in DigestInfo) is `acceptable`: recorded only.
        assert_eq!(c.acceptable_ok + c.acceptable_refused, 1, "{c:?}");
    }
}

#[test]
fn wycheproof_rsa_pss_2048_sha256_mgf1_32_as_ps256() {
    let c = suite("rsa_pss_2048_sha256_mgf1_32_test.json", "PS256", |g| {
        assert_eq!(g["type"], "RsassaPssVerify");
        assert_eq!(g["sha"], "SHA-256");
        assert_eq!(g["mgf"], "MGF1");
        assert_eq!(g["mgfSha"], "SHA-256");
        assert_eq!(g["sLen"], 32);
    });
    if c.valid_ok + c.invalid_refused > 0 {
        assert!(c.valid_ok >= 60, "{c:?}");
        assert!(c.invalid_refused >= 40, "{c:?}");
    }
}
