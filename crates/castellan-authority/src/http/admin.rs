//! The admin API, protected by an access token for the authority itself
//! (`aud` = issuer) with scope `castellan.admin`, from a client that is
//! still an admin.

use super::error::ApiError;
use super::form::{read_body, require_json};
use crate::audit::{client_actor, AuditEntry, Outcome};
use crate::authority::valid_client_id;
use crate::keys::KeyInfo;
use crate::secrets::{new_client_secret, random_id};
use crate::{Authority, ADMIN_SCOPE};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use castellan_core::{AccessTokenClaims, HumanDuration};
use castellan_jose::Jwks;
use castellan_store::{ClientRecord, RevocationEvent, RevocationKind, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Admin routes, nested under `/admin/v1`.
pub fn router() -> Router<Arc<Authority>> {
    Router::new()
        .route("/clients", get(list_clients).post(create_client))
        .route("/clients/{id}", get(show_client).delete(delete_client))
        .route("/clients/{id}/rotate-secret", post(rotate_secret))
        .route("/keys", get(list_keys))
        .route("/keys/rotate", post(rotate_keys))
        .route("/sessions/{id}/revoke", revoke_route(RevocationKind::Session))
        .route("/subjects/{id}/revoke", revoke_route(RevocationKind::Subject))
        .route("/clients/{id}/revoke", revoke_route(RevocationKind::Client))
        .route("/verifiers", get(list_verifiers))
        .merge(super::admin_users::router())
        .merge(super::workload::admin_router())
        .merge(super::policies::admin_router())
        .merge(super::decisions::admin_router())
        .merge(super::canaries::admin_router())
        .merge(super::report::admin_router())
        .merge(super::audit::admin_router())
}

pub(super) async fn require_admin(auth: &Authority, headers: &HeaderMap) -> Result<AccessTokenClaims, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(ApiError::bearer_required)?
        .to_str()
        .map_err(|_| ApiError::invalid_token("malformed Authorization header"))?;
    let token = match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => t.trim(),
        _ => return Err(ApiError::invalid_token("Authorization must be `Bearer <token>`")),
    };
    let claims = match auth.check_access_token(token).await {
        Ok((c, _)) => c,
        Err(crate::tokens::TokenRejection::Store(e)) => return Err(ApiError::server_error(&e)),
        Err(e) => return Err(ApiError::invalid_token(e.to_string())),
    };
    if claims.aud != auth.issuer() {
        return Err(ApiError::invalid_token("token is not for this authority"));
    }
    // Admin clients authenticate with a secret or a key, never a
    // certificate, so an admin token is never bound; refuse any bound token
    // rather than accept it without its certificate.
    if claims.cnf.is_some() {
        return Err(ApiError::invalid_token(
            "certificate-bound tokens are not accepted by the admin api",
        ));
    }
    if !claims
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .any(|s| s == ADMIN_SCOPE)
    {
        return Err(ApiError::insufficient_scope(ADMIN_SCOPE));
    }
    match auth.client(&claims.client_id).await? {
        Some(c) if c.admin => Ok(claims),
        _ => Err(ApiError::invalid_token("client is no longer an admin")),
    }
}

pub(super) async fn json_body<T: for<'de> Deserialize<'de>>(
    auth: &Authority,
    req: Request,
    empty_ok: bool,
) -> Result<Option<T>, ApiError> {
    json_body_up_to(req, empty_ok, auth.config().limits.max_body_bytes).await
}

/// As [`json_body`], with its own size limit (for documents larger than a
/// request usually is, such as policy sets).
pub(super) async fn json_body_up_to<T: for<'de> Deserialize<'de>>(
    req: Request,
    empty_ok: bool,
    limit: usize,
) -> Result<Option<T>, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, limit).await?;
    if bytes.is_empty() && empty_ok {
        return Ok(None);
    }
    require_json(&parts.headers)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::invalid_request(format!("body: {e}")))
}

/// A client as the admin API shows it; the secret only on create and rotate.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientView {
    /// Id.
    pub client_id: String,
    /// Secret, only when just created or rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Name.
    pub name: String,
    /// Audiences it may request.
    pub audiences: Vec<String>,
    /// Scopes it may request.
    pub scopes: Vec<String>,
    /// Lifetime override.
    pub access_token_ttl: Option<String>,
    /// `client_secret` or `private_key_jwt`.
    pub auth_method: String,
    /// Admin.
    pub admin: bool,
    /// Created.
    pub created_at: i64,
    /// A public client (PKCE, no secret).
    #[serde(default)]
    pub public: bool,
    /// Registered redirect URIs (authorization-code flow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// Registered post-logout redirect URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// The audience this client serves (token exchange source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serves: Option<String>,
    /// Audiences it may exchange tokens toward.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exchange_audiences: Vec<String>,
    /// RFC 8705 `tls_client_auth`: the SPIFFE ID its certificate carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
}

