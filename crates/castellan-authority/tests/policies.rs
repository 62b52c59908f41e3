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
