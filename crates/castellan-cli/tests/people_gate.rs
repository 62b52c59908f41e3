//! People behind a real `castellan gate`: two people sign in through the
//! login page of a real `castellan serve`, and suspending one of them reaches
//! the running gate within a second while the other's tokens keep working.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

mod common;

use castellan_testkit::browser::{pkce, sign_in, AuthRequest};
use common::{echo, gate, Authority};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const AUD: &str = "orders";
const REDIRECT: &str = "http://127.0.0.1:9/cb";
const PASSWORD: &str = "correct horse battery staple";

/// A public client for the gate's audience; returns its id.
async fn public_app(auth: &Authority) -> String {
    let v = auth
        .admin(
            Method::POST,
            "/clients",
            Some(json!({
                "name": "Orders web", "audiences": [AUD],
                "public": true, "redirect_uris": [REDIRECT],
            })),
        )
        .await;
    assert!(v.get("client_secret").is_none(), "a public client has no secret: {v}");
    v["client_id"].as_str().unwrap().to_owned()
}

async fn user(auth: &Authority, name: &str) {
    let v = auth
        .admin(
            Method::POST,
            "/users",
            Some(json!({"username": name, "password": PASSWORD})),
        )
        .await;
    assert!(v["user_id"].as_str().is_some(), "{v}");
}

async fn token(auth: &Authority, client_id: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let mut fields = form.to_vec();
    fields.push(("client_id", client_id));
    let r = auth
        .http
        .post(format!("{}/oauth2/token", auth.url()))
        .form(&fields)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Signs `username` in through the login page and exchanges the code.
async fn sign_in_and_exchange(auth: &Authority, client_id: &str, username: &str) -> Value {
    let p = pkce();
    let req = AuthRequest {
        issuer: auth.url(),
        client_id,
        redirect_uri: REDIRECT,
        scope: "openid",
        challenge: &p.challenge,
        state: "st",
        nonce: "n",
    };
    let back = sign_in(&req, username, PASSWORD).await;
    assert_eq!(back.status, 303, "{username}: {}", back.body);
    let code = back.redirect_param("code").unwrap();
    let (status, v) = token(
        auth,
        client_id,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{username}: {v}");
    v
}

async fn status(http: &reqwest::Client, url: &str, token: &str) -> u16 {
    http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_suspension_reaches_a_running_gate_within_a_second_and_spares_others() {
    let dir = tempfile::tempdir().unwrap();
    let auth = Authority::start(dir.path(), "127.0.0.1:0");
    let upstream = echo().await;
    let g = gate(auth.url(), AUD, Some(&upstream.url), &[]).await;
    let client_id = public_app(&auth).await;
    user(&auth, "alice").await;
    user(&auth, "bob").await;
    let a = sign_in_and_exchange(&auth, &client_id, "alice").await;
    let b = sign_in_and_exchange(&auth, &client_id, "bob").await;
    let a_at = a["access_token"].as_str().unwrap().to_owned();
    let b_at = b["access_token"].as_str().unwrap().to_owned();
    let http = castellan_testkit::http_client();
    let url = format!("{}/v1/orders", g.url);
    assert_eq!(status(&http, &url, &a_at).await, 200, "alice before");
    assert_eq!(status(&http, &url, &b_at).await, 200, "bob before");

    // Suspend alice; from the moment the admin call returns, poll the gate every ~20 ms.
    let requested_at = Instant::now();
    let v = auth.admin(Method::POST, "/users/alice/suspend", None).await;
    let suspended_at = Instant::now();
    assert_eq!(v["ended_sessions"], 1, "{v}");
    assert!(v["revocation_seq"].as_i64().is_some(), "{v}");
    let latency = loop {
        let (sa, sb) = tokio::join!(status(&http, &url, &a_at), status(&http, &url, &b_at));
        assert_eq!(
            sb,
            200,
            "bob refused {:?} after alice's suspension",
            suspended_at.elapsed()
        );
        if sa == 401 {
            break suspended_at.elapsed();
        }
        assert_eq!(sa, 200, "alice's token: unexpected status");
        assert!(
            suspended_at.elapsed() < Duration::from_secs(1),
            "alice's token still admitted {:?} after the suspension",
            suspended_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "suspension reached the gate {latency:?} after the admin call returned ({:?} after it was sent)",
            latency + (suspended_at - requested_at)
        );
    }
    assert!(latency < Duration::from_secs(1), "took {latency:?}");

    // It stays refused, bob keeps working, and alice's refresh token is dead.
    for _ in 0..10 {
        assert_eq!(status(&http, &url, &a_at).await, 401);
        assert_eq!(status(&http, &url, &b_at).await, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (st, e) = token(
        &auth,
        &client_id,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", a["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    // A suspended person cannot sign in either.
    let p = pkce();
    let req = AuthRequest {
        issuer: auth.url(),
        client_id: &client_id,
        redirect_uri: REDIRECT,
        scope: "openid",
        challenge: &p.challenge,
        state: "st",
        nonce: "n",
    };
    assert_eq!(sign_in(&req, "alice", PASSWORD).await.status, 401);
    // That refusal counts as a failed attempt: the account waits a (whole) second before the next.
    let refused_at = std::time::Instant::now();
    // Bob's refresh still rotates, and the new access token passes the gate.
    let (st, rb) = token(
        &auth,
        &client_id,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", b["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(st, 200, "{rb}");
    assert_eq!(status(&http, &url, rb["access_token"].as_str().unwrap()).await, 200);

    // Resumed, alice signs in again; tokens issued in the suspension's second
    // are refused by design (iat <= not_before), so wait for a new second.
    let v = auth.admin(Method::POST, "/users/alice/resume", None).await;
    assert_eq!(v["suspended"], false, "{v}");
    let wait = Duration::from_millis(1100)
        .saturating_sub(suspended_at.elapsed())
        .max(Duration::from_millis(2100).saturating_sub(refused_at.elapsed()));
    tokio::time::sleep(wait).await;
    let again = sign_in_and_exchange(&auth, &client_id, "alice").await;
    let again_at = again["access_token"].as_str().unwrap();
    assert_eq!(status(&http, &url, again_at).await, 200, "alice after resume");
    assert_eq!(status(&http, &url, &a_at).await, 401, "the old token stays revoked");
    assert_eq!(status(&http, &url, &b_at).await, 200, "bob throughout");
}
