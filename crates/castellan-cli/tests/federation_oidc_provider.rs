#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap
//! Federation against a real, independent OpenID Provider: the npm package
//! `oidc-provider` (tests/federation/provider.mjs), started on loopback. A
//! person clicks the company sign-in button on Castellan's login page, signs
//! in upstream, comes back through the callback, and the app receives
//! Castellan's own tokens for a local account linked to the upstream subject.
//!
//! Needs `node` (20+) and `npm ci` in tests/federation (the test runs it when
//! `node_modules` is missing). Without them it prints a loud `SKIPPED:` line
//! and passes, unless `CI` is set, when it fails.

use castellan_authority::config::FederationConfig;
use castellan_testkit::browser::{pkce, AuthRequest, Browser, Page};
use castellan_testkit::TestAuthority;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const APP_REDIRECT: &str = "http://127.0.0.1:9/callback";
const UPSTREAM_SUB: &str = "carol.upstream";
const UPSTREAM_PASSWORD: &str = "upstream-password-1";
const CLIENT_ID: &str = "castellan-rp";
const CLIENT_SECRET: &str = "fed-secret-0123456789abcdef";

fn skip_or_fail(reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "the federation test cannot run and CI is set: {reason}"
    );
    eprintln!("\n*** SKIPPED: federation against oidc-provider: {reason} ***\n");
}

fn harness_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/federation")
}

