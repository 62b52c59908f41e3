//! The platform report as one self-contained HTML page: the stage reached on
//! the ladder, each finding with its evidence and remedy, then the services,
//! verifiers, keys and probe runs it was drawn from. Every value escaped.

use crate::html::esc;
use castellan_core::platform::{PlatformReport, Severity, STAGES};

fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

fn or_dash(s: Option<&str>) -> String {
    s.map_or_else(|| "-".to_owned(), esc)
}

/// The platform report as one HTML page.
#[must_use]
pub fn platform_html(r: &PlatformReport) -> String {
    let mut h = String::with_capacity(32 * 1024);
    h.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    h.push_str("<title>Castellan platform report</title><style>");
    h.push_str(
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1b1b;max-width:72rem}\
         table{border-collapse:collapse;margin:1rem 0}\
         th,td{border:1px solid #ccc;padding:.35rem .6rem;text-align:left;font-size:.9rem;vertical-align:top}\
         ol.ladder{list-style:none;padding:0}ol.ladder li{padding:.4rem .8rem;margin:.2rem 0;border-radius:4px}\
         li.reached{background:#d9f2dd;color:#14532d}li.current{outline:3px solid #14532d;font-weight:700}\
         li.ahead{background:#eee;color:#555}\
         section.finding{border-left:6px solid #b91c1c;padding:.2rem 1rem;margin:1rem 0;background:#fef2f2}\
         section.finding.notice{border-color:#a16207;background:#fefce8}\
         td.good{background:#d9f2dd;color:#14532d}td.bad{background:#fbd5d5;color:#7f1d1d;font-weight:700}",
    );
    h.push_str("</style></head><body>\n<h1>Castellan platform report</h1>\n");
    h.push_str(&format!(
        "<p id=\"stage\" data-stage=\"{}\">Stage {} of {}: <strong>{}</strong>. Generated {}.</p>\n",
        r.stage,
        r.stage,
        STAGES.len(),
        esc(&r.stage_name),
        esc(&when(r.generated_at))
    ));
    h.push_str("<ol class=\"ladder\" id=\"ladder\">\n");
    for (i, name) in STAGES.iter().enumerate() {
        let n = i + 1;
        let stage = usize::from(r.stage);
        let class = match n.cmp(&stage) {
            std::cmp::Ordering::Less => "reached",
            std::cmp::Ordering::Equal => "reached current",
            std::cmp::Ordering::Greater => "ahead",
        };
        let blockers = r
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Blocker && usize::from(f.blocks) == n)
            .count();
        let note = if blockers > 0 {
            format!(" — {blockers} finding(s) stand in the way")
        } else {
            String::new()
        };
        h.push_str(&format!(
            "<li class=\"{class}\" data-stage=\"{n}\">{n}. {}{note}</li>\n",
            esc(name)
        ));
    }
    h.push_str("</ol>\n<h2>Findings</h2>\n");
    if r.findings.is_empty() {
        h.push_str("<p id=\"no-findings\">Nothing found.</p>\n");
    }
    for f in &r.findings {
        let (class, label) = match f.severity {
            Severity::Blocker => ("finding", "blocks stage"),
            Severity::Notice => ("finding notice", "notice, stage"),
        };
        h.push_str(&format!(
            "<section class=\"{class}\" data-finding=\"{}\"><h3>{}</h3><p><code>{}</code> — {label} {}</p><ul>",
            esc(&f.id),
            esc(&f.title),
            esc(&f.id),
            f.blocks
        ));
        for e in &f.evidence {
            h.push_str(&format!("<li>{}</li>", esc(e)));
        }
        h.push_str(&format!(
            "</ul><p><strong>Fix:</strong> {}</p></section>\n",
            esc(&f.remedy)
        ));
    }

    h.push_str("<h2>Services</h2>\n<table id=\"services\"><thead><tr><th>service</th><th>known from</th><th>live verifiers</th><th>transport</th><th>policy</th><th>latest probe</th></tr></thead><tbody>\n");
    for s in &r.services {
        let probe = if s.probes.is_empty() {
            "<td class=\"bad\">not probed</td>".to_owned()
        } else {
            let failed: Vec<String> = s
                .probes
                .iter()
                .filter(|p| !p.passed)
                .map(|p| format!("{}: {}", p.target, p.failed.join(", ")))
                .collect();
            if failed.is_empty() {
                format!("<td class=\"good\">passed ({} target(s))</td>", s.probes.len())
            } else {
                format!("<td class=\"bad\">{}</td>", esc(&failed.join("; ")))
            }
        };
        let transport_class = if s.transport.as_deref() == Some("mtls") {
            "good"
        } else {
            "bad"
        };
        let policy = s.policy_version.map_or_else(
            || "<td class=\"bad\">none</td>".to_owned(),
            |v| format!("<td class=\"good\">v{v}</td>"),
        );
        h.push_str(&format!(
            "<tr data-service=\"{0}\"><td>{0}</td><td>{1}</td><td class=\"{2}\">{3}</td><td class=\"{transport_class}\">{4}</td>{policy}{probe}</tr>\n",
            esc(&s.audience),
            esc(&s.known_from.join(", ")),
            if s.live_verifiers > 0 { "good" } else { "bad" },
            s.live_verifiers,
            or_dash(s.transport.as_deref()),
        ));
    }
    h.push_str("</tbody></table>\n");

    h.push_str("<h2>Verifiers</h2>\n<table id=\"verifiers\"><thead><tr><th>verifier</th><th>audience</th><th>kind</th><th>live</th><th>stream lag</th><th>missing keys</th><th>stale keys</th><th>transport</th></tr></thead><tbody>\n");
    for v in &r.verifiers {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&v.verifier_id),
            esc(&v.audience),
            or_dash(v.kind.as_deref()),
            if v.live { "yes" } else { "no" },
            v.stream_lag,
            esc(&v.missing_kids.join(", ")),
            esc(&v.stale_kids.join(", ")),
            or_dash(v.transport.as_deref()),
        ));
    }
    h.push_str("</tbody></table>\n");

    let k = &r.keys;
    h.push_str(&format!(
        "<h2>Keys and tokens</h2>\n<table id=\"keys\"><tbody>\
         <tr><th>algorithm</th><td>{}</td></tr><tr><th>active key</th><td>{} since {}</td></tr>\
         <tr><th>rotation age / interval</th><td>{} s / {} s</td></tr><tr><th>next key</th><td>{}</td></tr>\
         <tr><th>published</th><td>{}</td></tr><tr><th>withdrawn</th><td>{}</td></tr>\
         <tr><th>access token lifetime</th><td>{} s (longest {} s{})</td></tr>\
         <tr><th>session idle / absolute</th><td>{} s / {} s</td></tr></tbody></table>\n",
        esc(&k.algorithm),
        or_dash(k.active_kid.as_deref()),
        k.active_since.map_or_else(|| "-".to_owned(), |t| esc(&when(t))),
        k.rotation_age_seconds.unwrap_or(0),
        k.rotation_interval_seconds,
        or_dash(k.next_kid.as_deref()),
        esc(&k.published.join(", ")),
        esc(&k.withdrawn.join(", ")),
        r.tokens.access_token_ttl_seconds,
        r.tokens.longest_seconds,
        r.tokens
            .longest_client
            .as_deref()
            .map(|c| format!(", client {}", esc(c)))
            .unwrap_or_default(),
        r.tokens.session_idle_seconds,
        r.tokens.session_absolute_seconds,
    ));

    h.push_str("<h2>Probe runs</h2>\n<table id=\"runs\"><thead><tr><th>run</th><th>recorded</th><th>by</th><th>targets passed</th></tr></thead><tbody>\n");
    for run in &r.probe_runs {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td></tr>\n",
            run.id,
            esc(&when(run.recorded_at)),
            esc(&run.recorded_by),
            run.passed,
            run.targets
        ));
    }
    h.push_str("</tbody></table>\n</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_core::platform::{
        Finding, KeyFacts, ProbeRunSummary, ServiceFacts, ServiceProbe, TokenFacts, VerifierFacts,
    };

    #[test]
    fn every_value_from_the_platform_is_escaped() {
        let evil = "<script>alert(1)</script>\"'&";
        let r = PlatformReport {
            generated_at: 0,
            stage: 2,
            stage_name: evil.into(),
            findings: vec![Finding {
                id: evil.into(),
                severity: Severity::Blocker,
                blocks: 3,
                title: evil.into(),
                evidence: vec![evil.into()],
                remedy: evil.into(),
            }],
            services: vec![ServiceFacts {
                audience: evil.into(),
                known_from: vec![evil.into()],
                live_verifiers: 1,
                transport: Some(evil.into()),
                policy_version: None,
                probes: vec![ServiceProbe {
                    target: evil.into(),
                    run_id: 1,
                    recorded_at: 0,
                    passed: false,
                    failed: vec![evil.into()],
                }],
            }],
            keys: KeyFacts {
                algorithm: evil.into(),
                active_kid: Some(evil.into()),
                active_since: Some(0),
                rotation_age_seconds: Some(1),
                rotation_interval_seconds: 2,
                next_kid: Some(evil.into()),
                published: vec![evil.into()],
                withdrawn: vec![evil.into()],
            },
            tokens: TokenFacts {
                access_token_ttl_seconds: 1,
                max_access_token_ttl_seconds: 1,
                longest_seconds: 1,
                longest_client: Some(evil.into()),
                session_idle_seconds: 1,
                session_absolute_seconds: 1,
            },
            verifiers: vec![VerifierFacts {
                verifier_id: evil.into(),
                audience: evil.into(),
                kind: Some(evil.into()),
                live: true,
                last_seen: 0,
                stream_lag: 0,
                missing_kids: vec![evil.into()],
                stale_kids: vec![evil.into()],
                transport: Some(evil.into()),
            }],
            probe_runs: vec![ProbeRunSummary {
                id: 1,
                recorded_at: 0,
                recorded_by: evil.into(),
                targets: 1,
                passed: 0,
            }],
        };
        let page = platform_html(&r);
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("\"'&"), "quotes and ampersands escaped");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
        assert!(page.contains("data-stage=\"2\""));
    }
}
