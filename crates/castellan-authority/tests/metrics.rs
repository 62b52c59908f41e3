//! `/metrics` after known traffic: request counts and latency histograms by
//! route pattern and status class, tokens by grant type, store latency, key
//! ages and the rotation schedule, verifier gauges, and request ids.
//!
//! One test in its own binary: the Prometheus recorder is process-global,
//! so a second test sending traffic at the same time would spoil the counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_testkit::browser::{pkce, sign_in, AuthRequest};
use castellan_testkit::TestAuthority;
use reqwest::Method;
use serde_json::json;
use std::collections::BTreeMap;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// One scrape: every sample by name and sorted labels.
#[derive(Debug)]
struct Scrape(BTreeMap<(String, Vec<(String, String)>), f64>);

/// A minimal Prometheus text-format parser: comments skipped, `name{k="v",...} value`.
fn parse(text: &str) -> Scrape {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                let mut labels = Vec::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut val = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => match chars.next() {
                                Some('n') => val.push('\n'),
                                Some(c) => val.push(c),
                                None => panic!("{line}"),
                            },
                            '"' => break,
                            c => val.push(c),
                        }
                    }
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                    labels.push((key, val));
                }
                labels.sort();
                (name.to_owned(), labels)
            }
        };
        out.insert((name, labels), value);
    }
    Scrape(out)
}

impl Scrape {
    /// The sample with exactly these labels, 0 when absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut l: Vec<(String, String)> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        l.sort();
        self.0.get(&(name.to_owned(), l)).copied().unwrap_or(0.0)
    }
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let mut l: Vec<(String, String)> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        l.sort();
        self.0.contains_key(&(name.to_owned(), l))
    }
    /// Every label set of `name`.
    fn series(&self, name: &str) -> Vec<&Vec<(String, String)>> {
        self.0.keys().filter(|(n, _)| n == name).map(|(_, l)| l).collect()
    }
}

