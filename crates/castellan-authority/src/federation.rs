//! The upstream OpenID Connect provider people may sign in with.
//!
//! Castellan is a confidential client there (`client_secret_basic`, code
//! flow with PKCE S256, `nonce`, `state`). The upstream ID token is checked
//! by the same strict JOSE layer every Castellan verifier uses (algorithm
//! from the key, never the header; no embedded keys, `jku`, `crit`; size
//! cap), then its claims: issuer, audience, `azp`, expiry, issue time and
//! nonce. People are linked by (upstream issuer, upstream subject).

use crate::config::FederationConfig;
use castellan_jose::{verify_compact, VerifyOptions, VerifyingKey};
use serde_json::{Map, Value};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why the upstream sign-in failed. Shown to operators, not to people.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// The provider could not be reached or answered badly.
    #[error("upstream provider: {0}")]
    Upstream(String),
    /// Its discovery document is unusable.
    #[error("upstream discovery: {0}")]
    Discovery(String),
    /// Its ID token was refused.
    #[error("upstream id_token refused: {0}")]
    IdToken(String),
}

/// What discovery told us.
#[derive(Debug, Clone)]
pub struct UpstreamMetadata {
    /// Its issuer (equal to the configured one).
    pub issuer: String,
    /// Where people sign in.
    pub authorization_endpoint: String,
    /// Where codes are exchanged.
    pub token_endpoint: String,
    /// Its keys.
    pub jwks_uri: String,
    /// Algorithms it signs ID tokens with.
    pub id_token_algs: Vec<String>,
}

struct Cached {
    metadata: UpstreamMetadata,
    keys: Vec<VerifyingKey>,
    fetched: Instant,
}

/// The verified identity an upstream sign-in yields.
#[derive(Debug, Clone)]
pub struct UpstreamIdentity {
    /// Upstream issuer.
    pub issuer: String,
    /// Upstream subject.
    pub subject: String,
    /// A username suggestion (`preferred_username` or `email`).
    pub preferred_username: Option<String>,
}

/// Longest a cached discovery document and key set are used.
const CACHE_FOR: Duration = Duration::from_secs(3_600);
/// Soonest the key set is fetched again for an unknown `kid`.
const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// Largest upstream response read.
const MAX_RESPONSE: usize = 256 * 1024;

/// A client of the upstream provider.
pub struct Federation {
    config: FederationConfig,
    http: reqwest::Client,
    cache: Mutex<Option<std::sync::Arc<Cached>>>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

fn up(e: impl std::fmt::Display) -> FederationError {
    FederationError::Upstream(e.to_string())
}

/// Upstream JWKs often leave out `alg` (it is optional in RFC 7517). Only
/// where the key type fixes the algorithm, or the provider names exactly
/// one RSA algorithm we accept, is it filled in; anything else is skipped.
fn with_alg(mut key: Map<String, Value>, id_token_algs: &[String]) -> Option<Map<String, Value>> {
    if key.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
        return None;
    }
    if !key.contains_key("alg") {
        let kty = key.get("kty").and_then(Value::as_str)?;
        let crv = key.get("crv").and_then(Value::as_str);
        let alg = match (kty, crv) {
            ("EC", Some("P-256")) => "ES256",
            ("OKP", Some("Ed25519")) => "EdDSA",
            ("RSA", _) if id_token_algs.iter().any(|a| a == "RS256") => "RS256",
            _ => return None,
        };
        key.insert("alg".to_owned(), Value::String(alg.to_owned()));
    }
    Some(key)
}

