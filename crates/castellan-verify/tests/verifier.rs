//! The verifier against a real authority booted in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_core::claims::ACCESS_TOKEN_TYP;
use castellan_core::Confirmation;
use castellan_jose::{b64, Algorithm, SigningKey};
use castellan_testkit::{kid_of, TestAuthority};
use castellan_verify::{x5t_s256, FailMode, PresentedCertificate, Rejection, RevokedBy, VerifiedToken, Verifier};
use reqwest::Method;
use serde_json::{json, Value};
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

// ---------------------------------------------------------------------------
// Certificate-bound tokens (RFC 8705)
// ---------------------------------------------------------------------------

/// An access token for `orders` signed with the authority's active key, with
/// `cnf` set verbatim when given (to make shapes the authority never would).
fn token_with_cnf(ta: &TestAuthority, cnf: Option<Value>) -> String {
    let issued = ta
        .authority
        .issue_access_token("svc", "svc", "orders", None, 300)
        .unwrap();
    let mut claims = serde_json::to_value(&issued.claims).unwrap();
    if let Some(cnf) = cnf {
        claims["cnf"] = cnf;
    }
    ta.authority
        .keys()
        .current()
        .active
        .sign_compact(ACCESS_TOKEN_TYP, &claims)
        .unwrap()
}

/// An access token for `orders` bound to the certificate `cert_der`, as the
/// authority signs its claims.
fn bound_token(ta: &TestAuthority, cert_der: &[u8]) -> String {
    let mut claims = ta
        .authority
        .issue_access_token("svc", "svc", "orders", None, 300)
        .unwrap()
        .claims;
    claims.cnf = Some(Confirmation {
        x5t_s256: Some(x5t_s256(cert_der)),
    });
    ta.authority
        .keys()
        .current()
        .active
        .sign_compact(ACCESS_TOKEN_TYP, &claims)
        .unwrap()
}

