//! What a verifier reads from the authority: discovery, JWKS with its
//! `Cache-Control`, and the revocation stream's server-sent events.

use crate::ValidationProfile;
use castellan_jose::{Jwks, VerifyingKey};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The parts of the discovery document a verifier uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// Issuer.
    pub issuer: String,
    /// JWKS.
    pub jwks_uri: String,
    /// Live revocation stream.
    pub castellan_revocation_stream_endpoint: String,
    /// Heartbeats.
    pub castellan_verifier_heartbeat_endpoint: String,
    /// The validation profile.
    pub castellan_validation_profile: ValidationProfile,
    /// Signed policy bundles, `{service}` to be replaced (authorities that
    /// distribute Cedar policies).
    #[serde(default)]
    pub castellan_policy_bundle_endpoint: Option<String>,
    /// Where services ship their decision log (`{service}` is replaced).
    #[serde(default)]
    pub castellan_decision_log_endpoint: Option<String>,
}

/// Longest a discovery or JWKS fetch may take, end to end.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest discovery or JWKS document read.
const MAX_DOC: usize = 256 * 1024;

async fn read_limited(resp: reqwest::Response) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|l| l > MAX_DOC as u64) {
        return Err("document too large".to_owned());
    }
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if bytes.len() > MAX_DOC {
        return Err("document too large".to_owned());
    }
    Ok(bytes.to_vec())
}

/// Fetches the discovery document.
pub async fn discover(http: &reqwest::Client, authority: &str) -> Result<Discovery, String> {
    let url = format!("{}/.well-known/openid-configuration", authority.trim_end_matches('/'));
    let resp = http
        .get(&url)
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let body = read_limited(resp).await?;
    serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
}

/// A fetched key set.
pub struct FetchedKeys {
    /// Parsed keys by kid.
    pub keys: HashMap<String, Arc<VerifyingKey>>,
    /// `Cache-Control: max-age`, when given.
    pub max_age: Option<Duration>,
}

/// `max-age` from a `Cache-Control` value (`no-cache`/`no-store` mean zero).
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut out = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            out = v.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs);
        }
    }
    out
}

/// Fetches and strictly parses the JWKS.
pub async fn fetch_jwks(http: &reqwest::Client, url: &str) -> Result<FetchedKeys, String> {
    let resp = http
        .get(url)
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let max_age = resp
        .headers()
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let body = read_limited(resp).await?;
    let parsed = Jwks::parse_strict(&body).map_err(|e| format!("{url}: {e}"))?;
    let keys = parsed.into_iter().map(|k| (k.kid().to_owned(), Arc::new(k))).collect();
    Ok(FetchedKeys { keys, max_age })
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (default `message`).
    pub event: String,
    /// `data:` lines joined by `\n`.
    pub data: String,
    /// `id:`.
    pub id: Option<String>,
}

/// Incremental SSE parser: feed bytes, take complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

/// Longest buffered, incomplete event accepted before the stream is dropped.
pub const MAX_SSE_EVENT: usize = 64 * 1024;

impl SseParser {
    /// Adds bytes (split anywhere, even inside a character); returns the
    /// complete events, or an error when an event grows past
    /// [`MAX_SSE_EVENT`] or is not UTF-8.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = self.buf.drain(..end + 2).collect();
            let frame = String::from_utf8(frame).map_err(|_| "stream is not UTF-8".to_owned())?;
            let mut ev = SseEvent {
                event: "message".to_owned(),
                data: String::new(),
                id: None,
            };
            let mut has_data = false;
            for line in frame.lines() {
                let line = line.strip_suffix('\r').unwrap_or(line);
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "" => {} // comment (keep-alive)
                    "event" => ev.event = value.to_owned(),
                    "data" => {
                        if has_data {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(value);
                        has_data = true;
                    }
                    "id" => ev.id = Some(value.to_owned()),
                    _ => {}
                }
            }
            if has_data {
                out.push(ev);
            }
        }
        if self.buf.len() > MAX_SSE_EVENT {
            return Err("stream event too large".to_owned());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_max_age() {
        assert_eq!(max_age("public, max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=x"), None);
    }

    #[test]
    fn parses_events_split_anywhere() {
        let stream = ": keep-alive\n\nid: 3\nevent: revocation\ndata: {\"a\":\"é\"}\n\nevent: ready\ndata: {}\n\n";
        for split in 0..stream.len() {
            let mut p = SseParser::default();
            let mut got = p.feed(&stream.as_bytes()[..split]).unwrap();
            got.extend(p.feed(&stream.as_bytes()[split..]).unwrap());
            assert_eq!(got.len(), 2, "split at {split}");
            assert_eq!(got[0].id.as_deref(), Some("3"));
            assert_eq!(got[0].event, "revocation");
            assert_eq!(got[0].data, "{\"a\":\"é\"}");
            assert_eq!(got[1].event, "ready");
        }
        let mut p = SseParser::default();
        assert!(p.feed(&vec![b'a'; MAX_SSE_EVENT + 1]).is_err());
    }
}
