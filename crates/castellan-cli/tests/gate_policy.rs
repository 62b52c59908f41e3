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
        &["--policy-service", "orders", "--no-decision-log"],
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

/// A client allowed `orders.read`, and its token.
async fn reader_token(auth: &Authority) -> (String, String) {
    let client = auth
        .admin(
            reqwest::Method::POST,
            "/clients",
            Some(json!({"name": "reader", "audiences": ["orders"], "scopes": ["orders.read"]})),
        )
        .await;
    let id = client["client_id"].as_str().unwrap().to_owned();
    let (_, t) = auth
        .token(
            &id,
            client["client_secret"].as_str().unwrap(),
            &[("scope", "orders.read")],
        )
        .await;
    (id, t["access_token"].as_str().unwrap().to_owned())
}

async fn decision_rows(auth: &Authority, query: &str) -> Vec<Value> {
    auth.admin(reqwest::Method::GET, &format!("/decisions/orders{query}"), None)
        .await["decisions"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn every_gate_decision_reaches_the_central_log_even_across_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut auth = Authority::start(dir.path(), "127.0.0.1:0");
    auth.admin(
        reqwest::Method::POST,
        "/policies/orders",
        Some(json!({"policies": READ_ONLY, "schema": SCHEMA})),
    )
    .await;
    let (reader, token) = reader_token(&auth).await;
    // The gate ships as its own client, holding only the decision-log scope;
    // created as the docs say, its `--json` output is the credentials file.
    let out = auth.cli(&[
        "client",
        "create",
        "gate-orders",
        "--scope",
        "castellan.decisions:orders",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shipper: Value = serde_json::from_slice(&out.stdout).unwrap();
    let creds = dir.path().join("gate-orders.json");
    std::fs::write(&creds, &out.stdout).unwrap();
    let shipper_id = shipper["client_id"].as_str().unwrap().to_owned();

    let upstream = echo().await;
    let g = gate(
        auth.url(),
        "orders",
        Some(&upstream.url),
        &[
            "--policy-service",
            "orders",
            "--decision-log-credentials",
            creds.to_str().unwrap(),
        ],
    )
    .await;
    let http = castellan_testkit::http_client();
    let call = |method: reqwest::Method, path: &str| {
        let req = http.request(method, format!("{}{path}", g.url)).bearer_auth(&token);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(call(reqwest::Method::GET, "/orders/1").await, 200);
    assert_eq!(call(reqwest::Method::POST, "/orders/1").await, 403);
    assert_eq!(call(reqwest::Method::GET, "/admin/users").await, 403);

    let took = common::within(Duration::from_secs(5), || async {
        decision_rows(&auth, "").await.len() == 3
    })
    .await;
    eprintln!("decisions in the central log after {took:?}");
    let rows = decision_rows(&auth, "").await;
    let principal = format!("Principal::\"{reader}\"");
    // Newest first.
    assert_eq!(rows[0]["resource"], "Route::\"/admin/users\"");
    assert_eq!(rows[0]["decision"], "deny");
    assert_eq!(rows[0]["reason"], "forbidden");
    assert_eq!(rows[0]["policies"], json!(["no-admin"]));
    assert_eq!(rows[1]["action"], "Action::\"POST\"");
    assert_eq!(rows[1]["reason"], "no_permit");
    assert_eq!(rows[1]["policies"], json!([]));
    assert_eq!(rows[2]["decision"], "allow");
    assert_eq!(rows[2]["reason"], Value::Null);
    assert_eq!(rows[2]["policies"], json!(["readers"]));
    for r in &rows {
        assert_eq!(r["principal"], principal.as_str());
        assert_eq!(r["service"], "orders");
        assert_eq!(r["policy_version"], 1);
        assert_eq!(r["reporter"], shipper_id.as_str());
        assert!(r["time"].as_i64().unwrap() > 1_700_000_000);
    }

    // The CLI reads them back with filters.
    let out = auth.cli(&[
        "decisions",
        "--service",
        "orders",
        "--decision",
        "deny",
        "--since",
        "1h",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let denies: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(denies.len(), 2);
    assert!(denies.iter().all(|d| d["decision"] == "deny"));
    let out = auth.cli(&[
        "decisions",
        "--service",
        "orders",
        "--principal",
        &reader,
        "--decision",
        "allow",
        "--json",
    ]);
    let allows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(allows.len(), 1);
    assert_eq!(allows[0]["resource"], "Route::\"/orders/1\"");
    let out = auth.cli(&["decisions", "--service", "orders", "--principal", "nobody", "--json"]);
    assert_eq!(serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap().len(), 0);
    let out = auth.cli(&["decisions", "--service", "orders"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("deny (forbidden)") && table.contains("no-admin"),
        "{table}"
    );
    let out = auth.cli(&["decisions", "--service", "orders", "--since", "last tuesday"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));

    // The authority goes away: decisions continue and are kept...
    auth.proc.kill9();
    assert_eq!(call(reqwest::Method::GET, "/orders/2").await, 200);
    assert_eq!(call(reqwest::Method::DELETE, "/orders/2").await, 403);
    // ...and shipped once it is back (the shipper backs off meanwhile).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    auth.restart();
    let took = common::within(Duration::from_secs(20), || async {
        decision_rows(&auth, "").await.len() == 5
    })
    .await;
    eprintln!("decisions made during the outage shipped {took:?} after the restart");
    let rows = decision_rows(&auth, "?decision=deny&limit=1").await;
    assert_eq!(rows[0]["action"], "Action::\"DELETE\"");
    assert_eq!(decision_rows(&auth, "").await.len(), 5, "nothing shipped twice");

    let metrics = http
        .get(format!("{}/.castellan/metrics", g.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("castellan_decisions_shipped_total 5"), "{metrics}");
}

#[tokio::test]
async fn a_policy_gate_refuses_to_start_without_a_decision_log_choice() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_castellan"))
        .args([
            "gate",
            "--listen",
            "127.0.0.1:0",
            "--authority",
            "http://127.0.0.1:9",
            "--audience",
            "orders",
            "--upstream",
            "http://127.0.0.1:9",
            "--policy-service",
            "orders",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--decision-log-credentials") && err.contains("castellan.decisions:orders"),
        "{err}"
    );
}
