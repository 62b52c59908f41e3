//! Unit tests of [`assess`]: a healthy platform, then one fact broken at a
//! time, each checked for the stage it lands in and the exact findings.

use super::*;
use castellan_core::probe_run::{ProbedCheck, ProbedTarget, PROBE_CHECK_IDS};

const NOW: UnixTime = 1_000_000;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;
const ISSUER: &str = "http://auth";

// ---- builder ---------------------------------------------------------------

/// All fifteen checks right: the genuine token accepted, every other refused.
fn passing(name: &str, audience: &str) -> ProbedTarget {
    let checks = PROBE_CHECK_IDS
        .iter()
        .map(|&id| {
            let genuine = id == "genuine";
            ProbedCheck {
                id: id.to_owned(),
                accepted: genuine,
                ok: true,
                status: Some(if genuine { 200 } else { 401 }),
                detail: if genuine {
                    "accepted (200)".into()
                } else {
                    "refused (401)".into()
                },
                skipped: false,
            }
        })
        .collect();
    ProbedTarget {
        name: name.to_owned(),
        url: format!("http://{name}"),
        audience: audience.to_owned(),
        checks,
    }
}

fn check_mut<'a>(t: &'a mut ProbedTarget, id: &str) -> &'a mut ProbedCheck {
    t.checks.iter_mut().find(|c| c.id == id).unwrap()
}

/// The target accepted a token it must refuse.
fn accepts(mut t: ProbedTarget, id: &str) -> ProbedTarget {
    let c = check_mut(&mut t, id);
    c.accepted = true;
    c.ok = false;
    c.status = Some(200);
    c.detail = "ACCEPTED (200)".into();
    t
}

/// The target refused the genuine token.
fn refuses_genuine(mut t: ProbedTarget) -> ProbedTarget {
    let c = check_mut(&mut t, "genuine");
    c.accepted = false;
    c.ok = false;
    c.status = Some(401);
    c.detail = "REFUSED (401): the target refuses a genuine token; check its audience and issuer".into();
    t
}

/// The check could not be run (as the probe reports it: right, no status).
fn skips(mut t: ProbedTarget, id: &str, why: &str) -> ProbedTarget {
    let c = check_mut(&mut t, id);
    c.accepted = false;
    c.ok = true;
    c.status = None;
    c.detail = format!("skipped: {why}");
    c.skipped = true;
    t
}

fn run(id: i64, recorded_at: UnixTime, targets: Vec<ProbedTarget>) -> RecordedRun {
    RecordedRun {
        id,
        recorded_at,
        recorded_by: "ci".into(),
        run: ProbeRun {
            targets,
            summary: serde_json::Value::Null,
        },
    }
}

/// A live verifier for `audience` over mTLS, holding k2 and k3, caught up.
fn verifier(id: &str, audience: &str) -> VerifierView {
    VerifierView {
        verifier_id: id.to_owned(),
        audience: audience.to_owned(),
        kind: Some("library".into()),
        kids: vec!["k2".into(), "k3".into()],
        last_seq: 10,
        stream_lag: 0,
        last_seen: NOW - 5,
        live: true,
        transport: Some("mtls".into()),
    }
}

/// A platform at stage 5: one service, `orders`, fully covered.
fn healthy() -> Facts {
    Facts {
        now: NOW,
        issuer: ISSUER.into(),
        keys: KeyFacts {
            algorithm: "ES256".into(),
            active_kid: Some("k2".into()),
            active_since: Some(NOW - DAY),
            rotation_age_seconds: Some(DAY),
            rotation_interval_seconds: 30 * DAY,
            next_kid: Some("k3".into()),
            published: vec!["k2".into(), "k3".into()],
            withdrawn: vec![],
        },
        rotation_grace: HOUR,
        tokens: TokenFacts {
            access_token_ttl_seconds: 900,
            max_access_token_ttl_seconds: HOUR,
            longest_seconds: 900,
            longest_client: None,
            session_idle_seconds: HOUR,
            session_absolute_seconds: DAY,
        },
        verifiers: vec![verifier("orders-1", "orders")],
        client_audiences: vec![("orders".into(), "shop".into())],
        policy_services: vec![("orders".into(), 3)],
        runs: vec![run(1, NOW - HOUR, vec![passing("orders-api", "orders")])],
        unreadable_runs: vec![],
    }
}

