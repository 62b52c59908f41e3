//! Metrics and request ids across real processes: the gate's `/metrics`
//! after known traffic, request ids through the gate (proxy and
//! forward-auth), and every metric the shipped Grafana dashboard and
//! Prometheus alert rules (`deploy/`) name exists in a real scrape of an
//! authority and a gate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

mod common;

use common::{echo, gate, within, Authority};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// Samples of a scrape by `name{labels}` exactly as rendered (labels in the
/// exporter's order), and the set of metric names.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap_or(f64::NAN))
        })
        .collect()
}

fn base_name(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

fn names(text: &str) -> BTreeSet<String> {
    samples(text)
        .keys()
        .map(|s| base_name(s.split('{').next().unwrap()).to_owned())
        .collect()
}

async fn scrape(url: &str) -> String {
    let r = castellan_testkit::http_client().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn value(text: &str, series: &str) -> f64 {
    samples(text).get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn gate_metrics_count_known_traffic_and_request_ids_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let auth = Authority::start(dir.path(), "127.0.0.1:0");
    let upstream = echo().await;
    let g = gate(auth.url(), "orders", Some(&upstream.url), &[]).await;
    let (id, secret) = auth.client(&["orders", "billing"]).await;
    let (_, t) = auth.token(&id, &secret, &[("audience", "orders")]).await;
    let token = t["access_token"].as_str().unwrap().to_owned();
    let (_, other) = auth.token(&id, &secret, &[("audience", "billing")]).await;
    let other = other["access_token"].as_str().unwrap().to_owned();
    let http = castellan_testkit::http_client();
    let metrics_url = format!("{}/.castellan/metrics", g.url);
    let before = scrape(&metrics_url).await;

    // 2 admitted, 1 without a token, 1 for another audience.
    let url = format!("{}/v1/orders", g.url);
    let r = http
        .get(&url)
        .bearer_auth(&token)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-request-id"], "abc-123", "{seen}");
    // Without one (or with an insane one), the upstream sees a generated id, the caller the same.
    let r = http
        .get(&url)
        .bearer_auth(&token)
        .header("x-request-id", "not sane!")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echoed = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let seen: Value = r.json().await.unwrap();
    let upstream_saw = seen["headers"]["x-request-id"].as_str().unwrap();
    assert_eq!(upstream_saw, echoed);
    assert_ne!(echoed, "not sane!");
    assert!(castellan_core::observe::is_sane(echoed.as_bytes()), "{echoed}");
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("x-request-id"), "a refusal carries the id too");
    let r = http.get(&url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let after = scrape(&metrics_url).await;
    let delta = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(
        delta(r#"castellan_gate_requests_total{outcome="admitted"}"#),
        2.0,
        "{after}"
    );
    assert_eq!(
        delta(r#"castellan_gate_requests_total{outcome="missing"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta(r#"castellan_gate_requests_total{outcome="wrong_audience"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta(r#"castellan_gate_request_duration_seconds_count{outcome="admitted"}"#),
        2.0,
        "{after}"
    );
    assert_eq!(
        delta(r#"castellan_gate_request_duration_seconds_bucket{outcome="admitted",le="+Inf"}"#),
        2.0
    );
    assert_eq!(delta("castellan_gate_upstream_duration_seconds_count"), 2.0, "{after}");
    // Verifications: the missing token never reaches verify().
    assert_eq!(
        delta(r#"castellan_verify_total{result="ok",reason="none"}"#),
        2.0,
        "{after}"
    );
    assert_eq!(
        delta(r#"castellan_verify_total{result="rejected",reason="wrong_audience"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(value(&after, "castellan_verifier_stream_connected"), 1.0, "{after}");
    assert!(after.contains("castellan_jwks_age_seconds "), "{after}");

    // Forward-auth answers carry the id as well.
    let fa = gate(auth.url(), "orders", None, &[]).await;
    let r = http
        .get(&fa.url)
        .bearer_auth(&token)
        .header("x-request-id", "fa-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "fa-1");
    let r = http.get(&fa.url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(castellan_core::observe::is_sane(r.headers()["x-request-id"].as_bytes()));
}

/// Every metric name in a PromQL expression.
fn metric_names_in(expr: &str, out: &mut BTreeSet<String>) {
    let mut rest = expr;
    while let Some(i) = rest.find("castellan_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(base_name(&tail[..end]).to_owned());
        rest = &tail[end..];
    }
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
}

/// The alert rules as JSON (python3's YAML reader: no YAML crate in the workspace),
/// their shape checked.
fn alert_rules() -> Vec<Value> {
    let path = repo_root().join("deploy/prometheus/castellan-alerts.yml");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&path)
        .output()
        .expect("python3 with PyYAML reads the alert rules");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let groups = doc["groups"].as_array().expect("groups");
    assert!(!groups.is_empty());
    let mut rules = Vec::new();
    let mut alerts = BTreeSet::new();
    for g in groups {
        assert!(g["name"].as_str().is_some_and(|n| !n.is_empty()), "{g}");
        for r in g["rules"].as_array().expect("rules") {
            let name = r["alert"].as_str().expect("alert name");
            assert!(alerts.insert(name.to_owned()), "duplicate alert {name}");
            assert!(r["expr"].as_str().is_some_and(|e| e.contains("castellan_")), "{r}");
            if let Some(f) = r.get("for") {
                let f = f.as_str().expect("`for` is a duration string");
                let (n, unit) = f.split_at(f.len() - 1);
                assert!(
                    n.parse::<u32>().is_ok() && ["s", "m", "h"].contains(&unit),
                    "{name}: for {f}"
                );
            }
            assert!(r["labels"]["severity"].as_str().is_some(), "{name}: severity");
            assert!(r["annotations"]["summary"].as_str().is_some(), "{name}: summary");
            for key in r.as_object().unwrap().keys() {
                assert!(
                    ["alert", "expr", "for", "labels", "annotations"].contains(&key.as_str()),
                    "{name}: unknown key {key}"
                );
            }
            rules.push(r.clone());
        }
    }
    for wanted in [
        "CastellanVerifierStale",
        "CastellanRotationOverdue",
        "CastellanRevocationLag",
        "CastellanProbeFailures",
        "CastellanStoreUnavailable",
        "CastellanHigh5xxRate",
    ] {
        assert!(alerts.contains(wanted), "missing alert {wanted}");
    }
    rules
}

fn dashboard_exprs() -> Vec<String> {
    let path = repo_root().join("deploy/grafana/castellan.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(d["title"].is_string() && d["uid"].is_string());
    let mut exprs = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() >= 10);
    exprs
}

const POLICY: &str = r#"@id("all") permit(principal, action, resource);"#;

const CHECK_IDS: [&str; 15] = [
    "genuine",
    "no-token",
    "alg-none",
    "hmac-key-confusion",
    "bad-signature",
    "unknown-key",
    "embedded-jwk",
    "jku-injection",
    "expired",
    "not-yet-valid",
    "wrong-issuer",
    "wrong-audience",
    "wrong-token-type",
    "removed-key",
    "revoked-session",
];

#[tokio::test]
async fn deploy_references_real_metrics() {
    let rules = alert_rules();
    let mut wanted = BTreeSet::new();
    for r in &rules {
        metric_names_in(r["expr"].as_str().unwrap(), &mut wanted);
    }
    for e in dashboard_exprs() {
        metric_names_in(&e, &mut wanted);
    }

    // An authority with a policy, a recorded probe run and a gate deciding
    // with that policy, shipping its decisions, with traffic through it.
    let dir = tempfile::tempdir().unwrap();
    let auth = Authority::start(dir.path(), "127.0.0.1:0");
    auth.admin(
        reqwest::Method::POST,
        "/policies/orders",
        Some(json!({"policies": POLICY, "schema": castellan_authz::GATE_SCHEMA})),
    )
    .await;
    let checks: Vec<Value> = CHECK_IDS
        .iter()
        .map(|id| {
            let genuine = *id == "genuine";
            json!({"id": id, "accepted": genuine, "ok": true, "status": if genuine { 200 } else { 401 },
                   "detail": "as expected"})
        })
        .collect();
    auth.admin(
        reqwest::Method::POST,
        "/probe-runs",
        Some(
            json!({"targets": [{"name": "orders", "url": "http://127.0.0.1:1", "audience": "orders", "checks": checks}],
                    "summary": {"targets": 1}}),
        ),
    )
    .await;
    let out = auth.cli(&[
        "client",
        "create",
        "gate-orders",
        "--scope",
        "castellan.decisions:orders",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let creds = dir.path().join("gate-orders.json");
    std::fs::write(&creds, &out.stdout).unwrap();
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
    let (id, secret) = auth.client(&["orders"]).await;
    let token = auth.access_token(&id, &secret).await;
    let http = castellan_testkit::http_client();
    let url = format!("{}/v1/orders", g.url);
    assert_eq!(http.get(&url).bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    // Readiness sets the store gauge.
    let ready = http.get(format!("{}/readyz", auth.url())).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // The gate's heartbeat and decision shipment reach the authority.
    let auth_metrics = format!("{}/metrics", auth.url());
    within(Duration::from_secs(15), || async {
        let text = scrape(&auth_metrics).await;
        text.contains("castellan_verifier_stale{") && text.contains("castellan_decisions_received_total{")
    })
    .await;
    let mut seen = names(&scrape(&auth_metrics).await);
    seen.extend(names(&scrape(&format!("{}/.castellan/metrics", g.url)).await));

    let missing: Vec<&String> = wanted.iter().filter(|n| !seen.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "deploy/ names metrics no scrape has: {missing:?}\nseen: {seen:?}"
    );
}
