//! Canary tokens for the drift probe: really signed by the authority, each
//! refused by a correct verifier for exactly its reason (the genuine control
//! accepted), minted by admins only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_testkit::TestAuthority;
use castellan_verify::{Rejection, Verifier};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn mint(ta: &TestAuthority, check: &str) -> (u16, Value) {
    ta.admin(
        Method::POST,
        "/canaries",
        Some(json!({"audience": "orders", "check": check})),
    )
    .await
}

#[tokio::test]
async fn canaries_are_refused_by_a_correct_verifier_for_their_reason() {
    let ta = TestAuthority::start().await;
    let verifier = Verifier::builder(&ta.url, "orders").connect().await.unwrap();

    let (status, genuine) = mint(&ta, "genuine").await;
    assert_eq!(status, 201, "{genuine}");
    let token = verifier.verify(genuine["token"].as_str().unwrap()).await.unwrap();
    assert_eq!(token.sub, "castellan-probe-canary");
    assert_eq!(token.client_id, "castellan-probe");
    assert_eq!(token.scope, None, "canaries carry no scopes");
    assert!(token.exp - token.iat <= 60, "a short life");

    for (check, expect) in [
        ("expired", "expired"),
        ("not-yet-valid", "issued_in_future"),
        ("wrong-issuer", "wrong_issuer"),
        ("wrong-audience", "wrong_audience"),
        ("wrong-token-type", "wrong_type"),
    ] {
        let (status, v) = mint(&ta, check).await;
        assert_eq!(status, 201, "{check}: {v}");
        assert_eq!(v["check"], check);
        let rejection = verifier.verify(v["token"].as_str().unwrap()).await.unwrap_err();
        assert_eq!(rejection.label(), expect, "{check}: {rejection:?}");
        // Really signed with the active key: only its one flaw is wrong.
        assert_eq!(v["kid"], genuine["kid"]);
    }

    // A revoked session: the token is refused once the revocation arrives.
    let (status, v) = mint(&ta, "revoked-session").await;
    assert_eq!(status, 201, "{v}");
    assert!(v["revocation_seq"].as_i64().unwrap() > 0);
    let t = v["token"].as_str().unwrap().to_owned();
    let start = Instant::now();
    loop {
        match verifier.verify(&t).await {
            Err(Rejection::Revoked(_)) => break,
            other => assert!(start.elapsed() < Duration::from_secs(1), "still {other:?} after 1 s"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The genuine canary is unaffected: its own session.
    assert!(verifier.verify(genuine["token"].as_str().unwrap()).await.is_ok());
}

#[tokio::test]
async fn canary_requests_are_checked() {
    let ta = TestAuthority::start().await;
    let (status, v) = mint(&ta, "removed-key").await;
    assert_eq!(status, 409, "no removed key is kept yet: {v}");
    for check in ["alg-none", "no-token", "nonsense", ""] {
        let (status, v) = mint(&ta, check).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("invalid_request")),
            "{check}: {v}"
        );
    }
    for body in [
        json!({"check": "genuine"}),
        json!({"audience": "", "check": "genuine"}),
        json!({"audience": "a b", "check": "genuine"}),
        json!({"audience": "orders", "check": "genuine", "scope": "x"}),
    ] {
        let (status, v) = ta.admin(Method::POST, "/canaries", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {v}");
    }
    // Admin only.
    let (id, secret) = ta.client("svc", &["orders"], &[]).await;
    let token = ta.access_token(&id, &secret, &[]).await;
    let r = ta
        .http
        .post(format!("{}/admin/v1/canaries", ta.url))
        .bearer_auth(token)
        .json(&json!({"audience": "orders", "check": "genuine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

fn kid_of(token: &str) -> String {
    castellan_jose::decode_unverified_header(token).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn removed_key_canaries_are_signed_with_keys_no_verifier_trusts() {
    let ta =
        TestAuthority::start_with(|c| c.keys.keep_removed_for = castellan_core::HumanDuration::from_secs(3_600)).await;
    let verifier = Verifier::builder(&ta.url, "orders").connect().await.unwrap();
    let (status, _) = mint(&ta, "removed-key").await;
    assert_eq!(status, 409, "nothing withdrawn or removed yet");

    // An emergency withdraws the active key: the canary is signed with it.
    let (_, before) = ta.admin(Method::GET, "/keys", None).await;
    let withdrawn = before["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "active")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, v) = ta
        .admin(Method::POST, "/keys/rotate", Some(json!({"emergency": true})))
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, canary) = mint(&ta, "removed-key").await;
    assert_eq!(status, 201, "{canary}");
    let token = canary["token"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&token), withdrawn);
    assert_eq!(canary["kid"], withdrawn.as_str());
    let start = Instant::now();
    loop {
        match verifier.verify(&token).await {
            Err(r) if matches!(r.label(), "key_withdrawn" | "unknown_key" | "revoked") => break,
            other => assert!(start.elapsed() < Duration::from_secs(2), "{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A genuine canary still works: only the removed key is refused.
    let (_, genuine) = mint(&ta, "genuine").await;
    assert!(verifier.verify(genuine["token"].as_str().unwrap()).await.is_ok());

    // Past the token horizon the key becomes `removed`: still unpublished,
    // its private half kept for canaries only.
    ta.clock.advance(3_631);
    ta.authority.maintain().await.unwrap();
    let (_, keys) = ta.admin(Method::GET, "/keys", None).await;
    let state = |kid: &str| {
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .map(|k| k["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state(&withdrawn).as_deref(), Some("removed"));
    assert!(!ta.published_kids().await.contains(&withdrawn));
    let (status, canary) = mint(&ta, "removed-key").await;
    assert_eq!(status, 201, "{canary}");
    assert_eq!(kid_of(canary["token"].as_str().unwrap()), withdrawn);
    // Real tokens are never signed with it.
    let (_, genuine) = mint(&ta, "genuine").await;
    assert_ne!(kid_of(genuine["token"].as_str().unwrap()), withdrawn);

    // After `keys.keep_removed_for` it is deleted.
    ta.clock.advance(3_601);
    ta.authority.maintain().await.unwrap();
    let (_, keys) = ta.admin(Method::GET, "/keys", None).await;
    assert!(!keys.to_string().contains(&withdrawn), "{keys}");
    let (status, _) = mint(&ta, "removed-key").await;
    assert_eq!(status, 409);
}
