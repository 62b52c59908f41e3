//! Wycheproof `json_web_signature_test.json` through `verify_compact`.
//!
//! Keys: each group's `public` JWK, used verbatim. Every signing group's JWK
//! carries both `kid` and `alg`, so nothing is injected for the main pass:
//! the algorithm comes from the key, as in production. Four groups
//! (tcId 353..=356) hold encryption keys with no `alg` at all; verbatim they
//! are refused for that alone, which would prove nothing about `use: enc` or
//! `key_ops: ["encrypt"]`. So those keys get a second pass with the
//! most permissive `alg` injected (the one the token claims, under which its
//! signature really verifies): they must still be refused.
//!
//! Groups without a public key hold an `oct` (HMAC) key: refused by policy.
//! Groups whose key names a JWA algorithm Castellan does not accept (RS384,
//! RS512, PS384, PS512) are refused by policy too. Nothing else may be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use crate::common::{conformance_dir, load, obj, report, run, Deviation, Outcome};
use castellan_jose::{Algorithm, VerifyingKey};
use serde_json::Value;

const FILE: &str = "wycheproof/json_web_signature_test.json";

/// JWS algorithm names registered by RFC 7518 §3.1 and RFC 8037.
const JWA_SIGNATURE_ALGS: [&str; 14] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "none",
    "EdDSA",
];

/// The known data errors listed in `shared/conformance/README.md`, each
/// re-checked against the data below so the list cannot go stale.
const DEVIATIONS: [Deviation; 8] = [
    Deviation {
        tc_id: 346,
        label: "valid",
        castellan_accepts: false,
        reason: "RFC 7520 Figure 20 is signed with PS384, but the group's key says alg PS256. The algorithm comes \
                 from the key, so the header's PS384 is refused (PS384 is not accepted at all either).",
    },
    Deviation {
        tc_id: 350,
        label: "valid",
        castellan_accepts: false,
        reason: "Same as 346 with key_ops [verify]: key alg PS256, token PS384.",
    },
    Deviation {
        tc_id: 347,
        label: "valid",
        castellan_accepts: false,
        reason: "The key's alg is `ES521`, not a JWA name (RFC 7520 §4.3 uses ES512 on P-521); the key is unusable, \
                 and ES512 is not accepted anyway.",
    },
    Deviation {
        tc_id: 351,
        label: "valid",
        castellan_accepts: false,
        reason: "Same as 347 with key_ops [verify]: key alg `ES521`.",
    },
    Deviation {
        tc_id: 367,
        label: "invalid",
        castellan_accepts: false,
        reason: "Byte-identical to valid tcId 357, so the label is wrong; Castellan refuses it anyway because it is \
                 HS256.",
    },
    Deviation {
        tc_id: 370,
        label: "invalid",
        castellan_accepts: false,
        reason: "Byte-identical to valid tcId 357, so the label is wrong; refused anyway (HS256).",
    },
    Deviation {
        tc_id: 372,
        label: "valid",
        castellan_accepts: false,
        reason: "Contains `?`, outside the base64url alphabet: not a compact JWS. Refused (and HS256).",
    },
    Deviation {
        tc_id: 373,
        label: "valid",
        castellan_accepts: false,
        reason: "Contains `?`, outside the base64url alphabet: not a compact JWS. Refused (and HS256).",
    },
];

#[derive(Debug, Clone, PartialEq)]
enum Policy {
    /// Castellan handles this group's algorithm; labels apply.
    Applies,
    /// Symmetric key: HMAC is never accepted.
    Hmac,
    /// A JWA algorithm Castellan does not accept.
    UnsupportedAlg(String),
}

fn group_policy(group: &Value) -> Policy {
    if let Some(public) = group.get("public") {
        return match public.get("alg").and_then(Value::as_str) {
            Some(a) if a.starts_with("HS") => Policy::Hmac,
            Some(a) if a.parse::<Algorithm>().is_err() && JWA_SIGNATURE_ALGS.contains(&a) => {
                Policy::UnsupportedAlg(a.to_owned())
            }
            _ => Policy::Applies,
        };
    }
    let private = &group["private"];
    assert_eq!(private["kty"], "oct", "a group with no public key must be symmetric");
    Policy::Hmac
}

/// Re-checks the stated reason of each deviation against the data.
fn check_deviation_facts(tests: &[(Value, Value)]) {
    let by_id = |id: u64| {
        tests
            .iter()
            .find(|(_, t)| t["tcId"] == id)
            .unwrap_or_else(|| panic!("deviation tcId {id} is not in the file"))
    };
    for d in &DEVIATIONS {
        let (group, test) = by_id(d.tc_id);
        assert_eq!(test["result"], d.label, "tcId {}: label changed", d.tc_id);
        let jws = test["jws"].as_str().unwrap();
        match d.tc_id {
            346 | 350 => {
                assert_eq!(group["public"]["alg"], "PS256");
                let header = castellan_jose::decode_unverified_header(jws).unwrap();
                assert_eq!(header["alg"], "PS384");
            }
            347 | 351 => assert_eq!(group["public"]["alg"], "ES521"),
            367 | 370 => assert_eq!(jws, by_id(357).1["jws"].as_str().unwrap()),
            372 | 373 => assert!(jws.contains('?')),
            other => panic!("deviation {other} has no fact check"),
        }
    }
}

