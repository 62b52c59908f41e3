//! Firing the battery at one target and judging the answers. Accepted
//! means a 2xx answer; a network error is its own result, never counted as
//! a rejection. Requests to one target go one at a time with a pause
//! between them, each with its own timeout, so the probe never floods a
//! service.

use crate::check::CheckId;
use serde::Serialize;
use std::str::FromStr;
use std::time::Duration;

/// A service to probe: `name=NAME,url=URL,audience=AUD[,method=GET][,path=/p]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Name in reports.
    pub name: String,
    /// Base URL (`http://` or `https://`).
    pub url: String,
    /// The audience its tokens carry.
    pub audience: String,
    /// Method of each probe request (default `GET`).
    pub method: String,
    /// Path of each probe request, joined to `url` (default: `url` as given).
    pub path: String,
}

/// A probe configuration file (TOML): `[[target]]` tables with the keys of
/// a `--target` spec.
///
/// ```toml
/// [[target]]
/// name = "orders"
/// url = "http://orders.internal:9000"
/// audience = "orders"
/// path = "/api/whoami"   # optional; method = "GET" too
/// ```
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The targets.
    #[serde(rename = "target", default)]
    pub targets: Vec<TargetSpec>,
}

/// One `[[target]]` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// Name.
    pub name: String,
    /// Base URL.
    pub url: String,
    /// Audience.
    pub audience: String,
    /// Method (default `GET`).
    #[serde(default)]
    pub method: Option<String>,
    /// Path (default none).
    #[serde(default)]
    pub path: Option<String>,
}

impl ProbeConfig {
    /// Parses a configuration file's text into checked targets.
    ///
    /// # Errors
    /// The TOML error, or the first target that is not valid (by name).
    pub fn parse(text: &str) -> Result<Vec<Target>, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        config
            .targets
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let mut spec = format!("name={},url={},audience={}", t.name, t.url, t.audience);
                for (k, v) in [("method", &t.method), ("path", &t.path)] {
                    if let Some(v) = v {
                        spec.push_str(&format!(",{k}={v}"));
                    }
                }
                if [&t.name, &t.url, &t.audience].iter().any(|v| v.contains(',')) {
                    return Err(format!("target {}: values must not contain `,`", i + 1));
                }
                spec.parse::<Target>()
                    .map_err(|e| format!("target {} (`{}`): {e}", i + 1, t.name))
            })
            .collect()
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (mut name, mut url, mut audience, mut method, mut path) = (None, None, None, None, None);
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected key=value"))?;
            let slot = match k.trim() {
                "name" => &mut name,
                "url" => &mut url,
                "audience" => &mut audience,
                "method" => &mut method,
                "path" => &mut path,
                other => {
                    return Err(format!(
                        "unknown target key `{other}` (name, url, audience, method, path)"
                    ))
                }
            };
            if slot.replace(v.trim().to_owned()).is_some() {
                return Err(format!("`{k}` given twice"));
            }
        }
        let need = |v: Option<String>, k: &str| v.filter(|v| !v.is_empty()).ok_or_else(|| format!("`{k}` is required"));
        let url = need(url, "url")?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("url `{url}` must be http:// or https://"));
        }
        let method = method.unwrap_or_else(|| "GET".to_owned()).to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("method `{method}` is not an HTTP method"));
        }
        let path = path.unwrap_or_default();
        if !path.is_empty() && !path.starts_with('/') {
            return Err(format!("path `{path}` must start with /"));
        }
        Ok(Self {
            name: need(name, "name")?,
            url: url.trim_end_matches('/').to_owned(),
            audience: need(audience, "audience")?,
            method,
            path,
        })
    }
}

/// What to send for one check: each variant is one request; `None` sends
/// no `Authorization` header. `Err` when the token could not be obtained
/// (the check is skipped, with the reason).
#[derive(Debug, Clone)]
pub struct Shot {
    /// The check.
    pub check: CheckId,
    /// The variants, or why there are none.
    pub tokens: Result<Vec<Option<String>>, String>,
}

/// One check's result (the JSON report's `checks[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// The check id.
    pub id: &'static str,
    /// Whether the target answered 2xx (to any variant).
    pub accepted: bool,
    /// Whether that was the right answer (accepted only the genuine token).
    pub ok: bool,
    /// The status of the deciding answer; `null` after a network error or a skip.
    pub status: Option<u16>,
    /// What happened, in words.
    pub detail: String,
    /// The check could not be run (for example no removed key is kept).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

/// One target's results (the JSON report's `targets[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetReport {
    /// Name.
    pub name: String,
    /// Base URL.
    pub url: String,
    /// Audience.
    pub audience: String,
    /// Results, in [`CheckId::ALL`] order.
    pub checks: Vec<CheckResult>,
}

impl TargetReport {
    /// Every check right.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The genuine token was refused: every other result is suspect.
    #[must_use]
    pub fn misconfigured(&self) -> bool {
        self.checks.iter().any(|c| c.id == CheckId::Genuine.as_str() && !c.ok)
    }
}

/// How requests are sent.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Pause between two requests to the same target.
    pub pause: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            pause: Duration::from_millis(20),
        }
    }
}

