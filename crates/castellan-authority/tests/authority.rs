//! The authority through its HTTP interface, booted in-process by the
//! testkit with a clock the tests move.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_jose::{b64, verify_compact, Jwks, SigningKey, VerifyOptions};
use castellan_testkit::{kid_of, TestAuthority, ADMIN_ID, ADMIN_SECRET};
use reqwest::Method;
use serde_json::{json, Value};

async fn form_post(
    ta: &TestAuthority,
    path: &str,
    basic: Option<(&str, &str)>,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = ta
        .http
        .post(format!("{}{path}", ta.url))
        .header("content-type", content_type)
        .body(body);
    if let Some((id, s)) = basic {
        req = req.basic_auth(id, Some(s));
    }
    req.send().await.unwrap()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&b64::decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_advertises_every_endpoint() {
    let ta = TestAuthority::start().await;
    let a: Value = ta.get_json("/.well-known/openid-configuration").await;
    let b: Value = ta.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(a, b);
    assert_eq!(a["issuer"], ta.url);
    for field in [
        "token_endpoint",
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
    ] {
        let url = a[field].as_str().unwrap();
        assert!(url.starts_with(&ta.url), "{field}");
        let method = if field == "jwks_uri" { Method::GET } else { Method::POST };
        let status = ta.http.request(method, url).send().await.unwrap().status();
        assert_ne!(status, 404, "{field} is served");
    }
    let grants = a["grant_types_supported"].as_array().unwrap();
    for g in [
        "client_credentials",
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ] {
        assert!(grants.contains(&json!(g)), "{g}");
    }
    let methods = a["token_endpoint_auth_methods_supported"].as_array().unwrap();
    for m in ["client_secret_basic", "client_secret_post", "private_key_jwt"] {
        assert!(methods.contains(&json!(m)), "{m}");
    }
    assert!(a["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("ES256")));
    assert!(a["id_token_signing_alg_values_supported"].as_array().is_some());
}

#[tokio::test]
async fn jwks_publishes_public_keys_only_with_a_max_age() {
    let ta = TestAuthority::start().await;
    let resp = ta
        .http
        .get(format!("{}/.well-known/jwks.json", ta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "public, max-age=300");
    let text = resp.text().await.unwrap();
    let jwks: Value = serde_json::from_str(&text).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "active and next");
    for k in keys {
        assert!(k["kid"].is_string());
        assert_eq!(k["alg"], "ES256");
        assert_eq!(k["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(k.get(private).is_none(), "private member {private}");
        }
    }
    assert_eq!(Jwks::parse_strict(text.as_bytes()).unwrap().len(), 2);
}

#[tokio::test]
async fn client_credentials_issues_rfc9068_tokens() {
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("orders-caller", &["orders"], &["read", "write"]).await;
    // client_secret_basic
    let resp = ta
        .token_request(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "read");
    let token = body["access_token"].as_str().unwrap();
    let header = castellan_jose::decode_unverified_header(token).unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let jwks = ta.jwks().await.to_string();
    let keys = Jwks::parse_strict(jwks.as_bytes()).unwrap();
    let verified = verify_compact(
        token,
        VerifyOptions {
            expected_typ: Some("at+jwt"),
            ..Default::default()
        },
        |kid| keys.iter().find(|k| k.kid() == kid),
    )
    .unwrap();
    let c = verified.claims;
    assert_eq!(c["iss"], ta.url);
    assert_eq!(c["sub"], id.as_str());
    assert_eq!(c["client_id"], id.as_str());
    assert_eq!(c["aud"], "orders", "one audience, as a string");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    assert!(c["jti"].as_str().unwrap().len() >= 16);
    assert!(c["sid"].as_str().unwrap().len() >= 16);
    // client_secret_post, and resource (RFC 8707) names the audience too.
    let resp = ta
        .token_request(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("resource", "orders"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("scope").is_none(), "no scope requested, none granted");
    let other = claims_of(body["access_token"].as_str().unwrap());
    assert_ne!(other["jti"], c["jti"]);
    assert_ne!(other["sid"], c["sid"]);
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc6749() {
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("caller", &["orders"], &["read"]).await;
    let (multi_id, multi_secret) = ta.client("multi", &["orders", "billing"], &[]).await;
    let form = "application/x-www-form-urlencoded";
    let enc = |pairs: &[(&str, &str)]| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    };
    let good = (id.as_str(), secret.as_str());
    type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a str, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "missing grant_type",
            Some(good),
            form,
            enc(&[("scope", "read")]),
            400,
            "invalid_request",
        ),
        (
            "unsupported grant",
            Some(good),
            form,
            enc(&[("grant_type", "password")]),
            400,
            "unsupported_grant_type",
        ),
        (
            "wrong secret",
            Some((&id, "nope")),
            form,
            enc(&[("grant_type", "client_credentials")]),
            401,
            "invalid_client",
        ),
        (
            "unknown client",
            Some(("ghost", "nope")),
            form,
            enc(&[("grant_type", "client_credentials")]),
            401,
            "invalid_client",
        ),
        (
            "no authentication",
            None,
            form,
            enc(&[("grant_type", "client_credentials")]),
            401,
            "invalid_client",
        ),
        (
            "two methods",
            Some(good),
            form,
            enc(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ]),
            400,
            "invalid_request",
        ),
        (
            "audience not allowed",
            Some(good),
            form,
            enc(&[("grant_type", "client_credentials"), ("audience", "billing")]),
            400,
            "invalid_target",
        ),
        (
            "two audiences",
            Some((&multi_id, &multi_secret)),
            form,
            enc(&[
                ("grant_type", "client_credentials"),
                ("audience", "orders"),
                ("resource", "billing"),
            ]),
            400,
            "invalid_target",
        ),
        (
            "audience required",
            Some((&multi_id, &multi_secret)),
            form,
            enc(&[("grant_type", "client_credentials")]),
            400,
            "invalid_target",
        ),
        (
            "scope not allowed",
            Some(good),
            form,
            enc(&[("grant_type", "client_credentials"), ("scope", "read admin")]),
            400,
            "invalid_scope",
        ),
        (
            "scope malformed",
            Some(good),
            form,
            enc(&[("grant_type", "client_credentials"), ("scope", "re\"ad")]),
            400,
            "invalid_scope",
        ),
        (
            "scope double space",
            Some(good),
            form,
            enc(&[("grant_type", "client_credentials"), ("scope", "read  read")]),
            400,
            "invalid_scope",
        ),
        (
            "json body",
            Some(good),
            "application/json",
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
            415,
            "invalid_request",
        ),
        (
            "no content type",
            Some(good),
            "",
            b"grant_type=client_credentials".to_vec(),
            415,
            "invalid_request",
        ),
        (
            "repeated parameter",
            Some(good),
            form,
            b"grant_type=client_credentials&grant_type=client_credentials".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "bad percent-encoding",
            Some(good),
            form,
            b"grant_type=client_credentials&scope=%FF".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "not utf-8",
            Some(good),
            form,
            b"grant_type=\xff\xfe".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "oversized",
            Some(good),
            form,
            vec![b'a'; 20_000],
            413,
            "invalid_request",
        ),
    ];
    for (what, basic, ct, body, status, error) in cases {
        let resp = form_post(&ta, "/oauth2/token", basic, ct, body).await;
        assert_eq!(resp.status().as_u16(), status, "{what}");
        assert_eq!(resp.headers()["cache-control"], "no-store", "{what}");
        if status == 401 {
            assert!(resp.headers().contains_key("www-authenticate"), "{what}: challenge");
        }
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"], error, "{what}: {v}");
        assert!(v["error_description"].is_string(), "{what}");
        assert!(!v.to_string().contains(&secret), "{what}: secret echoed");
    }
    // Malformed Authorization headers.
    for header in ["Basic", "Basic !!!", "Basic Zm9v", "Bearer abc", "Basic "] {
        let resp = ta
            .http
            .post(format!("{}/oauth2/token", ta.url))
            .header("content-type", form)
            .header("authorization", header)
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{header:?}");
    }
    // Wrong method.
    let resp = ta.http.get(format!("{}/oauth2/token", ta.url)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn per_client_lifetime_is_honoured_and_bounded() {
    let ta = TestAuthority::start().await;
    let (status, v) = ta
        .admin(
            Method::POST,
            "/clients",
            Some(json!({"name": "short", "audiences": ["orders"], "access_token_ttl": "90s"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(v["access_token_ttl"], "90s");
    let id = v["client_id"].as_str().unwrap();
    let secret = v["client_secret"].as_str().unwrap();
    let token = ta.access_token(id, secret, &[]).await;
    let c = claims_of(&token);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 90);
    let (status, v) = ta
        .admin(
            Method::POST,
            "/clients",
            Some(json!({"name": "long", "audiences": ["orders"], "access_token_ttl": "2h"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn introspection_answers_only_authenticated_clients() {
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("caller", &["orders"], &["read"]).await;
    let token = ta.access_token(&id, &secret, &[("scope", "read")]).await;
    let anon = ta
        .http
        .post(format!("{}/oauth2/introspect", ta.url))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let v = ta.introspect(&token).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], id.as_str());
    assert_eq!(v["aud"], "orders");
    assert_eq!(v["scope"], "read");
    assert!(v["sid"].is_string());
    for garbage in ["", "x", "a.b.c", &token[..token.len() - 2], &format!("{token}x")] {
        if garbage.is_empty() {
            continue;
        }
        assert_eq!(ta.introspect(garbage).await, json!({"active": false}), "{garbage}");
    }
    // A token signed by a key that is not ours, with a kid that is.
    let (attacker, _) = SigningKey::generate(castellan_jose::Algorithm::ES256).unwrap();
    let forged_header =
        b64::encode(format!(r#"{{"alg":"ES256","kid":"{}","typ":"at+jwt"}}"#, kid_of(&token)).as_bytes());
    let payload = token.split('.').nth(1).unwrap();
    let input = format!("{forged_header}.{payload}");
    let forged = format!("{input}.{}", b64::encode(&attacker.sign_raw(input.as_bytes()).unwrap()));
    assert_eq!(ta.introspect(&forged).await["active"], false);
    // Expiry follows the injected clock.
    ta.clock.advance(301);
    assert_eq!(ta.introspect(&token).await["active"], false);
}

#[tokio::test]
async fn revocation_revokes_the_session_for_its_owner_only() {
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("owner", &["orders"], &[]).await;
    let (other, other_secret) = ta.client("other", &["orders"], &[]).await;
    let token = ta.access_token(&id, &secret, &[]).await;
    let revoke = |who: (&str, &str), form: Vec<(&'static str, String)>| {
        let req = ta
            .http
            .post(format!("{}/oauth2/revoke", ta.url))
            .basic_auth(who.0.to_owned(), Some(who.1.to_owned()))
            .form(&form);
        async move { req.send().await.unwrap() }
    };
    let r = revoke((&other, &other_secret), vec![("token", token.clone())]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized_client");
    assert_eq!(
        ta.introspect(&token).await["active"],
        true,
        "a stranger's attempt changes nothing"
    );
    let r = revoke(
        (&id, &secret),
        vec![("token", token.clone()), ("token_type_hint", "id_token".into())],
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unsupported_token_type");
    let r = revoke(
        (&id, &secret),
        vec![("token", token.clone()), ("token_type_hint", "access_token".into())],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(ta.introspect(&token).await["active"], false);
    // Revoking again, or revoking garbage, is still 200 (RFC 7009 §2.2).
    assert_eq!(
        revoke((&id, &secret), vec![("token", token.clone())]).await.status(),
        200
    );
    assert_eq!(
        revoke((&id, &secret), vec![("token", "garbage".into())]).await.status(),
        200
    );
    assert_eq!(
        revoke((&id, "wrong"), vec![("token", token.clone())]).await.status(),
        401
    );
    // Other tokens of the same client are separate grants.
    let fresh = ta.access_token(&id, &secret, &[]).await;
    assert_eq!(ta.introspect(&fresh).await["active"], true);
}

#[tokio::test]
async fn scheduled_rotation_publishes_next_key_before_it_signs() {
    let ta = TestAuthority::start_with(|c| {
        c.keys.rotation_interval = "1h".parse().unwrap();
        c.keys.jwks_max_age = "5m".parse().unwrap();
    })
    .await;
    let (id, secret) = ta.client("caller", &["orders"], &[]).await;
    let kids0 = ta.published_kids().await;
    let old = ta.access_token(&id, &secret, &[]).await;
    let (a, b) = (kids0[0].clone(), kids0[1].clone());
    assert_eq!(kid_of(&old), a, "active signs");
    // Not due yet: nothing changes.
    ta.clock.advance(30 * 60);
    ta.authority.maintain().await.unwrap();
    assert_eq!(ta.published_kids().await, kids0);
    // Due: the next key (published an hour ago, > 2 x max-age) takes over.
    ta.clock.advance(30 * 60);
    ta.authority.maintain().await.unwrap();
    let kids1 = ta.published_kids().await;
    assert_eq!(kids1[0], b, "the previously published next key is active");
    assert!(kids1.contains(&a), "retired key still published");
    let c = kids1.iter().find(|k| **k != a && **k != b).unwrap().clone();
    assert!(!kids0.contains(&c), "a new next key appeared");
    let new = ta.access_token(&id, &secret, &[]).await;
    assert_eq!(kid_of(&new), b);
    assert_eq!(
        ta.introspect(&old).await["active"],
        false,
        "old token expired by now (5 min ttl)"
    );
    let (_, keys) = ta.admin(Method::GET, "/keys", None).await;
    let b_info = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == b.as_str())
        .unwrap()
        .clone();
    assert!(b_info["activated_at"].as_i64().unwrap() - b_info["created_at"].as_i64().unwrap() >= 600);
    // A token from before a rotation still verifies while it lives.
    let before = ta.access_token(&id, &secret, &[]).await;
    ta.clock.advance(60 * 60);
    ta.authority.maintain().await.unwrap();
    assert_eq!(ta.published_kids().await[0], c);
    // A retired at 1h is kept for the longest token lifetime (1h) plus leeway (30s).
    assert!(
        ta.published_kids().await.contains(&a),
        "retired key kept until its last token could expire"
    );
    ta.clock.advance(31);
    ta.authority.maintain().await.unwrap();
    assert!(
        !ta.published_kids().await.contains(&a),
        "retired key gone after its last token expired"
    );
    assert_eq!(kid_of(&before), b);
    assert!(ta.published_kids().await.contains(&b));
    ta.clock.advance(3_600);
    ta.authority.maintain().await.unwrap();
    assert!(!ta.published_kids().await.contains(&b));
}

#[tokio::test]
async fn manual_rotation_keeps_old_tokens_valid() {
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("caller", &["orders"], &[]).await;
    let kids0 = ta.published_kids().await;
    let old = ta.access_token(&id, &secret, &[]).await;
    let (status, v) = ta.admin(Method::POST, "/keys/rotate", None).await;
    assert_eq!(status, 200, "{v}");
    let kids1 = ta.published_kids().await;
    assert_eq!(kids1[0], kids0[1], "the published next key became active");
    assert!(kids1.contains(&kids0[0]));
    assert_eq!(ta.introspect(&old).await["active"], true);
    let new = ta.access_token(&id, &secret, &[]).await;
    assert_eq!(kid_of(&new), kids0[1]);
}

#[tokio::test]
async fn emergency_rotation_withdraws_the_key_at_once() {
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("caller", &["orders"], &[]).await;
    let kids0 = ta.published_kids().await;
    let old = ta.access_token(&id, &secret, &[]).await;
    let (status, v) = ta
        .admin(Method::POST, "/keys/rotate", Some(json!({"emergency": true})))
        .await;
    assert_eq!(status, 200, "{v}");
    let states: Vec<(String, String)> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(states.contains(&(kids0[0].clone(), "withdrawn".to_owned())));
    let kids1 = ta.published_kids().await;
    assert!(!kids1.contains(&kids0[0]), "withdrawn key gone from JWKS");
    assert_eq!(kids1[0], kids0[1]);
    assert_eq!(ta.introspect(&old).await["active"], false);
    let new = ta.access_token(&id, &secret, &[]).await;
    assert_eq!(ta.introspect(&new).await["active"], true);
}

#[tokio::test]
async fn admin_api_requires_an_admin_token() {
    let ta = TestAuthority::start().await;
    let url = format!("{}/admin/v1/clients", ta.url);
    let r = ta.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let (id, secret) = ta.client("caller", &["orders"], &[]).await;
    let service_token = ta.access_token(&id, &secret, &[]).await;
    let r = ta.http.get(&url).bearer_auth(&service_token).send().await.unwrap();
    assert_eq!(r.status(), 401, "a token for another audience");
    let r = ta.http.get(&url).bearer_auth("garbage").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    // A non-admin cannot even ask for the authority's audience.
    let resp = ta
        .token_request(
            Some((&id, &secret)),
            &[("grant_type", "client_credentials"), ("audience", &ta.url)],
        )
        .await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn admin_api_validates_input_and_manages_clients() {
    let ta = TestAuthority::start().await;
    for bad in [
        json!({"name": "", "audiences": ["a"]}),
        json!({"name": "x", "audiences": []}),
        json!({"name": "x", "audiences": ["has space"]}),
        json!({"name": "x", "audiences": ["a"], "scopes": ["bad\"scope"]}),
        json!({"name": "x", "audiences": ["a"], "unknown": 1}),
        json!({"name": "x", "audiences": ["a"], "access_token_ttl": "5 minutes"}),
        json!({"name": "x", "audiences": ["a"], "jwks": {"keys": [{"kty": "oct", "k": "AAAA", "kid": "a", "alg": "HS256"}]}}),
        json!({"name": 5, "audiences": ["a"]}),
    ] {
        let (status, v) = ta.admin(Method::POST, "/clients", Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad} -> {v}");
        assert_eq!(v["error"], "invalid_request");
    }
    let token = ta.admin_token().await;
    let r = ta
        .http
        .post(format!("{}/admin/v1/clients", ta.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (id, secret) = ta.client("svc", &["orders"], &[]).await;
    let (status, shown) = ta.admin(Method::GET, &format!("/clients/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(shown.get("client_secret").is_none(), "secret shown only once");
    let (status, _) = ta.admin(Method::GET, "/clients/nobody", None).await;
    assert_eq!(status, 404);
    // Rotate secret: old stops, new works.
    let (status, rotated) = ta
        .admin(Method::POST, &format!("/clients/{id}/rotate-secret"), None)
        .await;
    assert_eq!(status, 200);
    let new_secret = rotated["client_secret"].as_str().unwrap();
    let resp = ta
        .token_request(Some((&id, &secret)), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(resp.status(), 401);
    let token = ta.access_token(&id, new_secret, &[]).await;
    // Delete: authentication fails and live tokens die.
    let (status, _) = ta.admin(Method::DELETE, &format!("/clients/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(ta.introspect(&token).await["active"], false);
    let resp = ta
        .token_request(Some((&id, new_secret)), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(resp.status(), 401);
    // The last admin cannot be deleted.
    let (status, _) = ta.admin(Method::DELETE, &format!("/clients/{ADMIN_ID}"), None).await;
    assert_eq!(status, 409);
    let (_, list) = ta.admin(Method::GET, "/clients", None).await;
    assert_eq!(list["clients"].as_array().unwrap().len(), 1);
}

fn assertion(key: &SigningKey, client_id: &str, aud: &str, exp_in: i64, jti: &str, now: i64) -> String {
    key.sign_compact(
        "JWT",
        &json!({"iss": client_id, "sub": client_id, "aud": aud, "exp": now + exp_in, "iat": now, "jti": jti}),
    )
    .unwrap()
}

#[tokio::test]
async fn private_key_jwt_authenticates_and_refuses_replays() {
    let ta = TestAuthority::start().await;
    let (key, _) = SigningKey::generate(castellan_jose::Algorithm::EdDSA).unwrap();
    let (status, v) = ta
        .admin(
            Method::POST,
            "/clients",
            Some(json!({"name": "jwt-client", "audiences": ["orders"], "jwks": {"keys": [key.public_jwk()]}})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert!(v.get("client_secret").is_none());
    assert_eq!(v["auth_method"], "private_key_jwt");
    let id = v["client_id"].as_str().unwrap().to_owned();
    let token_url = format!("{}/oauth2/token", ta.url);
    let now = ta.authority.now();
    let send = |a: String, kind: &'static str| {
        let req = ta.http.post(&token_url).form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", kind),
            ("client_assertion", &a),
        ]);
        async move { req.send().await.unwrap() }
    };
    const T: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let good = assertion(&key, &id, &token_url, 60, "j1", now);
    let r = send(good.clone(), T).await;
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    assert_eq!(claims_of(tok["access_token"].as_str().unwrap())["sub"], id.as_str());
    let r = send(good, T).await;
    assert_eq!(r.status(), 401, "replay");
    assert!(r.json::<Value>().await.unwrap()["error_description"]
        .as_str()
        .unwrap()
        .contains("replayed"));
    // The issuer is an accepted audience too.
    assert_eq!(
        send(assertion(&key, &id, &ta.url, 60, "j2", now), T).await.status(),
        200
    );
    let (stranger, _) = SigningKey::generate(castellan_jose::Algorithm::EdDSA).unwrap();
    let bad = [
        (
            "wrong audience",
            assertion(&key, &id, "https://elsewhere", 60, "j3", now),
        ),
        ("expired", assertion(&key, &id, &token_url, -120, "j4", now)),
        ("too long-lived", assertion(&key, &id, &token_url, 3_600, "j5", now)),
        ("unregistered key", assertion(&stranger, &id, &token_url, 60, "j6", now)),
        ("unknown client", assertion(&key, "ghost", &token_url, 60, "j7", now)),
        (
            "access token as assertion",
            key.sign_compact(
                "at+jwt",
                &json!({"iss": id, "sub": id, "aud": token_url, "exp": now + 60, "jti": "j8"}),
            )
            .unwrap(),
        ),
        (
            "no jti",
            key.sign_compact("JWT", &json!({"iss": id, "sub": id, "aud": token_url, "exp": now + 60}))
                .unwrap(),
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, a) in bad {
        let r = send(a, T).await;
        assert_eq!(r.status(), 401, "{what}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client", "{what}");
    }
    let r = send(assertion(&key, &id, &token_url, 60, "j9", now), "urn:other").await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn no_input_makes_a_5xx() {
    let ta = TestAuthority::start().await;
    let token = ta.admin_token().await;
    let bodies: Vec<Vec<u8>> = vec![
        vec![],
        b"=".to_vec(),
        b"&&&".to_vec(),
        b"grant_type".to_vec(),
        b"%".to_vec(),
        b"grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=e30.e30.e30".to_vec(),
        b"token=e30.e30.e30".to_vec(),
        vec![0u8; 1000],
        "\u{202e}=\u{0}".as_bytes().to_vec(),
        format!("grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion={}", "a.".repeat(3000)).into_bytes(),
    ];
    for path in [
        "/oauth2/token",
        "/oauth2/introspect",
        "/oauth2/revoke",
        "/admin/v1/clients",
        "/admin/v1/keys/rotate",
    ] {
        for body in &bodies {
            for ct in ["application/x-www-form-urlencoded", "application/json", "text/plain"] {
                for auth in [None, Some((ADMIN_ID, ADMIN_SECRET))] {
                    let mut req = ta
                        .http
                        .post(format!("{}{path}", ta.url))
                        .header("content-type", ct)
                        .body(body.clone());
                    if path.starts_with("/admin") {
                        req = req.bearer_auth(&token);
                    } else if let Some((i, s)) = auth {
                        req = req.basic_auth(i, Some(s));
                    }
                    let status = req.send().await.unwrap().status();
                    assert!(
                        status.as_u16() < 500,
                        "{path} {ct} {:?} -> {status}",
                        String::from_utf8_lossy(body)
                    );
                }
            }
        }
    }
    let r = ta.http.get(format!("{}/nowhere", ta.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn metrics_count_issuance_and_errors() {
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("caller", &["orders"], &[]).await;
    ta.access_token(&id, &secret, &[]).await;
    let _ = ta
        .token_request(Some((&id, "wrong")), &[("grant_type", "client_credentials")])
        .await;
    let resp = ta.http.get(format!("{}/metrics", ta.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("castellan_tokens_issued_total{grant_type=\"client_credentials\"}"),
        "{text}"
    );
    assert!(
        text.contains("castellan_http_errors_total{error=\"invalid_client\"}"),
        "{text}"
    );
    assert!(!text.contains(&secret));
}