// ---- reading the report ----------------------------------------------------

/// Every finding's id, in report order (blockers by stage, then notices).
fn ids(r: &PlatformReport) -> Vec<&str> {
    r.findings.iter().map(|f| f.id.as_str()).collect()
}

fn blockers(r: &PlatformReport) -> Vec<&str> {
    r.findings
        .iter()
        .filter(|f| f.severity == Severity::Blocker)
        .map(|f| f.id.as_str())
        .collect()
}

/// The one finding with this id.
fn finding<'a>(r: &'a PlatformReport, id: &str) -> &'a Finding {
    let mut found = r.findings.iter().filter(|f| f.id == id);
    let f = found.next().unwrap_or_else(|| panic!("no `{id}` in {:?}", ids(r)));
    assert!(found.next().is_none(), "`{id}` appears more than once in {:?}", ids(r));
    f
}

fn assert_stage(r: &PlatformReport, stage: u8) {
    assert_eq!(r.stage, stage, "findings: {:?}", ids(r));
    assert_eq!(r.stage_name, STAGES[usize::from(stage) - 1]);
}

fn service<'a>(r: &'a PlatformReport, audience: &str) -> &'a ServiceFacts {
    r.services.iter().find(|s| s.audience == audience).unwrap()
}

fn audiences(r: &PlatformReport) -> Vec<&str> {
    r.services.iter().map(|s| s.audience.as_str()).collect()
}

// ---- 1. healthy --------------------------------------------------------------

#[test]
fn a_healthy_platform_is_stage_5_with_no_findings() {
    let r = assess(healthy());
    assert_stage(&r, 5);
    assert_eq!(r.stage_name, "consistent, rotating, revocable, identity on every call");
    assert!(ids(&r).is_empty(), "{:?}", r.findings);
    assert_eq!(r.generated_at, NOW);

    assert_eq!(audiences(&r), ["orders"]);
    let orders = service(&r, "orders");
    assert_eq!(orders.known_from, ["client", "policy", "probe", "verifier"]);
    assert_eq!(orders.live_verifiers, 1);
    assert_eq!(orders.transport.as_deref(), Some("mtls"));
    assert_eq!(orders.policy_version, Some(3));
    assert_eq!(
        orders.probes,
        [ServiceProbe {
            target: "orders-api".into(),
            run_id: 1,
            recorded_at: NOW - HOUR,
            passed: true,
            failed: vec![],
        }]
    );

    assert_eq!(r.verifiers.len(), 1);
    assert!(r.verifiers[0].missing_kids.is_empty() && r.verifiers[0].stale_kids.is_empty());
    assert_eq!(
        r.probe_runs,
        [ProbeRunSummary {
            id: 1,
            recorded_at: NOW - HOUR,
            recorded_by: "ci".into(),
            targets: 1,
            passed: 1,
        }]
    );
}

// ---- 2, 3. probe results -------------------------------------------------------

#[test]
fn a_target_accepting_an_expired_token_is_probe_failures_at_stage_2() {
    let mut facts = healthy();
    facts.runs = vec![run(
        1,
        NOW - HOUR,
        vec![accepts(passing("orders-api", "orders"), "expired")],
    )];
    let r = assess(facts);

    assert_eq!(ids(&r), ["probe-failures"]);
    assert_stage(&r, 2);
    assert_eq!(r.stage_name, "validated at every service");
    let f = finding(&r, "probe-failures");
    assert_eq!(f.severity, Severity::Blocker);
    assert_eq!(f.blocks, 3);
    assert!(
        f.title.contains("orders-api") && f.title.contains("orders"),
        "{}",
        f.title
    );
    assert_eq!(f.evidence, ["expired: ACCEPTED (200) (run 1, 1h ago)"]);
    assert_eq!(service(&r, "orders").probes[0].failed, ["expired"]);
    assert!(!service(&r, "orders").probes[0].passed);
    assert_eq!(r.probe_runs[0].passed, 0);
}