impl ClientView {
    fn of(c: &ClientRecord, secret: Option<String>) -> Self {
        Self {
            client_id: c.client_id.clone(),
            client_secret: secret,
            name: c.name.clone(),
            audiences: c.audiences.clone(),
            scopes: c.scopes.clone(),
            access_token_ttl: c
                .access_token_ttl
                .and_then(|s| u64::try_from(s).ok())
                .map(|s| HumanDuration::from_secs(s).to_string()),
            auth_method: if c.public {
                "none"
            } else if c.tls_client_auth_san_uri.is_some() {
                "tls_client_auth"
            } else if c.jwks.is_some() {
                "private_key_jwt"
            } else {
                "client_secret"
            }
            .to_owned(),
            admin: c.admin,
            created_at: c.created_at,
            public: c.public,
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            serves: c.serves.clone(),
            exchange_audiences: c.exchange_audiences.clone(),
            tls_client_auth_san_uri: c.tls_client_auth_san_uri.clone(),
        }
    }
}

/// `POST /admin/v1/clients` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    /// Human name.
    pub name: String,
    /// Services it may get tokens for (none for admin clients and
    /// decision-log shippers, which call only the authority).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Scopes it may be granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Lifetime override, `30s`..max.
    #[serde(default)]
    pub access_token_ttl: Option<HumanDuration>,
    /// Public keys for `private_key_jwt`; no secret is issued then.
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// Redirect URIs for the authorization-code flow (apps people sign in to).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return the browser.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client (browser or mobile app): no secret, PKCE required.
    #[serde(default)]
    pub public: bool,
    /// The audience this client itself serves, if it is a service.
    #[serde(default)]
    pub serves: Option<String>,
    /// Audiences it may exchange tokens addressed to `serves` toward (RFC 8693).
    #[serde(default)]
    pub exchange_audiences: Vec<String>,
    /// Authenticate with an SVID carrying this SPIFFE ID (RFC 8705
    /// `tls_client_auth`); no secret is issued then and its tokens are
    /// bound to the certificate.
    #[serde(default)]
    pub tls_client_auth_san_uri: Option<String>,
}

/// A redirect URI we accept at registration: absolute, no fragment, at most
/// 512 bytes; `https`, `http` only to a loopback host, or a private-use
/// scheme with a dot (RFC 8252 §7.1, for native apps).
pub fn valid_redirect_uri(uri: &str) -> bool {
    if uri.len() > 512 {
        return false;
    }
    let Ok(u) = url::Url::parse(uri) else {
        return false;
    };
    if u.fragment().is_some() || u.as_str() != uri && u.as_str() != format!("{uri}/") {
        return false;
    }
    match u.scheme() {
        "https" => u.host().is_some(),
        "http" => matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost")),
        other => other.contains('.'),
    }
}

