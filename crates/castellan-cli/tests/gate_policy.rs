//! `castellan gate --policy-service`: route decisions before forwarding,
//! a pushed change live at the running gate within two seconds with the
//! same token, and decisions continuing while the authority is down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

mod common;

use common::{echo, gate, Authority};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const SCHEMA: &str = castellan_authz::GATE_SCHEMA;

const READ_ONLY: &str = r#"
@id("readers")
permit(principal, action == Action::"GET", resource)
when { principal.scopes.contains("orders.read") };

@id("no-admin")
forbid(principal, action, resource)
when { resource.path like "/admin/*" };
"#;

const READ_WRITE: &str = r#"
@id("readers")
permit(principal, action in [Action::"GET", Action::"POST"], resource)
when { principal.scopes.contains("orders.read") };

@id("no-admin")
forbid(principal, action, resource)
when { resource.path like "/admin/*" };
"#;

#[tokio::test]
async fn the_gate_decides_routes_and_picks_up_pushes_live() {
    let dir = tempfile::tempdir().unwrap();
    let mut auth = Authority::start(dir.path(), "127.0.0.1:0");
    let pushed = auth
        .admin(
            reqwest::Method::POST,
            "/policies/orders",
            Some(json!({"policies": READ_ONLY, "schema": SCHEMA})),
        )
        .await;
    assert_eq!(pushed["version"], 1, "{pushed}");
    let client = auth
        .admin(
            reqwest::Method::POST,
            "/clients",
            Some(json!({"name": "reader", "audiences": ["orders"], "scopes": ["orders.read"]})),
        )
        .await;
    let (id, secret) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let (_, t) = auth.token(id, secret, &[("scope", "orders.read")]).await;
    let token = t["access_token"].as_str().unwrap().to_owned();

    let upstream = echo().await;
    let g = gate(
        auth.url(),
        "orders",
        Some(&upstream.url),
        &["--policy-service", "orders"],
    )
    .await;
    let http = castellan_testkit::http_client();
    let call = |method: reqwest::Method, path: &str| {
        let req = http.request(method, format!("{}{path}", g.url)).bearer_auth(&token);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // Allowed by `readers`.
    assert_eq!(call(reqwest::Method::GET, "/orders/1").await.0, 200);
    // Default deny: no permit for POST.
    let (status, body) = call(reqwest::Method::POST, "/orders/1").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "access_denied");
    assert!(
        body["error_description"].as_str().unwrap().contains("no_permit"),
        "{body}"
    );
    // Forbid overrides the matching permit.
    let (status, body) = call(reqwest::Method::GET, "/admin/users").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("forbidden: no-admin"),
        "{body}"
    );
    // A path the upstream could read as another one: refused, not decided.
    let (status, body) = call(reqwest::Method::GET, "/orders/..%2Fadmin/users").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        1,
        "denied requests never reach the upstream"
    );
    // No token is still 401, before any policy.
    let r = http.post(format!("{}/orders/1", g.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // A push reaches the running gate within two seconds; same token.
    let pushed = auth
        .admin(
            reqwest::Method::POST,
            "/policies/orders",
            Some(json!({"policies": READ_WRITE, "schema": SCHEMA})),
        )
        .await;
    assert_eq!(pushed["version"], 2, "{pushed}");
    let start = Instant::now();
    loop {
        if call(reqwest::Method::POST, "/orders/1").await.0 == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the push did not reach the gate within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = start.elapsed();
    eprintln!("policy push live at the gate after {took:?}");

    // The authority goes away: decisions continue with the bundle in force.
    auth.proc.kill9();
    assert_eq!(call(reqwest::Method::POST, "/orders/2").await.0, 200);
    assert_eq!(call(reqwest::Method::GET, "/admin/x").await.0, 403);
    let metrics = http
        .get(format!("{}/.castellan/metrics", g.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("castellan_gate_decisions_total"), "{metrics}");
}