#[test]
fn a_target_refusing_the_genuine_token_is_probe_misconfigured_not_probe_failures() {
    let mut facts = healthy();
    facts.runs = vec![run(
        1,
        NOW - HOUR,
        vec![refuses_genuine(passing("orders-api", "orders"))],
    )];
    let r = assess(facts);

    assert_eq!(ids(&r), ["probe-misconfigured"]);
    assert_stage(&r, 2);
    let f = finding(&r, "probe-misconfigured");
    assert_eq!(f.blocks, 3);
    assert!(f.title.contains("`orders-api` refused a genuine token"), "{}", f.title);
    assert_eq!(f.evidence.len(), 1);
    assert!(f.evidence[0].starts_with("genuine: REFUSED (401)"), "{:?}", f.evidence);
}

// ---- 4. no recent probe run ------------------------------------------------------

#[test]
fn no_probe_run_at_all_is_stage_2() {
    let mut facts = healthy();
    facts.runs.clear();
    let r = assess(facts);

    assert_eq!(ids(&r), ["no-probe-run"]);
    assert_stage(&r, 2);
    let f = finding(&r, "no-probe-run");
    assert_eq!(f.blocks, 3);
    assert_eq!(f.evidence, ["the authority holds no probe run"]);
    assert!(service(&r, "orders").probes.is_empty());
    assert!(r.probe_runs.is_empty());
}

#[test]
fn a_run_older_than_the_max_age_is_too_old_and_its_targets_are_not_used() {
    let mut facts = healthy();
    // Failing, and naming a service known from nowhere else: neither counts.
    let stale = vec![
        accepts(passing("orders-api", "orders"), "expired"),
        passing("legacy-api", "legacy"),
    ];
    facts.runs = vec![run(7, NOW - 8 * DAY, stale)];
    let r = assess(facts);

    assert_eq!(ids(&r), ["no-probe-run"]);
    assert_stage(&r, 2);
    let f = finding(&r, "no-probe-run");
    assert!(f.title.contains("too old"), "{}", f.title);
    assert_eq!(
        f.evidence,
        ["the newest run (7) was recorded 8d ago; runs older than 7d are not used"]
    );
    assert_eq!(audiences(&r), ["orders"]);
    assert!(service(&r, "orders").probes.is_empty());
    assert!(!service(&r, "orders").known_from.contains(&"probe".to_owned()));
    // Still listed among the runs the report drew on.
    assert_eq!(r.probe_runs.len(), 1);
}

#[test]
fn a_run_exactly_the_max_age_old_still_counts() {
    let mut facts = healthy();
    facts.runs = vec![run(1, NOW - PROBE_MAX_AGE, vec![passing("orders-api", "orders")])];
    let r = assess(facts);
    assert!(ids(&r).is_empty(), "{:?}", r.findings);
    assert_stage(&r, 5);
}

// ---- 5. services nothing shows check tokens ---------------------------------------

#[test]
fn a_service_known_only_from_a_client_is_unchecked_at_stage_1() {
    let mut facts = healthy();
    facts.client_audiences.push(("billing".into(), "invoicer".into()));
    let r = assess(facts);

    assert_eq!(
        ids(&r),
        [
            "service-unchecked",
            "service-unprobed",
            "service-without-mtls",
            "service-without-policy"
        ]
    );
    assert!(
        r.findings.iter().all(|f| f.title.contains("billing")),
        "{:?}",
        r.findings
    );
    assert_stage(&r, 1);
    assert_eq!(r.stage_name, "validation at the edge only");
    let f = finding(&r, "service-unchecked");
    assert_eq!(f.blocks, 2);
    assert_eq!(
        f.evidence,
        [
            "known from: client",
            "client `invoicer` may get tokens for it",
            "no Castellan verifier for it has reported in the last 30s",
            "no recent probe run shows it refusing a request without a token",
        ]
    );
    assert_eq!(
        finding(&r, "service-unprobed").evidence,
        ["no target with audience `billing` in the 1 run(s) of the last 7d"]
    );
    assert_eq!(audiences(&r), ["billing", "orders"]);
    let billing = service(&r, "billing");
    assert_eq!(billing.known_from, ["client"]);
    assert_eq!(billing.live_verifiers, 0);
    assert_eq!(billing.transport, None);
    assert_eq!(billing.policy_version, None);
}