fn check_create(auth: &Authority, req: &CreateClient) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::invalid_request(m));
    if req.name.trim().is_empty() || req.name.chars().count() > 128 || req.name.chars().any(char::is_control) {
        return bad("name must be 1 to 128 printable characters".into());
    }
    // Admin clients call the authority itself; decision shippers call only
    // the decision log: neither needs a service audience.
    let authority_only = req
        .scopes
        .iter()
        .any(|s| s == ADMIN_SCOPE || s.starts_with("castellan.decisions:"));
    if req.audiences.is_empty() && req.exchange_audiences.is_empty() && !authority_only {
        return bad("at least one audience is required".into());
    }
    if req.audiences.len() > 64 || req.scopes.len() > 64 {
        return bad("at most 64 audiences and 64 scopes".into());
    }
    if !req.exchange_audiences.is_empty() && req.serves.is_none() {
        return bad("exchange_audiences needs `serves`: a service exchanges only tokens sent to it".into());
    }
    if req.public && (req.serves.is_some() || !req.exchange_audiences.is_empty()) {
        return bad("a public client cannot serve an audience or exchange tokens".into());
    }
    if req.exchange_audiences.len() > 64 {
        return bad("at most 64 exchange audiences".into());
    }
    for a in req.audiences.iter().chain(&req.serves).chain(&req.exchange_audiences) {
        if a.is_empty() || a.len() > 256 || a.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("audiences must be 1 to 256 characters without spaces".into());
        }
    }
    for s in &req.scopes {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !ok {
            return bad("scopes must be RFC 6749 scope tokens of at most 128 characters".into());
        }
    }
    for uri in req.redirect_uris.iter().chain(&req.post_logout_redirect_uris) {
        if !valid_redirect_uri(uri) {
            let shown: String = uri.chars().take(80).collect();
            return bad(format!(
                "redirect URI `{shown}` is not acceptable (absolute, no fragment, https or http to loopback)"
            ));
        }
    }
    if req.redirect_uris.len() > 16 || req.post_logout_redirect_uris.len() > 16 {
        return bad("at most 16 redirect URIs of each kind".into());
    }
    if req.public {
        if req.redirect_uris.is_empty() {
            return bad("a public client needs at least one redirect URI".into());
        }
        if req.jwks.is_some() || req.scopes.iter().any(|s| s == ADMIN_SCOPE) {
            return bad("a public client has no credentials and cannot be an admin".into());
        }
    }
    if let Some(uri) = &req.tls_client_auth_san_uri {
        let id = castellan_ca::SpiffeId::parse(uri)
            .map_err(|e| ApiError::invalid_request(format!("tls_client_auth_san_uri: {e}")))?;
        if !id.is_member_of(auth.ca().trust_domain()) {
            return bad(format!(
                "tls_client_auth_san_uri `{id}` is outside trust domain `{}`",
                auth.ca().trust_domain()
            ));
        }
        if crate::mtls::is_reserved(&id) {
            return bad(format!(
                "tls_client_auth_san_uri `{id}` is reserved for the authority itself"
            ));
        }
        if req.scopes.iter().any(|s| s == ADMIN_SCOPE) {
            return bad(
                "a tls_client_auth client cannot be an admin: admin clients use a secret or private_key_jwt".into(),
            );
        }
        if req.public || req.jwks.is_some() {
            return bad("a tls_client_auth client has no other credentials: not public, no jwks".into());
        }
    }
    if let Some(ttl) = req.access_token_ttl {
        let max = auth.config().tokens.max_access_token_ttl;
        if ttl.secs() < 1 || ttl > max {
            return bad(format!("access_token_ttl must be between 1s and {max}"));
        }
    }
    Ok(())
}

async fn list_clients(State(auth): State<Arc<Authority>>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    let clients = auth
        .store()
        .list_clients()
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let views: Vec<ClientView> = clients.iter().map(|c| ClientView::of(c, None)).collect();
    Ok(Json(serde_json::json!({ "clients": views })).into_response())
}

async fn create_client(State(auth): State<Arc<Authority>>, req: Request) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, req.headers()).await?;
    let body: CreateClient = json_body(&auth, req, false)
        .await?
        .ok_or_else(|| ApiError::invalid_request("body required"))?;
    check_create(&auth, &body)?;
    let jwks = match &body.jwks {
        Some(v) => {
            let text = v.to_string();
            Jwks::parse_strict(text.as_bytes()).map_err(|e| ApiError::invalid_request(format!("jwks: {e}")))?;
            Some(text)
        }
        None => None,
    };
    let secret = if jwks.is_none() && !body.public && body.tls_client_auth_san_uri.is_none() {
        Some(new_client_secret().map_err(|e| ApiError::server_error(&e))?)
    } else {
        None
    };
    let client_id = random_id("").map_err(|e| ApiError::server_error(&e))?;
    debug_assert!(valid_client_id(&client_id));
    let mut audiences = body.audiences.clone();
    audiences.dedup();
    let mut scopes = body.scopes.clone();
    scopes.dedup();
    let record = ClientRecord {
        client_id: client_id.clone(),
        name: body.name.trim().to_owned(),
        secret_hash: secret.as_deref().map(|s| auth.master().hash_secret(s)),
        admin: scopes.iter().any(|s| s == ADMIN_SCOPE),
        audiences,
        scopes,
        access_token_ttl: body.access_token_ttl.map(HumanDuration::secs),
        jwks,
        created_at: auth.now(),
        redirect_uris: dedup(&body.redirect_uris),
        post_logout_redirect_uris: dedup(&body.post_logout_redirect_uris),
        public: body.public,
        serves: body.serves.clone(),
        exchange_audiences: dedup(&body.exchange_audiences),
        tls_client_auth_san_uri: body.tls_client_auth_san_uri.clone(),
    };
    match auth.store().insert_client(&record).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => return Err(ApiError::conflict("client id collision; retry")),
        Err(e) => return Err(ApiError::server_error(&e)),
    }
    tracing::info!(client_id = %client_id, name = %record.name, by = %caller.client_id, "client created");
    auth.audit(
        AuditEntry::new(
            client_actor(&caller.client_id),
            "client.create",
            client_actor(&client_id),
        )
        .detail(serde_json::json!({
            "name": record.name,
            "admin": record.admin,
            "audiences": record.audiences,
            "scopes": record.scopes,
        })),
    )
    .await;
    Ok((StatusCode::CREATED, Json(ClientView::of(&record, secret))).into_response())
}

