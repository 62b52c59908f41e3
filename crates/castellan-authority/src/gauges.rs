//! Gauges computed when `/metrics` is scraped: signing-key ages and the
//! rotation schedule, each verifier's stream lag and liveness, the newest
//! revocation sequence number, policy versions and the last probe run.
//!
//! They are rendered here as Prometheus text from what the authority knows
//! at that moment, not kept in the process-global recorder: a key, verifier
//! or probe target that is gone simply has no series on the next scrape (a
//! recorder gauge would report its last value forever). Label sets are
//! capped ([`MAX_SERIES`] per family, the worst first) so a flood of
//! heartbeats cannot make a scrape expensive.

use crate::events::{VerifierView, LIVENESS_SECONDS};
use crate::Authority;
use castellan_core::probe_run::ProbeRun;
use castellan_core::UnixTime;
use castellan_store::KeyState;
use std::collections::BTreeSet;
use std::fmt::Write;

/// Most series per labelled family (verifiers, services, probe targets).
pub const MAX_SERIES: usize = 1_000;

/// Prometheus text for one scrape.
#[derive(Debug, Default)]
pub struct Text(String);

impl Text {
    fn family(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} gauge");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                self.0.push_str(k);
                self.0.push_str("=\"");
                escape_into(&mut self.0, v);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// The text.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Label values are escaped as the text format requires (`\`, `"`, newline):
/// verifier ids and audiences come from unauthenticated heartbeats.
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "gauge values; seconds and counts fit f64 exactly"
)]
fn num(n: i64) -> f64 {
    n as f64
}

impl Authority {
    /// How long past its interval the active key may sign before rotation
    /// is overdue: twice the JWKS max-age to publish the next key, the
    /// acknowledgement timeout, and two scheduler steps.
    pub fn rotation_grace(&self) -> i64 {
        let k = &self.config().keys;
        self.keys()
            .schedule()
            .jwks_max_age
            .saturating_mul(2)
            .saturating_add(k.ack_timeout.secs())
            .saturating_add(k.check_interval.secs().saturating_mul(2))
    }
}

/// Key ages, the next rotation and whether it is overdue.
fn keys(auth: &Authority, now: UnixTime, out: &mut Text) {
    let set = auth.keys().current();
    out.family(
        "castellan_signing_key_age_seconds",
        "Seconds since each signing key was created, by kid and lifecycle state.",
    );
    for k in set.infos.iter().take(MAX_SERIES) {
        out.sample(
            "castellan_signing_key_age_seconds",
            &[("kid", &k.kid), ("state", k.state.as_str())],
            num(now.saturating_sub(k.created_at)),
        );
    }
    let Some(active) = set.infos.iter().find(|k| k.state == KeyState::Active) else {
        return;
    };
    // As the scheduler reads it: a key without an activation time has signed since it was created.
    let since = active.activated_at.unwrap_or(active.created_at);
    let interval = auth.keys().schedule().rotation_interval;
    let due_in = since.saturating_add(interval).saturating_sub(now);
    out.family(
        "castellan_key_next_rotation_seconds",
        "Seconds until the active key has served its rotation interval; negative once it has and rotation waits.",
    );
    out.sample("castellan_key_next_rotation_seconds", &[], num(due_in));
    out.family(
        "castellan_key_rotation_overdue",
        "1 when the active key has signed longer than its interval plus the grace to publish and acknowledge the next key.",
    );
    let overdue = now.saturating_sub(since) > interval.saturating_add(auth.rotation_grace());
    out.sample("castellan_key_rotation_overdue", &[], flag(overdue));
}

