//! Metrics and request ids across real processes: the gate's `/metrics`
//! after known traffic, request ids through the gate (proxy and
//! forward-auth), and every metric the shipped Grafana dashboard and
//! Prometheus alert rules (`deploy/`) name exists in a real scrape of an
//! authority and a gate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

mod common;

use common::{client_credentials, echo, gate, within, Authority, Proc, ADMIN_ID, ADMIN_SECRET, BIN};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

const POLICY: &str = r#"
@id("all") permit(principal, action, resource);
@id("no-admin") forbid(principal, action, resource) when { resource.path like "/admin/*" };
"#;

/// Starts a process logging JSON at `level` to `log`; its first stdout line is `listening on URL`.
fn spawn_logging(mut cmd: Command, level: &str, log: &Path) -> Proc {
    cmd.env("RUST_LOG", level)
        .arg("--log-format")
        .arg("json")
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").unwrap().to_owned();
    Proc { child, url }
}

/// The JSON log lines of `log` that mention `needle`.
fn log_lines_with(log: &Path, needle: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_authoritys_log_lines_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("authority.log");
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("CASTELLAN_BOOTSTRAP_ADMIN_ID", ADMIN_ID)
        .env("CASTELLAN_BOOTSTRAP_ADMIN_SECRET", ADMIN_SECRET);
    let authority = spawn_logging(cmd, "info", &log);
    let http = castellan_testkit::http_client();
    let url = authority.url.clone();
    let (status, t) = client_credentials(
        &http,
        &url,
        ADMIN_ID,
        ADMIN_SECRET,
        &[("scope", "castellan.admin"), ("audience", url.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{t}");
    let r = http
        .post(format!("{url}/admin/v1/clients"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .header("x-request-id", "create-req-7")
        .json(&json!({"name": "it", "audiences": ["orders"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-request-id"], "create-req-7");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = log_lines_with(&log, "create-req-7");
        if let Some(line) = lines.iter().find(|l| l["fields"]["message"] == "client created") {
            assert_eq!(line["span"]["request_id"], "create-req-7", "{line}");
            assert_eq!(line["span"]["endpoint"], "/admin/v1/clients", "{line}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no `client created` line with the request id: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
    let gate_log = dir.path().join("gate.log");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "gate",
        "--listen",
        "127.0.0.1:0",
        "--authority",
        auth.url(),
        "--audience",
        "orders",
        "--upstream",
        &upstream.url,
        "--policy-service",
        "orders",
        "--decision-log-credentials",
        creds.to_str().unwrap(),
    ]);
    let g = spawn_logging(cmd, "info", &gate_log);
    within(Duration::from_secs(10), || async {
        let r = castellan_testkit::http_client()
            .get(format!("{}/.castellan/ready", g.url))
            .send()
            .await;
        r.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let (id, secret) = auth.client(&["orders"]).await;
    let token = auth.access_token(&id, &secret).await;
    let http = castellan_testkit::http_client();
    let url = format!("{}/v1/orders", g.url);
    assert_eq!(http.get(&url).bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    // A denial is logged at `info` with the request's id.
    let denied = http
        .get(format!("{}/admin/users", g.url))
        .bearer_auth(&token)
        .header("x-request-id", "deny-req-1")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    assert_eq!(denied.headers()["x-request-id"], "deny-req-1");
    within(Duration::from_secs(5), || async {
        log_lines_with(&gate_log, "deny-req-1")
            .iter()
            .any(|l| l["fields"]["message"] == "denied by policy" && l["fields"]["request_id"] == "deny-req-1")
    })
    .await;
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
