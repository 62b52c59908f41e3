//! Wycheproof `json_web_key_test.json` through `Jwks::parse_strict`, then
//! the vector's token through `verify_compact` with the keys it returned.
//!
//! The key set is the group's `public` set when there is one, else its
//! `private` set (the symmetric groups have only that). Every vector has an
//! explicit decision below, with the stage and reason of any refusal; the
//! test fails if the file and the table disagree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use crate::common::{conformance_dir, load, report, run, Outcome};
use castellan_jose::{JoseError, Jwks};
use serde_json::Value;

const FILE: &str = "wycheproof/json_web_key_test.json";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Decision {
    /// The key set parses and the token verifies.
    Accept,
    /// `parse_strict` refuses the key set; its error must contain the text.
    RefuseKeySet(&'static str),
    /// The key set parses but `verify_compact` refuses the token; the
    /// error's `Debug` form must contain the text.
    RefuseToken(&'static str),
    /// An HMAC key set: refused by policy (a symmetric key carries `k`,
    /// which `parse_strict` refuses as a private member).
    PolicyHmac,
}

use Decision::*;

/// One decision per vector: (tcId, decision, why).
const DECISIONS: [(u64, Decision, &str); 26] = [
    (
        1,
        RefuseKeySet("private member `k`"),
        "MixedKeySet: an HS256 `oct` key beside an EC key",
    ),
    (2, PolicyHmac, "HS256 key set (valid HMAC token)"),
    (3, PolicyHmac, "HS256 key set, modified signature"),
    (
        4,
        PolicyHmac,
        "DuplicateKid between two `oct` keys; refused at the first `k` (duplicate kids: see below)",
    ),
    (5, Accept, "RS256 key set, valid token"),
    (
        6,
        RefuseKeySet("not an accepted algorithm"),
        "`alg: RSA1_5`, `use: enc`: an encryption key",
    ),
    (
        7,
        RefuseKeySet("ROCA"),
        "RSA modulus with the ROCA (CVE-2017-15361) fingerprint",
    ),
    (8, RefuseKeySet("under 2048 bits"), "1024-bit RSA modulus"),
    (
        9,
        RefuseToken("BadSignature"),
        "RSA public exponent 1: the key parses (aws-lc checks e when verifying), and the forged signature (the \
         padded message itself) is refused",
    ),
    (10, PolicyHmac, "HS256 key too short"),
    (11, PolicyHmac, "HS384 key too short"),
    (12, PolicyHmac, "HS512 key too short"),
    (13, PolicyHmac, "HS256 long key (valid HMAC token)"),
    (14, PolicyHmac, "HS384 long key (valid HMAC token)"),
    (15, PolicyHmac, "HS512 long key (valid HMAC token)"),
    (16, PolicyHmac, "HS256 empty key"),
    (17, PolicyHmac, "HS384 empty key"),
    (18, PolicyHmac, "HS512 empty key"),
    (
        19,
        RefuseKeySet("not an accepted algorithm"),
        "`alg: ES521` on a P-256 key",
    ),
    (
        20,
        RefuseKeySet("not an accepted algorithm"),
        "`alg: ES224` on a P-256 key",
    ),
    (21, RefuseKeySet("`use` must be `sig`"), "`use: enc`"),
    (22, RefuseKeySet("key rejected"), "EC point not on the curve"),
    (
        23,
        RefuseKeySet("needs crv P-256"),
        "`crv: P-384` with ES256 and 32-byte coordinates",
    ),
    (
        24,
        RefuseKeySet("does not fit alg"),
        "`kty: RSA` with EC members and ES256",
    ),
    (25, RefuseKeySet("private member `k`"), "`oct` key with `alg: A256GCM`"),
    (26, RefuseKeySet("private member `k`"), "`oct` key with `alg: A256KW`"),
];

#[test]
fn wycheproof_json_web_key() {
    let Some(dir) = conformance_dir("wycheproof json_web_key") else {
        return;
    };
    let file = load(&dir, FILE);
    let mut failures: Vec<String> = Vec::new();
    let (mut total, mut accepted, mut keyset_refused, mut token_refused, mut policy_refused) = (0, 0, 0, 0, 0);
    let mut seen: Vec<u64> = Vec::new();
    let mut rs256_set: Option<Vec<u8>> = None;

    for group in file["testGroups"].as_array().unwrap() {
        let set = group.get("public").unwrap_or(&group["private"]);
        let set_bytes = serde_json::to_vec(set).unwrap();
        let all_oct = set["keys"].as_array().unwrap().iter().all(|k| k["kty"] == "oct");
        let parsed = Jwks::parse_strict(&set_bytes);
        for test in group["tests"].as_array().unwrap() {
            total += 1;
            let id = test["tcId"].as_u64().unwrap();
            seen.push(id);
            let label = test["result"].as_str().unwrap();
            let (_, decision, why) = DECISIONS
                .iter()
                .find(|(d, _, _)| *d == id)
                .copied()
                .unwrap_or_else(|| panic!("tcId {id} has no decision"));
            // A decision may only depart from the label by policy.
            match (decision, label) {
                (Accept, "valid") | (RefuseKeySet(_) | RefuseToken(_), "invalid") | (PolicyHmac, _) => {}
                _ => panic!("tcId {id}: decision {decision:?} contradicts label {label}"),
            }
            if decision == PolicyHmac {
                assert!(all_oct, "tcId {id}: PolicyHmac on a key set that is not all `oct`");
            }

            let outcome = match &parsed {
                Err(e) => Err(e.clone()),
                Ok(keys) => Ok(run(test["jws"].as_str().unwrap(), keys)),
            };
            let ok = match (decision, &outcome) {
                (Accept, Ok(o)) if o.accepted() => {
                    accepted += 1;
                    rs256_set = Some(set_bytes.clone());
                    true
                }
                (RefuseKeySet(text), Err(JoseError::BadKey(msg))) if msg.contains(text) => {
                    keyset_refused += 1;
                    true
                }
                (RefuseToken(text), Ok(Outcome::Refused(e))) if format!("{e:?}").contains(text) => {
                    token_refused += 1;
                    true
                }
                (PolicyHmac, Err(JoseError::BadKey(msg))) if msg.contains("private member `k`") => {
                    policy_refused += 1;
                    true
                }
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "tcId {id} ({label}, {why}): decided {decision:?}, got {outcome:?}"
                ));
            }
        }
    }

    // The DuplicateKid vector (4) is refused before kids are compared, so
    // check duplicate kids on the valid RS256 set too: the same key twice.
    let rs256_set = rs256_set.expect("tcId 5 key set");
    let mut doubled: Value = serde_json::from_slice(&rs256_set).unwrap();
    let key = doubled["keys"][0].clone();
    doubled["keys"].as_array_mut().unwrap().push(key);
    match Jwks::parse_strict(&serde_json::to_vec(&doubled).unwrap()) {
        Err(JoseError::BadKey(msg)) if msg.contains("duplicate kid") => {}
        other => failures.push(format!("duplicate kid in the RS256 set: got {other:?}")),
    }

    seen.sort_unstable();
    assert_eq!(seen, (1..=26).collect::<Vec<u64>>(), "the file's tcIds changed");
    report(&format!(
        "wycheproof json_web_key: {total} vectors; {accepted} accepted; {keyset_refused} key sets refused; \
         {token_refused} tokens refused under a parsed key set; {policy_refused} HMAC key sets refused by policy"
    ));
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(total, 26);
    assert_eq!(accepted, 1);
    assert_eq!(keyset_refused, 12);
    assert_eq!(token_refused, 1);
    assert_eq!(policy_refused, 12);
}