#[test]
fn a_probed_service_refusing_no_token_is_not_unchecked_without_a_verifier() {
    let mut facts = healthy();
    facts.client_audiences.push(("billing".into(), "invoicer".into()));
    facts.runs[0].run.targets.push(passing("billing-api", "billing"));
    let r = assess(facts);

    assert_eq!(ids(&r), ["service-without-mtls", "service-without-policy"]);
    assert_stage(&r, 4);
    let f = finding(&r, "service-without-mtls");
    assert!(f.title.contains("`billing`"), "{}", f.title);
    assert_eq!(f.evidence, ["no live Castellan verifier reports how calls reach it"]);
    assert_eq!(service(&r, "billing").known_from, ["client", "probe"]);
}

#[test]
fn a_target_refusing_everything_does_not_show_the_service_checks_tokens() {
    // A wrong URL answers 404 to the genuine token and to no token alike.
    let mut facts = healthy();
    facts.client_audiences.push(("billing".into(), "invoicer".into()));
    facts.runs[0]
        .run
        .targets
        .push(refuses_genuine(passing("billing-api", "billing")));
    let r = assess(facts);

    assert!(ids(&r).contains(&"service-unchecked"), "{:?}", ids(&r));
    assert!(ids(&r).contains(&"probe-misconfigured"), "{:?}", ids(&r));
    assert_stage(&r, 1);
}

#[test]
fn a_skipped_no_token_check_does_not_show_the_service_checks_tokens() {
    let mut facts = healthy();
    facts.client_audiences.push(("billing".into(), "invoicer".into()));
    facts.runs[0]
        .run
        .targets
        .push(skips(passing("billing-api", "billing"), "no-token", "not run"));
    let r = assess(facts);

    assert_eq!(
        ids(&r),
        [
            "service-unchecked",
            "service-without-mtls",
            "service-without-policy",
            "probe-skipped"
        ]
    );
    assert_stage(&r, 1);
}

// ---- 6. rotation ------------------------------------------------------------------

#[test]
fn rotation_past_interval_and_grace_is_overdue_at_stage_3() {
    let mut facts = healthy();
    facts.keys.rotation_age_seconds = Some(32 * DAY);
    let r = assess(facts);

    assert_eq!(ids(&r), ["rotation-overdue"]);
    assert_stage(&r, 3);
    let f = finding(&r, "rotation-overdue");
    assert_eq!(f.blocks, 4);
    assert_eq!(f.title, "the signing key has not rotated for 32d");
    assert_eq!(
        f.evidence,
        ["key `k2` has signed for 32d; the interval is 30d (plus 1h to publish and acknowledge the next key)"]
    );
}

#[test]
fn rotation_within_interval_and_grace_is_not_overdue() {
    let mut facts = healthy();
    facts.keys.rotation_age_seconds = Some(30 * DAY + HOUR);
    let r = assess(facts);
    assert!(ids(&r).is_empty(), "{:?}", r.findings);
    assert_stage(&r, 5);
}

#[test]
fn no_next_key_is_stage_3() {
    let mut facts = healthy();
    facts.keys.next_kid = None;
    facts.keys.published = vec!["k2".into()];
    facts.verifiers[0].kids = vec!["k2".into()];
    let r = assess(facts);

    assert_eq!(ids(&r), ["no-next-key"]);
    assert_stage(&r, 3);
    assert_eq!(finding(&r, "no-next-key").evidence, ["published kids: k2"]);
}

// ---- 7. verifiers -----------------------------------------------------------------

#[test]
fn a_verifier_out_of_step_with_the_jwks_is_key_lag_at_stage_3() {
    let mut facts = healthy();
    facts.verifiers[0].kids = vec!["k1".into(), "k2".into()];
    let r = assess(facts);

    assert_eq!(ids(&r), ["verifier-key-lag"]);
    assert_stage(&r, 3);
    let f = finding(&r, "verifier-key-lag");
    assert_eq!(f.blocks, 4);
    assert!(f.title.contains("`orders-1` (orders)"), "{}", f.title);
    assert_eq!(
        f.evidence,
        [
            "does not hold published key(s) k3",
            "still holds unpublished key(s) k1",
            "reported 5s ago",
        ]
    );
    assert_eq!(r.verifiers[0].missing_kids, ["k3"]);
    assert_eq!(r.verifiers[0].stale_kids, ["k1"]);
}