#[test]
fn wycheproof_json_web_signature() {
    let Some(dir) = conformance_dir("wycheproof json_web_signature") else {
        return;
    };
    let file = load(&dir, FILE);
    let declared = file["numberOfTests"].as_u64().unwrap();

    let mut flat: Vec<(Value, Value)> = Vec::new();
    for group in file["testGroups"].as_array().unwrap() {
        for test in group["tests"].as_array().unwrap() {
            flat.push((group.clone(), test.clone()));
        }
    }
    assert_eq!(flat.len() as u64, declared, "numberOfTests disagrees with the file");
    check_deviation_facts(&flat);

    let mut failures: Vec<String> = Vec::new();
    let (mut total, mut valid_verified, mut invalid_refused, mut policy_refused, mut deviations) = (0, 0, 0, 0, 0);
    let mut alg_injected_refused = 0;
    let mut refusal_reasons: std::collections::BTreeMap<String, usize> = Default::default();

    for (group, test) in &flat {
        total += 1;
        let id = test["tcId"].as_u64().unwrap();
        let label = test["result"].as_str().unwrap();
        let jws = test["jws"].as_str().expect("jws is a string");
        let policy = group_policy(group);

        let key = group.get("public").map(|p| VerifyingKey::from_jwk_object(obj(p)));
        let keys: Vec<VerifyingKey> = match key {
            Some(Ok(k)) => vec![k],
            _ => vec![],
        };
        let outcome = run(jws, &keys);
        if let Outcome::Refused(e) = &outcome {
            let reason = format!("{e:?}");
            let kind = reason.split([' ', '(', '{']).next().unwrap_or_default().to_owned();
            *refusal_reasons.entry(kind).or_default() += 1;
        }

        let deviation = DEVIATIONS.iter().find(|d| d.tc_id == id);
        let expect_accept = match (&deviation, &policy, label) {
            (Some(d), _, _) => {
                deviations += 1;
                Some(d.castellan_accepts)
            }
            (None, Policy::Hmac | Policy::UnsupportedAlg(_), _) => Some(false),
            (None, Policy::Applies, "valid") => Some(true),
            (None, Policy::Applies, "invalid") => Some(false),
            (None, Policy::Applies, _) => None,
        };
        match expect_accept {
            Some(true) if outcome.accepted() => {
                assert_eq!(label, "valid");
                valid_verified += 1;
            }
            // Deviations are counted above, when they are looked up.
            Some(false) if !outcome.accepted() && deviation.is_none() => match policy {
                Policy::Applies => invalid_refused += 1,
                Policy::Hmac | Policy::UnsupportedAlg(_) => policy_refused += 1,
            },
            Some(false) if !outcome.accepted() => {}
            None => {}
            Some(want) => failures.push(format!(
                "tcId {id} ({label}, {}, {:?}): expected {}, got {outcome:?}",
                test["comment"].as_str().unwrap_or_default(),
                policy,
                if want { "accept" } else { "refuse" },
            )),
        }

        // Keys with no `alg` (encryption keys): refused for that alone above.
        // Inject the token's own algorithm and demand a refusal still.
        if let Some(public) = group.get("public") {
            if public.get("alg").is_none() {
                assert_eq!(
                    label, "invalid",
                    "tcId {id}: alg-less keys only appear in invalid vectors"
                );
                let header = castellan_jose::decode_unverified_header(jws).unwrap();
                let mut jwk = obj(public).clone();
                jwk.insert("alg".into(), header["alg"].clone());
                match VerifyingKey::from_jwk_object(&jwk) {
                    Err(_) => alg_injected_refused += 1,
                    Ok(k) => {
                        let again = run(jws, std::slice::from_ref(&k));
                        if again.accepted() {
                            failures.push(format!(
                                "tcId {id} ({}): accepted once `alg` is injected into a key marked {}",
                                test["comment"].as_str().unwrap_or_default(),
                                public.get("use").or(public.get("key_ops")).unwrap_or(&Value::Null)
                            ));
                        } else {
                            alg_injected_refused += 1;
                        }
                    }
                }
            }
        }
    }

    for d in &DEVIATIONS {
        report(&format!(
            "  deviation tcId {} (labelled {}, Castellan {}): {}",
            d.tc_id,
            d.label,
            if d.castellan_accepts { "accepts" } else { "refuses" },
            d.reason
        ));
    }
    report(&format!(
        "wycheproof json_web_signature: {total} vectors; {valid_verified} valid verified; {invalid_refused} \
         invalid refused; {policy_refused} refused by policy (HMAC/none/unsupported alg); {deviations} \
         deviations; {alg_injected_refused} alg-less keys still refused with alg injected; refusals by kind: \
         {refusal_reasons:?}"
    ));
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(total, 401);
    assert_eq!(deviations, DEVIATIONS.len());
    assert!(valid_verified >= 16, "only {valid_verified} valid vectors verified");
    assert!(invalid_refused >= 250, "only {invalid_refused} invalid vectors refused");
    assert!(policy_refused >= 50, "only {policy_refused} vectors refused by policy");
    assert_eq!(alg_injected_refused, 4);
    assert_eq!(
        valid_verified + invalid_refused + policy_refused + deviations,
        total,
        "every vector must be accounted for"
    );
}