async fn scrape(ta: &TestAuthority) -> (Scrape, String) {
    let resp = ta.http.get(format!("{}/metrics", ta.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    (parse(&text), text)
}

async fn get(ta: &TestAuthority, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = ta.http.get(format!("{}{path}", ta.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_known_traffic_exactly() {
    let ta = TestAuthority::start().await;
    let (caller_id, caller_secret) = ta.client("caller", &["orders"], &["orders.read"]).await;
    let (status, svc) = ta
        .admin(
            Method::POST,
            "/clients",
            Some(json!({"name": "orders-svc", "audiences": [], "serves": "orders", "exchange_audiences": ["billing"]})),
        )
        .await;
    assert_eq!(status, 201, "{svc}");
    let (svc_id, svc_secret) = (
        svc["client_id"].as_str().unwrap(),
        svc["client_secret"].as_str().unwrap(),
    );
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
    let (status, _) = ta
        .admin(
            Method::POST,
            "/users",
            Some(json!({"username": "alice", "password": "alice-password"})),
        )
        .await;
    assert_eq!(status, 201);
    let kids = ta.published_kids().await;

    let (before, _) = scrape(&ta).await;

    // Known traffic: 3 client-credentials grants, 1 exchange, a sign-in
    // (its login answers 303) with 1 code and 1 refresh grant (200), 2
    // refused grants (400), 1 admin call without a token (401), 1 path no
    // route matches (404).
    let mut orders_token = String::new();
    for _ in 0..3 {
        orders_token = ta
            .access_token(&caller_id, &caller_secret, &[("audience", "orders")])
            .await;
    }
    let resp = ta
        .token_request(
            Some((svc_id, svc_secret)),
            &[
                ("grant_type", EXCHANGE),
                ("subject_token", &orders_token),
                ("subject_token_type", AT),
                ("audience", "billing"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let p = pkce();
    let back = sign_in(
        &AuthRequest {
            issuer: &ta.url,
            client_id: &app_id,
            redirect_uri: REDIRECT,
            scope: "openid orders.read",
            challenge: &p.challenge,
            state: "s",
            nonce: "n",
        },
        "alice",
        "alice-password",
    )
    .await;
    let code = back.redirect_param("code").unwrap();
    let resp = ta
        .token_request(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", p.verifier.as_str()),
                ("client_id", &app_id),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let grant: serde_json::Value = resp.json().await.unwrap();
    let resp = ta
        .token_request(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", grant["refresh_token"].as_str().unwrap()),
                ("client_id", &app_id),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    for _ in 0..2 {
        let resp = ta
            .token_request(Some((&caller_id, &caller_secret)), &[("grant_type", "password")])
            .await;
        assert_eq!(resp.status(), 400);
    }
    let resp = get(&ta, "/admin/v1/clients", &[]).await;
    assert_eq!(resp.status(), 401);
    let resp = get(&ta, "/no/such/thing", &[]).await;
    assert_eq!(resp.status(), 404);

    let (after, text) = scrape(&ta).await;
    let delta = |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);

    let req = "castellan_http_requests_total";
    let token_ok = [("endpoint", "/oauth2/token"), ("method", "POST"), ("outcome", "2xx")];
    let token_bad = [("endpoint", "/oauth2/token"), ("method", "POST"), ("outcome", "4xx")];
    assert_eq!(delta(req, &token_ok), 6.0, "{text}");
    let login = [("endpoint", "/oauth2/login"), ("method", "POST"), ("outcome", "3xx")];
    assert_eq!(delta(req, &login), 1.0, "{text}");
    assert_eq!(delta(req, &token_bad), 2.0, "{text}");
    // Nested routes are named by their whole pattern.
    let admin_401 = [("endpoint", "/admin/v1/clients"), ("method", "GET"), ("outcome", "4xx")];
    assert_eq!(delta(req, &admin_401), 1.0, "{text}");
    assert_eq!(
        delta(req, &[("endpoint", "unmatched"), ("method", "GET"), ("outcome", "4xx")]),
        1.0,
        "{text}"
    );
    // The first scrape counted once it answered; the second is not in its own text.
    assert_eq!(
        delta(req, &[("endpoint", "/metrics"), ("method", "GET"), ("outcome", "2xx")]),
        1.0
    );
    // The raw path never becomes a label.
    assert!(!text.contains("/no/such/thing"), "{text}");

    // A real histogram: buckets, count and sum, per endpoint and outcome.
    let dur = "castellan_http_request_duration_seconds";
    let ok = [("endpoint", "/oauth2/token"), ("outcome", "2xx")];
    assert_eq!(delta(&format!("{dur}_count"), &ok), 6.0, "{text}");
    assert_eq!(
        delta(
            &format!("{dur}_bucket"),
            &[("endpoint", "/oauth2/token"), ("outcome", "2xx"), ("le", "+Inf")]
        ),
        6.0
    );
    assert!(after.get(&format!("{dur}_sum"), &ok) > before.get(&format!("{dur}_sum"), &ok));
    assert!(!text.contains(&format!("{dur}{{endpoint=\"/oauth2/token\",outcome=\"2xx\",quantile")));

    // Tokens by grant type.
    let issued = "castellan_tokens_issued_total";
    assert_eq!(delta(issued, &[("grant_type", "client_credentials")]), 3.0, "{text}");
    assert_eq!(delta(issued, &[("grant_type", "token_exchange")]), 1.0, "{text}");
    assert_eq!(delta(issued, &[("grant_type", "authorization_code")]), 1.0, "{text}");
    assert_eq!(delta(issued, &[("grant_type", "refresh_token")]), 1.0, "{text}");

    // Store latency, per operation: every grant read its client.
    let store = "castellan_store_operation_duration_seconds_count";
    assert!(delta(store, &[("op", "get_client")]) >= 6.0, "{text}");
    assert!(after.has(
        "castellan_store_operation_duration_seconds_bucket",
        &[("op", "get_client"), ("le", "+Inf")]
    ));

    // Key ages move with the clock; the next rotation comes closer by as much.
    let age = "castellan_signing_key_age_seconds";
    let ages: Vec<_> = after.series(age);
    assert_eq!(ages.len(), kids.len(), "{text}");
    for kid in &kids {
        assert!(
            ages.iter().any(|l| l.iter().any(|(k, v)| k == "kid" && v == kid)),
            "{kid}: {text}"
        );
    }
    let state_of = |kid: &str| -> String {
        let l = ages
            .iter()
            .find(|l| l.iter().any(|(k, v)| k == "kid" && v == kid))
            .unwrap();
        l.iter().find(|(k, _)| k == "state").unwrap().1.clone()
    };
    let first = kids[0].clone();
    let first_state = state_of(&first);
    let age_then = after.get(age, &[("kid", &first), ("state", &first_state)]);
    let next_then = after.get("castellan_key_next_rotation_seconds", &[]);
    assert!(next_then > 0.0, "{text}");
    assert_eq!(after.get("castellan_key_rotation_overdue", &[]), 0.0);
    ta.clock.advance(100);
    let (later, text) = scrape(&ta).await;
    assert_eq!(
        later.get(age, &[("kid", &first), ("state", &first_state)]) - age_then,
        100.0,
        "{text}"
    );
    assert_eq!(later.get("castellan_key_next_rotation_seconds", &[]), next_then - 100.0);
    assert!(later.has("castellan_revocation_seq", &[]), "{text}");

    // A verifier's heartbeat brings its gauges; it holds one key of those published.
    let hb = json!({"verifier_id": "v-1", "audience": "orders", "kids": [first], "last_seq": 0, "kind": "gate"});
    let resp = ta
        .http
        .post(format!("{}/verifiers/heartbeat", ta.url))
        .json(&hb)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let (with_v, text) = scrape(&ta).await;
    let v = [("verifier", "v-1"), ("audience", "orders")];
    assert_eq!(with_v.get("castellan_verifier_stale", &v), 0.0, "{text}");
    assert!(with_v.has("castellan_verifier_stale", &v), "{text}");
    assert_eq!(with_v.get("castellan_verifier_stream_lag", &v), 0.0);
    assert_eq!(with_v.get("castellan_verifier_last_heartbeat_age_seconds", &v), 0.0);
    assert_eq!(
        with_v.get("castellan_verifier_missing_keys", &v),
        (kids.len() - 1) as f64,
        "{text}"
    );
    assert_eq!(with_v.get("castellan_verifiers", &[("state", "live")]), 1.0);
    // Silent past the liveness window it is stale; long gone, its series go too.
    ta.clock.advance(31);
    let (silent, _) = scrape(&ta).await;
    assert_eq!(silent.get("castellan_verifier_stale", &v), 1.0);
    assert_eq!(silent.get("castellan_verifier_last_heartbeat_age_seconds", &v), 31.0);
    ta.clock.advance(300);
    let (gone, text) = scrape(&ta).await;
    assert!(!gone.has("castellan_verifier_stale", &v), "{text}");

    // Request ids: a sane one is echoed, anything else replaced by a fresh one.
    let resp = get(&ta, "/healthz", &[("x-request-id", "abc-123")]).await;
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let resp = get(&ta, "/healthz", &[("x-request-id", "has spaces")]).await;
    let made = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(made, "has spaces");
    assert!(castellan_core::observe::is_sane(made.as_bytes()), "{made}");
    let resp = get(&ta, "/healthz", &[]).await;
    let other = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(other, made);
}