async fn find(auth: &Authority, id: &str) -> Result<ClientRecord, ApiError> {
    auth.client(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no client `{}`", id.chars().take(128).collect::<String>())))
}

async fn show_client(
    State(auth): State<Arc<Authority>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    let c = find(&auth, &id).await?;
    Ok(Json(ClientView::of(&c, None)).into_response())
}

async fn delete_client(
    State(auth): State<Arc<Authority>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, &headers).await?;
    let c = find(&auth, &id).await?;
    if c.client_id == super::console::CLIENT_ID {
        return Err(ApiError::conflict(
            "the console's built-in sign-in client is not stored and cannot be deleted; `[console] enabled = false` switches it off",
        ));
    }
    if c.admin {
        let admins = auth
            .store()
            .list_clients()
            .await
            .map_err(|e| ApiError::server_error(&e))?
            .iter()
            .filter(|c| c.admin)
            .count();
        if admins <= 1 {
            return Err(ApiError::conflict("refusing to delete the last admin client"));
        }
    }
    // Its live tokens die with it: a client revocation first, then the record.
    auth.record_revocation(RevocationKind::Client, &c.client_id, auth.now())
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    auth.store()
        .delete_client(&c.client_id)
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    tracing::info!(client_id = %c.client_id, by = %caller.client_id, "client deleted");
    auth.audit(AuditEntry::new(
        client_actor(&caller.client_id),
        "client.delete",
        client_actor(&c.client_id),
    ))
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rotate_secret(
    State(auth): State<Arc<Authority>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, &headers).await?;
    let c = find(&auth, &id).await?;
    if c.jwks.is_some() {
        return Err(ApiError::conflict(
            "client authenticates with private_key_jwt; it has no secret",
        ));
    }
    if c.public {
        return Err(ApiError::conflict("a public client has no secret"));
    }
    if c.tls_client_auth_san_uri.is_some() {
        return Err(ApiError::conflict(
            "client authenticates with tls_client_auth; it has no secret",
        ));
    }
    let secret = new_client_secret().map_err(|e| ApiError::server_error(&e))?;
    let hash = auth.master().hash_secret(&secret);
    if !auth
        .store()
        .set_client_secret(&c.client_id, &hash)
        .await
        .map_err(|e| ApiError::server_error(&e))?
    {
        return Err(ApiError::not_found("client vanished"));
    }
    tracing::info!(client_id = %c.client_id, by = %caller.client_id, "client secret rotated");
    auth.audit(AuditEntry::new(
        client_actor(&caller.client_id),
        "client.rotate_secret",
        client_actor(&c.client_id),
    ))
    .await;
    let c = ClientRecord {
        secret_hash: Some(hash),
        ..c
    };
    Ok(Json(ClientView::of(&c, Some(secret))).into_response())
}

/// `GET /admin/v1/keys` and the answer of `POST /admin/v1/keys/rotate`.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyList {
    /// Every stored key.
    pub keys: Vec<KeyInfo>,
    /// After a rotation: live verifiers that did not hold the new active key yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub laggards: Vec<String>,
}

async fn list_keys(State(auth): State<Arc<Authority>>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    let set = auth.keys().current();
    Ok(Json(KeyList {
        keys: set.infos.clone(),
        laggards: Vec::new(),
    })
    .into_response())
}

/// `POST /admin/v1/keys/rotate` body; an empty body is a routine rotation.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateKeys {
    /// Withdraw the active key instead of retiring it.
    #[serde(default)]
    pub emergency: bool,
}