impl Federation {
    /// A client for the configured provider.
    pub fn new(config: FederationConfig) -> Result<Self, FederationError> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(up)?;
        Ok(Self {
            config,
            http,
            cache: Mutex::new(None),
        })
    }

    /// The provider's issuer as configured, without a trailing slash: the
    /// issuer half of every link.
    pub fn issuer(&self) -> &str {
        self.config.issuer.trim_end_matches('/')
    }

    /// The configuration.
    pub fn config(&self) -> &FederationConfig {
        &self.config
    }

    async fn get_json(&self, url: &str) -> Result<Value, FederationError> {
        let resp = self.http.get(url).send().await.map_err(up)?;
        if !resp.status().is_success() {
            return Err(up(format!("GET {url} answered {}", resp.status())));
        }
        let bytes = resp.bytes().await.map_err(up)?;
        if bytes.len() > MAX_RESPONSE {
            return Err(up(format!("GET {url}: response too large")));
        }
        serde_json::from_slice(&bytes).map_err(up)
    }

    async fn fetch(&self) -> Result<std::sync::Arc<Cached>, FederationError> {
        let issuer = self.config.issuer.trim_end_matches('/');
        let doc = self
            .get_json(&format!("{issuer}/.well-known/openid-configuration"))
            .await?;
        let s = |name: &str| {
            doc.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| FederationError::Discovery(format!("`{name}` is missing")))
        };
        let metadata = UpstreamMetadata {
            issuer: s("issuer")?,
            authorization_endpoint: s("authorization_endpoint")?,
            token_endpoint: s("token_endpoint")?,
            jwks_uri: s("jwks_uri")?,
            id_token_algs: doc
                .get("id_token_signing_alg_values_supported")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_else(|| vec!["RS256".to_owned()]),
        };
        if metadata.issuer.trim_end_matches('/') != issuer {
            return Err(FederationError::Discovery(format!(
                "issuer `{}` is not the configured `{issuer}`",
                metadata.issuer
            )));
        }
        let jwks = self.get_json(&metadata.jwks_uri).await?;
        let mut keys = Vec::new();
        for key in jwks.get("keys").and_then(Value::as_array).into_iter().flatten() {
            let Some(map) = key
                .as_object()
                .cloned()
                .and_then(|m| with_alg(m, &metadata.id_token_algs))
            else {
                continue;
            };
            match VerifyingKey::from_jwk_object(&map) {
                Ok(k) => keys.push(k),
                Err(e) => tracing::debug!(error = %e, "upstream key skipped"),
            }
        }
        if keys.is_empty() {
            return Err(FederationError::Discovery(
                "no usable signing key in the key set".to_owned(),
            ));
        }
        let cached = std::sync::Arc::new(Cached {
            metadata,
            keys,
            fetched: Instant::now(),
        });
        *self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cached.clone());
        Ok(cached)
    }

    async fn cached(&self, refresh_keys: bool) -> Result<std::sync::Arc<Cached>, FederationError> {
        let current = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match current {
            Some(c) if c.fetched.elapsed() < CACHE_FOR && !(refresh_keys && c.fetched.elapsed() >= REFETCH_AFTER) => {
                Ok(c)
            }
            _ => self.fetch().await,
        }
    }

    /// Discovery, cached.
    pub async fn metadata(&self) -> Result<UpstreamMetadata, FederationError> {
        Ok(self.cached(false).await?.metadata.clone())
    }

    /// Exchanges the upstream code and verifies the ID token it returns.
    pub async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
        nonce: &str,
        now: i64,
        leeway: i64,
    ) -> Result<UpstreamIdentity, FederationError> {
        let meta = self.metadata().await?;
        let resp = self
            .http
            .post(&meta.token_endpoint)
            .basic_auth(
                form_encode(&self.config.client_id),
                Some(form_encode(&self.config.client_secret)),
            )
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .map_err(up)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(up)?;
        if bytes.len() > MAX_RESPONSE {
            return Err(up("token response too large"));
        }
        let body: Value = serde_json::from_slice(&bytes).map_err(up)?;
        if !status.is_success() {
            let error = body.get("error").and_then(Value::as_str).unwrap_or("unknown");
            return Err(up(format!("token endpoint answered {status} `{error}`")));
        }
        let id_token = body
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| up("token response has no id_token"))?;
        self.verify_id_token(id_token, nonce, now, leeway).await
    }

    /// Verifies an upstream ID token with the shared strict JOSE layer.
    pub async fn verify_id_token(
        &self,
        token: &str,
        nonce: &str,
        now: i64,
        leeway: i64,
    ) -> Result<UpstreamIdentity, FederationError> {
        let bad = |m: String| FederationError::IdToken(m);
        let mut cached = self.cached(false).await?;
        let kid_known = |c: &Cached| {
            castellan_jose::decode_unverified_header(token)
                .ok()
                .and_then(|h| h.get("kid").and_then(Value::as_str).map(str::to_owned))
                .is_some_and(|kid| c.keys.iter().any(|k| k.kid() == kid))
        };
        if !kid_known(&cached) {
            cached = self.cached(true).await?;
        }
        let verified = verify_compact(token, VerifyOptions::default(), |kid| {
            cached.keys.iter().find(|k| k.kid() == kid)
        })
        .map_err(|e| bad(e.to_string()))?;
        if let Some(Value::String(typ)) = verified.header.get("typ") {
            if !typ.eq_ignore_ascii_case("JWT") {
                return Err(bad(format!("typ `{typ}` is not an ID token")));
            }
        }
        if !cached.metadata.id_token_algs.iter().any(|a| a == verified.alg.as_str()) {
            return Err(bad(format!(
                "alg `{}` is not one the provider advertises",
                verified.alg.as_str()
            )));
        }
        let c = &verified.claims;
        let text = |name: &str| c.get(name).and_then(Value::as_str);
        let num = |name: &str| c.get(name).and_then(Value::as_i64);
        if text("iss") != Some(cached.metadata.issuer.as_str()) {
            return Err(bad("issuer does not match".to_owned()));
        }
        let me = self.config.client_id.as_str();
        let audiences: Vec<&str> = match c.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !audiences.contains(&me) {
            return Err(bad("audience does not include our client id".to_owned()));
        }
        if (audiences.len() > 1 || text("azp").is_some()) && text("azp") != Some(me) {
            return Err(bad("azp is not our client id".to_owned()));
        }
        let exp = num("exp").ok_or_else(|| bad("`exp` missing".to_owned()))?;
        if exp <= now.saturating_sub(leeway) {
            return Err(bad("expired".to_owned()));
        }
        let iat = num("iat").ok_or_else(|| bad("`iat` missing".to_owned()))?;
        if iat > now.saturating_add(leeway) {
            return Err(bad("issued in the future".to_owned()));
        }
        match text("nonce") {
            Some(n) if aws_lc_rs::constant_time::verify_slices_are_equal(n.as_bytes(), nonce.as_bytes()).is_ok() => {}
            _ => return Err(bad("nonce does not match".to_owned())),
        }
        let subject = text("sub")
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .ok_or_else(|| bad("`sub` missing".to_owned()))?;
        Ok(UpstreamIdentity {
            issuer: self.issuer().to_owned(),
            subject: subject.to_owned(),
            preferred_username: text("preferred_username").or_else(|| text("email")).map(str::to_owned),
        })
    }
}

/// RFC 6749 §2.3.1: client credentials are form-encoded inside Basic.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn algorithms_are_inferred_only_where_unambiguous() {
        let rs = vec!["RS256".to_owned()];
        let ec = json!({"kty":"EC","crv":"P-256","kid":"a"})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(with_alg(ec, &[]).unwrap()["alg"], "ES256");
        let rsa = json!({"kty":"RSA","kid":"b"}).as_object().cloned().unwrap();
        assert!(with_alg(rsa.clone(), &["PS256".to_owned()]).is_none());
        assert_eq!(with_alg(rsa, &rs).unwrap()["alg"], "RS256");
        let enc = json!({"kty":"EC","crv":"P-256","kid":"c","use":"enc"})
            .as_object()
            .cloned()
            .unwrap();
        assert!(with_alg(enc, &rs).is_none());
        let p384 = json!({"kty":"EC","crv":"P-384","kid":"d"})
            .as_object()
            .cloned()
            .unwrap();
        assert!(with_alg(p384, &rs).is_none());
    }
}
