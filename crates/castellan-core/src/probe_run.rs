//! A drift-probe run as `castellan probe` reports it and the authority keeps
//! it (`POST /admin/v1/probe-runs`): the JSON report's contract.

use serde::{Deserialize, Serialize};

/// The probe's check ids, in report order: exact, other tools depend on them.
pub const PROBE_CHECK_IDS: [&str; 15] = [
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

/// Most targets in one run the authority keeps.
pub const MAX_PROBE_TARGETS: usize = 1_000;

/// One probe run: the JSON report (`{"targets": [...], "summary": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRun {
    /// One entry per target.
    pub targets: Vec<ProbedTarget>,
    /// Totals, as the probe computed them.
    #[serde(default)]
    pub summary: serde_json::Value,
}

/// One target's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbedTarget {
    /// The target's name.
    pub name: String,
    /// Its base URL.
    pub url: String,
    /// The audience it was probed for.
    pub audience: String,
    /// Results, one per check.
    pub checks: Vec<ProbedCheck>,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbedCheck {
    /// The check id.
    pub id: String,
    /// The target answered 2xx.
    pub accepted: bool,
    /// That was the right answer.
    pub ok: bool,
    /// The deciding answer's status; `null` after a network error or a skip.
    pub status: Option<u16>,
    /// What happened, in words.
    pub detail: String,
    /// The check could not be run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

impl ProbedTarget {
    /// Every check right.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The checks it got wrong, by id.
    #[must_use]
    pub fn failed(&self) -> Vec<&str> {
        self.checks.iter().filter(|c| !c.ok).map(|c| c.id.as_str()).collect()
    }

    /// The result of one check, if it was run.
    #[must_use]
    pub fn check(&self, id: &str) -> Option<&ProbedCheck> {
        self.checks.iter().find(|c| c.id == id)
    }
}

impl ProbeRun {
    /// Shape and size limits the authority holds a run to before keeping
    /// it; the message names what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let text = |s: &str, max: usize| s.len() <= max && !s.chars().any(char::is_control);
        if self.targets.is_empty() || self.targets.len() > MAX_PROBE_TARGETS {
            return Err(format!("a run holds 1 to {MAX_PROBE_TARGETS} targets"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            if t.name.is_empty() || !text(&t.name, 128) {
                return Err(format!("targets[{i}].name must be 1 to 128 printable characters"));
            }
            if !names.insert(t.name.as_str()) {
                return Err(format!("targets[{i}].name `{}` appears twice", t.name));
            }
            if t.url.is_empty() || !text(&t.url, 2048) {
                return Err(format!("targets[{i}].url must be 1 to 2048 printable characters"));
            }
            if t.audience.is_empty() || !text(&t.audience, 256) {
                return Err(format!("targets[{i}].audience must be 1 to 256 printable characters"));
            }
            let mut ids = std::collections::HashSet::new();
            for (j, c) in t.checks.iter().enumerate() {
                if !PROBE_CHECK_IDS.contains(&c.id.as_str()) {
                    return Err(format!("targets[{i}].checks[{j}].id `{}` is not a check id", c.id));
                }
                if !ids.insert(c.id.as_str()) {
                    return Err(format!("targets[{i}].checks[{j}].id `{}` appears twice", c.id));
                }
                if !text(&c.detail, 4096) {
                    return Err(format!(
                        "targets[{i}].checks[{j}].detail must be at most 4096 printable characters"
                    ));
                }
            }
            // A target with checks missing would pass on no evidence.
            if let Some(missing) = PROBE_CHECK_IDS.iter().find(|id| !ids.contains(*id)) {
                return Err(format!(
                    "targets[{i}] lacks check `{missing}`: every check is reported once"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> ProbeRun {
        let checks: Vec<serde_json::Value> = PROBE_CHECK_IDS
            .iter()
            .map(|id| match *id {
                "genuine" => serde_json::json!({"id": id, "accepted": true, "ok": true, "status": 200, "detail": "accepted (200)"}),
                "expired" => serde_json::json!({"id": id, "accepted": true, "ok": false, "status": 200, "detail": "ACCEPTED (200)"}),
                _ => serde_json::json!({"id": id, "accepted": false, "ok": true, "status": 401, "detail": "refused (401)"}),
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "targets": [{"name": "a", "url": "http://a", "audience": "a", "checks": checks}],
            "summary": {"targets": 1}
        }))
        .unwrap()
    }

    #[test]
    fn a_run_is_read_and_held_to_its_limits() {
        let r = run();
        assert!(r.check().is_ok());
        assert_eq!(r.targets[0].failed(), vec!["expired"]);
        assert!(!r.targets[0].passed());

        let mut bad = run();
        bad.targets[0].checks[1].id = "expried".into();
        assert!(bad.check().unwrap_err().contains("`expried` is not a check id"));
        let mut bad = run();
        let first = bad.targets[0].clone();
        bad.targets.push(first);
        assert!(bad.check().unwrap_err().contains("appears twice"));
        let mut bad = run();
        let first = bad.targets[0].checks[0].clone();
        bad.targets[0].checks.push(first);
        assert!(bad.check().unwrap_err().contains("`genuine` appears twice"));
        let mut bad = run();
        bad.targets[0].checks.retain(|c| c.id != "genuine");
        assert!(bad.check().unwrap_err().contains("lacks check `genuine`"));
        let mut bad = run();
        bad.targets[0].checks.clear();
        assert!(bad.check().is_err(), "no checks is no evidence");
        let mut bad = run();
        bad.targets[0].name = "a\nb".into();
        assert!(bad.check().is_err());
        let mut bad = run();
        bad.targets.clear();
        assert!(bad.check().is_err());
    }
}