#[test]
fn a_verifier_behind_on_revocations_is_stream_lag_at_stage_3() {
    let mut facts = healthy();
    facts.verifiers[0].stream_lag = 2;
    let r = assess(facts);

    assert_eq!(ids(&r), ["verifier-stream-lag"]);
    assert_stage(&r, 3);
    assert_eq!(
        finding(&r, "verifier-stream-lag").evidence,
        ["2 revocation event(s) not applied when it reported 5s ago"]
    );
}

#[test]
fn a_silent_verifier_is_only_a_notice_and_does_not_move_the_stage() {
    let mut facts = healthy();
    // Silent, and out of step in every way: none of it counts against a
    // verifier that is not live.
    let mut silent = verifier("orders-2", "orders");
    silent.live = false;
    silent.last_seen = NOW - 10 * 60;
    silent.kids = vec!["k1".into()];
    silent.stream_lag = 5;
    silent.transport = Some("plain".into());
    facts.verifiers.push(silent);
    let r = assess(facts);

    assert_eq!(ids(&r), ["verifier-silent"]);
    assert!(blockers(&r).is_empty());
    assert_stage(&r, 5);
    let f = finding(&r, "verifier-silent");
    assert_eq!(f.severity, Severity::Notice);
    assert!(f.title.contains("`orders-2` (orders)"), "{}", f.title);
    assert_eq!(f.evidence, ["last heartbeat 10m ago"]);
    let orders = service(&r, "orders");
    assert_eq!(orders.live_verifiers, 1);
    assert_eq!(orders.transport.as_deref(), Some("mtls"));
}

// ---- 8. token lifetime --------------------------------------------------------------

#[test]
fn a_two_hour_client_override_is_long_token_lifetime_at_stage_3() {
    let mut facts = healthy();
    facts.tokens.max_access_token_ttl_seconds = 2 * HOUR;
    facts.tokens.longest_seconds = 2 * HOUR;
    facts.tokens.longest_client = Some("batch-exporter".into());
    let r = assess(facts);

    assert_eq!(ids(&r), ["long-token-lifetime"]);
    assert_stage(&r, 3);
    let f = finding(&r, "long-token-lifetime");
    assert_eq!(f.blocks, 4);
    assert_eq!(f.title, "access tokens live up to 2h");
    assert_eq!(f.evidence, ["client `batch-exporter` gets 2h"]);
}

#[test]
fn a_two_hour_default_lifetime_is_long_token_lifetime() {
    let mut facts = healthy();
    facts.tokens.access_token_ttl_seconds = 2 * HOUR;
    facts.tokens.longest_seconds = 2 * HOUR;
    let r = assess(facts);

    assert_eq!(ids(&r), ["long-token-lifetime"]);
    assert_stage(&r, 3);
    assert_eq!(
        finding(&r, "long-token-lifetime").evidence,
        ["the default lifetime is 2h"]
    );
}

#[test]
fn an_hour_is_not_a_long_token_lifetime() {
    let mut facts = healthy();
    facts.tokens.longest_seconds = MAX_REVOCABLE_TOKEN_LIFETIME;
    facts.tokens.longest_client = Some("batch-exporter".into());
    let r = assess(facts);
    assert!(ids(&r).is_empty(), "{:?}", r.findings);
    assert_stage(&r, 5);
}

// ---- 9. identity on every call ------------------------------------------------------

#[test]
fn plain_calls_are_service_without_mtls_at_stage_4() {
    let mut facts = healthy();
    facts.verifiers[0].transport = Some("plain".into());
    let r = assess(facts);

    assert_eq!(ids(&r), ["service-without-mtls"]);
    assert_stage(&r, 4);
    let f = finding(&r, "service-without-mtls");
    assert_eq!(f.blocks, 5);
    assert_eq!(f.evidence, ["its 1 live verifier(s) report `plain` calls"]);
    assert_eq!(service(&r, "orders").transport.as_deref(), Some("plain"));
}

#[test]
fn verifiers_disagreeing_on_transport_are_mixed() {
    let mut facts = healthy();
    let mut plain = verifier("orders-2", "orders");
    plain.transport = Some("plain".into());
    facts.verifiers.push(plain);
    let r = assess(facts);

    assert_eq!(ids(&r), ["service-without-mtls"]);
    assert_stage(&r, 4);
    assert_eq!(
        finding(&r, "service-without-mtls").evidence,
        ["its 2 live verifier(s) report `mixed` calls"]
    );
    assert_eq!(service(&r, "orders").transport.as_deref(), Some("mixed"));
}

