//! The policy store over HTTP: pushes checked before they are stored
//! (Cedar's diagnostics on refusal, the version in force unchanged),
//! versions, rollback, `policy` events on the stream, and signed bundles
//! that the receiving side verifies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_testkit::TestAuthority;
use reqwest::Method;
use serde_json::{json, Value};

const SCHEMA: &str = castellan_authz::GATE_SCHEMA;

const V1: &str = r#"
@id("readers")
permit(principal, action == Action::"GET", resource)
when { principal.scopes.contains("orders.read") };
"#;

const V2: &str = r#"
@id("readers")
permit(principal, action == Action::"GET", resource)
when { principal.scopes.contains("orders.read") };

@id("no-admin-paths")
forbid(principal, action, resource)
when { resource.path like "/admin/*" };
"#;

async fn push(ta: &TestAuthority, service: &str, body: Value) -> (u16, Value) {
    ta.admin(Method::POST, &format!("/policies/{service}"), Some(body))
        .await
}

#[tokio::test]
async fn pushes_are_checked_versioned_and_rolled_back() {
    let ta = TestAuthority::start().await;
    let (status, v) = push(
        &ta,
        "orders",
        json!({"policies": V1, "schema": SCHEMA, "note": "first"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["version"], 1);
    assert_eq!(v["has_schema"], true);

    // A syntax error: refused with Cedar's diagnostic, nothing stored.
    let (status, v) = push(
        &ta,
        "orders",
        json!({"policies": "permit(principal, action resource);"}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"], "invalid_request");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("version in force is unchanged"),
        "{v}"
    );
    // Valid Cedar, but an attribute the schema does not declare.
    let (status, v) = push(
        &ta,
        "orders",
        json!({"policies": "permit(principal, action, resource) when { principal.department == \"x\" };", "schema": SCHEMA}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("department"), "{v}");
    // Malformed requests.
    for bad in [
        json!({}),
        json!({"policies": 1}),
        json!({"policies": V1, "extra": true}),
    ] {
        let (status, v) = push(&ta, "orders", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    let (status, _) = push(&ta, "bad%20name", json!({"policies": V1})).await;
    assert_eq!(status, 400);
    // Larger than the general body limit (16 KiB) is fine for policies...
    let many: String = (0..400)
        .map(|i| format!("@id(\"p{i}\")\npermit(principal, action == Action::\"GET\", resource) when {{ resource.path == \"/r/{i}\" }};\n"))
        .collect();
    assert!(many.len() > 16 * 1024);
    let (status, v) = push(&ta, "big", json!({"policies": many, "schema": SCHEMA})).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["summary"]["permits"], 400);
    // ...up to 256 KiB of text.
    let (status, v) = push(&ta, "orders", json!({"policies": "x".repeat(300 * 1024)})).await;
    assert_eq!(status, 400, "oversized: {v}");
    let (status, _) = push(&ta, "orders", json!({"policies": "x".repeat(2 * 1024 * 1024)})).await;
    assert_eq!(status, 413, "far beyond: refused while reading");

    let (status, v) = push(&ta, "orders", json!({"policies": V2, "schema": SCHEMA})).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["version"], 2);

    let (_, list) = ta.admin(Method::GET, "/policies/orders", None).await;
    let versions = list["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "refused pushes left no trace: {list}");
    assert_eq!(versions[0]["note"], "first");
    assert_eq!(versions[1]["created_by"], castellan_testkit::ADMIN_ID);

    let (status, shown) = ta.admin(Method::GET, "/policies/orders/1", None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["policies"], V1);
    let (_, latest) = ta.admin(Method::GET, "/policies/orders/latest", None).await;
    assert_eq!(latest["version"], 2);
    let (status, _) = ta.admin(Method::GET, "/policies/orders/9", None).await;
    assert_eq!(status, 404);
    let (status, _) = ta.admin(Method::GET, "/policies/orders/two", None).await;
    assert_eq!(status, 400);

    // Rollback stores version 1's text again, as version 3.
    let (status, v) = ta
        .admin(Method::POST, "/policies/orders/rollback", Some(json!({"version": 1})))
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["version"], 3);
    assert_eq!(v["note"], "rollback to 1");
    assert_eq!(v["policies_sha256"], versions[0]["policies_sha256"]);
    let (status, _) = ta
        .admin(Method::POST, "/policies/orders/rollback", Some(json!({"version": 7})))
        .await;
    assert_eq!(status, 404);

    let (_, services) = ta.admin(Method::GET, "/policies", None).await;
    assert_eq!(
        services["services"],
        json!([{"service": "big", "version": 1}, {"service": "orders", "version": 3}])
    );

    // Only admins.
    let (id, secret) = ta.client("plain", &["orders"], &[]).await;
    let token = ta
        .token_request(Some((&id, &secret)), &[("grant_type", "client_credentials")])
        .await;
    let token: Value = token.json().await.unwrap();
    let resp = ta
        .http
        .post(format!("{}/admin/v1/policies/orders", ta.url))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"policies": V1}))
        .send()
        .await
        .unwrap();
    assert!(resp.status() == 401 || resp.status() == 403, "{}", resp.status());
}

#[tokio::test]
async fn bundles_are_signed_and_verified_by_the_receiver() {
    let ta = TestAuthority::start().await;
    let url = |service: &str| format!("{}/policies/{service}/bundle", ta.url);
    assert_eq!(ta.http.get(url("orders")).send().await.unwrap().status(), 404);
    let (status, _) = push(&ta, "orders", json!({"policies": V2, "schema": SCHEMA})).await;
    assert_eq!(status, 201);
    let d = ta.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        d["castellan_policy_bundle_endpoint"],
        format!("{}/policies/{{service}}/bundle", ta.url)
    );

    let resp = ta.http.get(url("orders")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/jwt");
    let jws = resp.text().await.unwrap();
    let keys = ta.authority.keys().current();
    let find = |kid: &str| keys.verifying.get(kid);
    let bundle = castellan_authz::verify_bundle(&jws, &ta.url, "orders", find).unwrap();
    assert_eq!(bundle.version, 1);
    assert_eq!(bundle.policies, V2);
    assert_eq!(bundle.schema.as_deref(), Some(SCHEMA));

    // The receiver refuses it for another service, from another issuer, or altered.
    assert!(castellan_authz::verify_bundle(&jws, &ta.url, "billing", find).is_err());
    assert!(castellan_authz::verify_bundle(&jws, "https://elsewhere.example", "orders", find).is_err());
    let mut parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
    let payload = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &parts[1]).unwrap(),
    )
    .unwrap()
    .replace("no-admin-paths", "no-admin-pathz");
    parts[1] = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload);
    assert!(castellan_authz::verify_bundle(&parts.join("."), &ta.url, "orders", find).is_err());
}

