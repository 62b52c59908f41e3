//! The verifier against a real authority booted in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_jose::{b64, Algorithm, SigningKey};
use castellan_testkit::{kid_of, TestAuthority};
use castellan_verify::{FailMode, Rejection, RevokedBy, Verifier};
use reqwest::Method;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn verifier(ta: &TestAuthority, audience: &str) -> Verifier {
    Verifier::builder(&ta.url, audience)
        .clock(Arc::new(ta.clock.clone()))
        .connect()
        .await
        .unwrap()
}

/// Polls until `f` holds, at most `limit`; returns how long it took.
async fn within<F: FnMut() -> Fut, Fut: std::future::Future<Output = bool>>(limit: Duration, mut f: F) -> Duration {
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "condition not met within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn verifies_genuine_tokens_and_refuses_the_rest() {
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("caller", &["orders", "billing"], &["read"]).await;
    let v = verifier(&ta, "orders").await;
    let token = ta
        .access_token(&id, &secret, &[("audience", "orders"), ("scope", "read")])
        .await;
    let ok = v.verify(&token).await.unwrap();
    assert_eq!(ok.sub, id);
    assert_eq!(ok.client_id, id);
    assert_eq!(ok.aud, "orders");
    assert!(ok.has_scope("read"));
    assert_eq!(ok.kid, kid_of(&token));
    // Again: from the cache, same answer.
    assert_eq!(v.verify(&token).await.unwrap(), ok);
    let other = ta.access_token(&id, &secret, &[("audience", "billing")]).await;
    assert_eq!(v.verify(&other).await.unwrap_err(), Rejection::WrongAudience);
    assert!(matches!(
        v.verify("garbage").await.unwrap_err(),
        Rejection::Malformed(_)
    ));
    // Expiry follows the injected clock, cached or not.
    ta.clock.advance(300 + 31);
    assert_eq!(v.verify(&token).await.unwrap_err(), Rejection::Expired);
    let fresh_v = verifier(&ta, "orders").await;
    assert_eq!(fresh_v.verify(&token).await.unwrap_err(), Rejection::Expired);
}

#[tokio::test]
async fn local_settings_cannot_loosen_the_profile() {
    let ta = TestAuthority::start().await;
    let err = Verifier::builder(&ta.url, "orders")
        .leeway(Duration::from_secs(60))
        .connect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("looser"), "{err}");
    let err = Verifier::builder(&ta.url, "orders")
        .algorithms(vec![Algorithm::RS256])
        .connect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing"), "{err}");
    let err = Verifier::builder("http://127.0.0.1:9", "orders")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("discovery"), "{err}");
}

#[tokio::test]
async fn revocation_reaches_every_verifier_within_a_second() {
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("caller", &["orders"], &[]).await;
    let mut verifiers = Vec::new();
    for _ in 0..5 {
        verifiers.push(verifier(&ta, "orders").await);
    }
    let token = ta.access_token(&id, &secret, &[]).await;
    let other = ta.access_token(&id, &secret, &[]).await;
    for v in &verifiers {
        v.verify(&token).await.unwrap();
    }
    let sid = ta.introspect(&token).await["sid"].as_str().unwrap().to_owned();
    let (status, _) = ta.admin(Method::POST, &format!("/sessions/{sid}/revoke"), None).await;
    assert_eq!(status, 200);
    for v in &verifiers {
        let took = within(Duration::from_secs(1), || async {
            v.verify(&token).await == Err(Rejection::Revoked(RevokedBy::Session))
        })
        .await;
        assert!(took < Duration::from_secs(1));
        assert!(v.verify(&other).await.is_ok(), "another session is untouched");
    }
    // Subject and client revocations cover tokens issued before them.
    let (status, _) = ta.admin(Method::POST, &format!("/subjects/{id}/revoke"), None).await;
    assert_eq!(status, 200);
    for v in &verifiers {
        within(Duration::from_secs(1), || async {
            v.verify(&other).await == Err(Rejection::Revoked(RevokedBy::Subject))
        })
        .await;
    }
    ta.clock.advance(1);
    let after = ta.access_token(&id, &secret, &[]).await;
    assert!(
        verifiers[0].verify(&after).await.is_ok(),
        "issued after the subject revocation"
    );
}

