//! Probe runs kept at the authority and the platform report: a platform
//! climbs the stages as the evidence arrives (a verifier in front of each
//! service, a clean probe run, calls over mTLS, a policy) and falls back
//! when a probe run shows a service accepting what it must refuse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_core::platform::PlatformReport;
use castellan_core::probe_run::PROBE_CHECK_IDS;
use castellan_testkit::TestAuthority;
use castellan_verify::{PresentedCertificate, Verifier};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A probe run in which `orders` passes every check except `failing`.
fn run(target: &str, audience: &str, failing: &[&str]) -> Value {
    let checks: Vec<Value> = PROBE_CHECK_IDS
        .iter()
        .map(|id| {
            let genuine = *id == "genuine";
            let wrong = failing.contains(id);
            let accepted = genuine != wrong;
            json!({"id": id, "accepted": accepted, "ok": !wrong, "status": if accepted { 200 } else { 401 },
                   "detail": if wrong { "ACCEPTED (200)" } else { "refused (401)" }})
        })
        .collect();
    json!({"targets": [{"name": target, "url": "http://127.0.0.1:1", "audience": audience, "checks": checks}],
           "summary": {"targets": 1}})
}

async fn report(ta: &TestAuthority) -> (PlatformReport, Value) {
    let (status, v) = ta.admin(Method::GET, "/report", None).await;
    assert_eq!(status, 200, "{v}");
    (serde_json::from_value(v.clone()).unwrap(), v)
}

