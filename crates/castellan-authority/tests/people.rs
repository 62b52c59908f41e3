//! People signing in: the authorization-code flow with PKCE through the
//! real login page, refresh rotation and replay, suspension, throttling,
//! logout. Each test drives the authority over HTTP as a browser and an
//! app would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_jose::b64;
use castellan_testkit::browser::{pkce, sign_in, AuthRequest, Browser, Page};
use castellan_testkit::TestAuthority;
use reqwest::Method;
use serde_json::{json, Value};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const PASSWORD: &str = "correct horse battery staple";

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&b64::decode(payload).unwrap()).unwrap()
}

fn header_of(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&b64::decode(h).unwrap()).unwrap()
}

struct App {
    client_id: String,
    secret: Option<String>,
}

async fn public_app(ta: &TestAuthority) -> App {
    let (status, v) = ta
        .admin(
            Method::POST,
            "/clients",
            Some(json!({
                "name": "Orders web", "audiences": ["orders"], "scopes": ["orders.read"],
                "public": true, "redirect_uris": [REDIRECT],
                "post_logout_redirect_uris": ["http://127.0.0.1:9/bye"],
            })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert!(v.get("client_secret").is_none(), "a public client has no secret: {v}");
    assert_eq!(v["auth_method"], "none");
    App {
        client_id: v["client_id"].as_str().unwrap().to_owned(),
        secret: None,
    }
}

async fn user(ta: &TestAuthority, name: &str) -> String {
    let (status, v) = ta
        .admin(
            Method::POST,
            "/users",
            Some(json!({"username": name, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v["user_id"].as_str().unwrap().to_owned()
}

fn request<'a>(ta: &'a TestAuthority, app: &'a App, challenge: &'a str) -> AuthRequest<'a> {
    AuthRequest {
        issuer: &ta.url,
        client_id: &app.client_id,
        redirect_uri: REDIRECT,
        scope: "openid profile orders.read",
        challenge,
        state: "st-123",
        nonce: "n-456",
    }
}

async fn token(ta: &TestAuthority, app: &App, form: &[(&str, &str)]) -> (u16, Value) {
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    let mut req = ta.http.post(format!("{}/oauth2/token", ta.url));
    match &app.secret {
        Some(s) => req = req.basic_auth(&app.client_id, Some(s)),
        None => fields.push(("client_id", &app.client_id)),
    }
    let resp = req.form(&fields).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Signs in and exchanges the code: (token response, code).
async fn sign_in_and_exchange(ta: &TestAuthority, app: &App, username: &str) -> Value {
    let p = pkce();
    let back = sign_in(&request(ta, app, &p.challenge), username, PASSWORD).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let code = back.redirect_param("code").unwrap();
    let (status, v) = token(
        ta,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn refresh(ta: &TestAuthority, app: &App, rt: &str) -> (u16, Value) {
    token(ta, app, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await
}

async fn active(ta: &TestAuthority, access_token: &str) -> bool {
    ta.introspect(access_token).await["active"] == json!(true)
}

#[tokio::test]
async fn a_person_signs_in_with_pkce_and_gets_access_refresh_and_id_tokens() {
    let ta = TestAuthority::start().await;
    let app = public_app(&ta).await;
    let alice = user(&ta, "Alice").await;
    let p = pkce();
    let req = request(&ta, &app, &p.challenge);
    let mut browser = Browser::new();
    let page = browser.get(&req.url()).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Orders web"), "the page names the app");
    assert!(!page.body.contains("<script"), "no JavaScript needed");
    let form = page.login_form();
    assert!(browser.cookies.iter().any(|(k, _)| k == "castellan_login"));
    let back = browser.submit_login(&form, "alice", PASSWORD).await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert!(back.location.as_deref().unwrap().starts_with(REDIRECT));
    assert_eq!(back.redirect_param("state").as_deref(), Some("st-123"));
    assert_eq!(back.redirect_param("iss").as_deref(), Some(ta.url.as_str()));
    let code = back.redirect_param("code").unwrap();

    let (status, v) = token(
        &ta,
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "openid profile orders.read");
    let at = v["access_token"].as_str().unwrap();
    assert_eq!(header_of(at)["typ"], "at+jwt");
    let c = claims_of(at);
    assert_eq!(c["sub"], alice.as_str());
    assert_eq!(c["aud"], "orders");
    assert_eq!(c["client_id"], app.client_id.as_str());
    let sid = c["sid"].as_str().unwrap().to_owned();
    assert!(active(&ta, at).await);

    let id = v["id_token"].as_str().unwrap();
    assert_eq!(header_of(id)["typ"], "JWT");
    let idc = claims_of(id);
    assert_eq!(idc["aud"], app.client_id.as_str());
    assert_eq!(idc["iss"], ta.url.as_str());
    assert_eq!(idc["sub"], alice.as_str());
    assert_eq!(idc["nonce"], "n-456");
    assert_eq!(idc["sid"], sid.as_str());
    assert_eq!(idc["preferred_username"], "alice");
    assert!(idc["auth_time"].as_i64().unwrap() <= c["iat"].as_i64().unwrap());
    assert!(v["refresh_token"].as_str().unwrap().len() >= 43);

    // userinfo with the access token
    let ui: Value = ta
        .http
        .get(format!("{}/oauth2/userinfo", ta.url))
        .bearer_auth(at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ui, json!({"sub": alice, "preferred_username": "alice"}));

    // the admin sees the session
    let (_, shown) = ta.admin(Method::GET, "/users/alice", None).await;
    assert_eq!(shown["sessions"][0]["sid"], sid.as_str());

    // the code is single-use: a replay is refused and ends the session it started
    let (status, e) = token(
        &ta,
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    assert!(!active(&ta, at).await, "a replayed code revokes its session");
    let (status, e) = refresh(&ta, &app, v["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn codes_are_bound_to_verifier_redirect_uri_and_client() {
    let ta = TestAuthority::start().await;
    let app = public_app(&ta).await;
    let other = public_app(&ta).await;
    user(&ta, "bob").await;
    // wrong verifier
    let p = pkce();
    let back = sign_in(&request(&ta, &app, &p.challenge), "bob", PASSWORD).await;
    let code = back.redirect_param("code").unwrap();
    let wrong = pkce();
    let (status, e) = token(
        &ta,
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &wrong.verifier),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    assert!(e["error_description"].as_str().unwrap().contains("code_verifier"));
    // ...and the code is spent even for the right verifier afterwards
    let (status, _) = token(
        &ta,
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(status, 400);

    // missing verifier
    let p = pkce();
    let code = sign_in(&request(&ta, &app, &p.challenge), "bob", PASSWORD)
        .await
        .redirect_param("code")
        .unwrap();
    let (status, e) = token(
        &ta,
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");

    // other client
    let p = pkce();
    let code = sign_in(&request(&ta, &app, &p.challenge), "bob", PASSWORD)
        .await
        .redirect_param("code")
        .unwrap();
    let (status, e) = token(
        &ta,
        &other,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");

    // other redirect URI
    let p = pkce();
    let code = sign_in(&request(&ta, &app, &p.challenge), "bob", PASSWORD)
        .await
        .redirect_param("code")
        .unwrap();
    let (status, e) = token(
        &ta,
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");

    // expired code
    let p = pkce();
    let code = sign_in(&request(&ta, &app, &p.challenge), "bob", PASSWORD)
        .await
        .redirect_param("code")
        .unwrap();
    ta.clock.advance(61);
    let (status, e) = token(
        &ta,
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");

    // a public client cannot use client_credentials
    let (status, e) = token(&ta, &app, &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("unauthorized_client")), "{e}");
}

#[tokio::test]
async fn bad_authorization_requests_never_redirect_to_unverified_uris() {
    let ta = TestAuthority::start().await;
    let app = public_app(&ta).await;
    let p = pkce();
    let mut b = Browser::new();
    let base = request(&ta, &app, &p.challenge);

    let evil = AuthRequest {
        redirect_uri: "https://evil.example/cb",
        ..base.clone()
    };
    let page = b.get(&evil.url()).await;
    assert_eq!(page.status, 400);
    assert!(page.location.is_none(), "unregistered redirect URI: an error page");
    assert!(page.body.contains("not registered"), "{}", page.body);
    // a registered URI with something appended is not the registered URI
    let near = AuthRequest {
        redirect_uri: "http://127.0.0.1:9/callback/x",
        ..base.clone()
    };
    assert_eq!(b.get(&near.url()).await.status, 400);
    let unknown = AuthRequest {
        client_id: "no-such-client",
        ..base.clone()
    };
    let page = b.get(&unknown.url()).await;
    assert_eq!((page.status, page.location.is_none()), (400, true));
    let page = b.get(&format!("{}/oauth2/authorize", ta.url)).await;
    assert_eq!((page.status, page.location.is_none()), (400, true));
    // duplicated parameters
    let page = b.get(&format!("{}&client_id=x", base.url())).await;
    assert_eq!((page.status, page.location.is_none()), (400, true));

    // with a verified redirect URI, errors go back to the app with state and iss
    let plain = base
        .url()
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let page = b.get(&plain).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.redirect_param("error").as_deref(), Some("invalid_request"));
    assert_eq!(page.redirect_param("state").as_deref(), Some("st-123"));
    assert_eq!(page.redirect_param("iss").as_deref(), Some(ta.url.as_str()));
    let no_pkce = base.url().replace(&format!("code_challenge={}", p.challenge), "");
    let page = b.get(&no_pkce).await;
    assert_eq!(page.redirect_param("error").as_deref(), Some("invalid_request"));
    let token_flow = base.url().replace("response_type=code", "response_type=token");
    let page = b.get(&token_flow).await;
    assert_eq!(
        page.redirect_param("error").as_deref(),
        Some("unsupported_response_type")
    );
    let bad_scope = AuthRequest {
        scope: "openid admin.everything",
        ..base.clone()
    };
    let page = b.get(&bad_scope.url()).await;
    assert_eq!(page.redirect_param("error").as_deref(), Some("invalid_scope"));
    let page = b.get(&format!("{}&audience=billing", base.url())).await;
    assert_eq!(page.redirect_param("error").as_deref(), Some("invalid_target"));
    let page = b.get(&format!("{}&prompt=none", base.url())).await;
    assert_eq!(page.redirect_param("error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn the_login_form_is_protected_against_cross_site_posts() {
    let ta = TestAuthority::start().await;
    let app = public_app(&ta).await;
    user(&ta, "carol").await;
    let p = pkce();
    let mut b = Browser::new();
    let form = b.get(&request(&ta, &app, &p.challenge).url()).await.login_form();

    // no cookie: another browser posting this form
    let mut stranger = Browser::new();
    let page = stranger.submit_login(&form, "carol", PASSWORD).await;
    assert!(page.status == 400 || page.status == 403, "{}", page.status);
    assert!(page.location.is_none());
    // a different binding cookie
    let mut other = Browser::new();
    let _ = other.get(&request(&ta, &app, &p.challenge).url()).await;
    let page = other.submit_login(&form, "carol", PASSWORD).await;
    assert_eq!(page.status, 403);
    // tampered request
    let mut forged = form.clone();
    forged
        .request
        .replace_range(10..11, if &forged.request[10..11] == "A" { "B" } else { "A" });
    let page = b.submit_login(&forged, "carol", PASSWORD).await;
    assert_eq!(page.status, 400);
    // a cross-site post from the right browser
    let resp = b
        .http
        .post(&form.action)
        .header("cookie", format!("castellan_login={}", b.cookies[0].1))
        .header("origin", "https://evil.example")
        .form(&[
            ("request", form.request.as_str()),
            ("username", "carol"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = b
        .http
        .post(&form.action)
        .header("cookie", format!("castellan_login={}", b.cookies[0].1))
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("request", form.request.as_str()),
            ("username", "carol"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // what Chromium sends for our own form under a strict referrer policy is accepted
    let page = b
        .http
        .post(&form.action)
        .header("cookie", format!("castellan_login={}", b.cookies[0].1))
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("request", form.request.as_str()),
            ("username", "carol"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    // the genuine post still works
    let page = b.submit_login(&form, "carol", PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.body);
    // an expired page
    ta.clock.advance(1801);
    let page = b.submit_login(&form, "carol", PASSWORD).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("expired"));
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replay_revokes_the_whole_family() {
    let ta = TestAuthority::start().await;
    let app = public_app(&ta).await;
    user(&ta, "dave").await;
    let first = sign_in_and_exchange(&ta, &app, "dave").await;
    let rt1 = first["refresh_token"].as_str().unwrap();
    let (status, second) = refresh(&ta, &app, rt1).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2, "each use returns a new refresh token");
    let at2 = second["access_token"].as_str().unwrap();
    assert_eq!(
        claims_of(at2)["sid"],
        claims_of(first["access_token"].as_str().unwrap())["sid"]
    );
    assert!(active(&ta, at2).await);
    // narrowing the scope is allowed, widening is not
    let (status, third) = token(
        &ta,
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt2),
            ("scope", "orders.read"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(third["scope"], "orders.read");
    let rt3 = third["refresh_token"].as_str().unwrap();
    let (status, e) = token(
        &ta,
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt3),
            ("scope", "orders.write"),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_scope")), "{e}");

    // replaying rt1 (already used): refused, and the whole family dies
    let (status, e) = refresh(&ta, &app, rt1).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    let (status, e) = refresh(&ta, &app, rt3).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "the newest token died too: {e}"
    );
    assert!(!active(&ta, at2).await, "and the session's access tokens are revoked");
    let (_, shown) = ta.admin(Method::GET, "/users/dave", None).await;
    assert_eq!(shown["sessions"], json!([]));

    // garbage and another client's token
    let (status, e) = refresh(&ta, &app, "not-a-token").await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    let other = public_app(&ta).await;
    let fresh = sign_in_and_exchange(&ta, &app, "dave").await;
    let (status, e) = refresh(&ta, &other, fresh["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    // ...which did not spend it
    let (status, _) = refresh(&ta, &app, fresh["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sessions_end_when_idle_or_past_their_absolute_lifetime() {
    let ta = TestAuthority::start_with(|c| {
        c.sessions.idle_timeout = "1h".parse().unwrap();
        c.sessions.absolute_lifetime = "3h".parse().unwrap();
    })
    .await;
    let app = public_app(&ta).await;
    user(&ta, "erin").await;
    let v = sign_in_and_exchange(&ta, &app, "erin").await;
    ta.clock.advance(3_601);
    let (status, e) = refresh(&ta, &app, v["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "idle: {e}");

    let mut v = sign_in_and_exchange(&ta, &app, "erin").await;
    for _ in 0..3 {
        ta.clock.advance(3_000);
        let (status, next) = refresh(&ta, &app, v["refresh_token"].as_str().unwrap()).await;
        if status != 200 {
            assert_eq!(next["error"], "invalid_grant", "absolute: {next}");
            return;
        }
        v = next;
    }
    ta.clock.advance(3_000);
    let (status, e) = refresh(&ta, &app, v["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "absolute: {e}"
    );
}

#[tokio::test]
async fn suspension_revokes_everything_and_refuses_sign_in_until_resumed() {
    let ta = TestAuthority::start().await;
    let app = public_app(&ta).await;
    user(&ta, "frank").await;
    user(&ta, "grace").await;
    let f1 = sign_in_and_exchange(&ta, &app, "frank").await;
    let f2 = sign_in_and_exchange(&ta, &app, "frank").await;
    let g = sign_in_and_exchange(&ta, &app, "grace").await;
    let (status, v) = ta.admin(Method::POST, "/users/frank/suspend", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ended_sessions"], 2);
    assert!(v["revocation_seq"].as_i64().is_some());
    for t in [&f1, &f2] {
        assert!(!active(&ta, t["access_token"].as_str().unwrap()).await);
        let (status, e) = refresh(&ta, &app, t["refresh_token"].as_str().unwrap()).await;
        assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    }
    assert!(
        active(&ta, g["access_token"].as_str().unwrap()).await,
        "others keep working"
    );
    let p = pkce();
    let page = sign_in(&request(&ta, &app, &p.challenge), "frank", PASSWORD).await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("Incorrect username or password."));
    let (_, shown) = ta.admin(Method::GET, "/users/frank", None).await;
    assert_eq!(shown["suspended"], true);

    let (status, _) = ta.admin(Method::POST, "/users/frank/resume", None).await;
    assert_eq!(status, 200);
    ta.clock.advance(1);
    let back = sign_in_and_exchange(&ta, &app, "frank").await;
    assert!(active(&ta, back["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn a_password_change_can_end_the_other_sessions() {
    let ta = TestAuthority::start().await;
    let app = public_app(&ta).await;
    user(&ta, "heidi").await;
    let s = sign_in_and_exchange(&ta, &app, "heidi").await;
    let (status, v) = ta
        .admin(
            Method::POST,
            "/users/heidi/password",
            Some(json!({"password": "a new long password", "end_sessions": false})),
        )
        .await;
    assert_eq!((status, v["ended_sessions"].as_u64()), (200, Some(0)), "{v}");
    assert!(active(&ta, s["access_token"].as_str().unwrap()).await);
    let (status, v) = ta
        .admin(
            Method::POST,
            "/users/heidi/password",
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!((status, v["ended_sessions"].as_u64()), (200, Some(1)), "{v}");
    assert!(!active(&ta, s["access_token"].as_str().unwrap()).await);
    let (status, v) = ta
        .admin(
            Method::POST,
            "/users/heidi/password",
            Some(json!({"password": "short"})),
        )
        .await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn wrong_passwords_are_throttled_per_account_and_never_reveal_who_exists() {
    let ta = TestAuthority::start().await;
    let app = public_app(&ta).await;
    user(&ta, "ivan").await;
    user(&ta, "judy").await;
    let p = pkce();
    let req = request(&ta, &app, &p.challenge);
    let unknown = sign_in(&req, "nobody", PASSWORD).await;
    let wrong = sign_in(&req, "judy", "not the password").await;
    assert_eq!((unknown.status, wrong.status), (401, 401));
    let message = |page: &Page| {
        let at = page.body.find("id=\"error\">").unwrap();
        page.body[at..].split('<').next().unwrap().to_owned()
    };
    assert_eq!(message(&unknown), message(&wrong), "same message for unknown and wrong");

    for i in 0..5 {
        let page = sign_in(&req, "ivan", "wrong password").await;
        assert_eq!(page.status, 401, "attempt {i}");
        // an immediate retry waits: the delay grows with each failure
        let page = sign_in(&req, "ivan", "wrong password").await;
        assert_eq!(page.status, 429, "attempt {i} retried at once");
        ta.clock.advance(20);
    }
    // locked: even the right password is refused
    let page = sign_in(&req, "ivan", PASSWORD).await;
    assert_eq!(page.status, 429);
    assert!(page.body.contains("Too many attempts"));
    // one account's lockout never blocks another account from the same address
    assert_eq!(sign_in(&req, "judy", PASSWORD).await.status, 303);
    // after the cooling-off period the right password works and resets the count
    ta.clock.advance(901);
    assert_eq!(sign_in(&req, "ivan", PASSWORD).await.status, 303);
    assert_eq!(sign_in(&req, "ivan", "wrong password").await.status, 401);
}

#[tokio::test]
async fn logout_ends_the_session_everywhere() {
    let ta = TestAuthority::start().await;
    let app = public_app(&ta).await;
    user(&ta, "ken").await;
    let v = sign_in_and_exchange(&ta, &app, "ken").await;
    let id_token = v["id_token"].as_str().unwrap();
    let mut b = Browser::new();
    let logout = |extra: &str| format!("{}/oauth2/logout?id_token_hint={id_token}{extra}", ta.url);
    let page = b.get(&logout("&post_logout_redirect_uri=https://evil.example/")).await;
    assert_eq!((page.status, page.location.is_none()), (400, true));
    assert!(
        active(&ta, v["access_token"].as_str().unwrap()).await,
        "a refused logout changes nothing"
    );
    let page = b
        .get(&logout("&post_logout_redirect_uri=http://127.0.0.1:9/bye&state=s1"))
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.redirect_param("state").as_deref(), Some("s1"));
    assert!(!active(&ta, v["access_token"].as_str().unwrap()).await);
    let (status, _) = refresh(&ta, &app, v["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    // no hint, bad hint
    assert_eq!(b.get(&format!("{}/oauth2/logout", ta.url)).await.status, 400);
    assert_eq!(
        b.get(&format!("{}/oauth2/logout?id_token_hint=x.y.z", ta.url))
            .await
            .status,
        400
    );
    // an access token is not an id_token_hint
    let w = sign_in_and_exchange(&ta, &app, "ken").await;
    let page = b
        .get(&format!(
            "{}/oauth2/logout?id_token_hint={}",
            ta.url,
            w["access_token"].as_str().unwrap()
        ))
        .await;
    assert_eq!(page.status, 400);
    // RFC 7009 revocation of a refresh token ends its session too
    let resp = ta
        .http
        .post(format!("{}/oauth2/revoke", ta.url))
        .form(&[
            ("token", w["refresh_token"].as_str().unwrap()),
            ("client_id", &app.client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!active(&ta, w["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn confidential_web_apps_use_their_secret_and_pkce() {
    let ta = TestAuthority::start().await;
    let (status, v) = ta
        .admin(
            Method::POST,
            "/clients",
            Some(json!({"name": "Portal", "audiences": ["portal"], "scopes": ["orders.read"], "redirect_uris": [REDIRECT]})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let app = App {
        client_id: v["client_id"].as_str().unwrap().to_owned(),
        secret: Some(v["client_secret"].as_str().unwrap().to_owned()),
    };
    user(&ta, "leo").await;
    let t = sign_in_and_exchange(&ta, &app, "leo").await;
    assert_eq!(claims_of(t["access_token"].as_str().unwrap())["aud"], "portal");
    // without its secret it is refused
    let bare = App {
        client_id: app.client_id.clone(),
        secret: None,
    };
    let (status, e) = refresh(&ta, &bare, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_client")), "{e}");
}

#[tokio::test]
async fn discovery_advertises_the_code_flow() {
    let ta = TestAuthority::start().await;
    let d = ta.get_json("/.well-known/openid-configuration").await;
    assert_eq!(d["authorization_endpoint"], format!("{}/oauth2/authorize", ta.url));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d["response_types_supported"], json!(["code"]));
    for f in ["userinfo_endpoint", "end_session_endpoint"] {
        assert!(d[f].as_str().unwrap().starts_with(&ta.url), "{f}");
    }
    assert!(d["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("refresh_token")));
}