#[tokio::test]
async fn a_push_is_announced_on_the_event_stream() {
    let ta = TestAuthority::start().await;
    let mut stream = ta
        .http
        .get(format!("{}/revocations/stream", ta.url))
        .send()
        .await
        .unwrap();
    let (status, _) = push(&ta, "orders", json!({"policies": V1})).await;
    assert_eq!(status, 201);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut seen = String::new();
    while !seen.contains("event: policy") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("a policy event within 2 s")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains(r#"{"service":"orders","version":1}"#), "{seen}");
}

/// Posts a shipment as `creds` (HTTP Basic) to the discovered decision log endpoint.
async fn ship(ta: &TestAuthority, service: &str, creds: Option<(&str, &str)>, body: &str) -> (u16, Value) {
    let d = ta.get_json("/.well-known/openid-configuration").await;
    let url = d["castellan_decision_log_endpoint"]
        .as_str()
        .unwrap()
        .replace("{service}", service);
    let mut req = ta
        .http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some((id, secret)) = creds {
        req = req.basic_auth(id, Some(secret));
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn entry(decision: &str, reason: Option<&str>) -> Value {
    json!({
        "time": 1_800_000_000i64, "principal": "Principal::\"alice\"", "action": "Action::\"GET\"",
        "resource": "Route::\"/orders/1\"", "decision": decision, "reason": reason,
        "policies": ["readers"], "errors": [], "version": 2,
    })
}

async fn rows(ta: &TestAuthority, service: &str, query: &str) -> Vec<Value> {
    let (status, v) = ta
        .admin(Method::GET, &format!("/decisions/{service}{query}"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    v["decisions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn decision_shipments_are_authenticated_checked_and_stored_once() {
    let ta = TestAuthority::start_with(|c| c.decisions.max_batch = 5).await;
    let (shipper, secret) = ta.client("gate-orders", &[], &["castellan.decisions:orders"]).await;
    let creds = Some((shipper.as_str(), secret.as_str()));
    let good = json!({"batch_id": "b-1", "decisions": [entry("allow", None), entry("deny", Some("forbidden"))]});

    let (status, v) = ship(&ta, "orders", creds, &good.to_string()).await;
    assert_eq!(
        (status, &v["accepted"], &v["duplicate"]),
        (200, &json!(2), &json!(false)),
        "{v}"
    );
    // The same batch again (a retry after a lost answer) is stored once.
    let (status, v) = ship(&ta, "orders", creds, &good.to_string()).await;
    assert_eq!(
        (status, &v["accepted"], &v["duplicate"]),
        (200, &json!(0), &json!(true)),
        "{v}"
    );
    let stored = rows(&ta, "orders", "").await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0]["reason"], "forbidden");
    assert_eq!(stored[0]["reporter"], shipper.as_str());
    assert_eq!(stored[0]["policy_version"], 2);

    // Authentication and authorization.
    let (status, v) = ship(&ta, "orders", None, &good.to_string()).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")), "{v}");
    let (status, v) = ship(&ta, "orders", Some((shipper.as_str(), "wrong")), &good.to_string()).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")), "{v}");
    let (status, v) = ship(
        &ta,
        "billing",
        creds,
        &json!({"batch_id": "b-2", "decisions": []}).to_string(),
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("access_denied")),
        "another service's log: {v}"
    );
    let (reader, reader_secret) = ta.client("reader", &["orders"], &["orders.read"]).await;
    let (status, _) = ship(&ta, "orders", Some((&reader, &reader_secret)), &good.to_string()).await;
    assert_eq!(status, 403, "a client without the scope");

    // Malformed, oversized, inconsistent: precise 400s, nothing stored.
    let many: Vec<Value> = (0..6).map(|_| entry("allow", None)).collect();
    let long = "x".repeat(castellan_authz::decision_log::MAX_UID_BYTES + 1);
    let mut long_entry = entry("allow", None);
    long_entry["resource"] = json!(long);
    let mut escape = entry("allow", None);
    escape["principal"] = json!("Principal::\"\u{1b}[2Jalice\"");
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "body"),
        (json!({"decisions": []}).to_string(), "batch_id"),
        (json!({"batch_id": "a b", "decisions": []}).to_string(), "batch_id"),
        (json!({"batch_id": "b-3", "decisions": many}).to_string(), "at most 5"),
        (
            json!({"batch_id": "b-4", "decisions": [entry("maybe", None)]}).to_string(),
            "decisions[0]",
        ),
        (
            json!({"batch_id": "b-5", "decisions": [entry("allow", None), entry("deny", None)]}).to_string(),
            "decisions[1]",
        ),
        (
            json!({"batch_id": "b-6", "decisions": [entry("allow", Some("forbidden"))]}).to_string(),
            "decisions[0]",
        ),
        (
            json!({"batch_id": "b-7", "decisions": [long_entry]}).to_string(),
            "resource",
        ),
        (
            json!({"batch_id": "b-8", "decisions": [], "extra": 1}).to_string(),
            "extra",
        ),
        (
            json!({"batch_id": "b-10", "decisions": [entry("allow", None), escape]}).to_string(),
            "decisions[1]: control",
        ),
    ];
    for (body, expect) in cases {
        let (status, v) = ship(&ta, "orders", creds, &body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"], "invalid_request");
        assert!(v["error_description"].as_str().unwrap().contains(expect), "{body}: {v}");
    }
    let huge = format!("{{\"batch_id\":\"b-9\",\"decisions\":[{}]}}", "1,".repeat(20_000_000));
    let (status, _) = ship(&ta, "orders", creds, &huge).await;
    assert_eq!(status, 413, "an oversized body");
    assert_eq!(
        rows(&ta, "orders", "").await.len(),
        2,
        "refused shipments store nothing"
    );

    // Admin queries: filters, paging, bad parameters.
    assert_eq!(rows(&ta, "orders", "?decision=allow").await.len(), 1);
    assert_eq!(
        rows(&ta, "orders", "?principal=alice").await.len(),
        2,
        "a bare id is a gate principal"
    );
    assert_eq!(rows(&ta, "orders", "?principal=bob").await.len(), 0);
    assert_eq!(rows(&ta, "orders", "?since=1800000001").await.len(), 0);
    let (status, v) = ta.admin(Method::GET, "/decisions/orders?limit=1", None).await;
    assert_eq!(status, 200);
    let next = v["next_before_id"].as_i64().unwrap();
    assert_eq!(rows(&ta, "orders", &format!("?before_id={next}")).await.len(), 1);
    for bad in [
        "?decision=perhaps",
        "?limit=0",
        "?limit=100000",
        "?since=soon",
        "?colour=red",
    ] {
        let (status, v) = ta.admin(Method::GET, &format!("/decisions/orders{bad}"), None).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    let r = ta
        .http
        .get(format!("{}/admin/v1/decisions/orders", ta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "admin only");
}

#[tokio::test]
async fn decision_rows_are_pruned_after_the_retention_window() {
    let ta =
        TestAuthority::start_with(|c| c.decisions.retention = castellan_core::HumanDuration::from_secs(3_600)).await;
    let (shipper, secret) = ta.client("gate", &[], &["castellan.decisions:orders"]).await;
    let creds = Some((shipper.as_str(), secret.as_str()));
    let body = |id: &str| json!({"batch_id": id, "decisions": [entry("allow", None)]}).to_string();
    assert_eq!(ship(&ta, "orders", creds, &body("old")).await.0, 200);
    ta.clock.advance(1_800);
    assert_eq!(ship(&ta, "orders", creds, &body("new")).await.0, 200);
    ta.authority.maintain().await.unwrap();
    assert_eq!(rows(&ta, "orders", "").await.len(), 2, "both inside the window");
    ta.clock.advance(1_801);
    ta.authority.maintain().await.unwrap();
    assert_eq!(rows(&ta, "orders", "").await.len(), 1, "the older one is past it");
    ta.clock.advance(1_800);
    ta.authority.maintain().await.unwrap();
    assert!(rows(&ta, "orders", "").await.is_empty());
}