#[tokio::test]
async fn emergency_rotation_withdraws_the_key_from_verifiers_at_once() {
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("caller", &["orders"], &[]).await;
    let v = verifier(&ta, "orders").await;
    let old = ta.access_token(&id, &secret, &[]).await;
    v.verify(&old).await.unwrap();
    let (status, _) = ta
        .admin(Method::POST, "/keys/rotate", Some(json!({"emergency": true})))
        .await;
    assert_eq!(status, 200);
    within(Duration::from_secs(1), || async {
        v.verify(&old).await == Err(Rejection::KeyWithdrawn)
    })
    .await;
    let new = ta.access_token(&id, &secret, &[]).await;
    assert_ne!(kid_of(&new), kid_of(&old));
    v.verify(&new).await.unwrap();
    // Routine rotation: the new next key reaches the verifier through the stream, and
    // the verifier reports holding it.
    let (status, _) = ta.admin(Method::POST, "/keys/rotate", None).await;
    assert_eq!(status, 200);
    let next = ta.authority.keys().next_kid().unwrap();
    within(Duration::from_secs(2), || async { v.status().kids.contains(&next) }).await;
    within(Duration::from_secs(2), || async {
        let (_, list) = ta.admin(Method::GET, "/verifiers", None).await;
        list["verifiers"].as_array().unwrap().iter().any(|x| {
            x["verifier_id"] == v.status().verifier_id.as_str() && x["kids"].as_array().unwrap().contains(&json!(next))
        })
    })
    .await;
}