/// Each verifier's lag, liveness and missing keys, the worst first.
fn verifiers(auth: &Authority, views: &mut [VerifierView], now: UnixTime, out: &mut Text) {
    let set = auth.keys().current();
    let published: BTreeSet<&str> = set
        .infos
        .iter()
        .filter(|k| matches!(k.state, KeyState::Next | KeyState::Active | KeyState::Retired))
        .map(|k| k.kid.as_str())
        .collect();
    views.sort_by(|a, b| {
        a.live
            .cmp(&b.live)
            .then(b.stream_lag.cmp(&a.stream_lag))
            .then(a.audience.cmp(&b.audience))
            .then(a.verifier_id.cmp(&b.verifier_id))
    });
    out.family(
        "castellan_verifiers",
        "Verifiers the authority has heard from, live or silent.",
    );
    let live = views.iter().filter(|v| v.live).count();
    out.sample("castellan_verifiers", &[("state", "live")], num(live as i64));
    out.sample(
        "castellan_verifiers",
        &[("state", "silent")],
        num(views.len().saturating_sub(live) as i64),
    );
    out.family(
        "castellan_verifier_series_omitted",
        "Verifiers left out of the per-verifier gauges (over the cap; the healthiest are left out first).",
    );
    out.sample(
        "castellan_verifier_series_omitted",
        &[],
        num(views.len().saturating_sub(MAX_SERIES) as i64),
    );
    let shown = views.get(..MAX_SERIES).unwrap_or(views);
    let families: [(&str, &str); 4] = [
        (
            "castellan_verifier_stream_lag",
            "Revocation events older than the verifier's previous heartbeat that it had not applied when it last reported.",
        ),
        (
            "castellan_verifier_stale",
            "1 when the verifier has not been heard from within the liveness window: the authority cannot vouch that it follows revocations.",
        ),
        (
            "castellan_verifier_last_heartbeat_age_seconds",
            "Seconds since the verifier's last heartbeat.",
        ),
        (
            "castellan_verifier_missing_keys",
            "Published signing keys the verifier did not hold at its last heartbeat.",
        ),
    ];
    for (name, help) in families {
        out.family(name, help);
        for v in shown {
            let value = match name {
                "castellan_verifier_stream_lag" => num(v.stream_lag),
                "castellan_verifier_stale" => flag(!v.live),
                "castellan_verifier_last_heartbeat_age_seconds" => num(now.saturating_sub(v.last_seen)),
                _ => {
                    let held: BTreeSet<&str> = v.kids.iter().map(String::as_str).collect();
                    num(published.difference(&held).count() as i64)
                }
            };
            out.sample(name, &[("verifier", &v.verifier_id), ("audience", &v.audience)], value);
        }
    }
}

/// The newest probe run's failures per target and its age.
fn probes(rows: &[castellan_store::ProbeRunRecord], now: UnixTime, out: &mut Text) {
    let Some(row) = rows.first() else { return };
    out.family(
        "castellan_probe_last_run_age_seconds",
        "Seconds since the newest probe run was recorded.",
    );
    out.sample(
        "castellan_probe_last_run_age_seconds",
        &[],
        num(now.saturating_sub(row.recorded_at)),
    );
    let Ok(run) = serde_json::from_str::<ProbeRun>(&row.report) else {
        return;
    };
    out.family(
        "castellan_probe_failures",
        "Checks the target got wrong in the newest probe run (0 when it passed them all).",
    );
    for t in run.targets.iter().take(MAX_SERIES) {
        let failed = t.checks.iter().filter(|c| !c.ok).count();
        out.sample("castellan_probe_failures", &[("target", &t.name)], num(failed as i64));
    }
}

/// Every scrape-time gauge. Store reads that fail leave their families out
/// (and are counted by the store's own metrics); the scrape still answers.
pub async fn render(auth: &Authority) -> String {
    let now = auth.now();
    let mut out = Text::default();
    keys(auth, now, &mut out);
    let mut views = auth.verifier_views().await;
    // Heartbeats do not stay long past the liveness window (see the registry).
    views.retain(|v| now.saturating_sub(v.last_seen) <= LIVENESS_SECONDS.saturating_mul(10));
    verifiers(auth, &mut views, now, &mut out);
    let store = auth.store();
    if let Ok(seq) = store.latest_revocation_seq().await {
        out.family(
            "castellan_revocation_seq",
            "The newest revocation event's sequence number.",
        );
        out.sample("castellan_revocation_seq", &[], num(seq));
    }
    if let Ok(services) = store.list_policy_services().await {
        out.family(
            "castellan_policy_version",
            "The newest policy version stored per service (a gate reports the version it enforces under the same name).",
        );
        for (service, version) in services.iter().take(MAX_SERIES) {
            out.sample("castellan_policy_version", &[("service", service)], num(*version));
        }
    }
    if let Ok(rows) = store.list_probe_runs(1).await {
        probes(&rows, now, &mut out);
    }
    out.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut t = Text::default();
        t.sample("m", &[("verifier", "a\"b\\c\nd")], 1.0);
        assert_eq!(t.into_string(), "m{verifier=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn values_print_as_prometheus_numbers() {
        let mut t = Text::default();
        t.sample("m", &[], num(-42));
        t.sample("n", &[("a", "x"), ("b", "y")], 0.0);
        assert_eq!(t.into_string(), "m -42\nn{a=\"x\",b=\"y\"} 0\n");
    }
}