async fn rotate_keys(State(auth): State<Arc<Authority>>, req: Request) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, req.headers()).await?;
    let body: RotateKeys = json_body(&auth, req, true).await?.unwrap_or_default();
    tracing::info!(emergency = body.emergency, by = %caller.client_id, "key rotation requested");
    // In its own task: a caller that disconnects during the acknowledgement wait
    // must not cancel a rotation half-way.
    // The audit event is recorded in the task too, for the same reason.
    let rotating = auth.clone();
    let actor = client_actor(&caller.client_id);
    let emergency = body.emergency;
    let outcome = tokio::spawn(async move {
        let before = rotating.keys().current();
        let outcome = rotating.rotate_keys(emergency).await;
        rotating
            .audit(rotation_entry(actor, emergency, &before, &outcome))
            .await;
        outcome
    })
    .await
    .map_err(|e| ApiError::server_error(&e))?
    .map_err(|e| match e {
        crate::keys::KeyError::Store(s) => ApiError::server_error(&s),
        crate::keys::KeyError::Busy => ApiError::conflict(e.to_string()),
        other => ApiError::server_error(&other),
    })?;
    Ok(Json(KeyList {
        keys: outcome.keys.infos.clone(),
        laggards: outcome.laggards,
    })
    .into_response())
}

/// The audit event of a signing-key rotation (`key.rotate`, or
/// `key.withdraw` for an emergency): the key that was active, the one
/// active now, or the error.
pub(crate) fn rotation_entry(
    actor: String,
    emergency: bool,
    before: &crate::keys::KeySet,
    outcome: &Result<crate::authority::RotationOutcome, crate::keys::KeyError>,
) -> AuditEntry {
    let active = |set: &crate::keys::KeySet| {
        set.infos
            .iter()
            .find(|k| k.state == castellan_store::KeyState::Active)
            .map(|k| k.kid.clone())
    };
    let action = if emergency { "key.withdraw" } else { "key.rotate" };
    let old = active(before);
    let target = old.as_deref().map(|k| format!("key:{k}")).unwrap_or_default();
    match outcome {
        Ok(o) => AuditEntry::new(actor, action, target).detail(serde_json::json!({
            "previous_kid": old,
            "active_kid": active(&o.keys),
            "emergency": emergency,
            "laggards": o.laggards,
        })),
        Err(e) => AuditEntry::new(actor, action, target)
            .outcome(Outcome::Failure)
            .detail(serde_json::json!({ "emergency": emergency, "error": e.to_string() })),
    }
}

/// `POST /admin/v1/{sessions,subjects,clients}/{id}/revoke`: what was recorded.
#[derive(Debug, Serialize, Deserialize)]
pub struct Revoked {
    /// The event as verifiers receive it.
    pub event: RevocationEvent,
}

fn checked_id(id: &str) -> Result<&str, ApiError> {
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(ApiError::invalid_request("id must be 1 to 256 printable characters"));
    }
    Ok(id)
}

async fn revoke(auth: &Authority, headers: &HeaderMap, kind: RevocationKind, id: &str) -> Result<Response, ApiError> {
    let caller = require_admin(auth, headers).await?;
    let id = checked_id(id)?;
    if kind == RevocationKind::Client && auth.client(id).await?.is_none() {
        return Err(ApiError::not_found(format!("no client `{id}`")));
    }
    if kind == RevocationKind::Session {
        // A person's session also stops refreshing.
        auth.store()
            .end_session(id, auth.now())
            .await
            .map_err(|e| ApiError::server_error(&e))?;
    }
    let event = auth
        .record_revocation(kind, id, auth.now())
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    tracing::info!(kind = kind.as_str(), value = %id, seq = event.seq, by = %caller.client_id, "revoked");
    let action = match kind {
        RevocationKind::Session => "session.revoke",
        RevocationKind::Subject => "subject.revoke",
        RevocationKind::Client => "client.revoke",
        RevocationKind::Key => "key.revoke",
    };
    auth.audit(
        AuditEntry::new(
            client_actor(&caller.client_id),
            action,
            format!("{}:{id}", kind.as_str()),
        )
        .detail(serde_json::json!({ "revocation_seq": event.seq })),
    )
    .await;
    Ok(Json(Revoked { event }).into_response())
}

/// `POST .../{id}/revoke` for one kind of revocation.
fn revoke_route(kind: RevocationKind) -> axum::routing::MethodRouter<Arc<Authority>> {
    post(
        move |State(auth): State<Arc<Authority>>, Path(id): Path<String>, headers: HeaderMap| async move {
            revoke(&auth, &headers, kind, &id).await
        },
    )
}

async fn list_verifiers(State(auth): State<Arc<Authority>>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    let latest = auth
        .store()
        .latest_revocation_seq()
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let verifiers = auth.verifier_views().await;
    Ok(Json(serde_json::json!({ "verifiers": verifiers, "latest_seq": latest })).into_response())
}

fn dedup(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}
