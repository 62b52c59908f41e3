//! The admin console at `/admin` over HTTP, without a browser: sign-in
//! through the authority's own code flow, the session checks every request
//! makes, CSRF and confirmation on actions. (The browser test is
//! `crates/castellan-cli/tests/console_browser.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_testkit::browser::{Browser, Page};
use castellan_testkit::TestAuthority;
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

async fn start(admins: &[&str]) -> TestAuthority {
    let admins: Vec<String> = admins.iter().map(|s| (*s).to_owned()).collect();
    TestAuthority::start_with(move |c| c.console.admins = admins).await
}

async fn person(ta: &TestAuthority, name: &str) -> String {
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

fn absolute(ta: &TestAuthority, location: &str) -> String {
    if location.starts_with('/') {
        format!("{}{location}", ta.url)
    } else {
        location.to_owned()
    }
}

/// Opens `/admin` and signs in through the login page; returns the browser
/// and the callback's answer.
async fn sign_in(ta: &TestAuthority, name: &str) -> (Browser, Page) {
    let mut b = Browser::new();
    let first = b.get(&format!("{}/admin", ta.url)).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let start = b.get(&absolute(ta, first.location.as_deref().unwrap())).await;
    assert_eq!(start.status, 303, "{}", start.body);
    let login = b.get(start.location.as_deref().unwrap()).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(login.body.contains("Castellan admin console"), "{}", login.body);
    let form = login.login_form();
    let back = b.submit_login(&form, name, PASSWORD).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let callback = back.location.clone().unwrap();
    assert!(
        callback.starts_with(&format!("{}/admin/callback?", ta.url)),
        "{callback}"
    );
    let done = b.get(&callback).await;
    (b, done)
}

async fn signed_in(ta: &TestAuthority, name: &str) -> Browser {
    let (b, done) = sign_in(ta, name).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/admin"));
    b
}

fn csrf_of(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    body[at..body[at..].find('"').unwrap() + at].to_owned()
}

async fn active_kid(ta: &TestAuthority) -> String {
    let (_, keys) = ta.admin(Method::GET, "/keys", None).await;
    keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "active")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn without_a_session_every_page_sends_the_browser_to_sign_in() {
    let ta = start(&["alice"]).await;
    let mut b = Browser::new();
    for path in [
        "/admin",
        "/admin/keys",
        "/admin/verifiers",
        "/admin/clients",
        "/admin/people",
        "/admin/policies",
        "/admin/decisions",
        "/admin/probes",
        "/admin/audit",
    ] {
        let p = b.get(&format!("{}{path}", ta.url)).await;
        assert_eq!(p.status, 303, "{path}");
        assert_eq!(p.location.as_deref(), Some("/admin/login"), "{path}");
    }
    // An action without a session changes nothing.
    let before = active_kid(&ta).await;
    let p = b
        .post_form(
            &format!("{}/admin/keys/rotate", ta.url),
            &[("confirm", "yes"), ("emergency", "yes")],
        )
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(active_kid(&ta).await, before);

    // An htmx request is told where to go instead.
    let resp = b
        .http
        .get(format!("{}/admin/keys", ta.url))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["hx-redirect"], "/admin/login");

    // Sign-in starts at the authorization endpoint, PKCE S256, state in a sealed cookie.
    let resp = b.http.get(format!("{}/admin/login", ta.url)).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/oauth2/authorize");
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "castellan-console");
    assert_eq!(q["redirect_uri"], format!("{}/admin/callback", ta.url));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    for part in ["castellan_console_signin=", "Path=/admin", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    assert!(!cookie.contains(&q["state"]), "the state is sealed, not in clear");
    // The headers every console answer carries.
    let h = resp.headers();
    assert_eq!(
        h["content-security-policy"].to_str().unwrap().split(';').next(),
        Some("default-src 'self'")
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn an_admin_signs_in_and_every_page_renders() {
    let ta = start(&["alice"]).await;
    person(&ta, "alice").await;
    let mut b = signed_in(&ta, "alice").await;
    for (path, marker) in [
        ("/admin", "Stage"),
        ("/admin/keys", "key-timeline"),
        ("/admin/verifiers", "No verifier has reported in yet"),
        ("/admin/clients", "castellan-console"),
        ("/admin/people", "alice"),
        ("/admin/people/alice", "this console"),
        ("/admin/policies", "No service has policies"),
        ("/admin/decisions", "Choose a service"),
        ("/admin/probes", "No probe run"),
        ("/admin/audit", "console.signin"),
    ] {
        let p = b.get(&format!("{}{path}", ta.url)).await;
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        assert!(p.body.contains(marker), "{path} shows {marker}:\n{}", p.body);
        assert!(p.body.contains("Skip to content"), "{path}");
        assert!(!p.body.contains("<script>"), "{path}: no inline script");
        assert!(!p.body.contains("style="), "{path}: no inline style");
    }
    // The assets are linked at a URL carrying their content hash, and cached for good there.
    let page = b.get(&format!("{}/admin", ta.url)).await;
    let at = page.body.find("/admin/assets/").unwrap() + "/admin/assets/".len();
    let version = &page.body[at..at + 12];
    assert!(version.bytes().all(|c| c.is_ascii_hexdigit()), "{version}");
    for (file, ty) in [
        ("htmx.min.js", "text/javascript"),
        ("console.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ] {
        assert!(page.body.contains(&format!("/admin/assets/{version}/{file}")), "{file}");
        let resp = ta
            .http
            .get(format!("{}/admin/assets/{version}/{file}", ta.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with(ty));
        assert_eq!(resp.headers()["cache-control"], "public, max-age=31536000, immutable");
        // Another version (a page from an older build) or none: this build's file, revalidated.
        for path in [
            format!("/admin/assets/000000000000/{file}"),
            format!("/admin/assets/{file}"),
        ] {
            let resp = ta.http.get(format!("{}{path}", ta.url)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            assert_eq!(resp.headers()["cache-control"], "no-cache", "{path}");
        }
    }
    let resp = ta
        .http
        .get(format!("{}/admin/assets/{version}/nothing.js", ta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn actions_need_the_csrf_token_and_a_confirmation() {
    let ta = start(&["alice"]).await;
    person(&ta, "alice").await;
    let mut b = signed_in(&ta, "alice").await;
    let page = b.get(&format!("{}/admin/keys", ta.url)).await;
    let csrf = csrf_of(&page.body);
    let rotate = format!("{}/admin/keys/rotate", ta.url);
    let before = active_kid(&ta).await;

    let p = b.post_form(&rotate, &[("confirm", "yes")]).await;
    assert_eq!(p.status, 403, "no token: {}", p.body);
    let p = b.post_form(&rotate, &[("confirm", "yes"), ("csrf", "wrong")]).await;
    assert_eq!(p.status, 403, "a wrong token");
    let mut cross = b
        .http
        .post(&rotate)
        .form(&[("confirm", "yes"), ("csrf", csrf.as_str())]);
    cross = cross
        .header(
            "cookie",
            b.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
        .header("sec-fetch-site", "cross-site");
    assert_eq!(cross.send().await.unwrap().status(), 403, "a cross-site post");
    assert_eq!(active_kid(&ta).await, before, "nothing rotated");

    // Without confirm=yes: a confirmation page, nothing done.
    let p = b.post_form(&rotate, &[("csrf", csrf.as_str())]).await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("name=\"confirm\" value=\"yes\""), "{}", p.body);
    assert_eq!(active_kid(&ta).await, before);

    let p = b
        .post_form(&rotate, &[("csrf", csrf.as_str()), ("confirm", "yes")])
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/admin/keys?done=rotated"));
    let after = active_kid(&ta).await;
    assert_ne!(after, before, "rotated");

    // The token may come in the header htmx sends instead of the form.
    let resp = b
        .http
        .post(&rotate)
        .form(&[("confirm", "yes"), ("emergency", "yes")])
        .header("x-csrf-token", &csrf)
        .header("sec-fetch-site", "same-origin")
        .header(
            "cookie",
            b.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let (_, keys) = ta.admin(Method::GET, "/keys", None).await;
    let withdrawn = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == after.as_str())
        .unwrap();
    assert_eq!(
        withdrawn["state"], "withdrawn",
        "the emergency withdrew the active key: {keys}"
    );
}

#[tokio::test]
async fn a_suspended_admin_is_thrown_out_and_sign_out_ends_the_session() {
    let ta = start(&["alice", "bob"]).await;
    person(&ta, "alice").await;
    person(&ta, "bob").await;
    let mut alice = signed_in(&ta, "alice").await;
    assert_eq!(alice.get(&format!("{}/admin", ta.url)).await.status, 200);
    let (status, _) = ta.admin(Method::POST, "/users/alice/suspend", None).await;
    assert_eq!(status, 200);
    let p = alice.get(&format!("{}/admin", ta.url)).await;
    assert_eq!(p.status, 303, "a suspended admin is sent away");
    assert_eq!(p.location.as_deref(), Some("/admin/login"));

    // Sign-out ends the OIDC session behind the console session.
    let mut bob = signed_in(&ta, "bob").await;
    let page = bob.get(&format!("{}/admin", ta.url)).await;
    let csrf = csrf_of(&page.body);
    let (_, shown) = ta.admin(Method::GET, "/users/bob", None).await;
    assert_eq!(shown["sessions"].as_array().unwrap().len(), 1, "{shown}");
    let p = bob
        .post_form(&format!("{}/admin/logout", ta.url), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(p.status, 200);
    let (_, shown) = ta.admin(Method::GET, "/users/bob", None).await;
    assert_eq!(shown["sessions"], json!([]), "{shown}");
    assert_eq!(bob.get(&format!("{}/admin", ta.url)).await.status, 303);
}

#[tokio::test]
async fn an_idle_console_session_ends() {
    let ta = start(&["alice"]).await;
    person(&ta, "alice").await;
    let mut b = signed_in(&ta, "alice").await;
    ta.clock.advance(29 * 60);
    assert_eq!(b.get(&format!("{}/admin/keys", ta.url)).await.status, 200);
    ta.clock.advance(29 * 60);
    assert_eq!(
        b.get(&format!("{}/admin/keys", ta.url)).await.status,
        200,
        "use restarts the idle clock"
    );
    ta.clock.advance(31 * 60);
    let saved = b.cookies.clone();
    let before = ta.authority.store().latest_revocation_seq().await.unwrap();
    assert_eq!(b.get(&format!("{}/admin/keys", ta.url)).await.status, 303);
    // The OIDC session behind the console session was ended too.
    let (_, shown) = ta.admin(Method::GET, "/users/alice", None).await;
    assert_eq!(shown["sessions"], json!([]), "{shown}");
    // Replaying the old cookie again and again revokes nothing more.
    for _ in 0..5 {
        b.cookies = saved.clone();
        let p = b.get(&format!("{}/admin/keys", ta.url)).await;
        assert_eq!(p.status, 303);
        assert_eq!(p.location.as_deref(), Some("/admin/login"));
    }
    let after = ta.authority.store().latest_revocation_seq().await.unwrap();
    assert_eq!(after - before, 1, "one revocation for the session, none per replay");
}

#[tokio::test]
async fn a_person_who_is_not_an_admin_is_refused() {
    let ta = start(&["alice"]).await;
    person(&ta, "carol").await;
    let (mut b, done) = sign_in(&ta, "carol").await;
    assert_eq!(done.status, 403, "{}", done.body);
    assert!(done.body.contains("not one of the console&#x27;s admins") || done.body.contains("not one of the console"));
    let (_, shown) = ta.admin(Method::GET, "/users/carol", None).await;
    assert_eq!(shown["sessions"], json!([]), "her session was ended: {shown}");
    assert_eq!(b.get(&format!("{}/admin", ta.url)).await.status, 303);
}

#[tokio::test]
async fn with_no_admins_configured_the_console_says_how_to_enable_it() {
    let ta = start(&[]).await;
    let p = Browser::new().get(&format!("{}/admin/login", ta.url)).await;
    assert_eq!(p.status, 403);
    assert!(p.body.contains("[console] admins"), "{}", p.body);
}

/// Signs `name` in at the authorization endpoint as the console's client
/// (as anyone could, without the console) and returns the code and verifier.
async fn console_code(ta: &TestAuthority, name: &str) -> (String, String) {
    let pkce = castellan_testkit::browser::pkce();
    let redirect_uri = format!("{}/admin/callback", ta.url);
    let req = castellan_testkit::browser::AuthRequest {
        issuer: &ta.url,
        client_id: "castellan-console",
        redirect_uri: &redirect_uri,
        scope: "openid",
        challenge: &pkce.challenge,
        state: "s",
        nonce: "n",
    };
    let back = castellan_testkit::browser::sign_in(&req, name, PASSWORD).await;
    assert_eq!(back.status, 303, "{}", back.body);
    (back.redirect_param("code").unwrap(), pkce.verifier)
}

#[tokio::test]
async fn the_console_client_gives_no_tokens_of_its_own() {
    let ta = start(&["alice"]).await;
    person(&ta, "carol").await;
    // Carol (no admin) runs the code flow as the console's client and
    // takes the code to the token endpoint herself: refused.
    let (code, verifier) = console_code(&ta, "carol").await;
    let redirect_uri = format!("{}/admin/callback", ta.url);
    let resp = ta
        .token_request(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "castellan-console"),
                ("code", &code),
                ("redirect_uri", &redirect_uri),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "unauthorized_client", "{v}");
    assert!(v.get("access_token").is_none(), "{v}");
    for grant in [
        vec![("grant_type", "refresh_token"), ("refresh_token", "x")],
        vec![("grant_type", "client_credentials")],
        vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", "x"),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
        ],
    ] {
        let mut form = grant.clone();
        form.push(("client_id", "castellan-console"));
        let resp = ta.token_request(None, &form).await;
        assert_eq!(resp.status(), 400);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"], "unauthorized_client", "{grant:?}: {v}");
    }
    // Nor may it revoke (RFC 7009).
    let resp = ta
        .http
        .post(format!("{}/oauth2/revoke", ta.url))
        .form(&[("client_id", "castellan-console"), ("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "unauthorized_client", "{v}");
    // It is not stored, so it cannot be deleted or listed.
    let (status, _) = ta.admin(Method::DELETE, "/clients/castellan-console", None).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn without_admins_the_console_client_does_not_exist() {
    let ta = start(&[]).await;
    person(&ta, "carol").await;
    let pkce = castellan_testkit::browser::pkce();
    let redirect_uri = format!("{}/admin/callback", ta.url);
    let req = castellan_testkit::browser::AuthRequest {
        issuer: &ta.url,
        client_id: "castellan-console",
        redirect_uri: &redirect_uri,
        scope: "openid",
        challenge: &pkce.challenge,
        state: "s",
        nonce: "n",
    };
    let p = Browser::new().get(&req.url()).await;
    assert_eq!(p.status, 400, "an unknown client: {}", p.body);
}

#[tokio::test]
async fn a_federated_account_is_never_a_console_admin() {
    let ta = start(&["alice", "mallory"]).await;
    person(&ta, "alice").await;
    // As a first federated sign-in creates a person, with a username the
    // upstream chose; given a password here so the test can sign in.
    let hash = ta.authority.passwords().hash(PASSWORD).await.unwrap();
    ta.authority
        .store()
        .insert_user(&castellan_store::UserRecord {
            user_id: "u-mallory".to_owned(),
            username: "mallory".to_owned(),
            password_hash: Some(hash),
            suspended: false,
            created_at: 0,
            federated_issuer: Some("https://upstream.example".to_owned()),
            federated_subject: Some("mallory".to_owned()),
        })
        .await
        .unwrap();
    let (mut b, done) = sign_in(&ta, "mallory").await;
    assert_eq!(done.status, 403, "{}", done.body);
    assert!(done.body.contains("federation"), "{}", done.body);
    assert_eq!(b.get(&format!("{}/admin", ta.url)).await.status, 303);
    let (_, shown) = ta.admin(Method::GET, "/users/mallory", None).await;
    assert_eq!(shown["sessions"], json!([]), "her session was ended: {shown}");
    // The local admin still gets in.
    let mut alice = signed_in(&ta, "alice").await;
    assert_eq!(alice.get(&format!("{}/admin", ta.url)).await.status, 200);
}

#[tokio::test]
async fn a_session_revoked_through_the_admin_api_throws_the_admin_out() {
    let ta = start(&["alice"]).await;
    person(&ta, "alice").await;
    let mut b = signed_in(&ta, "alice").await;
    assert_eq!(b.get(&format!("{}/admin", ta.url)).await.status, 200);
    let (_, shown) = ta.admin(Method::GET, "/users/alice", None).await;
    let sid = shown["sessions"][0]["sid"].as_str().unwrap().to_owned();
    let (status, v) = ta.admin(Method::POST, &format!("/sessions/{sid}/revoke"), None).await;
    assert_eq!(status, 200, "{v}");
    let p = b.get(&format!("{}/admin", ta.url)).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some("/admin/login"));
}

#[tokio::test]
async fn a_tampered_or_foreign_cookie_is_sent_to_sign_in() {
    let ta = start(&["alice"]).await;
    person(&ta, "alice").await;
    let b = signed_in(&ta, "alice").await;
    let (_, value) = b
        .cookies
        .iter()
        .find(|(k, _)| k == "castellan_console")
        .unwrap()
        .clone();
    // One byte flipped.
    let mut bytes = value.clone().into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(bytes).unwrap();
    // A cookie sealed by another authority (another master key).
    let other = start(&["alice"]).await;
    person(&other, "alice").await;
    let foreign_browser = signed_in(&other, "alice").await;
    let (_, foreign) = foreign_browser
        .cookies
        .iter()
        .find(|(k, _)| k == "castellan_console")
        .unwrap()
        .clone();
    for (what, cookie) in [
        ("tampered", flipped),
        ("foreign", foreign),
        ("garbage", "%%%".to_owned()),
    ] {
        let with_cookie = || {
            let mut b = Browser::new();
            b.cookies.push(("castellan_console".to_owned(), cookie.clone()));
            b
        };
        for path in ["/admin", "/admin/keys", "/admin/audit?verify=1"] {
            let p = with_cookie().get(&format!("{}{path}", ta.url)).await;
            assert_eq!(p.status, 303, "{what} {path}: {}", p.body);
            assert_eq!(p.location.as_deref(), Some("/admin/login"), "{what}");
        }
        let before = active_kid(&ta).await;
        let p = with_cookie()
            .post_form(&format!("{}/admin/keys/rotate", ta.url), &[("confirm", "yes")])
            .await;
        assert_eq!(p.status, 303, "{what}");
        assert_eq!(active_kid(&ta).await, before, "{what}: nothing rotated");
    }
}

#[tokio::test]
async fn a_get_on_an_action_is_refused_and_changes_nothing() {
    let ta = start(&["alice"]).await;
    person(&ta, "alice").await;
    person(&ta, "carol").await;
    let mut b = signed_in(&ta, "alice").await;
    let (_, shown) = ta.admin(Method::GET, "/users/alice", None).await;
    let sid = shown["sessions"][0]["sid"].as_str().unwrap().to_owned();
    let before = active_kid(&ta).await;
    for path in [
        "/admin/logout".to_owned(),
        "/admin/keys/rotate?confirm=yes".to_owned(),
        "/admin/people/carol/suspend?confirm=yes".to_owned(),
        "/admin/people/carol/resume".to_owned(),
        format!("/admin/people/alice/sessions/{sid}/revoke?confirm=yes"),
        "/admin/policies/orders/rollback?confirm=yes&version=1".to_owned(),
    ] {
        let p = b.get(&format!("{}{path}", ta.url)).await;
        assert_eq!(p.status, 405, "GET {path}: {}", p.body);
    }
    assert_eq!(active_kid(&ta).await, before);
    let (_, carol) = ta.admin(Method::GET, "/users/carol", None).await;
    assert_eq!(carol["suspended"], false);
    assert_eq!(b.get(&format!("{}/admin", ta.url)).await.status, 200, "still signed in");
}

#[tokio::test]
async fn an_admin_suspends_another_through_the_console() {
    let ta = start(&["alice", "bob"]).await;
    person(&ta, "alice").await;
    person(&ta, "bob").await;
    let mut alice = signed_in(&ta, "alice").await;
    let mut bob = signed_in(&ta, "bob").await;
    let page = bob.get(&format!("{}/admin/people/alice", ta.url)).await;
    assert_eq!(page.status, 200);
    let csrf = csrf_of(&page.body);
    let suspend = format!("{}/admin/people/alice/suspend", ta.url);
    let p = bob.post_form(&suspend, &[("csrf", csrf.as_str())]).await;
    assert_eq!(p.status, 200, "a confirmation first");
    assert!(p.body.contains("Suspend this person?"), "{}", p.body);
    let (_, shown) = ta.admin(Method::GET, "/users/alice", None).await;
    assert_eq!(shown["suspended"], false);
    let p = bob
        .post_form(&suspend, &[("csrf", csrf.as_str()), ("confirm", "yes")])
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(p.location.as_deref(), Some("/admin/people/alice?done=suspended"));
    let (_, shown) = ta.admin(Method::GET, "/users/alice", None).await;
    assert_eq!(shown["suspended"], true, "{shown}");
    assert_eq!(shown["sessions"], json!([]), "{shown}");
    let p = alice.get(&format!("{}/admin", ta.url)).await;
    assert_eq!(p.status, 303, "alice is thrown out");
    assert_eq!(p.location.as_deref(), Some("/admin/login"));
    assert_eq!(bob.get(&format!("{}/admin", ta.url)).await.status, 200);
}

#[tokio::test]
async fn a_store_outage_shows_unavailable_and_keeps_the_session() {
    let ta = start(&["alice"]).await;
    person(&ta, "alice").await;
    let mut b = signed_in(&ta, "alice").await;
    assert_eq!(b.get(&format!("{}/admin", ta.url)).await.status, 200);
    let db = ta.authority.config().data_dir.join("castellan.db");
    let side = sqlx::sqlite::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("ALTER TABLE sessions RENAME TO sessions_offline")
        .execute(&side)
        .await
        .unwrap();
    let resp = ta
        .http
        .get(format!("{}/admin/keys", ta.url))
        .header(
            "cookie",
            b.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("set-cookie").is_none(), "the cookie is left alone");
    assert!(resp.text().await.unwrap().contains("still signed in"));
    sqlx::query("ALTER TABLE sessions_offline RENAME TO sessions")
        .execute(&side)
        .await
        .unwrap();
    assert_eq!(
        b.get(&format!("{}/admin/keys", ta.url)).await.status,
        200,
        "signed in still once the store is back"
    );
}

#[tokio::test]
async fn the_audit_page_lists_console_actions_and_checks_the_chain() {
    let ta = start(&["alice"]).await;
    let alice_id = person(&ta, "alice").await;
    let mut b = signed_in(&ta, "alice").await;
    let page = b.get(&format!("{}/admin/keys", ta.url)).await;
    let csrf = csrf_of(&page.body);
    let p = b
        .post_form(
            &format!("{}/admin/keys/rotate", ta.url),
            &[("csrf", csrf.as_str()), ("confirm", "yes")],
        )
        .await;
    assert_eq!(p.status, 303);
    let actor = format!("user:{alice_id}");
    let page = b.get(&format!("{}/admin/audit?actor={actor}&window=all", ta.url)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("key.rotate"), "{}", page.body);
    assert!(page.body.contains(&actor), "{}", page.body);
    let page = b.get(&format!("{}/admin/audit?verify=1&window=all", ta.url)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"chain-result\""), "{}", page.body);
    assert!(page.body.contains("The chain is intact"), "{}", page.body);
}

#[tokio::test]
async fn a_long_policy_is_not_diffed_in_the_console() {
    let ta = start(&["alice"]).await;
    person(&ta, "alice").await;
    let long = format!("{}permit(principal, action, resource);", "// line\n".repeat(5_001));
    for policies in [long.as_str(), "permit(principal, action, resource);"] {
        let (status, v) = ta
            .admin(Method::POST, "/policies/orders", Some(json!({ "policies": policies })))
            .await;
        assert_eq!(status, 201, "{v}");
    }
    let mut b = signed_in(&ta, "alice").await;
    let p = b.get(&format!("{}/admin/policies/orders?from=1&to=2", ta.url)).await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("diff-too-long"), "{}", p.body);
    assert!(p.body.contains("castellan policy diff orders 1 2"), "{}", p.body);
    // A short pair is diffed as before.
    let (status, v) = ta
        .admin(
            Method::POST,
            "/policies/orders",
            Some(json!({ "policies": "forbid(principal, action, resource);" })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let p = b.get(&format!("{}/admin/policies/orders?from=2&to=3", ta.url)).await;
    assert!(!p.body.contains("diff-too-long"), "{}", p.body);
    assert!(p.body.contains("class=\"add\""), "{}", p.body);
}
