//! The HTML report: a matrix of targets by checks, readable at a glance,
//! then for each failing check what it means and how to fix it. One
//! self-contained page (inline CSS, no script), every value escaped.

use crate::check::CheckId;
use crate::run::TargetReport;

pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl CheckId {
    /// What a failure of this check means, in one sentence.
    #[must_use]
    pub fn explanation(self) -> &'static str {
        match self {
            Self::Genuine => "The service refused a valid token for its audience: it is down, misconfigured, or the probe has its audience or path wrong. Its other results prove little.",
            Self::NoToken => "The service answers a protected path without any token.",
            Self::AlgNone => "The service accepts an unsigned token (alg none): anyone can be anyone.",
            Self::HmacKeyConfusion => "The service verifies HS256 with the authority's public key as the secret: anyone holding the public key (everyone) can sign tokens.",
            Self::BadSignature => "The service does not verify signatures: any edited token passes.",
            Self::UnknownKey => "The service trusts a signature by a key the authority never published.",
            Self::EmbeddedJwk => "The service trusts a key carried inside the token (jwk header).",
            Self::JkuInjection => "The service fetches keys from a URL named in the token (jku).",
            Self::Expired => "The service accepts expired tokens: a stolen token works forever.",
            Self::NotYetValid => "The service accepts tokens issued in the future.",
            Self::WrongIssuer => "The service does not check the issuer.",
            Self::WrongAudience => "The service does not check the audience: a token for any other service works here.",
            Self::WrongTokenType => "The service accepts other JWTs (ID tokens, anything signed by the authority) as access tokens.",
            Self::RemovedKey => "The service still trusts a signing key that was rotated out or withdrawn.",
            Self::RevokedSession => "The service ignores revocations: a suspended person or a stolen session keeps working until the token expires.",
        }
    }

    /// How to fix it.
    #[must_use]
    pub fn remedy(self) -> &'static str {
        match self {
            Self::Genuine => "Check the target's audience, issuer and path in the probe; check the service is up and fetches the authority's JWKS.",
            Self::NoToken => "Require a bearer token on every protected route (castellan-verify's VerifyLayer, or castellan gate in front).",
            Self::AlgNone | Self::HmacKeyConfusion => "Pin the algorithms to the authority's validation profile and take the algorithm from the key found by kid, never from the header.",
            Self::BadSignature | Self::UnknownKey => "Verify every signature with a key from the authority's jwks_uri, found by kid; refuse unknown kids.",
            Self::EmbeddedJwk | Self::JkuInjection => "Take keys only from the authority's jwks_uri; ignore jwk, jku and x5u in tokens.",
            Self::Expired | Self::NotYetValid => "Check exp and iat (or nbf) with a leeway of seconds, not minutes.",
            Self::WrongIssuer => "Require iss to equal the authority's issuer.",
            Self::WrongAudience => "Require aud to equal this service's audience.",
            Self::WrongTokenType => "Require typ at+jwt (RFC 9068).",
            Self::RemovedKey => "Refresh the JWKS at its max-age and drop keys that left it; do not pin keys. castellan-verify and castellan gate do this.",
            Self::RevokedSession => "Follow the authority's revocation stream (castellan-verify, castellan gate), or introspect.",
        }
    }
}