#[test]
fn a_verifier_reporting_mixed_calls_is_service_without_mtls() {
    let mut facts = healthy();
    facts.verifiers[0].transport = Some("mixed".into());
    let r = assess(facts);

    assert_eq!(ids(&r), ["service-without-mtls"]);
    assert_stage(&r, 4);
    assert_eq!(
        finding(&r, "service-without-mtls").evidence,
        ["its 1 live verifier(s) report `mixed` calls"]
    );
}

#[test]
fn a_verifier_that_has_seen_no_call_yet_is_service_without_mtls() {
    let mut facts = healthy();
    facts.verifiers[0].transport = None;
    let r = assess(facts);

    assert_eq!(ids(&r), ["service-without-mtls"]);
    assert_stage(&r, 4);
    assert_eq!(
        finding(&r, "service-without-mtls").evidence,
        ["its 1 live verifier(s) have accepted no call yet"]
    );
}

#[test]
fn a_service_without_a_verifier_is_service_without_mtls() {
    // The probe shows it refusing requests without a token, so it is not
    // unchecked; but nothing reports how calls reach it.
    let mut facts = healthy();
    facts.verifiers.clear();
    let r = assess(facts);

    assert_eq!(ids(&r), ["service-without-mtls"]);
    assert_stage(&r, 4);
    assert_eq!(
        finding(&r, "service-without-mtls").evidence,
        ["no live Castellan verifier reports how calls reach it"]
    );
    assert_eq!(service(&r, "orders").live_verifiers, 0);
    assert_eq!(service(&r, "orders").transport, None);
}

#[test]
fn a_service_without_a_policy_is_stage_4() {
    let mut facts = healthy();
    facts.policy_services.clear();
    let r = assess(facts);

    assert_eq!(ids(&r), ["service-without-policy"]);
    assert_stage(&r, 4);
    let f = finding(&r, "service-without-policy");
    assert_eq!(f.blocks, 5);
    assert_eq!(f.evidence, ["no policy version stored for `orders`"]);
    assert_eq!(service(&r, "orders").policy_version, None);
}

// ---- 10. the issuer ---------------------------------------------------------------------

#[test]
fn the_issuers_own_audience_is_never_a_service() {
    let mut facts = healthy();
    facts.client_audiences.insert(0, (ISSUER.into(), "admin-cli".into()));
    let r = assess(facts);

    assert_eq!(audiences(&r), ["orders"]);
    assert!(ids(&r).is_empty(), "{:?}", r.findings);
    assert_stage(&r, 5);
}

// ---- 11. skipped checks -------------------------------------------------------------------

#[test]
fn a_skipped_check_is_a_notice_and_the_stage_stays_5() {
    let mut facts = healthy();
    let target = skips(passing("orders-api", "orders"), "removed-key", "no removed key is kept");
    facts.runs = vec![run(1, NOW - HOUR, vec![target])];
    let r = assess(facts);

    assert_eq!(ids(&r), ["probe-skipped"]);
    assert!(blockers(&r).is_empty());
    assert_stage(&r, 5);
    let f = finding(&r, "probe-skipped");
    assert_eq!(f.severity, Severity::Notice);
    assert_eq!(f.blocks, 3);
    assert!(f.title.contains("`orders-api`"), "{}", f.title);
    assert_eq!(f.evidence, ["removed-key: skipped: no removed key is kept"]);
}

// ---- 12. newest result per target ---------------------------------------------------------

#[test]
fn the_newest_result_for_a_target_wins() {
    let mut facts = healthy();
    facts.runs = vec![
        run(2, NOW - HOUR, vec![passing("orders-api", "orders")]),
        run(1, NOW - DAY, vec![accepts(passing("orders-api", "orders"), "expired")]),
    ];
    let r = assess(facts);

    assert!(ids(&r).is_empty(), "{:?}", r.findings);
    assert_stage(&r, 5);
    let probes = &service(&r, "orders").probes;
    assert_eq!(probes.len(), 1);
    assert_eq!(probes[0].run_id, 2);
    assert!(probes[0].passed);
    assert_eq!(r.probe_runs.iter().map(|p| p.id).collect::<Vec<_>>(), [2, 1]);
}