#[tokio::test]
async fn a_bound_token_is_accepted_only_with_its_certificate() {
    let ta = TestAuthority::start().await;
    let v = verifier(&ta, "orders").await;
    let mine = PresentedCertificate::from_der(b"DER of the caller's certificate");
    let theirs = PresentedCertificate::from_der(b"DER of another certificate");
    let token = bound_token(&ta, mine.der());

    let ok = v.verify_presented(&token, Some(&mine)).await.unwrap();
    assert_eq!(ok.cnf_x5t_s256.as_deref(), Some(mine.x5t_s256()));
    assert_eq!(ok.sub, "svc");
    assert_eq!(
        v.verify_presented(&token, Some(&theirs)).await.unwrap_err(),
        Rejection::CertificateMismatch
    );
    assert_eq!(
        v.verify_presented(&token, None).await.unwrap_err(),
        Rejection::BoundTokenWithoutCertificate
    );
    assert_eq!(
        v.verify(&token).await.unwrap_err(),
        Rejection::BoundTokenWithoutCertificate,
        "verify is verify_presented with no certificate"
    );
    // Still good with its certificate after the refusals.
    assert_eq!(v.verify_presented(&token, Some(&mine)).await.unwrap(), ok);

    // Refused outright (never cached) by a fresh verifier too.
    let fresh = verifier(&ta, "orders").await;
    assert_eq!(
        fresh.verify_presented(&token, Some(&theirs)).await.unwrap_err(),
        Rejection::CertificateMismatch
    );
    assert_eq!(
        fresh.verify(&token).await.unwrap_err(),
        Rejection::BoundTokenWithoutCertificate
    );
    assert_eq!(fresh.verify_presented(&token, Some(&mine)).await.unwrap(), ok);

    for rejection in [Rejection::CertificateMismatch, Rejection::BoundTokenWithoutCertificate] {
        assert!(rejection.is_invalid_token(), "{rejection:?} answers invalid_token");
        let resp = castellan_verify::rejection_response(&rejection);
        assert_eq!(resp.status(), 401);
        assert!(resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#));
    }
}

#[tokio::test]
async fn a_cached_bound_token_still_needs_its_certificate() {
    let ta = TestAuthority::start().await;
    let v = verifier(&ta, "orders").await;
    let mine = PresentedCertificate::from_der(b"DER of the caller's certificate");
    let theirs = PresentedCertificate::from_der(b"DER of another certificate");
    let token = bound_token(&ta, mine.der());
    // Accepted once with its certificate: now in the verified-token cache.
    let ok = v.verify_presented(&token, Some(&mine)).await.unwrap();
    // Cache hits re-check the binding on every call.
    for _ in 0..3 {
        assert_eq!(
            v.verify_presented(&token, None).await.unwrap_err(),
            Rejection::BoundTokenWithoutCertificate
        );
        assert_eq!(
            v.verify(&token).await.unwrap_err(),
            Rejection::BoundTokenWithoutCertificate
        );
        assert_eq!(
            v.verify_presented(&token, Some(&theirs)).await.unwrap_err(),
            Rejection::CertificateMismatch
        );
        assert_eq!(v.verify_presented(&token, Some(&mine)).await.unwrap(), ok);
    }
    // A cache hit still expires.
    ta.clock.advance(300 + 31);
    assert_eq!(
        v.verify_presented(&token, Some(&mine)).await.unwrap_err(),
        Rejection::Expired
    );
}

#[tokio::test]
async fn an_unbound_token_is_unaffected_by_a_certificate() {
    let ta = TestAuthority::start().await;
    let v = verifier(&ta, "orders").await;
    let cert = PresentedCertificate::from_der(b"DER of the caller's certificate");
    let token = token_with_cnf(&ta, None);
    let ok = v.verify_presented(&token, Some(&cert)).await.unwrap();
    assert_eq!(ok.cnf_x5t_s256, None);
    assert_eq!(v.verify_presented(&token, None).await.unwrap(), ok);
    assert_eq!(v.verify(&token).await.unwrap(), ok);
    assert_eq!(v.verify_presented(&token, Some(&cert)).await.unwrap(), ok);
}

#[tokio::test]
async fn confirmations_the_verifier_cannot_check_are_refused() {
    let ta = TestAuthority::start().await;
    let v = verifier(&ta, "orders").await;
    let cert = PresentedCertificate::from_der(b"DER of the caller's certificate");
    let thumb = cert.x5t_s256().to_owned();
    let unsupported = Rejection::UnsupportedConfirmation;
    let malformed = Rejection::MissingClaim("cnf".to_owned());
    for (name, cnf, expect) in [
        ("only jkt (DPoP)", json!({"jkt": thumb}), &unsupported),
        (
            "x5t#S256 beside jkt",
            json!({"x5t#S256": thumb, "jkt": thumb}),
            &unsupported,
        ),
        ("only jwk", json!({"jwk": {"kty": "OKP"}}), &unsupported),
        ("SHA-1 x5t", json!({"x5t": thumb}), &unsupported),
        ("empty cnf", json!({}), &malformed),
        ("cnf as a string", json!(thumb), &malformed),
        ("cnf null", Value::Null, &malformed),
        ("thumbprint too short", json!({"x5t#S256": &thumb[..42]}), &malformed),
        (
            "thumbprint too long",
            json!({"x5t#S256": format!("{thumb}A")}),
            &malformed,
        ),
        (
            "thumbprint padded",
            json!({"x5t#S256": format!("{thumb}=")}),
            &malformed,
        ),
        ("thumbprint in hex", json!({"x5t#S256": "ab".repeat(32)}), &malformed),
        (
            "thumbprint not base64url",
            json!({"x5t#S256": format!("{}*", &thumb[..42])}),
            &malformed,
        ),
        ("thumbprint a number", json!({"x5t#S256": 1}), &malformed),
    ] {
        let token = token_with_cnf(&ta, Some(cnf));
        assert_eq!(
            &v.verify_presented(&token, Some(&cert)).await.unwrap_err(),
            expect,
            "{name}, certificate presented"
        );
        assert_eq!(&v.verify(&token).await.unwrap_err(), expect, "{name}, no certificate");
    }
}

/// End to end over mutual TLS: the service terminates TLS with rustls, an
/// outer layer puts the connection's client certificate into the request
/// extensions, and the [`castellan_verify::VerifyLayer`] (or the extractor)
/// checks bound tokens against it.
mod mtls {
    use super::*;
    use axum::extract::connect_info::{ConnectInfo, Connected};
    use axum::extract::Request;
    use axum::routing::get;
    use axum::serve::IncomingStream;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::server::WebPkiClientVerifier;
    use rustls::{ClientConfig, RootCertStore, ServerConfig};
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// A certificate and its key.
    struct Leaf {
        der: CertificateDer<'static>,
        key: KeyPair,
    }

    impl Leaf {
        fn key_der(&self) -> PrivateKeyDer<'static> {
            PrivateKeyDer::Pkcs8(self.key.serialize_der().into())
        }
    }

    fn leaf(ca: &CertifiedIssuer<'static, KeyPair>, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let issuer: &rcgen::Issuer<'_, KeyPair> = ca;
        let der = params.signed_by(&key, issuer).unwrap().der().clone();
        Leaf { der, key }
    }

    /// TCP plus a TLS handshake that asks for (but does not require) a client certificate.
    struct TlsListener {
        tcp: TcpListener,
        acceptor: TlsAcceptor,
    }

    impl axum::serve::Listener for TlsListener {
        type Io = tokio_rustls::server::TlsStream<TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let Ok((tcp, addr)) = self.tcp.accept().await else {
                    continue;
                };
                if let Ok(tls) = self.acceptor.accept(tcp).await {
                    return (tls, addr);
                }
            }
        }

        fn local_addr(&self) -> std::io::Result<SocketAddr> {
            self.tcp.local_addr()
        }
    }

    /// The connection's client certificate, taken once per connection.
    #[derive(Debug, Clone)]
    struct PeerCertificate(Option<PresentedCertificate>);

    impl Connected<IncomingStream<'_, TlsListener>> for PeerCertificate {
        fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
            let (_, conn) = stream.io().get_ref();
            Self(
                conn.peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| PresentedCertificate::from_der(leaf)),
            )
        }
    }

    /// The outer layer: the connection's certificate into each request's extensions.
    async fn present_peer_certificate(mut req: Request) -> Request {
        let cert = req
            .extensions()
            .get::<ConnectInfo<PeerCertificate>>()
            .and_then(|info| info.0 .0.clone());
        if let Some(cert) = cert {
            req.extensions_mut().insert(cert);
        }
        req
    }

    /// `GET /whoami` over TLS with a bearer token, presenting `client` when given;
    /// answers the status and the `WWW-Authenticate` header or the body.
    async fn https_get(
        addr: SocketAddr,
        ca: &CertificateDer<'static>,
        client: Option<&Leaf>,
        token: &str,
    ) -> (u16, String) {
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some(c) => builder.with_client_auth_cert(vec![c.der.clone()], c.key_der()).unwrap(),
            None => builder.with_no_client_auth(),
        };
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let request = format!(
            "GET /whoami HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
        );
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        // The server may close without close_notify; what arrived is complete (connection: close).
        let _ = tls.read_to_end(&mut raw).await;
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let challenge = head
            .lines()
            .find_map(|l| l.strip_prefix("www-authenticate: "))
            .map(str::to_owned);
        (status, challenge.unwrap_or_else(|| body.to_owned()))
    }

    #[tokio::test]
    async fn layer_and_extractor_check_the_client_certificate_of_the_connection() {
        let ta = TestAuthority::start().await;
        let v = verifier(&ta, "orders").await;

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let ca_der = ca.der().clone();
        let server = leaf(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
        let alice = leaf(&ca, "alice", ExtendedKeyUsagePurpose::ClientAuth);
        let mallory = leaf(&ca, "mallory", ExtendedKeyUsagePurpose::ClientAuth);

        let mut roots = RootCertStore::empty();
        roots.add(ca_der.clone()).unwrap();
        let client_verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .unwrap();
        let tls = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(vec![server.der.clone()], server.key_der())
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(tls));

        let whoami = get(|t: VerifiedToken| async move { t.sub.clone() });
        let layered: axum::Router = axum::Router::new()
            .route("/whoami", whoami.clone())
            .layer(castellan_verify::VerifyLayer::new(v.clone()))
            .layer(axum::middleware::map_request(present_peer_certificate))
            .with_state(v.clone());
        let extracted: axum::Router = axum::Router::new()
            .route("/whoami", whoami)
            .layer(axum::middleware::map_request(present_peer_certificate))
            .with_state(v);

        let bound = bound_token(&ta, &alice.der);
        let unbound = token_with_cnf(&ta, None);
        for (name, router) in [("layer", layered), ("extractor", extracted)] {
            let listener = TlsListener {
                tcp: TcpListener::bind("127.0.0.1:0").await.unwrap(),
                acceptor: acceptor.clone(),
            };
            let addr = listener.tcp.local_addr().unwrap();
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<PeerCertificate>(),
                )
                .await
            });

            assert_eq!(
                https_get(addr, &ca_der, Some(&alice), &bound).await,
                (200, "svc".to_owned()),
                "{name}: bound token over the connection of its certificate"
            );
            for (who, client) in [("mallory's certificate", Some(&mallory)), ("no certificate", None)] {
                let (status, challenge) = https_get(addr, &ca_der, client, &bound).await;
                assert_eq!(status, 401, "{name}: bound token with {who}");
                assert!(
                    challenge.contains(r#"error="invalid_token""#),
                    "{name}: bound token with {who}: {challenge}"
                );
            }
            for (who, client) in [
                ("alice's certificate", Some(&alice)),
                ("mallory's certificate", Some(&mallory)),
                ("no certificate", None),
            ] {
                assert_eq!(
                    https_get(addr, &ca_der, client, &unbound).await,
                    (200, "svc".to_owned()),
                    "{name}: unbound token with {who}"
                );
            }
        }
    }
}