/// The report as one HTML page.
#[must_use]
pub fn html_report(reports: &[TargetReport], generated_at: &str) -> String {
    let failed = reports.iter().filter(|r| !r.passed()).count();
    let mut h = String::with_capacity(16 * 1024);
    h.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    h.push_str("<title>Castellan probe report</title><style>");
    h.push_str(
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1b1b}\
         table{border-collapse:collapse;margin:1rem 0}\
         th,td{border:1px solid #ccc;padding:.35rem .6rem;text-align:center;font-size:.9rem}\
         th.check{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap}\
         td.name{text-align:left;font-weight:600}\
         td.ok{background:#d9f2dd;color:#14532d}td.fail{background:#fbd5d5;color:#7f1d1d;font-weight:700}\
         td.error{background:#fde9c8;color:#7c2d12;font-weight:700}td.skip{background:#eee;color:#555}\
         .summary.pass{color:#14532d}.summary.fail{color:#7f1d1d}\
         dt{font-weight:600;margin-top:.8rem}dd{margin:.2rem 0 0 1rem}",
    );
    h.push_str("</style></head><body>\n<h1>Castellan probe report</h1>\n");
    let class = if failed == 0 { "pass" } else { "fail" };
    h.push_str(&format!(
        "<p class=\"summary {class}\" id=\"summary\">{} of {} target(s) pass every check. Generated {}.</p>\n",
        reports.len() - failed,
        reports.len(),
        esc(generated_at)
    ));
    h.push_str("<table id=\"matrix\"><thead><tr><th>target</th>");
    for c in CheckId::ALL {
        h.push_str(&format!("<th class=\"check\" scope=\"col\">{}</th>", c.as_str()));
    }
    h.push_str("</tr></thead><tbody>\n");
    for r in reports {
        h.push_str(&format!(
            "<tr data-target=\"{0}\"><td class=\"name\" title=\"{1} (audience {2})\">{0}</td>",
            esc(&r.name),
            esc(&r.url),
            esc(&r.audience)
        ));
        for c in CheckId::ALL {
            let result = r.checks.iter().find(|x| x.id == c.as_str());
            let (class, text) = match result {
                Some(x) if x.skipped => ("skip", "skip"),
                Some(x) if x.ok => ("ok", "ok"),
                Some(x) if x.status.is_none() => ("error", "error"),
                Some(_) => ("fail", "FAIL"),
                None => ("skip", "-"),
            };
            let title = result.map(|x| esc(&x.detail)).unwrap_or_default();
            h.push_str(&format!(
                "<td class=\"{class}\" data-check=\"{}\" title=\"{title}\">{text}</td>",
                c.as_str()
            ));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
    for r in reports.iter().filter(|r| !r.passed()) {
        h.push_str(&format!(
            "<section data-target=\"{0}\"><h2>{0}</h2><p>{1}, audience <code>{2}</code></p><dl>\n",
            esc(&r.name),
            esc(&r.url),
            esc(&r.audience)
        ));
        for x in r.checks.iter().filter(|x| !x.ok) {
            let Some(check) = CheckId::parse(x.id) else { continue };
            h.push_str(&format!(
                "<dt>{}</dt><dd>{} <em>({})</em></dd><dd><strong>Fix:</strong> {}</dd>\n",
                check.as_str(),
                esc(check.explanation()),
                esc(&x.detail),
                esc(check.remedy())
            ));
        }
        h.push_str("</dl></section>\n");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::CheckResult;

    fn report(name: &str, failing: &[CheckId]) -> TargetReport {
        TargetReport {
            name: name.into(),
            url: "http://x".into(),
            audience: "orders".into(),
            checks: CheckId::ALL
                .iter()
                .map(|c| CheckResult {
                    id: c.as_str(),
                    accepted: c.must_accept() != failing.contains(c),
                    ok: !failing.contains(c),
                    status: Some(if failing.contains(c) { 200 } else { 401 }),
                    detail: "<detail>".into(),
                    skipped: false,
                })
                .collect(),
        }
    }

    #[test]
    fn the_matrix_marks_failures_and_explains_them() {
        let html = html_report(
            &[
                report("gate", &[]),
                report("<naive>", &[CheckId::AlgNone, CheckId::Expired]),
            ],
            "now",
        );
        assert!(html.contains("1 of 2 target(s) pass every check"));
        assert_eq!(html.matches("class=\"fail\"").count(), 2);
        assert!(html.contains("&lt;naive&gt;") && !html.contains("<naive>"), "escaped");
        assert!(html.contains(&esc(CheckId::AlgNone.remedy())));
        assert!(!html.contains("<detail>"));
        for c in CheckId::ALL {
            assert!(!c.explanation().is_empty() && !c.remedy().is_empty());
        }
    }
}
