//! The platform report (`GET /admin/v1/report`, `castellan report`): what
//! the authority knows about the platform, the last probe runs, and the
//! stage of auth debt that follows from them, with the evidence.

use crate::UnixTime;
use serde::{Deserialize, Serialize};

/// The stages, lowest first: a platform is at the highest stage whose
/// requirements, and those of every stage below, all hold.
pub const STAGES: [&str; 5] = [
    "validation at the edge only",
    "validated at every service",
    "consistent",
    "consistent, rotating, revocable",
    "consistent, rotating, revocable, identity on every call",
];

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformReport {
    /// When the authority assembled it.
    pub generated_at: UnixTime,
    /// The stage reached: 1-based index into [`STAGES`].
    pub stage: u8,
    /// Its name.
    pub stage_name: String,
    /// Every finding; `blocks` says which stage each holds the platform below.
    pub findings: Vec<Finding>,
    /// Every service the authority knows of, with what is known of it.
    pub services: Vec<ServiceFacts>,
    /// Signing keys and rotation.
    pub keys: KeyFacts,
    /// Token lifetimes.
    pub tokens: TokenFacts,
    /// Verifiers heard from.
    pub verifiers: Vec<VerifierFacts>,
    /// The probe runs the report drew on, newest first.
    pub probe_runs: Vec<ProbeRunSummary>,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Holds the platform below stage `blocks`.
    Blocker,
    /// Worth knowing; moves no stage.
    Notice,
}

/// One finding, with the evidence for it and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id (`probe-failures`, `service-without-mtls`, ...).
    pub id: String,
    /// Blocker or notice.
    pub severity: Severity,
    /// The stage (1-based) this finding keeps the platform from reaching.
    pub blocks: u8,
    /// What is wrong, in one line.
    pub title: String,
    /// The facts it rests on, one per line.
    pub evidence: Vec<String>,
    /// What to do about it.
    pub remedy: String,
}

/// One service (an audience tokens are issued for, checked for, probed or
/// governed by policies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceFacts {
    /// The audience.
    pub audience: String,
    /// Where the authority learnt of it: `client`, `verifier`, `policy`, `probe`.
    pub known_from: Vec<String>,
    /// Castellan verifiers heard from within the liveness window.
    pub live_verifiers: usize,
    /// How its verifiers saw calls arrive: `mtls`, `plain`, `mixed`, or `null` when unknown.
    pub transport: Option<String>,
    /// The newest policy version, if it has policies.
    pub policy_version: Option<i64>,
    /// The latest probe results for it, one per target name.
    pub probes: Vec<ServiceProbe>,
}

/// A service's latest probe result through one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceProbe {
    /// The target's name.
    pub target: String,
    /// The run it comes from.
    pub run_id: i64,
    /// When that run was recorded.
    pub recorded_at: UnixTime,
    /// Every check right.
    pub passed: bool,
    /// The checks it got wrong.
    pub failed: Vec<String>,
}

/// Signing keys and their rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFacts {
    /// The signing algorithm.
    pub algorithm: String,
    /// The key signing now.
    pub active_kid: Option<String>,
    /// Since when.
    pub active_since: Option<UnixTime>,
    /// Seconds it has signed for.
    pub rotation_age_seconds: Option<i64>,
    /// The configured rotation interval, seconds.
    pub rotation_interval_seconds: i64,
    /// The key published to sign next.
    pub next_kid: Option<String>,
    /// Every kid in the JWKS now.
    pub published: Vec<String>,
    /// Keys withdrawn in an emergency and still remembered.
    pub withdrawn: Vec<String>,
}

/// Token lifetimes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFacts {
    /// Default access-token lifetime, seconds.
    pub access_token_ttl_seconds: i64,
    /// The most a client override may ask, seconds.
    pub max_access_token_ttl_seconds: i64,
    /// The longest lifetime any client gets, seconds, and which client.
    pub longest_seconds: i64,
    /// The client with the longest lifetime, when an override sets it.
    pub longest_client: Option<String>,
    /// Sessions end after this long without use, seconds.
    pub session_idle_seconds: i64,
    /// Sessions end this long after sign-in, seconds.
    pub session_absolute_seconds: i64,
}

/// One verifier as the report sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierFacts {
    /// Instance id.
    pub verifier_id: String,
    /// Audience it checks.
    pub audience: String,
    /// `library` or `gate`.
    pub kind: Option<String>,
    /// Heard from within the liveness window.
    pub live: bool,
    /// Last heartbeat.
    pub last_seen: UnixTime,
    /// Revocation events it had not applied when it reported.
    pub stream_lag: i64,
    /// Published kids it did not hold when it reported.
    pub missing_kids: Vec<String>,
    /// Kids it held that are no longer published.
    pub stale_kids: Vec<String>,
    /// How calls reached it: `mtls`, `plain`, `mixed`, or `null`.
    pub transport: Option<String>,
}

/// One recorded probe run, in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRunSummary {
    /// Run id.
    pub id: i64,
    /// When the authority recorded it.
    pub recorded_at: UnixTime,
    /// The admin client that sent it.
    pub recorded_by: String,
    /// Targets probed.
    pub targets: usize,
    /// Targets that passed every check.
    pub passed: usize,
}