#[tokio::test]
async fn forged_kids_do_not_cause_fetch_storms() {
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("caller", &["orders"], &[]).await;
    let v = Verifier::builder(&ta.url, "orders")
        .clock(Arc::new(ta.clock.clone()))
        .unknown_kid_cooldown(Duration::from_secs(60))
        .connect()
        .await
        .unwrap();
    let token = ta.access_token(&id, &secret, &[]).await;
    let (attacker, _) = SigningKey::generate(Algorithm::ES256).unwrap();
    let payload = token.split('.').nth(1).unwrap().to_owned();
    let fetches = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("castellan_jwks_refresh_total{outcome=\"ok\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = fetches(&ta.authority.render_metrics());
    let mut tasks = Vec::new();
    for i in 0..50 {
        let header = b64::encode(format!(r#"{{"alg":"ES256","kid":"forged-{i}","typ":"at+jwt"}}"#).as_bytes());
        let input = format!("{header}.{payload}");
        let forged = format!("{input}.{}", b64::encode(&attacker.sign_raw(input.as_bytes()).unwrap()));
        let v = v.clone();
        tasks.push(tokio::spawn(async move { v.verify(&forged).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err(), Rejection::UnknownKey);
    }
    let after = fetches(&ta.authority.render_metrics());
    assert!(
        after - before <= 1,
        "{} JWKS fetches for 50 forged kids",
        after - before
    );
    assert!(v.verify(&token).await.is_ok());
}

#[tokio::test]
async fn tower_layer_and_extractor_answer_rfc6750() {
    use axum::routing::get;
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("caller", &["orders"], &[]).await;
    let v = verifier(&ta, "orders").await;
    let app: axum::Router = axum::Router::new()
        .route(
            "/whoami",
            get(|t: castellan_verify::VerifiedToken| async move { t.sub.clone() }),
        )
        .layer(castellan_verify::VerifyLayer::new(v.clone()))
        .with_state(v.clone());
    let direct: axum::Router = axum::Router::new()
        .route(
            "/whoami",
            get(|t: castellan_verify::VerifiedToken| async move { t.sub.clone() }),
        )
        .with_state(v);
    for (name, router) in [("layer", app), ("extractor", direct)] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let url = format!("http://{addr}/whoami");
        let token = ta.access_token(&id, &secret, &[]).await;
        let r = ta.http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.text().await.unwrap(), id);
        let r = ta.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}");
        assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="castellan""#);
        let r = ta.http.get(&url).bearer_auth("x.y.z").send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}");
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#));
    }
}

#[tokio::test]
async fn authority_down_keeps_genuine_tokens_flowing_then_fails_closed() {
    let mut ta = TestAuthority::start_with(|c| c.revocation.heartbeat_interval = "1s".parse().unwrap()).await;
    let (id, secret) = ta.client("caller", &["orders"], &[]).await;
    let token = ta.access_token(&id, &secret, &[]).await;
    let uncached = ta.access_token(&id, &secret, &[]).await;
    let build = |mode| {
        Verifier::builder(&ta.url, "orders")
            .clock(Arc::new(ta.clock.clone()))
            .staleness_window(Duration::from_secs(3))
            .fail_mode(mode)
            .connect()
    };
    let closed = build(FailMode::Closed).await.unwrap();
    let open = build(FailMode::Open).await.unwrap();
    closed.verify(&token).await.unwrap();
    ta.kill();
    // Within the staleness window: cached and uncached genuine tokens still verify.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!closed.status().stream_connected);
    closed.verify(&token).await.unwrap();
    closed.verify(&uncached).await.unwrap();
    // Past it: closed refuses, open keeps serving.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(closed.verify(&token).await.unwrap_err(), Rejection::Stale);
    assert!(!closed.is_ready());
    assert!(open.verify(&token).await.is_ok(), "fail-open keeps serving");
    // The authority comes back: the stream reconnects and the verifier is fresh again.
    ta.restart().await;
    within(Duration::from_secs(8), || async { closed.verify(&token).await.is_ok() }).await;
}

#[tokio::test]
async fn a_staleness_window_shorter_than_three_keep_alives_is_refused() {
    let ta = TestAuthority::start().await;
    let err = Verifier::builder(&ta.url, "orders")
        .staleness_window(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("keep-alives"), "{err}");
}

#[tokio::test]
async fn a_reconnect_resumes_without_missing_an_event() {
    let mut ta = TestAuthority::start().await;
    let (id, secret) = ta.client("caller", &["orders"], &[]).await;
    let v = verifier(&ta, "orders").await;
    let tokens: Vec<String> = {
        let mut t = Vec::new();
        for _ in 0..4 {
            t.push(ta.access_token(&id, &secret, &[]).await);
        }
        t
    };
    let sid = |t: &str| {
        let payload = t.split('.').nth(1).unwrap();
        let c: serde_json::Value = serde_json::from_slice(&b64::decode(payload).unwrap()).unwrap();
        c["sid"].as_str().unwrap().to_owned()
    };
    let (status, _) = ta
        .admin(Method::POST, &format!("/sessions/{}/revoke", sid(&tokens[0])), None)
        .await;
    assert_eq!(status, 200);
    within(Duration::from_secs(1), || async { v.verify(&tokens[0]).await.is_err() }).await;
    let seq_before = v.status().last_seq;
    // Down, back up, and three revocations land before the verifier has reconnected
    // (its backoff has grown while the authority was away).
    ta.kill();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    ta.restart().await;
    for t in &tokens[1..] {
        let (status, _) = ta
            .admin(Method::POST, &format!("/sessions/{}/revoke", sid(t)), None)
            .await;
        assert_eq!(status, 200);
    }
    for t in &tokens[1..] {
        within(Duration::from_secs(8), || async {
            v.verify(t).await == Err(Rejection::Revoked(RevokedBy::Session))
        })
        .await;
    }
    assert_eq!(
        v.status().last_seq,
        seq_before + 3,
        "every event applied once, in order"
    );
}

#[tokio::test]
async fn a_replaced_revocation_log_is_replayed_from_the_start() {
    let mut ta = TestAuthority::start().await;
    let (id, secret) = ta.client("caller", &["orders"], &[]).await;
    let v = Verifier::builder(&ta.url, "orders")
        .clock(Arc::new(ta.clock.clone()))
        .unknown_kid_cooldown(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    // Advance the old log a few events.
    for i in 0..3 {
        let (status, _) = ta.admin(Method::POST, &format!("/sessions/old-{i}/revoke"), None).await;
        assert_eq!(status, 200);
    }
    within(Duration::from_secs(2), || async { v.status().last_seq >= 3 }).await;
    // The store is replaced: its log starts again at 1, below what the verifier has seen.
    ta.restart_with_fresh_store().await;
    let (id2, secret2) = ta.client("caller", &["orders"], &[]).await;
    let token = ta.access_token(&id2, &secret2, &[]).await;
    let (status, _) = ta
        .admin(
            Method::POST,
            &format!(
                "/sessions/{}/revoke",
                ta.introspect(&token).await["sid"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 200);
    within(Duration::from_secs(10), || async {
        v.verify(&token).await == Err(Rejection::Revoked(RevokedBy::Session))
    })
    .await;
    let _ = (id, secret);
}