enum Answer {
    Status(u16),
    Network(String),
}

async fn send(http: &reqwest::Client, target: &Target, token: Option<&str>, pace: Pace) -> Answer {
    let Ok(method) = reqwest::Method::from_bytes(target.method.as_bytes()) else {
        return Answer::Network(format!("method `{}`", target.method));
    };
    let mut req = http
        .request(method, format!("{}{}", target.url, target.path))
        .timeout(pace.timeout);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Ok(r) => Answer::Status(r.status().as_u16()),
        Err(e) => {
            let e = e.without_url();
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            Answer::Network(text)
        }
    }
}

/// Fires `shots` at `target`, one request at a time.
pub async fn fire(http: &reqwest::Client, target: &Target, shots: &[Shot], pace: Pace) -> TargetReport {
    let mut checks = Vec::with_capacity(shots.len());
    for shot in shots {
        let must_accept = shot.check.must_accept();
        let variants = match &shot.tokens {
            Ok(v) => v,
            Err(why) => {
                checks.push(CheckResult {
                    id: shot.check.as_str(),
                    accepted: false,
                    ok: !must_accept,
                    status: None,
                    detail: format!("skipped: {why}"),
                    skipped: true,
                });
                continue;
            }
        };
        let mut result = None;
        let mut statuses = Vec::new();
        for (i, token) in variants.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(pace.pause).await;
            }
            match send(http, target, token.as_deref(), pace).await {
                Answer::Status(s) if (200..300).contains(&s) => {
                    let detail = if must_accept {
                        format!("accepted ({s})")
                    } else if variants.len() > 1 {
                        format!("ACCEPTED ({s}) variant {} of {}", i + 1, variants.len())
                    } else {
                        format!("ACCEPTED ({s})")
                    };
                    result = Some(CheckResult {
                        id: shot.check.as_str(),
                        accepted: true,
                        ok: must_accept,
                        status: Some(s),
                        detail,
                        skipped: false,
                    });
                    break;
                }
                Answer::Status(s) => statuses.push(s),
                Answer::Network(e) => {
                    result = Some(CheckResult {
                        id: shot.check.as_str(),
                        accepted: false,
                        ok: false,
                        status: None,
                        detail: format!("network error: {e}"),
                        skipped: false,
                    });
                    break;
                }
            }
        }
        checks.push(result.unwrap_or_else(|| {
            let status = statuses.last().copied();
            let detail = if must_accept {
                format!(
                    "REFUSED ({}): the target refuses a genuine token; check its audience and issuer",
                    status.unwrap_or(0)
                )
            } else {
                format!("refused ({})", join(&statuses))
            };
            CheckResult {
                id: shot.check.as_str(),
                accepted: false,
                ok: !must_accept,
                status,
                detail,
                skipped: false,
            }
        }));
        tokio::time::sleep(pace.pause).await;
    }
    TargetReport {
        name: target.name.clone(),
        url: target.url.clone(),
        audience: target.audience.clone(),
        checks,
    }
}

fn join(statuses: &[u16]) -> String {
    let mut s: Vec<String> = statuses.iter().map(u16::to_string).collect();
    s.dedup();
    s.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_give_checked_targets() {
        let targets = ProbeConfig::parse(
            "[[target]]\nname = \"a\"\nurl = \"http://a\"\naudience = \"a\"\n\n\
             [[target]]\nname = \"b\"\nurl = \"https://b\"\naudience = \"b\"\nmethod = \"post\"\npath = \"/x\"\n",
        )
        .unwrap();
        assert_eq!(targets.len(), 2);
        assert_eq!((targets[1].method.as_str(), targets[1].path.as_str()), ("POST", "/x"));
        assert!(ProbeConfig::parse("").unwrap().is_empty());
        for bad in [
            "[[target]]\nname = \"a\"\nurl = \"ftp://a\"\naudience = \"a\"\n",
            "[[target]]\nname = \"a\"\nurl = \"http://a\"\n",
            "[[target]]\nname = \"a\"\nurl = \"http://a\"\naudience = \"a\"\ncolour = 1\n",
            "[[target]]\nname = \"a,b\"\nurl = \"http://a\"\naudience = \"a\"\n",
            "not toml",
        ] {
            assert!(ProbeConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_parse_strictly() {
        let t: Target = "name=orders,url=http://127.0.0.1:9000/,audience=orders"
            .parse()
            .unwrap();
        assert_eq!(
            (t.url.as_str(), t.method.as_str(), t.path.as_str()),
            ("http://127.0.0.1:9000", "GET", "")
        );
        let t: Target = "name=o,url=https://o.internal,audience=o,method=post,path=/api/x"
            .parse()
            .unwrap();
        assert_eq!((t.method.as_str(), t.path.as_str()), ("POST", "/api/x"));
        for bad in [
            "",
            "name=o,audience=o",
            "name=o,url=ftp://x,audience=o",
            "name=o,url=http://x,audience=o,colour=red",
            "name=o,name=p,url=http://x,audience=o",
            "name=o,url=http://x,audience=o,path=x",
            "name=o,url=http://x,audience=o,method=G T",
            "name=,url=http://x,audience=o",
            "name=o,url=http://x",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