fn tooling() -> Result<(), String> {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node not found: {e}"))?;
    if !node.status.success() {
        return Err("node --version failed".into());
    }
    if !harness_dir().join("node_modules/oidc-provider").exists() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(harness_dir())
            .output()
            .map_err(|e| format!("npm not found: {e}"))?;
        if !out.status.success() {
            return Err(format!("npm ci failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    Ok(())
}

/// The upstream provider process; killed on drop.
struct Upstream {
    child: Child,
    issuer: String,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_upstream(callback: &str) -> Upstream {
    let mut child = Command::new("node")
        .arg(harness_dir().join("provider.mjs"))
        .args([
            "--port",
            "0",
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
        ])
        .args(["--redirect-uri", callback, "--user-sub", UPSTREAM_SUB])
        .args(["--user-password", UPSTREAM_PASSWORD, "--watch-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let issuer = line
        .trim()
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("provider did not start: {line:?}"))
        .to_owned();
    Upstream { child, issuer }
}

/// Castellan with `[federation]` pointing at a fresh upstream whose client
/// redirects to this authority's callback.
async fn federated_authority(create_users: bool) -> (TestAuthority, Upstream) {
    let mut upstream = None;
    let ta = TestAuthority::start_with(|c| {
        let up = start_upstream(&format!("http://{}/oauth2/federation/callback", c.listen));
        c.federation = Some(FederationConfig {
            issuer: up.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            display_name: "Sign in with ExampleCorp".into(),
            create_users,
        });
        upstream = Some(up);
    })
    .await;
    (ta, upstream.unwrap())
}

async fn public_app(ta: &TestAuthority) -> String {
    let (status, v) = ta
        .admin(
            Method::POST,
            "/clients",
            Some(
                json!({"name": "Orders web", "audiences": ["orders"], "public": true, "redirect_uris": [APP_REDIRECT]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    v["client_id"].as_str().unwrap().to_owned()
}

fn absolute(base: &str, location: &str) -> String {
    url::Url::parse(base).unwrap().join(location).unwrap().to_string()
}

/// GETs `url` and follows redirects while they stay away from `stop_at`.
async fn follow(b: &mut Browser, mut url: String, stop_at: &str) -> (String, Page) {
    for _ in 0..10 {
        let page = b.get(&url).await;
        match &page.location {
            Some(loc) if !absolute(&url, loc).starts_with(stop_at) && (300..400).contains(&page.status) => {
                url = absolute(&url, loc);
            }
            _ => return (url, page),
        }
    }
    panic!("redirect loop from {url}");
}

fn form_action(html: &str) -> String {
    let at = html.find("action=\"").unwrap() + 8;
    html[at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

struct Callback {
    url: String,
}

/// From Castellan's login page to the upstream sign-in and back to
/// Castellan's callback (not yet followed).
async fn through_upstream(
    ta: &TestAuthority,
    b: &mut Browser,
    client_id: &str,
    password: &str,
) -> Result<Callback, Page> {
    let p = pkce();
    let req = AuthRequest {
        issuer: &ta.url,
        client_id,
        redirect_uri: APP_REDIRECT,
        scope: "openid profile",
        challenge: &p.challenge,
        state: "app-state",
        nonce: "app-nonce",
    };
    let page = b.get(&req.url()).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Sign in with ExampleCorp"),
        "the page offers the company sign-in"
    );
    let form = page.login_form();
    let start = b
        .post_form(
            &format!("{}/oauth2/federation/start", ta.url),
            &[("request", &form.request)],
        )
        .await;
    assert_eq!(start.status, 303, "{}", start.body);
    let upstream_auth = start.location.clone().unwrap();
    let callback_prefix = format!("{}/oauth2/federation/callback", ta.url);
    let (at, page) = follow(b, upstream_auth, &callback_prefix).await;
    if page.location.is_some() {
        // Already signed in upstream: straight back.
        return Ok(Callback {
            url: absolute(&at, page.location.as_deref().unwrap()),
        });
    }
    assert_eq!(page.status, 200, "upstream login page: {}", page.body);
    let action = absolute(&at, &form_action(&page.body));
    let posted = b
        .post_form(&action, &[("login", UPSTREAM_SUB), ("password", password)])
        .await;
    if posted.status != 303 {
        return Err(posted);
    }
    let next = absolute(&action, posted.location.as_deref().unwrap());
    let (at, page) = follow(b, next, &callback_prefix).await;
    Ok(Callback {
        url: absolute(
            &at,
            page.location.as_deref().expect("upstream redirects to the callback"),
        ),
    })
}

async fn exchange(ta: &TestAuthority, client_id: &str, back: &Page, verifier: &str) -> (u16, Value) {
    let code = back.redirect_param("code").unwrap();
    let resp = ta
        .http
        .post(format!("{}/oauth2/token", ta.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", APP_REDIRECT),
            ("code_verifier", verifier),
            ("client_id", client_id),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&castellan_jose::b64::decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn people_sign_in_through_an_upstream_oidc_provider() {
    if let Err(reason) = tooling() {
        skip_or_fail(&reason);
        return;
    }
    let (ta, upstream) = federated_authority(true).await;
    let app = public_app(&ta).await;

    // A wrong upstream password stays upstream.
    let mut b = Browser::new();
    let refused = through_upstream(&ta, &mut b, &app, "wrong").await;
    assert_eq!(refused.err().map(|p| p.status), Some(401));

    // The whole journey. The app's PKCE pair is needed for the exchange, so redo it by hand.
    let mut b = Browser::new();
    let p = pkce();
    let req = AuthRequest {
        issuer: &ta.url,
        client_id: &app,
        redirect_uri: APP_REDIRECT,
        scope: "openid profile",
        challenge: &p.challenge,
        state: "app-state",
        nonce: "app-nonce",
    };
    let form = b.get(&req.url()).await.login_form();
    let start = b
        .post_form(
            &format!("{}/oauth2/federation/start", ta.url),
            &[("request", &form.request)],
        )
        .await;
    let to_upstream = start.location.clone().unwrap();
    assert!(to_upstream.starts_with(&upstream.issuer), "{to_upstream}");
    let up_params: Vec<(String, String)> = url::Url::parse(&to_upstream)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let param = |n: &str| up_params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert!(param("nonce").is_some() && param("state").is_some());
    let callback_prefix = format!("{}/oauth2/federation/callback", ta.url);
    let (at, page) = follow(&mut b, to_upstream, &callback_prefix).await;
    let action = absolute(&at, &form_action(&page.body));
    let posted = b
        .post_form(&action, &[("login", UPSTREAM_SUB), ("password", UPSTREAM_PASSWORD)])
        .await;
    assert_eq!(posted.status, 303, "{}", posted.body);
    let (at, page) = follow(
        &mut b,
        absolute(&action, posted.location.as_deref().unwrap()),
        &callback_prefix,
    )
    .await;
    let callback = absolute(&at, page.location.as_deref().unwrap());
    assert!(callback.starts_with(&callback_prefix), "{callback}");

    // The callback in another browser (no login cookie) is refused.
    let mut stranger = Browser::new();
    assert_eq!(stranger.get(&callback).await.status, 403);
    // A tampered state is refused.
    let tampered = callback.replace("state=", "state=AAAA");
    assert_eq!(b.get(&tampered).await.status, 400);
    // An authorization response naming another issuer is a mix-up: refused.
    let mixed = format!(
        "{}&iss=http%3A%2F%2Fevil.example",
        callback.split("&iss=").next().unwrap()
    );
    assert_eq!(b.get(&mixed).await.status, 400);

    let back = b.get(&callback).await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert!(back.location.as_deref().unwrap().starts_with(APP_REDIRECT));
    assert_eq!(back.redirect_param("state").as_deref(), Some("app-state"));
    let (status, tokens) = exchange(&ta, &app, &back, &p.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let at_claims = claims_of(tokens["access_token"].as_str().unwrap());
    let id_claims = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(at_claims["iss"], ta.url.as_str(), "services see one issuer: Castellan");
    assert_eq!(id_claims["nonce"], "app-nonce");
    let sub = at_claims["sub"].as_str().unwrap().to_owned();
    let (_, shown) = ta.admin(Method::GET, &format!("/users/{sub}"), None).await;
    assert_eq!(shown["federated_issuer"], upstream.issuer.as_str());
    assert_eq!(shown["federated_subject"], UPSTREAM_SUB);
    assert_eq!(shown["username"], UPSTREAM_SUB);
    assert_eq!(shown["has_password"], false);

    // The same callback again: its upstream code is spent, so upstream refuses and so do we.
    assert_eq!(b.get(&callback).await.status, 502);

    // Signing in again links to the same local person.
    let mut b2 = Browser::new();
    let cb = through_upstream(&ta, &mut b2, &app, UPSTREAM_PASSWORD).await.unwrap();
    let back = b2.get(&cb.url).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let (_, users) = ta.admin(Method::GET, "/users", None).await;
    assert_eq!(
        users["users"].as_array().unwrap().len(),
        1,
        "one person, linked once: {users}"
    );

    // A suspended local account is refused whatever upstream says.
    let (status, _) = ta.admin(Method::POST, &format!("/users/{sub}/suspend"), None).await;
    assert_eq!(status, 200);
    let mut b3 = Browser::new();
    let cb = through_upstream(&ta, &mut b3, &app, UPSTREAM_PASSWORD).await.unwrap();
    assert_eq!(b3.get(&cb.url).await.status, 403);
}

#[tokio::test]
async fn without_create_users_only_linked_people_get_in() {
    if let Err(reason) = tooling() {
        skip_or_fail(&reason);
        return;
    }
    let (ta, _upstream) = federated_authority(false).await;
    let app = public_app(&ta).await;
    let mut b = Browser::new();
    let cb = through_upstream(&ta, &mut b, &app, UPSTREAM_PASSWORD).await.unwrap();
    let page = b.get(&cb.url).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("No account here is linked"), "{}", page.body);
    let (_, users) = ta.admin(Method::GET, "/users", None).await;
    assert_eq!(users["users"], json!([]));

    // An administrator links the person; then they get in, as that account.
    let (status, v) = ta
        .admin(
            Method::POST,
            "/users",
            Some(json!({"username": "carol", "federated_subject": UPSTREAM_SUB})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let mut b = Browser::new();
    let cb = through_upstream(&ta, &mut b, &app, UPSTREAM_PASSWORD).await.unwrap();
    let back = b.get(&cb.url).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let (_, users) = ta.admin(Method::GET, "/users", None).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
    assert_eq!(users["users"][0]["username"], "carol");
}
