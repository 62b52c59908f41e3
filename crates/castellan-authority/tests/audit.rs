//! The audit trail: admin actions, sign-ins (both outcomes), token
//! exchanges, revocations, rotations (by an admin and by the schedule),
//! policy pushes and canary mints become hash-chained events with the right
//! actor, action, target and outcome, carrying no secret; the admin API lists
//! and verifies them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_testkit::browser::{pkce, sign_in, AuthRequest};
use castellan_testkit::{TestAuthority, ADMIN_ID, ADMIN_SECRET};
use reqwest::Method;
use serde_json::{json, Value};

const REDIRECT: &str = "http://127.0.0.1:9/cb";
const PASSWORD: &str = "correct horse battery staple";
const WRONG_PASSWORD: &str = "not-the-password-at-all";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
const POLICY: &str = "permit(principal, action, resource);";

/// Every event, through the admin API, in pages of 2 (to exercise `after`).
async fn all_events(ta: &TestAuthority) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (status, v) = ta
            .admin(Method::GET, &format!("/audit?after={after}&limit=2"), None)
            .await;
        assert_eq!(status, 200, "{v}");
        let page = v["events"].as_array().unwrap().clone();
        out.extend(page.iter().cloned());
        match v["next_after"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    out
}

fn find<'a>(events: &'a [Value], action: &str, outcome: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["action"] == action && e["outcome"] == outcome)
        .collect()
}

fn one<'a>(events: &'a [Value], action: &str, outcome: &str) -> &'a Value {
    let found = find(events, action, outcome);
    assert_eq!(found.len(), 1, "{action}/{outcome}: {found:?}");
    found[0]
}

