//! The platform report: what the authority knows (services, verifiers and
//! their lag, keys and rotation, token lifetimes, policies) combined with the
//! last drift-probe runs into a stage of auth debt, each finding with the
//! facts it rests on. A pure function of its inputs; `GET /admin/v1/report`
//! gathers them.

use crate::events::VerifierView;
use castellan_core::platform::{
    Finding, KeyFacts, PlatformReport, ProbeRunSummary, ServiceFacts, ServiceProbe, Severity, TokenFacts,
    VerifierFacts, STAGES,
};
use castellan_core::probe_run::ProbeRun;
use castellan_core::{format_duration, UnixTime};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Probe runs older than this say nothing about the platform today.
pub const PROBE_MAX_AGE: i64 = 7 * 86_400;
/// Longest access-token lifetime a revocable platform hands out: tokens
/// reaching anything that does not follow the revocation stream must die
/// soon on their own.
pub const MAX_REVOCABLE_TOKEN_LIFETIME: i64 = 3_600;

/// Stage numbers (1-based, as in [`STAGES`]).
const VALIDATED: u8 = 2;
const CONSISTENT: u8 = 3;
const REVOCABLE: u8 = 4;
const IDENTITY: u8 = 5;

/// A recorded probe run.
#[derive(Debug, Clone)]
pub struct RecordedRun {
    /// Run id.
    pub id: i64,
    /// Received at.
    pub recorded_at: UnixTime,
    /// Sent by.
    pub recorded_by: String,
    /// The report.
    pub run: ProbeRun,
}

/// Everything the report is drawn from.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Now.
    pub now: UnixTime,
    /// The authority's own audience (its issuer), never a service.
    pub issuer: String,
    /// Keys and rotation.
    pub keys: KeyFacts,
    /// How long past its interval the active key may sign before rotation
    /// is overdue (the next key's publication and verifiers' acknowledgement).
    pub rotation_grace: i64,
    /// Token lifetimes.
    pub tokens: TokenFacts,
    /// Verifiers heard from.
    pub verifiers: Vec<VerifierView>,
    /// Audiences clients may get tokens for, each with a client that may.
    pub client_audiences: Vec<(String, String)>,
    /// Services with policies and their newest version.
    pub policy_services: Vec<(String, i64)>,
    /// Recorded probe runs, newest first.
    pub runs: Vec<RecordedRun>,
    /// Ids of stored runs this version could not read.
    pub unreadable_runs: Vec<i64>,
}

fn secs(s: i64) -> String {
    format_duration(Duration::from_secs(u64::try_from(s).unwrap_or(0)))
}

fn ago(now: UnixTime, t: UnixTime) -> String {
    format!("{} ago", secs(now.saturating_sub(t)))
}

struct Findings(Vec<Finding>);

impl Findings {
    fn blocker(&mut self, id: &str, blocks: u8, title: String, evidence: Vec<String>, remedy: &str) {
        self.push(id, Severity::Blocker, blocks, title, evidence, remedy);
    }
    fn notice(&mut self, id: &str, blocks: u8, title: String, evidence: Vec<String>, remedy: &str) {
        self.push(id, Severity::Notice, blocks, title, evidence, remedy);
    }
    fn push(&mut self, id: &str, severity: Severity, blocks: u8, title: String, evidence: Vec<String>, remedy: &str) {
        self.0.push(Finding {
            id: id.to_owned(),
            severity,
            blocks,
            title,
            evidence,
            remedy: remedy.to_owned(),
        });
    }
}

