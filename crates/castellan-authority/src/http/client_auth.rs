//! Client authentication at the token, introspection and revocation
//! endpoints: `client_secret_basic`, `client_secret_post`,
//! `private_key_jwt` (RFC 7523), exactly one per request, or
//! `tls_client_auth` (RFC 8705) with an SVID on the mTLS listener.

use super::error::ApiError;
use super::form::Form;
use crate::Authority;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use castellan_jose::{decode_unverified_claims, verify_compact, Jwks, VerifyOptions};
use castellan_store::ClientRecord;
use castellan_workload::{PeerIdentity, PresentedCertificate};
use serde_json::Value;

/// The `client_assertion_type` of RFC 7523.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest a client assertion may live; replay protection remembers its
/// `jti` this long, so the cache stays bounded.
pub const MAX_ASSERTION_LIFETIME: i64 = 300;

const FAILED: &str = "client authentication failed";

fn decode_form_component(s: &str) -> Option<String> {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// `Authorization: Basic` credentials, form-decoded as RFC 6749 §2.3.1 asks.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::invalid_client("malformed Authorization header"))?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Err(ApiError::invalid_client("malformed Authorization header"));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::invalid_client(
            "only the Basic scheme authenticates clients here",
        ));
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::invalid_client("malformed Basic credentials"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| ApiError::invalid_client("malformed Basic credentials"))?;
    match (decode_form_component(id), decode_form_component(secret)) {
        (Some(id), Some(secret)) if !id.is_empty() => Ok(Some((id, secret))),
        _ => Err(ApiError::invalid_client("malformed Basic credentials")),
    }
}

/// What the TLS layer established about the caller: set only on the mTLS
/// listener, after rustls verified the chain against the trust bundle.
#[derive(Debug, Default, Clone)]
pub struct Peer {
    /// The SPIFFE ID of the client certificate.
    pub identity: Option<PeerIdentity>,
    /// The client certificate.
    pub certificate: Option<PresentedCertificate>,
}

impl Peer {
    /// From a request's extensions.
    pub fn of<B>(req: &axum::http::Request<B>) -> Self {
        Self {
            identity: req.extensions().get::<PeerIdentity>().cloned(),
            certificate: req.extensions().get::<PresentedCertificate>().cloned(),
        }
    }

    /// The `x5t#S256` to bind tokens to: the certificate a `tls_client_auth`
    /// client authenticated with (RFC 8705 §3).
    pub fn binding_for(&self, client: &ClientRecord) -> Option<String> {
        client.tls_client_auth_san_uri.as_ref()?;
        self.certificate.as_ref().map(|c| c.x5t_s256().to_owned())
    }
}

/// `tls_client_auth`: the certificate on this connection carries the
/// client's registered SPIFFE ID.
fn check_tls(client: ClientRecord, peer: &Peer) -> Result<ClientRecord, ApiError> {
    let Some(registered) = client.tls_client_auth_san_uri.as_deref() else {
        return Err(ApiError::invalid_client(FAILED));
    };
    match &peer.identity {
        Some(id) if id.spiffe_id().as_str() == registered => Ok(client),
        Some(_) => Err(ApiError::invalid_client(FAILED)),
        None => Err(ApiError::invalid_client(
            "client authenticates with tls_client_auth: call the mtls endpoint with its certificate",
        )),
    }
}

/// Authenticates the calling client. `endpoint` is this endpoint's URL, an
/// accepted `aud` of a client assertion besides the issuer.
pub async fn authenticate(
    auth: &Authority,
    headers: &HeaderMap,
    form: &Form,
    endpoint: &str,
    peer: &Peer,
) -> Result<ClientRecord, ApiError> {
    let basic = basic_credentials(headers)?;
    let post_secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    let methods = usize::from(basic.is_some()) + usize::from(post_secret.is_some()) + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(ApiError::invalid_request(
            "more than one client authentication method used",
        ));
    }
    if let Some((id, secret)) = basic {
        if form.get("client_id").is_some_and(|f| f != id) {
            return Err(ApiError::invalid_client(FAILED));
        }
        return check_secret(auth, &id, &secret).await;
    }
    if let Some(secret) = post_secret {
        let id = form
            .get("client_id")
            .ok_or_else(|| ApiError::invalid_request("client_secret without client_id"))?;
        return check_secret(auth, id, secret).await;
    }
    if let Some(assertion) = assertion {
        return check_assertion(auth, form, assertion, endpoint).await;
    }
    if let Some(id) = form.get("client_id") {
        if let Some(c) = auth.client(id).await? {
            if c.tls_client_auth_san_uri.is_some() {
                return check_tls(c, peer);
            }
        }
    }
    Err(ApiError::invalid_client("client authentication required"))
}