#[tokio::test]
async fn every_audited_action_is_recorded_chained_and_free_of_secrets() {
    let ta = TestAuthority::start().await;
    let admin = format!("client:{ADMIN_ID}");

    // Admin actions: clients, secret rotation, users.
    let (status, app) = ta
        .admin(
            Method::POST,
            "/clients",
            Some(
                json!({"name": "web", "audiences": ["orders"], "scopes": ["orders.read"],
                        "public": true, "redirect_uris": [REDIRECT]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    let app_id = app["client_id"].as_str().unwrap().to_owned();
    let (status, svc) = ta
        .admin(
            Method::POST,
            "/clients",
            Some(json!({"name": "orders-svc", "audiences": [], "serves": "orders", "exchange_audiences": ["billing"]})),
        )
        .await;
    assert_eq!(status, 201, "{svc}");
    let svc_id = svc["client_id"].as_str().unwrap().to_owned();
    let (status, rotated) = ta
        .admin(Method::POST, &format!("/clients/{svc_id}/rotate-secret"), None)
        .await;
    assert_eq!(status, 200, "{rotated}");
    let svc_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    let (status, user) = ta
        .admin(
            Method::POST,
            "/users",
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let user_id = user["user_id"].as_str().unwrap().to_owned();

    // Sign-ins: a wrong password, then the right one.
    let p = pkce();
    let req = AuthRequest {
        issuer: &ta.url,
        client_id: &app_id,
        redirect_uri: REDIRECT,
        scope: "openid orders.read",
        challenge: &p.challenge,
        state: "s",
        nonce: "n",
    };
    let refused = sign_in(&req, "alice", WRONG_PASSWORD).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    ta.clock.advance(20); // past the throttle's delay after a failure
    let back = sign_in(&req, "alice", PASSWORD).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let code = back.redirect_param("code").unwrap();
    let tokens: Value = ta
        .http
        .post(format!("{}/oauth2/token", ta.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", p.verifier.as_str()),
            ("client_id", app_id.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let person_token = tokens["access_token"].as_str().unwrap().to_owned();

    // Token exchange: one granted, one refused (an audience it may not reach).
    let exchange = |aud: &'static str| {
        let form = vec![
            ("grant_type", EXCHANGE.to_owned()),
            ("subject_token", person_token.clone()),
            ("subject_token_type", AT.to_owned()),
            ("audience", aud.to_owned()),
        ];
        let req = ta
            .http
            .post(format!("{}/oauth2/token", ta.url))
            .basic_auth(&svc_id, Some(&svc_secret))
            .form(&form);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(exchange("billing").await, 200);
    assert_eq!(exchange("ledger").await, 400);

    // Revocation, rotation, suspension, policy push and rollback, canary, CA.
    let (status, revoked) = ta
        .admin(Method::POST, &format!("/subjects/{user_id}/revoke"), None)
        .await;
    assert_eq!(status, 200, "{revoked}");
    let (status, keys) = ta.admin(Method::POST, "/keys/rotate", None).await;
    assert_eq!(status, 200, "{keys}");
    let (status, _) = ta.admin(Method::POST, "/users/alice/suspend", None).await;
    assert_eq!(status, 200);
    let (status, _) = ta.admin(Method::POST, "/users/alice/resume", None).await;
    assert_eq!(status, 200);
    let (status, v) = ta
        .admin(
            Method::POST,
            "/policies/orders",
            Some(json!({"policies": POLICY, "note": "first"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = ta
        .admin(
            Method::POST,
            "/policies/orders",
            Some(json!({"policies": format!("{POLICY}\nforbid(principal, action, resource) when {{ false }};")})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = ta
        .admin(Method::POST, "/policies/orders/rollback", Some(json!({"version": 1})))
        .await;
    assert_eq!(status, 201, "{v}");
    // Refused admin actions are failures, with the error.
    let (status, v) = ta
        .admin(
            Method::POST,
            "/policies/orders",
            Some(json!({"policies": "permit(principal, action resource);"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = ta.admin(Method::DELETE, &format!("/clients/{ADMIN_ID}"), None).await;
    assert_eq!(status, 409, "the last admin: {v}");
    let (status, v) = ta.admin(Method::POST, "/users/nobody/suspend", None).await;
    assert_eq!(status, 404, "{v}");
    let (status, canary) = ta
        .admin(
            Method::POST,
            "/canaries",
            Some(json!({"audience": "orders", "check": "genuine"})),
        )
        .await;
    assert_eq!(status, 201, "{canary}");
    let (status, v) = ta.admin(Method::POST, "/ca/rotate", Some(json!({"force": true}))).await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = ta.admin(Method::DELETE, &format!("/clients/{svc_id}"), None).await;
    assert_eq!(status, 204);

    // The schedule's own rotation: actor `castellan`.
    let interval = ta.authority.config().keys.rotation_interval.secs();
    ta.clock.advance(interval + 1);
    ta.authority.maintain().await.unwrap();

    let events = all_events(&ta).await;
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=i64::try_from(seqs.len()).unwrap()).collect::<Vec<_>>());

    let created = find(&events, "client.create", "success");
    assert_eq!(created.len(), 2);
    assert!(created.iter().all(|e| e["actor"] == admin.as_str()));
    assert_eq!(created[1]["target"], format!("client:{svc_id}"));
    assert_eq!(created[0]["detail"]["name"], "web");
    let e = one(&events, "client.rotate_secret", "success");
    assert_eq!(
        (&e["actor"], &e["target"]),
        (&json!(admin), &json!(format!("client:{svc_id}")))
    );
    let e = one(&events, "user.create", "success");
    assert_eq!(e["target"], format!("user:{user_id}"));
    assert_eq!(e["detail"]["username"], "alice");

    let e = one(&events, "signin", "failure");
    assert_eq!(e["actor"], "anonymous");
    assert_eq!(e["target"], "username:alice");
    assert_eq!(e["detail"]["reason"], "wrong password");
    let e = one(&events, "signin", "success");
    assert_eq!(e["actor"], format!("user:{user_id}"));
    assert_eq!(e["target"], format!("client:{app_id}"));
    assert_eq!(e["detail"]["method"], "password");

    let e = one(&events, "token.exchange", "success");
    assert_eq!(e["actor"], format!("client:{svc_id}"));
    assert_eq!(e["target"], format!("subject:{user_id}"));
    assert_eq!(e["detail"]["audience"], "billing");
    let e = one(&events, "token.exchange", "failure");
    assert_eq!(e["detail"]["audience"], "ledger");
    assert_eq!(e["detail"]["error"], "invalid_target");

    let e = one(&events, "subject.revoke", "success");
    assert_eq!(
        (&e["actor"], &e["target"]),
        (&json!(admin), &json!(format!("subject:{user_id}")))
    );
    assert_eq!(e["detail"]["revocation_seq"], revoked["event"]["seq"]);

    let rotations = find(&events, "key.rotate", "success");
    assert_eq!(rotations.len(), 2, "{rotations:?}");
    assert_eq!(rotations[0]["actor"], admin.as_str());
    assert_eq!(rotations[1]["actor"], "castellan");
    assert_eq!(rotations[1]["detail"]["scheduled"], true);
    assert_ne!(
        rotations[0]["detail"]["active_kid"],
        rotations[0]["detail"]["previous_kid"]
    );
    assert_eq!(
        rotations[1]["detail"]["previous_kid"],
        rotations[0]["detail"]["active_kid"]
    );

    assert_eq!(
        one(&events, "user.suspend", "success")["target"],
        format!("user:{user_id}")
    );
    assert_eq!(
        one(&events, "user.resume", "success")["target"],
        format!("user:{user_id}")
    );
    let pushes = find(&events, "policy.push", "success");
    assert_eq!(pushes.len(), 2);
    assert_eq!(pushes[0]["target"], "policy:orders");
    assert_eq!(pushes[0]["detail"]["version"], 1);
    assert_eq!(pushes[0]["detail"]["note"], "first");
    assert_eq!(pushes[1]["detail"]["version"], 2);
    assert_eq!(pushes[1]["detail"]["lines_added"], 1);
    assert_eq!(pushes[1]["detail"]["lines_removed"], 0);
    let e = one(&events, "policy.rollback", "success");
    assert_eq!(e["detail"]["version"], 3);
    assert_eq!(e["detail"]["lines_removed"], 1);
    let e = one(&events, "policy.push", "failure");
    assert_eq!((&e["actor"], &e["target"]), (&json!(admin), &json!("policy:orders")));
    assert_eq!(
        (&e["detail"]["status"], &e["detail"]["error"]),
        (&json!(400), &json!("invalid_request"))
    );
    assert!(
        e["detail"]["error_description"].as_str().unwrap().contains("unchanged"),
        "{e}"
    );
    let e = one(&events, "client.delete", "failure");
    assert_eq!(e["target"], format!("client:{ADMIN_ID}"));
    assert_eq!(e["detail"]["status"], 409);
    let e = one(&events, "user.suspend", "failure");
    assert_eq!(
        (&e["target"], &e["detail"]["status"]),
        (&json!("username:nobody"), &json!(404))
    );
    let e = one(&events, "canary.mint", "success");
    assert_eq!(e["target"], format!("canary:{}", canary["sid"].as_str().unwrap()));
    assert_eq!(e["detail"]["check"], "genuine");
    let ca = find(&events, "ca.rotate", "success");
    assert_eq!(ca[0]["actor"], admin.as_str());
    assert!(ca[1..].iter().all(|e| e["actor"] == "castellan"), "{ca:?}");
    assert_eq!(
        one(&events, "client.delete", "success")["target"],
        format!("client:{svc_id}")
    );

    // No secret anywhere: passwords (right or wrong), client secrets, tokens.
    let text = serde_json::to_string(&events).unwrap();
    for secret in [
        PASSWORD,
        WRONG_PASSWORD,
        ADMIN_SECRET,
        svc_secret.as_str(),
        svc["client_secret"].as_str().unwrap(),
        person_token.as_str(),
        person_token.rsplit('.').next().unwrap(),
        canary["token"].as_str().unwrap(),
        code.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret is in the audit trail");
    }

    // Filters.
    let (_, v) = ta
        .admin(Method::GET, &format!("/audit?actor=user:{user_id}&limit=1000"), None)
        .await;
    let by_alice = v["events"].as_array().unwrap();
    assert_eq!(by_alice.len(), 1);
    assert_eq!(by_alice[0]["action"], "signin");
    let last_at = events.last().unwrap()["at"].as_i64().unwrap();
    let (_, v) = ta.admin(Method::GET, &format!("/audit?since={last_at}"), None).await;
    assert!(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["at"].as_i64().unwrap() >= last_at));
    assert_eq!(v["events"].as_array().unwrap().last().unwrap()["actor"], "castellan");

    // The chain verifies; its head is the last event.
    let (status, v) = ta.admin(Method::GET, "/audit/verify", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["events"], json!(events.len()));
    assert_eq!(v["head"]["seq"], events.last().unwrap()["seq"]);
    assert_eq!(v["head"]["hash"], events.last().unwrap()["hash"]);
    assert_eq!(v["first_bad_seq"], Value::Null);
}

#[tokio::test]
async fn the_audit_api_is_admin_only_and_strict() {
    let ta = TestAuthority::start().await;
    for path in ["/admin/v1/audit", "/admin/v1/audit/verify"] {
        let resp = ta.http.get(format!("{}{path}", ta.url)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
    }
    let (id, secret) = ta.client("plain", &["orders"], &[]).await;
    let token = ta.access_token(&id, &secret, &[]).await;
    let resp = ta
        .http
        .get(format!("{}/admin/v1/audit", ta.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = ta
        .http
        .post(format!("{}/admin/v1/clients", ta.url))
        .bearer_auth(&token)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "not an admin: not an actor the trail records");
    for query in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "after=-1",
        "since=yesterday",
        "since=-5",
        "bogus=1",
        "actor=",
    ] {
        let (status, v) = ta.admin(Method::GET, &format!("/audit?{query}"), None).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("invalid_request")),
            "{query}: {v}"
        );
    }
    let (status, v) = ta.admin(Method::GET, "/audit/verify?x=1", None).await;
    assert_eq!(status, 400, "{v}");
    // The refused requests above were not audited actions; reading is not either.
    let (status, v) = ta.admin(Method::GET, "/audit?limit=1000", None).await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["client.create"]);
}
