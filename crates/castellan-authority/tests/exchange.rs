//! RFC 8693 token exchange: a service exchanges a token sent to it for one
//! addressed to the next service, on the subject's behalf, with the `act`
//! chain recording who acts for whom.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_jose::b64;
use castellan_testkit::browser::{pkce, sign_in, AuthRequest};
use castellan_testkit::TestAuthority;
use reqwest::Method;
use serde_json::{json, Value};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
const REDIRECT: &str = "http://127.0.0.1:9/cb";

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&b64::decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

struct Svc {
    id: String,
    secret: String,
}

async fn service(ta: &TestAuthority, body: Value) -> Svc {
    let (status, v) = ta.admin(Method::POST, "/clients", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    Svc {
        id: v["client_id"].as_str().unwrap().into(),
        secret: v["client_secret"].as_str().unwrap().into(),
    }
}

async fn exchange(ta: &TestAuthority, svc: &Svc, subject: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", AT),
    ];
    form.extend_from_slice(extra);
    let resp = ta.token_request(Some((&svc.id, &svc.secret)), &form).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// A person signed in to the web app; returns their access token for `orders`.
async fn person_token(ta: &TestAuthority) -> String {
    let (status, app) = ta
        .admin(
            Method::POST,
            "/clients",
            Some(
                json!({"name": "web", "audiences": ["orders"], "scopes": ["orders.read", "orders.write"],
                        "public": true, "redirect_uris": [REDIRECT]}),
            ),
        )
        .await;
    assert_eq!(status, 201);
    let app_id = app["client_id"].as_str().unwrap();
    let (status, _) = ta
        .admin(
            Method::POST,
            "/users",
            Some(json!({"username": "alice", "password": "alice-password"})),
        )
        .await;
    assert_eq!(status, 201);
    let p = pkce();
    let back = sign_in(
        &AuthRequest {
            issuer: &ta.url,
            client_id: app_id,
            redirect_uri: REDIRECT,
            scope: "openid orders.read orders.write",
            challenge: &p.challenge,
            state: "s",
            nonce: "n",
        },
        "alice",
        "alice-password",
    )
    .await;
    let code = back.redirect_param("code").unwrap();
    let v: Value = ta
        .http
        .post(format!("{}/oauth2/token", ta.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", p.verifier.as_str()),
            ("client_id", app_id),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

async fn platform(ta: &TestAuthority) -> (Svc, Svc, Svc) {
    let orders = service(
        ta,
        json!({"name": "orders-svc", "audiences": [], "serves": "orders", "exchange_audiences": ["billing"]}),
    )
    .await;
    let billing = service(
        ta,
        json!({"name": "billing-svc", "audiences": [], "serves": "billing", "exchange_audiences": ["ledger"]}),
    )
    .await;
    let ledger = service(
        ta,
        json!({"name": "ledger-svc", "audiences": [], "serves": "ledger", "exchange_audiences": ["audit"]}),
    )
    .await;
    (orders, billing, ledger)
}

#[tokio::test]
async fn a_service_exchanges_a_token_sent_to_it_and_the_chain_is_recorded() {
    let ta = TestAuthority::start().await;
    let (orders, billing, _) = platform(&ta).await;
    let person = person_token(&ta).await;
    let pc = claims_of(&person);

    let (status, v) = exchange(
        &ta,
        &orders,
        &person,
        &[("audience", "billing"), ("scope", "orders.read")],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["issued_token_type"], AT);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "orders.read");
    let hop1 = v["access_token"].as_str().unwrap().to_owned();
    let c1 = claims_of(&hop1);
    assert_eq!(c1["sub"], pc["sub"], "the subject stays the person");
    assert_eq!(c1["aud"], "billing");
    assert_eq!(
        c1["sid"], pc["sid"],
        "the session is shared, so revocation follows the chain"
    );
    assert_eq!(c1["client_id"], orders.id.as_str());
    assert_eq!(c1["act"], json!({"sub": orders.id}));
    assert!(c1["exp"].as_i64().unwrap() <= pc["exp"].as_i64().unwrap());
    let intro = ta.introspect(&hop1).await;
    assert_eq!(intro["active"], true);
    assert_eq!(intro["act"], json!({"sub": orders.id}));

    let (status, v) = exchange(&ta, &billing, &hop1, &[("resource", "ledger")]).await;
    assert_eq!(status, 200, "{v}");
    let hop2 = v["access_token"].as_str().unwrap().to_owned();
    let c2 = claims_of(&hop2);
    assert_eq!(c2["aud"], "ledger");
    assert_eq!(c2["scope"], "orders.read", "scopes never widen back");
    assert_eq!(c2["act"], json!({"sub": billing.id, "act": {"sub": orders.id}}));

    // Revoking the person's session kills every exchanged token.
    let sid = pc["sid"].as_str().unwrap();
    let (status, _) = ta.admin(Method::POST, &format!("/sessions/{sid}/revoke"), None).await;
    assert_eq!(status, 200);
    for t in [&person, &hop1, &hop2] {
        assert_eq!(ta.introspect(t).await["active"], false);
    }
    let (status, v) = exchange(&ta, &billing, &hop1, &[("audience", "ledger")]).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
}

#[tokio::test]
async fn exchanges_outside_what_a_client_may_do_are_refused() {
    let ta = TestAuthority::start().await;
    let (orders, billing, _) = platform(&ta).await;
    let person = person_token(&ta).await;
    type Case<'a> = (&'a str, &'a Svc, String, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "toward an audience not permitted",
            &orders,
            person.clone(),
            vec![("audience", "ledger")],
            400,
            "invalid_target",
        ),
        ("no audience", &orders, person.clone(), vec![], 400, "invalid_target"),
        (
            "two audiences",
            &orders,
            person.clone(),
            vec![("audience", "billing"), ("resource", "x")],
            400,
            "invalid_target",
        ),
        (
            "a token not sent to this service",
            &billing,
            person.clone(),
            vec![("audience", "ledger")],
            400,
            "invalid_request",
        ),
        (
            "wider scope",
            &orders,
            person.clone(),
            vec![("audience", "billing"), ("scope", "orders.admin")],
            400,
            "invalid_scope",
        ),
        (
            "garbage subject token",
            &orders,
            "x.y.z".to_owned(),
            vec![("audience", "billing")],
            400,
            "invalid_request",
        ),
        (
            "actor_token",
            &orders,
            person.clone(),
            vec![("audience", "billing"), ("actor_token", "abc")],
            400,
            "invalid_request",
        ),
        (
            "requested another token type",
            &orders,
            person.clone(),
            vec![
                ("audience", "billing"),
                ("requested_token_type", "urn:ietf:params:oauth:token-type:id_token"),
            ],
            400,
            "invalid_request",
        ),
    ];
    for (name, svc, subject, extra, status, error) in cases {
        let (s, v) = exchange(&ta, svc, &subject, &extra).await;
        assert_eq!((s, v["error"].as_str()), (status, Some(error)), "{name}: {v}");
    }
    // wrong subject_token_type
    let resp = ta
        .token_request(
            Some((&orders.id, &orders.secret)),
            &[
                ("grant_type", EXCHANGE),
                ("subject_token", &person),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                ("audience", "billing"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 400);
    // a client that serves nothing
    let (plain_id, plain_secret) = ta.client("plain", &["billing"], &[]).await;
    let plain = Svc {
        id: plain_id,
        secret: plain_secret,
    };
    let (s, v) = exchange(&ta, &plain, &person, &[("audience", "billing")]).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("unauthorized_client")), "{v}");
    // registration refuses exchange audiences without `serves`
    let (status, _) = ta
        .admin(
            Method::POST,
            "/clients",
            Some(json!({"name": "bad", "audiences": ["a"], "exchange_audiences": ["b"]})),
        )
        .await;
    assert_eq!(status, 400);
    // a service's own client_credentials token is not addressed to itself
    let own = ta.access_token(&plain.id, &plain.secret, &[]).await;
    let (s, _) = exchange(&ta, &orders, &own, &[("audience", "billing")]).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn chains_are_bounded_and_never_outlive_the_subject() {
    let ta = TestAuthority::start_with(|c| c.tokens.max_delegation_depth = 2).await;
    let (orders, billing, ledger) = platform(&ta).await;
    let person = person_token(&ta).await;
    let d = ta.get_json("/.well-known/openid-configuration").await;
    assert_eq!(d["castellan_validation_profile"]["max_delegation_depth"], 2);
    assert!(d["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!(EXCHANGE)));

    ta.clock.advance(240); // the person's token has 60 s left
    let (status, v) = exchange(&ta, &orders, &person, &[("audience", "billing")]).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["expires_in"].as_i64().unwrap() <= 60, "{v}");
    let hop1 = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&hop1)["exp"], claims_of(&person)["exp"]);
    let (status, v) = exchange(&ta, &billing, &hop1, &[("audience", "ledger")]).await;
    assert_eq!(status, 200, "{v}");
    let hop2 = v["access_token"].as_str().unwrap().to_owned();
    let (status, v) = exchange(&ta, &ledger, &hop2, &[("audience", "audit")]).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_request")),
        "depth 3 > 2: {v}"
    );
    assert!(v["error_description"].as_str().unwrap().contains("at most 2"));
    ta.clock.advance(61);
    let (status, _) = exchange(&ta, &orders, &person, &[("audience", "billing")]).await;
    assert_eq!(status, 400, "an expired subject token is not exchanged");
}