/// Assembles the report.
#[must_use]
pub fn assess(facts: Facts) -> PlatformReport {
    let now = facts.now;
    let mut f = Findings(Vec::new());

    // Recent runs only; for each target name its newest result.
    let recent: Vec<&RecordedRun> = facts
        .runs
        .iter()
        .filter(|r| now.saturating_sub(r.recorded_at) <= PROBE_MAX_AGE)
        .collect();
    let mut latest: BTreeMap<&str, (&RecordedRun, &castellan_core::probe_run::ProbedTarget)> = BTreeMap::new();
    for run in &recent {
        for t in &run.run.targets {
            latest.entry(t.name.as_str()).or_insert((run, t));
        }
    }

    // The services: every audience the authority has heard of.
    let mut known: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    let mut note = |aud: &str, from: &'static str| {
        if aud != facts.issuer && !aud.is_empty() {
            known.entry(aud.to_owned()).or_default().insert(from);
        }
    };
    for (aud, _) in &facts.client_audiences {
        note(aud, "client");
    }
    for v in &facts.verifiers {
        note(&v.audience, "verifier");
    }
    for (s, _) in &facts.policy_services {
        note(s, "policy");
    }
    for (_, t) in latest.values() {
        note(&t.audience, "probe");
    }

    let published: BTreeSet<&str> = facts.keys.published.iter().map(String::as_str).collect();
    let verifiers: Vec<VerifierFacts> = facts
        .verifiers
        .iter()
        .map(|v| {
            let held: BTreeSet<&str> = v.kids.iter().map(String::as_str).collect();
            VerifierFacts {
                verifier_id: v.verifier_id.clone(),
                audience: v.audience.clone(),
                kind: v.kind.clone(),
                live: v.live,
                last_seen: v.last_seen,
                stream_lag: v.stream_lag,
                missing_kids: published.difference(&held).map(|k| (*k).to_owned()).collect(),
                stale_kids: held.difference(&published).map(|k| (*k).to_owned()).collect(),
                transport: v.transport.clone(),
            }
        })
        .collect();

    // An audience only a heartbeat names (heartbeats are unauthenticated, and
    // no client can get a token for it) is a notice, not a service.
    let (known, heard_only): (BTreeMap<_, _>, BTreeMap<_, _>) = known
        .into_iter()
        .partition(|(_, from)| from.iter().any(|f| *f != "verifier"));
    for aud in heard_only.keys() {
        f.notice(
            "audience-only-heard",
            VALIDATED,
            format!("a verifier reports for `{aud}`, which nothing else names"),
            vec![format!(
                "no client may get tokens for `{aud}`, no policy and no probe target names it; verifier heartbeats are not authenticated"
            )],
            "if it is a real service, register the clients that call it (`castellan client create --audience`); otherwise find the process reporting it",
        );
    }
    let mut services = Vec::new();
    for (aud, from) in &known {
        let live: Vec<&VerifierFacts> = verifiers.iter().filter(|v| v.live && &v.audience == aud).collect();
        let transports: BTreeSet<&str> = live.iter().filter_map(|v| v.transport.as_deref()).collect();
        let transport = match (transports.len(), transports.iter().next()) {
            (0, _) => None,
            (1, Some(t)) => Some((*t).to_owned()),
            _ => Some("mixed".to_owned()),
        };
        let probes: Vec<ServiceProbe> = latest
            .values()
            .filter(|(_, t)| &t.audience == aud)
            .map(|(run, t)| ServiceProbe {
                target: t.name.clone(),
                run_id: run.id,
                recorded_at: run.recorded_at,
                passed: t.passed(),
                failed: t.failed().into_iter().map(str::to_owned).collect(),
            })
            .collect();
        services.push(ServiceFacts {
            audience: aud.clone(),
            known_from: from.iter().map(|s| (*s).to_owned()).collect(),
            live_verifiers: live.len(),
            transport,
            policy_version: facts.policy_services.iter().find(|(s, _)| s == aud).map(|(_, v)| *v),
            probes,
        });
    }

    // Stage 2: every service checks tokens.
    if services.is_empty() {
        f.blocker(
            "no-services",
            VALIDATED,
            "the authority knows of no service".into(),
            vec!["no client may get tokens for a service, no verifier has reported, no policy and no probe run names one".into()],
            "register the services' clients (`castellan client create --audience SERVICE`) and put castellan-verify or `castellan gate` in front of each",
        );
    }
    for s in &services {
        // Refusing a request without a token proves something only from a
        // target that accepted the genuine one (a 404 refuses everything).
        let refuses_no_token = latest.values().any(|(_, t)| {
            t.audience == s.audience
                && t.check("genuine").is_some_and(|c| c.ok)
                && t.check("no-token").is_some_and(|c| c.ok && c.status.is_some())
        });
        if s.live_verifiers == 0 && !refuses_no_token {
            let mut evidence = vec![format!("known from: {}", s.known_from.join(", "))];
            if let Some((_, client)) = facts.client_audiences.iter().find(|(a, _)| a == &s.audience) {
                evidence.push(format!("client `{client}` may get tokens for it"));
            }
            evidence.push("no Castellan verifier for it has reported in the last 30s".into());
            evidence.push("no recent probe run shows it refusing a request without a token".into());
            f.blocker(
                "service-unchecked",
                VALIDATED,
                format!("nothing shows that `{}` checks tokens itself", s.audience),
                evidence,
                "put castellan-verify (Rust) or a `castellan gate` sidecar in front of the service, then probe it",
            );
        }
    }

    // Stage 3: consistent, as measured by the probe.
    match (recent.first(), facts.runs.first()) {
        (None, None) => f.blocker(
            "no-probe-run",
            CONSISTENT,
            "no drift-probe run has been recorded".into(),
            vec!["the authority holds no probe run".into()],
            "run `castellan probe --config targets.toml` against every service (in CI, nightly)",
        ),
        (None, Some(old)) => f.blocker(
            "no-probe-run",
            CONSISTENT,
            "the last drift-probe run is too old to count".into(),
            vec![format!(
                "the newest run ({}) was recorded {}; runs older than {} are not used",
                old.id,
                ago(now, old.recorded_at),
                secs(PROBE_MAX_AGE)
            )],
            "run `castellan probe --config targets.toml` against every service (in CI, nightly)",
        ),
        _ => {}
    }
    if !recent.is_empty() {
        for s in services.iter().filter(|s| s.probes.is_empty()) {
            f.blocker(
                "service-unprobed",
                CONSISTENT,
                format!("`{}` was left out of the recent probe runs", s.audience),
                vec![format!(
                    "no target with audience `{}` in the {} run(s) of the last {}",
                    s.audience,
                    recent.len(),
                    secs(PROBE_MAX_AGE)
                )],
                "add a [[target]] for it to the probe's config file",
            );
        }
    }
    for (run, t) in latest.values() {
        let line = |c: &castellan_core::probe_run::ProbedCheck| {
            format!("{}: {} (run {}, {})", c.id, c.detail, run.id, ago(now, run.recorded_at))
        };
        // A network error is its own result: neither an acceptance nor a refusal.
        let unreachable: Vec<String> = t
            .checks
            .iter()
            .filter(|c| !c.ok && c.status.is_none() && !c.skipped)
            .map(line)
            .collect();
        if !unreachable.is_empty() {
            f.blocker(
                "probe-unreachable",
                CONSISTENT,
                format!("target `{}` could not be reached for some checks", t.name),
                unreachable,
                "check the target's URL and that the probe can reach it, then probe again",
            );
        }
        let evidence: Vec<String> = t
            .checks
            .iter()
            .filter(|c| !c.ok && c.status.is_some())
            .map(line)
            .collect();
        if t.check("genuine").is_some_and(|c| !c.ok && c.status.is_some()) {
            f.blocker(
                "probe-misconfigured",
                CONSISTENT,
                format!("target `{}` refused a genuine token, so nothing is known of its checks", t.name),
                evidence,
                "check the target's audience, URL, method and path in the probe config, and that it trusts this authority",
            );
        } else if !evidence.is_empty() {
            f.blocker(
                "probe-failures",
                CONSISTENT,
                format!("target `{}` ({}) accepts tokens it must refuse", t.name, t.audience),
                evidence,
                "validate with castellan-verify or behind `castellan gate`; see docs/probe.md for each check's fix",
            );
        }
        let skipped: Vec<String> = t
            .checks
            .iter()
            .filter(|c| c.skipped)
            .map(|c| format!("{}: {}", c.id, c.detail))
            .collect();
        if !skipped.is_empty() {
            f.notice(
                "probe-skipped",
                CONSISTENT,
                format!("target `{}`: some checks could not be run", t.name),
                skipped,
                "`removed-key` needs a removed key: it exists once a key has been retired or withdrawn and kept (`keys.keep_removed_for`)",
            );
        }
    }

    // Stage 4: rotating and revocable.
    let k = &facts.keys;
    if let Some(age) = k.rotation_age_seconds {
        if age > k.rotation_interval_seconds.saturating_add(facts.rotation_grace) {
            f.blocker(
                "rotation-overdue",
                REVOCABLE,
                format!("the signing key has not rotated for {}", secs(age)),
                vec![format!(
                    "key `{}` has signed for {}; the interval is {} (plus {} to publish and acknowledge the next key)",
                    k.active_kid.as_deref().unwrap_or("?"),
                    secs(age),
                    secs(k.rotation_interval_seconds),
                    secs(facts.rotation_grace)
                )],
                "see which verifiers hold the rotation back (`castellan verifiers list`), then `castellan keys rotate`",
            );
        }
    }
    if k.next_kid.is_none() {
        f.blocker(
            "no-next-key",
            REVOCABLE,
            "no next key is published".into(),
            vec![format!("published kids: {}", k.published.join(", "))],
            "the key scheduler publishes one on its next step; if it does not, check the authority's log",
        );
    }
    for v in verifiers.iter().filter(|v| v.live) {
        if !v.missing_kids.is_empty() || !v.stale_kids.is_empty() {
            let mut evidence = Vec::new();
            if !v.missing_kids.is_empty() {
                evidence.push(format!("does not hold published key(s) {}", v.missing_kids.join(", ")));
            }
            if !v.stale_kids.is_empty() {
                evidence.push(format!("still holds unpublished key(s) {}", v.stale_kids.join(", ")));
            }
            evidence.push(format!("reported {}", ago(now, v.last_seen)));
            f.blocker(
                "verifier-key-lag",
                REVOCABLE,
                format!("verifier `{}` ({}) is out of step with the JWKS", v.verifier_id, v.audience),
                evidence,
                "a verifier refetches the JWKS within its max-age; one that does not cannot reach the authority or is pinned to old keys",
            );
        }
        if v.stream_lag > 0 {
            f.blocker(
                "verifier-stream-lag",
                REVOCABLE,
                format!("verifier `{}` ({}) is behind on revocations", v.verifier_id, v.audience),
                vec![format!(
                    "{} revocation event(s) not applied when it reported {}",
                    v.stream_lag,
                    ago(now, v.last_seen)
                )],
                "check its connection to the revocation stream (`castellan_verifier_stale` on its metrics)",
            );
        }
    }
    if facts.tokens.longest_seconds > MAX_REVOCABLE_TOKEN_LIFETIME {
        f.blocker(
            "long-token-lifetime",
            REVOCABLE,
            format!("access tokens live up to {}", secs(facts.tokens.longest_seconds)),
            vec![match &facts.tokens.longest_client {
                Some(c) => format!("client `{c}` gets {}", secs(facts.tokens.longest_seconds)),
                None => format!("the default lifetime is {}", secs(facts.tokens.access_token_ttl_seconds)),
            }],
            "keep access tokens at an hour or less (`tokens.access_token_ttl`, `--access-token-ttl`); verifiers off the revocation stream honour them until they expire",
        );
    }

    // Stage 5: identity on every call.
    for s in &services {
        if s.transport.as_deref() != Some("mtls") {
            let evidence = match (&s.transport, s.live_verifiers) {
                (_, 0) => vec!["no live Castellan verifier reports how calls reach it".into()],
                (None, n) => vec![format!("its {n} live verifier(s) have accepted no call yet")],
                (Some(t), n) => vec![format!("its {n} live verifier(s) report `{t}` calls")],
            };
            f.blocker(
                "service-without-mtls",
                IDENTITY,
                format!("calls to `{}` do not all carry a workload identity", s.audience),
                evidence,
                "issue SVIDs (`castellan workload register`, `workload agent`) and terminate mTLS in front of the service (`castellan gate --mtls-*`)",
            );
        }
        if s.policy_version.is_none() {
            f.blocker(
                "service-without-policy",
                IDENTITY,
                format!("`{}` has no central policy", s.audience),
                vec![format!("no policy version stored for `{}`", s.audience)],
                "push Cedar policies (`castellan policy push SERVICE --policies FILE`) and decide with castellan-authz or `castellan gate --policy-service`",
            );
        }
    }
    for v in verifiers.iter().filter(|v| !v.live) {
        f.notice(
            "verifier-silent",
            REVOCABLE,
            format!("verifier `{}` ({}) has stopped reporting", v.verifier_id, v.audience),
            vec![format!("last heartbeat {}", ago(now, v.last_seen))],
            "a verifier that was shut down is forgotten after 5 minutes; one still serving cannot reach the authority",
        );
    }

    if !facts.unreadable_runs.is_empty() {
        f.notice(
            "probe-run-unreadable",
            CONSISTENT,
            "some stored probe runs could not be read and were left out".into(),
            facts.unreadable_runs.iter().map(|id| format!("run {id}")).collect(),
            "probe again; the authority keeps the newest 100 runs and drops older ones as new ones arrive",
        );
    }
    let stage =
        f.0.iter()
            .filter(|x| x.severity == Severity::Blocker)
            .map(|x| x.blocks.saturating_sub(1))
            .min()
            .unwrap_or(IDENTITY)
            .max(1);
    f.0.sort_by_key(|x| (x.severity == Severity::Notice, x.blocks));
    PlatformReport {
        generated_at: now,
        stage,
        stage_name: STAGES
            .get(usize::from(stage).saturating_sub(1))
            .copied()
            .unwrap_or_default()
            .to_owned(),
        findings: f.0,
        services,
        keys: facts.keys,
        tokens: facts.tokens,
        verifiers,
        probe_runs: facts
            .runs
            .iter()
            .map(|r| ProbeRunSummary {
                id: r.id,
                recorded_at: r.recorded_at,
                recorded_by: r.recorded_by.clone(),
                targets: r.run.targets.len(),
                passed: r.run.targets.iter().filter(|t| t.passed()).count(),
            })
            .collect(),
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