fn ids(r: &PlatformReport) -> Vec<&str> {
    let mut ids: Vec<&str> = r.findings.iter().map(|f| f.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Waits until the report satisfies `ok` (heartbeats arrive every 100 ms).
async fn report_until(ta: &TestAuthority, what: &str, ok: impl Fn(&PlatformReport) -> bool) -> PlatformReport {
    let start = Instant::now();
    loop {
        let (r, v) = report(ta).await;
        if ok(&r) {
            return r;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{what}: {v:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_climbs_the_stages_as_evidence_arrives() {
    let ta = TestAuthority::start().await;
    let (r, _) = report(&ta).await;
    assert_eq!((r.stage, ids(&r)), (1, vec!["no-probe-run", "no-services"]));

    // A client may get tokens for `orders`; nothing shows `orders` checks them.
    let (id, secret) = ta.client("web", &["orders"], &[]).await;
    let (r, _) = report(&ta).await;
    assert_eq!(r.stage, 1, "validation at the edge only");
    assert_eq!(r.stage_name, "validation at the edge only");
    let unchecked = r.findings.iter().find(|f| f.id == "service-unchecked").unwrap();
    assert!(
        unchecked.evidence.iter().any(|e| e.contains(&format!("client `{id}`"))),
        "{unchecked:?}"
    );
    assert_eq!(r.services.len(), 1);
    assert_eq!(r.services[0].known_from, vec!["client"]);

    // A verifier in front of `orders` that sees only mTLS calls.
    let verifier = Verifier::builder(&ta.url, "orders")
        .heartbeat_every(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let r = report_until(&ta, "verifier reported", |r| r.services[0].live_verifiers == 1).await;
    assert_eq!(r.stage, 2, "validated at every service: {:?}", r.findings);
    let no_mtls = r.findings.iter().find(|f| f.id == "service-without-mtls").unwrap();
    assert!(no_mtls.evidence[0].contains("accepted no call yet"), "{no_mtls:?}");
    let token = ta.access_token(&id, &secret, &[("audience", "orders")]).await;
    let cert = PresentedCertificate::from_der(b"a workload certificate");
    verifier.verify_presented(&token, Some(&cert)).await.unwrap();
    let r = report_until(&ta, "transport reported", |r| {
        r.services[0].transport.as_deref() == Some("mtls")
    })
    .await;
    assert_eq!(r.verifiers[0].stream_lag, 0);
    assert!(r.verifiers[0].missing_kids.is_empty() && r.verifiers[0].stale_kids.is_empty());

    // A clean probe run: consistent, rotating, revocable; only a policy is missing.
    let (status, v) = ta
        .admin(Method::POST, "/probe-runs", Some(run("orders-gate", "orders", &[])))
        .await;
    assert_eq!(status, 201, "{v}");
    let (r, _) = report(&ta).await;
    assert_eq!((r.stage, ids(&r)), (4, vec!["service-without-policy"]));
    assert_eq!(r.stage_name, "consistent, rotating, revocable");
    assert_eq!(r.services[0].probes[0].target, "orders-gate");
    assert!(r.services[0].probes[0].passed);

    let (status, v) = ta
        .admin(
            Method::POST,
            "/policies/orders",
            Some(json!({"policies": "permit(principal, action, resource);"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (r, _) = report(&ta).await;
    assert_eq!((r.stage, ids(&r)), (5, vec![]), "{:?}", r.findings);
    assert_eq!(r.stage_name, "consistent, rotating, revocable, identity on every call");

    // A newer run shows the gate accepting expired tokens: back to stage 2,
    // with the check and its detail as evidence.
    let (status, _) = ta
        .admin(
            Method::POST,
            "/probe-runs",
            Some(run("orders-gate", "orders", &["expired"])),
        )
        .await;
    assert_eq!(status, 201);
    let (r, _) = report(&ta).await;
    assert_eq!((r.stage, ids(&r)), (2, vec!["probe-failures"]));
    let f = &r.findings[0];
    assert_eq!(f.evidence.len(), 1);
    assert!(f.evidence[0].starts_with("expired: ACCEPTED (200)"), "{f:?}");
    assert_eq!(r.probe_runs.len(), 2);
    assert_eq!((r.probe_runs[0].targets, r.probe_runs[0].passed), (1, 0));

    // One plain call: calls no longer all carry an identity.
    verifier.verify(&token).await.unwrap();
    report_until(&ta, "mixed transport", |r| {
        r.services[0].transport.as_deref() == Some("mixed")
    })
    .await;

    // Runs older than a week no longer count.
    ta.clock.advance(8 * 86_400);
    let r = report_until(&ta, "old runs ignored", |r| ids(r).contains(&"no-probe-run")).await;
    assert!(r.services[0].probes.is_empty());
    let old = r.findings.iter().find(|f| f.id == "no-probe-run").unwrap();
    assert!(old.evidence[0].contains("not used"), "{old:?}");
}

#[tokio::test]
async fn probe_runs_are_checked_kept_and_listed() {
    let ta = TestAuthority::start().await;
    for (body, why) in [
        (json!({"targets": []}), "no targets"),
        (json!({"summary": {}}), "no targets field"),
        (
            json!({"targets": [{"name": "a", "url": "u", "audience": "a", "checks": [
            {"id": "expried", "accepted": false, "ok": true, "status": 401, "detail": ""}]}]}),
            "unknown check id",
        ),
        (
            json!({"targets": [{"name": "a", "url": "u", "audience": "a", "checks": [
            {"id": "expired", "accepted": false, "ok": true, "status": 401, "detail": ""},
            {"id": "expired", "accepted": false, "ok": true, "status": 401, "detail": ""}]}]}),
            "check twice",
        ),
        (
            json!({"targets": [
            {"name": "a", "url": "u", "audience": "a", "checks": []},
            {"name": "a", "url": "u", "audience": "b", "checks": []}]}),
            "target twice",
        ),
        (
            json!({"targets": [{"name": "a\u{7}", "url": "u", "audience": "a", "checks": []}]}),
            "control character",
        ),
        (
            json!({"targets": [{"name": "a", "url": "u", "audience": "a", "checks": [
            {"id": "expired", "accepted": "yes", "ok": true, "status": 401, "detail": ""}]}]}),
            "wrong type",
        ),
    ] {
        let (status, v) = ta.admin(Method::POST, "/probe-runs", Some(body)).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("invalid_request")),
            "{why}: {v}"
        );
    }
    // Oversized: refused before it is parsed.
    let mut partial = run("a", "a", &[]);
    partial["targets"][0]["checks"].as_array_mut().unwrap().truncate(1);
    let (status, v) = ta.admin(Method::POST, "/probe-runs", Some(partial)).await;
    assert_eq!(
        status, 400,
        "a target with checks missing would pass on no evidence: {v}"
    );
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("lacks check `no-token`"),
        "{v}"
    );
    let mut big = run("a", "a", &[]);
    big["summary"] = json!("x".repeat(5 * 1024 * 1024));
    let (status, _) = ta.admin(Method::POST, "/probe-runs", Some(big)).await;
    assert_eq!(status, 413);
    let (status, v) = ta.admin(Method::GET, "/probe-runs", None).await;
    assert_eq!(status, 200);
    assert_eq!(v["runs"].as_array().unwrap().len(), 0, "nothing refused was kept: {v}");

    // Kept as sent (once checked), newest first, by whom.
    for i in 0..3 {
        let (status, v) = ta
            .admin(Method::POST, "/probe-runs", Some(run(&format!("t{i}"), "orders", &[])))
            .await;
        assert_eq!(status, 201, "{v}");
    }
    let (_, v) = ta.admin(Method::GET, "/probe-runs?limit=2", None).await;
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["report"]["targets"][0]["name"], "t2");
    assert_eq!(runs[0]["recorded_by"], castellan_testkit::ADMIN_ID);
    assert_eq!(runs[0]["report"]["targets"][0]["checks"].as_array().unwrap().len(), 15);
    for bad in ["?limit=0", "?limit=101", "?limit=x", "?other=1"] {
        let (status, v) = ta.admin(Method::GET, &format!("/probe-runs{bad}"), None).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }

    // Admin only, for recording, listing and the report alike.
    let (id, secret) = ta.client("svc", &["orders"], &[]).await;
    let token = ta.access_token(&id, &secret, &[]).await;
    for (method, path) in [
        (Method::POST, "/admin/v1/probe-runs"),
        (Method::GET, "/admin/v1/probe-runs"),
        (Method::GET, "/admin/v1/report"),
    ] {
        let r = ta
            .http
            .request(method.clone(), format!("{}{path}", ta.url))
            .bearer_auth(&token)
            .json(&run("x", "orders", &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
    }
}
