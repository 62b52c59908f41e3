//! The policy store: Cedar policies per service, versioned, checked before
//! they are stored (parsed, and validated against the schema when one is
//! pushed), rolled back by storing an old version again, and distributed as
//! bundles signed with the authority's token signing key. Every push is
//! announced on the event stream (`policy` events) so connected services
//! fetch it at once; they poll as a fallback.

use super::admin::{json_body, json_body_up_to, require_admin};
use super::error::ApiError;
use crate::audit::{client_actor, AuditEntry};
use crate::Authority;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use castellan_store::PolicyVersionRecord;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Largest policy or schema text accepted, bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

/// Admin routes, nested under `/admin/v1`.
pub fn admin_router() -> Router<Arc<Authority>> {
    Router::new()
        .route("/policies", get(list_services))
        .route("/policies/{service}", get(list_versions).post(push))
        .route("/policies/{service}/rollback", post(rollback))
        .route("/policies/{service}/{version}", get(show))
}

/// A service name: 1 to 128 characters of `A-Z a-z 0-9 - _ . :`.
pub fn valid_service(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub(super) fn service_of(s: &str) -> Result<&str, ApiError> {
    if valid_service(s) {
        Ok(s)
    } else {
        Err(ApiError::invalid_request(
            "service names are 1 to 128 characters of A-Z a-z 0-9 - _ . :",
        ))
    }
}

/// `POST /admin/v1/policies/{service}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Push {
    /// Cedar policy text.
    pub policies: String,
    /// Cedar schema (human-readable format); policies are validated against it.
    #[serde(default)]
    pub schema: Option<String>,
    /// A note kept with the version.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /admin/v1/policies/{service}/rollback` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The version to put back in force (stored again as a new version).
    pub version: i64,
}

/// One version in listings (without the texts).
#[derive(Debug, Serialize, Deserialize)]
pub struct VersionView {
    /// The service.
    pub service: String,
    /// Its version number.
    pub version: i64,
    /// Stored at.
    pub created_at: i64,
    /// The admin client that pushed it.
    pub created_by: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// SHA-256 of the policy text, hex: equal texts, equal digests.
    pub policies_sha256: String,
    /// Whether a schema came with it.
    pub has_schema: bool,
}

pub(crate) fn sha256_hex(text: &str) -> String {
    use std::fmt::Write as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn view(r: &PolicyVersionRecord) -> VersionView {
    VersionView {
        service: r.service.clone(),
        version: r.version,
        created_at: r.created_at,
        created_by: r.created_by.clone(),
        note: r.note.clone(),
        policies_sha256: sha256_hex(&r.policies),
        has_schema: r.schema.is_some(),
    }
}

fn full(r: &PolicyVersionRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(view(r)).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("policies".to_owned(), serde_json::json!(r.policies));
        obj.insert("schema".to_owned(), serde_json::json!(r.schema));
    }
    v
}

/// Parses and (with a schema) validates; the error carries Cedar's diagnostics.
fn check(policies: &str, schema: Option<&str>) -> Result<castellan_authz::PolicySummary, ApiError> {
    if policies.len() > MAX_POLICY_BYTES || schema.is_some_and(|s| s.len() > MAX_POLICY_BYTES) {
        return Err(ApiError::invalid_request(format!(
            "policies and schema are limited to {MAX_POLICY_BYTES} bytes each"
        )));
    }
    castellan_authz::check_policies(policies, schema)
        .map_err(|e| ApiError::invalid_request(format!("refused, the version in force is unchanged: {e}")))
}

#[allow(clippy::too_many_arguments)] // each is a distinct fact of the version stored
async fn store_version(
    auth: &Authority,
    service: &str,
    policies: &str,
    schema: Option<&str>,
    by: &str,
    actor: String,
    note: Option<&str>,
    action: &'static str,
) -> Result<PolicyVersionRecord, ApiError> {
    let previous = auth
        .store()
        .get_policy_version(service, None)
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let record = auth
        .store()
        .append_policy_version(service, policies, schema, auth.now(), by, note)
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let (added, removed) = previous
        .as_ref()
        .map_or((policies.lines().count(), 0), |p| line_changes(&p.policies, policies));
    auth.audit(
        AuditEntry::new(actor, action, format!("policy:{service}")).detail(serde_json::json!({
            "service": service,
            "version": record.version,
            "previous_version": previous.as_ref().map(|p| p.version),
            "note": note,
            "lines_added": added,
            "lines_removed": removed,
            "sha256": sha256_hex(policies),
        })),
    )
    .await;
    metrics::counter!("castellan_policy_pushes_total").increment(1);
    auth.events().publish(crate::events::StreamEvent::Policy {
        service: service.to_owned(),
        version: record.version,
    });
    auth.announce(castellan_store::Change::Policy {
        service: service.to_owned(),
        version: record.version,
    })
    .await;
    Ok(record)
}

/// Lines only in `new` and lines only in `old` (as multisets): the audit
/// log's size of a change; `castellan policy diff` shows the lines.
fn line_changes(old: &str, new: &str) -> (usize, usize) {
    use std::collections::HashMap;
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for l in old.lines() {
        *counts.entry(l).or_default() -= 1;
    }
    for l in new.lines() {
        *counts.entry(l).or_default() += 1;
    }
    counts.values().fold((0, 0), |(a, r), &c| {
        let n = usize::try_from(c.unsigned_abs()).unwrap_or(usize::MAX);
        if c > 0 {
            (a.saturating_add(n), r)
        } else {
            (a, r.saturating_add(n))
        }
    })
}