/// As [`authenticate`], but a public client (no credentials, PKCE instead)
/// may identify itself with `client_id` alone. For the token endpoint's
/// code and refresh grants and for revocation, never for introspection.
pub async fn authenticate_allowing_public(
    auth: &Authority,
    headers: &HeaderMap,
    form: &Form,
    endpoint: &str,
    peer: &Peer,
) -> Result<ClientRecord, ApiError> {
    let credentials = headers.contains_key(header::AUTHORIZATION)
        || form.get("client_secret").is_some()
        || form.get("client_assertion").is_some();
    if !credentials {
        if let Some(id) = form.get("client_id") {
            return match auth.client(id).await? {
                Some(c) if c.public => Ok(c),
                Some(c) if c.tls_client_auth_san_uri.is_some() => check_tls(c, peer),
                _ => Err(ApiError::invalid_client(FAILED)),
            };
        }
    }
    let client = authenticate(auth, headers, form, endpoint, peer).await?;
    Ok(client)
}

async fn check_secret(auth: &Authority, id: &str, secret: &str) -> Result<ClientRecord, ApiError> {
    let client = auth.client(id).await?;
    match client {
        Some(c) => match &c.secret_hash {
            Some(hash) if auth.master().verify_secret(secret, hash) => Ok(c),
            _ => Err(ApiError::invalid_client(FAILED)),
        },
        None => {
            // Same work as a known client, so timing does not reveal which ids exist.
            let _ = auth.master().verify_secret(secret, &[0u8; 32]);
            Err(ApiError::invalid_client(FAILED))
        }
    }
}

fn num(claims: &serde_json::Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::invalid_client(format!("assertion `{name}` is not an integer"))),
    }
}

async fn check_assertion(
    auth: &Authority,
    form: &Form,
    assertion: &str,
    endpoint: &str,
) -> Result<ClientRecord, ApiError> {
    if form.get("client_assertion_type") != Some(JWT_BEARER_ASSERTION) {
        return Err(ApiError::invalid_request(format!(
            "client_assertion_type must be `{JWT_BEARER_ASSERTION}`"
        )));
    }
    let peek = decode_unverified_claims(assertion).map_err(|e| ApiError::invalid_client(format!("assertion: {e}")))?;
    let iss = peek
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid_client("assertion has no `iss`"))?;
    if form.get("client_id").is_some_and(|f| f != iss) {
        return Err(ApiError::invalid_client(FAILED));
    }
    let client = auth
        .client(iss)
        .await?
        .ok_or_else(|| ApiError::invalid_client(FAILED))?;
    let jwks = client
        .jwks
        .as_deref()
        .ok_or_else(|| ApiError::invalid_client("client has no registered keys for private_key_jwt"))?;
    let keys = Jwks::parse_strict(jwks.as_bytes()).map_err(|e| ApiError::server_error(&e))?;
    let verified = verify_compact(assertion, VerifyOptions::default(), |kid| {
        keys.iter().find(|k| k.kid() == kid)
    })
    .map_err(|e| ApiError::invalid_client(format!("assertion: {e}")))?;
    if let Some(Value::String(typ)) = verified.header.get("typ") {
        if typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(ApiError::invalid_client("an access token is not a client assertion"));
        }
    }
    let c = &verified.claims;
    if c.get("iss").and_then(Value::as_str) != Some(client.client_id.as_str())
        || c.get("sub").and_then(Value::as_str) != Some(client.client_id.as_str())
    {
        return Err(ApiError::invalid_client(
            "assertion `iss` and `sub` must both be the client id",
        ));
    }
    let issuer = auth.issuer();
    let aud_ok = |a: &Value| a.as_str().is_some_and(|a| a == endpoint || a == issuer);
    let aud_matches = match c.get("aud") {
        Some(Value::Array(list)) => list.iter().any(aud_ok),
        Some(a) => aud_ok(a),
        None => false,
    };
    if !aud_matches {
        return Err(ApiError::invalid_client(
            "assertion `aud` must be the issuer or this endpoint",
        ));
    }
    let now = auth.now();
    let leeway = auth.leeway();
    let exp = num(c, "exp")?.ok_or_else(|| ApiError::invalid_client("assertion has no `exp`"))?;
    if exp <= now.saturating_sub(leeway) {
        return Err(ApiError::invalid_client("assertion expired"));
    }
    if exp > now.saturating_add(MAX_ASSERTION_LIFETIME + leeway) {
        return Err(ApiError::invalid_client(format!(
            "assertion lives longer than {MAX_ASSERTION_LIFETIME}s"
        )));
    }
    for name in ["nbf", "iat"] {
        if num(c, name)?.is_some_and(|t| t > now.saturating_add(leeway)) {
            return Err(ApiError::invalid_client(format!("assertion `{name}` is in the future")));
        }
    }
    let jti = c
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| ApiError::invalid_client("assertion needs a `jti` of 1 to 256 characters"))?;
    let fresh = auth
        .store()
        .record_jti(&client.client_id, jti, exp.saturating_add(leeway), now)
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    if !fresh {
        return Err(ApiError::invalid_client("assertion replayed"));
    }
    Ok(client)
}