#[test]
fn a_newer_failure_replaces_an_older_pass() {
    let mut facts = healthy();
    facts.runs = vec![
        run(
            2,
            NOW - HOUR,
            vec![accepts(passing("orders-api", "orders"), "alg-none")],
        ),
        run(1, NOW - DAY, vec![passing("orders-api", "orders")]),
    ];
    let r = assess(facts);

    assert_eq!(ids(&r), ["probe-failures"]);
    assert_stage(&r, 2);
    assert_eq!(
        finding(&r, "probe-failures").evidence,
        ["alg-none: ACCEPTED (200) (run 2, 1h ago)"]
    );
}

// ---- 13. nothing at all -------------------------------------------------------------------

#[test]
fn an_empty_platform_has_no_services_and_is_stage_1() {
    let mut facts = healthy();
    facts.client_audiences.clear();
    facts.verifiers.clear();
    facts.policy_services.clear();
    facts.runs.clear();
    let r = assess(facts);

    assert_eq!(ids(&r), ["no-services", "no-probe-run"]);
    assert_stage(&r, 1);
    assert!(r.services.is_empty());
    assert_eq!(finding(&r, "no-services").blocks, 2);
}

// ---- ordering -----------------------------------------------------------------------------

#[test]
fn findings_are_ordered_by_the_stage_they_block_then_notices_and_the_lowest_decides() {
    let mut facts = healthy();
    facts.policy_services.clear(); // blocks 5
    facts.keys.next_kid = None; // blocks 4
    let mut silent = verifier("orders-2", "orders");
    silent.live = false;
    facts.verifiers.push(silent); // notice
    facts.runs = vec![run(
        1,
        NOW - HOUR,
        vec![skips(
            accepts(passing("orders-api", "orders"), "expired"),
            "removed-key",
            "none kept",
        )],
    )]; // blocks 3, notice
    let r = assess(facts);

    assert_eq!(
        ids(&r),
        [
            "probe-failures",
            "no-next-key",
            "service-without-policy",
            "probe-skipped",
            "verifier-silent"
        ]
    );
    assert_eq!(r.findings.iter().map(|f| f.blocks).collect::<Vec<_>>(), [3, 4, 5, 3, 4]);
    assert_stage(&r, 2);
}

// ---- network errors, unauthenticated audiences, unreadable runs -------------------

/// The probe could not reach the target for this check.
fn unreachable(mut t: ProbedTarget, id: &str) -> ProbedTarget {
    let c = check_mut(&mut t, id);
    c.accepted = false;
    c.ok = false;
    c.status = None;
    c.detail = "network error: connection refused".into();
    t
}

#[test]
fn a_network_error_is_its_own_finding_not_an_acceptance() {
    let mut facts = healthy();
    facts.runs[0].run.targets[0] = unreachable(passing("orders-api", "orders"), "expired");
    let r = assess(facts);
    assert_eq!(ids(&r), ["probe-unreachable"]);
    assert_stage(&r, 2);
    let f = finding(&r, "probe-unreachable");
    assert!(f.evidence[0].starts_with("expired: network error"), "{f:?}");

    // The genuine token unreachable: not "refused a genuine token".
    let mut facts = healthy();
    facts.runs[0].run.targets[0] = unreachable(passing("orders-api", "orders"), "genuine");
    let r = assess(facts);
    assert_eq!(ids(&r), ["probe-unreachable"]);
}

#[test]
fn an_audience_only_a_heartbeat_names_is_a_notice() {
    let mut facts = healthy();
    let mut stranger = verifier("x-1", "made-up");
    stranger.transport = Some("plain".into());
    stranger.stream_lag = 0;
    facts.verifiers.push(stranger);
    let r = assess(facts);
    assert_eq!(ids(&r), ["audience-only-heard"]);
    assert_stage(&r, 5);
    assert!(r.services.iter().all(|s| s.audience != "made-up"));
}

#[test]
fn unreadable_runs_are_a_notice() {
    let mut facts = healthy();
    facts.unreadable_runs = vec![7, 9];
    let r = assess(facts);
    assert_eq!(ids(&r), ["probe-run-unreadable"]);
    assert_stage(&r, 5);
    assert_eq!(finding(&r, "probe-run-unreadable").evidence, ["run 7", "run 9"]);
}