async fn push(
    State(auth): State<Arc<Authority>>,
    Path(service): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, req.headers()).await?;
    let service = service_of(&service)?.to_owned();
    // Policies and schema, JSON-escaped, with room for the envelope.
    let limit = (2 * MAX_POLICY_BYTES + 1024).max(auth.config().limits.max_body_bytes);
    let body: Push = json_body_up_to(req, false, limit.saturating_mul(2))
        .await?
        .ok_or_else(|| ApiError::invalid_request("body required"))?;
    if body.note.as_ref().is_some_and(|n| n.len() > 512) {
        return Err(ApiError::invalid_request("note is limited to 512 bytes"));
    }
    let summary = check(&body.policies, body.schema.as_deref())?;
    let record = store_version(
        &auth,
        &service,
        &body.policies,
        body.schema.as_deref(),
        &caller.client_id,
        client_actor(&caller.client_id),
        body.note.as_deref(),
        "policy.push",
    )
    .await?;
    let mut v = serde_json::to_value(view(&record)).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("summary".to_owned(), serde_json::to_value(&summary).unwrap_or_default());
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn rollback(
    State(auth): State<Arc<Authority>>,
    Path(service): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, req.headers()).await?;
    let service = service_of(&service)?.to_owned();
    let body: Rollback = json_body(&auth, req, false)
        .await?
        .ok_or_else(|| ApiError::invalid_request("body required"))?;
    let record = rollback_to(
        &auth,
        &service,
        body.version,
        &caller.client_id,
        client_actor(&caller.client_id),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&record))).into_response())
}

/// Puts `version` of `service` back in force by storing it again as a new
/// version (the admin API's and the console's rollback); `by` is recorded.
pub(crate) async fn rollback_to(
    auth: &Authority,
    service: &str,
    version: i64,
    by: &str,
    actor: String,
) -> Result<PolicyVersionRecord, ApiError> {
    let old = auth
        .store()
        .get_policy_version(service, Some(version))
        .await
        .map_err(|e| ApiError::server_error(&e))?
        .ok_or_else(|| ApiError::not_found(format!("`{service}` has no version {version}")))?;
    // Checked again: a schema or Cedar upgrade may have made it invalid since.
    check(&old.policies, old.schema.as_deref())?;
    let note = format!("rollback to {}", old.version);
    store_version(
        auth,
        service,
        &old.policies,
        old.schema.as_deref(),
        by,
        actor,
        Some(&note),
        "policy.rollback",
    )
    .await
}

async fn list_services(State(auth): State<Arc<Authority>>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    let services = auth
        .store()
        .list_policy_services()
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let services: Vec<serde_json::Value> = services
        .into_iter()
        .map(|(service, version)| serde_json::json!({ "service": service, "version": version }))
        .collect();
    Ok(Json(serde_json::json!({ "services": services })).into_response())
}

async fn list_versions(
    State(auth): State<Arc<Authority>>,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    let service = service_of(&service)?;
    let versions = auth
        .store()
        .list_policy_versions(service)
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let versions: Vec<VersionView> = versions.iter().map(view).collect();
    Ok(Json(serde_json::json!({ "service": service, "versions": versions })).into_response())
}

async fn show(
    State(auth): State<Arc<Authority>>,
    Path((service, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    let service = service_of(&service)?;
    let wanted = match version.as_str() {
        "latest" => None,
        v => Some(
            v.parse::<i64>()
                .map_err(|_| ApiError::invalid_request("version must be a number or `latest`"))?,
        ),
    };
    let record = auth
        .store()
        .get_policy_version(service, wanted)
        .await
        .map_err(|e| ApiError::server_error(&e))?
        .ok_or_else(|| ApiError::not_found(format!("`{service}` has no version {version}")))?;
    Ok(Json(full(&record)).into_response())
}

/// `GET /policies/{service}/bundle`: the version in force as a compact JWS
/// signed with the active token signing key (`typ`
/// `castellan-policy+jwt`), for services to verify against the JWKS.
pub async fn bundle(State(auth): State<Arc<Authority>>, Path(service): Path<String>) -> Result<Response, ApiError> {
    let service = service_of(&service)?;
    let record = auth
        .store()
        .get_policy_version(service, None)
        .await
        .map_err(|e| ApiError::server_error(&e))?
        .ok_or_else(|| ApiError::not_found(format!("no policies for `{service}`")))?;
    let payload = serde_json::json!({
        "iss": auth.issuer(),
        "iat": auth.now(),
        "service": record.service,
        "version": record.version,
        "policies": record.policies,
        "schema": record.schema,
        "created_at": record.created_at,
    });
    let jws = auth
        .keys()
        .current()
        .active
        .sign_compact(castellan_authz::POLICY_BUNDLE_TYP, &payload)
        .map_err(|e| ApiError::server_error(&e))?;
    let mut resp = jws.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jwt"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        assert!(valid_service("orders"));
        assert!(valid_service("team.orders-api:v2"));
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(129)] {
            assert!(!valid_service(bad), "{bad:?}");
        }
    }

    #[test]
    fn line_changes_count_multisets() {
        assert_eq!(line_changes("a\nb\nc", "a\nc\nd\nd"), (2, 1));
        assert_eq!(line_changes("", "x"), (1, 0));
        assert_eq!(line_changes("same", "same"), (0, 0));
    }
}
