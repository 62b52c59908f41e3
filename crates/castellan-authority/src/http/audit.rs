//! The audit trail over the admin API: `GET /admin/v1/audit` and `GET /admin/v1/audit/verify`.

use super::admin::require_admin;
use super::error::ApiError;
use crate::Authority;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use castellan_store::audit_chain::to_hex;
use castellan_store::{AuditQuery, AuditRecord};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most events one page returns.
pub const MAX_LIMIT: u32 = 1_000;
/// Events per page when no `limit` is given.
const DEFAULT_LIMIT: u32 = 100;

/// Audit routes, merged into the admin router.
pub fn admin_router() -> Router<Arc<Authority>> {
    Router::new()
        .route("/audit", get(list))
        .route("/audit/verify", get(verify))
}

/// `GET /admin/v1/audit` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Only events at or after this time (seconds since the epoch).
    pub since: Option<i64>,
    /// Only events by this actor (`client:<id>`, `user:<id>`, `castellan`).
    pub actor: Option<String>,
    /// Only events with a higher sequence number (the previous page's `next_after`).
    pub after: Option<i64>,
    /// At most this many events (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// One event as the admin API (and the JSON-lines export) shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEventView {
    /// Position in the chain, gapless from 1.
    pub seq: i64,
    /// When, seconds since the epoch.
    pub at: i64,
    /// Who acted.
    pub actor: String,
    /// What was done (`noun.verb`).
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Further facts (a JSON object).
    pub detail: serde_json::Value,
    /// The link hash, lowercase hex.
    pub hash: String,
}

impl AuditEventView {
    /// The view of a stored event (detail that is not JSON is shown as a string).
    pub fn of(r: &AuditRecord) -> Self {
        Self {
            seq: r.seq,
            at: r.at,
            actor: r.actor.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            outcome: r.outcome.clone(),
            detail: serde_json::from_str(&r.detail).unwrap_or_else(|_| serde_json::Value::String(r.detail.clone())),
            hash: to_hex(&r.hash),
        }
    }
}

async fn list(
    State(auth): State<Arc<Authority>>,
    headers: HeaderMap,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&auth, &headers).await?;
    let Query(p) = params.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_request(format!(
            "`limit` must be between 1 and {MAX_LIMIT}"
        )));
    }
    let after = p.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid_request("`after` must not be negative"));
    }
    if p.since.is_some_and(|s| s < 0) {
        return Err(ApiError::invalid_request(
            "`since` must be seconds since the epoch, not negative",
        ));
    }
    if let Some(a) = &p.actor {
        if a.is_empty() || a.len() > 512 || a.chars().any(char::is_control) {
            return Err(ApiError::invalid_request(
                "`actor` must be 1 to 512 printable characters",
            ));
        }
    }
    let rows = auth
        .store()
        .list_audit(&AuditQuery {
            after_seq: after,
            since: p.since,
            actor: p.actor,
            limit,
        })
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let events: Vec<AuditEventView> = rows.iter().map(AuditEventView::of).collect();
    Ok(Json(serde_json::json!({ "events": events, "next_after": next })))
}

async fn verify(
    State(auth): State<Arc<Authority>>,
    headers: HeaderMap,
    params: Result<Query<std::collections::BTreeMap<String, String>>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&auth, &headers).await?;
    let Query(p) = params.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    if let Some(k) = p.keys().next() {
        return Err(ApiError::invalid_request(format!(
            "unknown query parameter `{}`",
            k.chars().take(64).collect::<String>()
        )));
    }
    let v = auth.verify_audit().await.map_err(|e| ApiError::server_error(&e))?;
    metrics::counter!("castellan_audit_verifications_total", "ok" => if v.ok() { "true" } else { "false" })
        .increment(1);
    if let Some(b) = &v.first_bad {
        tracing::error!(target: "castellan::audit", first_bad_seq = b.seq, problem = %b, "audit chain broken");
    }
    Ok(Json(serde_json::json!({
        "ok": v.ok(),
        "events": v.events,
        "head": v.head,
        "first_bad_seq": v.first_bad.as_ref().map(|b| b.seq),
        "problem": v.first_bad.as_ref().map(ToString::to_string),
    })))
}

/// Admin write routes (under `/admin/v1`) whose refusals are audited, with
/// their action and the kind of their path parameter. `POST /keys/rotate`
/// records its own failures.
const WRITES: &[(&str, &str, &str, &str)] = &[
    ("POST", "/clients", "client.create", ""),
    ("DELETE", "/clients/{id}", "client.delete", "client"),
    ("POST", "/clients/{id}/rotate-secret", "client.rotate_secret", "client"),
    ("POST", "/clients/{id}/revoke", "client.revoke", "client"),
    ("POST", "/sessions/{id}/revoke", "session.revoke", "session"),
    ("POST", "/subjects/{id}/revoke", "subject.revoke", "subject"),
    ("POST", "/users", "user.create", ""),
    ("DELETE", "/users/{name}", "user.delete", "username"),
    ("POST", "/users/{name}/password", "user.set_password", "username"),
    ("POST", "/users/{name}/suspend", "user.suspend", "username"),
    ("POST", "/users/{name}/resume", "user.resume", "username"),
    ("POST", "/workloads", "workload.register", ""),
    ("DELETE", "/workloads/{id}", "workload.delete", "workload"),
    ("POST", "/ca/rotate", "ca.rotate", ""),
    ("POST", "/policies/{service}", "policy.push", "policy"),
    ("POST", "/policies/{service}/rollback", "policy.rollback", "policy"),
    ("POST", "/canaries", "canary.mint", ""),
    ("POST", "/probe-runs", "probe_run.record", ""),
];

/// The audited write a request is, by method and path: its action and its
/// target (`kind:<path parameter>`, empty when the route has none).
fn write_of(method: &axum::http::Method, path: &str) -> Option<(&'static str, String)> {
    let path = path.strip_prefix(super::paths::ADMIN).unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    WRITES.iter().find_map(|(m, route, action, kind)| {
        if method.as_str() != *m {
            return None;
        }
        let pattern: Vec<&str> = route.split('/').collect();
        if pattern.len() != segments.len() {
            return None;
        }
        let mut param = None;
        for (p, s) in pattern.iter().zip(&segments) {
            if p.starts_with('{') {
                if s.is_empty() {
                    return None;
                }
                param = Some(*s);
            } else if p != s {
                return None;
            }
        }
        let target = param.map_or_else(String::new, |v| {
            target(kind, &percent_encoding::percent_decode_str(v).decode_utf8_lossy())
        });
        Some((*action, target))
    })
}

/// Largest error body read back for its code and description.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Middleware on the admin routes: an audited write that an admin asked for
/// and that was refused (bad input, a conflict, not found, a store failure)
/// is recorded as a failure, with the status and the error. Successes are
/// recorded by the handlers; requests from callers that are not admins are
/// not actions of anyone the trail knows.
pub async fn record_refusals(
    State(auth): State<Arc<Authority>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let Some((action, target)) = write_of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let headers = req.headers().clone();
    let resp = next.run(req).await;
    let status = resp.status();
    let refused = status.is_client_error() || status.is_server_error();
    if !refused || status == axum::http::StatusCode::UNAUTHORIZED {
        return resp;
    }
    let Ok(caller) = require_admin(&auth, &headers).await else {
        return resp;
    };
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
    // The body is sent again as read (empty if it was too long to read):
    // its length is the new body's, whatever the handler said.
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    auth.audit(
        crate::audit::AuditEntry::new(crate::audit::client_actor(&caller.client_id), action, target)
            .outcome(crate::audit::Outcome::Failure)
            .detail(serde_json::json!({
                "status": status.as_u16(),
                "error": error.get("error"),
                "error_description": error.get("error_description"),
            })),
    )
    .await;
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// A path parameter as an audit target: `kind:value`, at most 128 characters of the value.
fn target(kind: &str, value: &str) -> String {
    format!("{kind}:{}", value.chars().take(128).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audited_writes_are_found_by_route() {
        let post = axum::http::Method::POST;
        assert_eq!(
            write_of(&post, "/admin/v1/policies/orders/rollback"),
            Some(("policy.rollback", "policy:orders".to_owned()))
        );
        assert_eq!(
            write_of(&post, "/policies/orders"),
            Some(("policy.push", "policy:orders".to_owned()))
        );
        assert_eq!(write_of(&post, "/clients"), Some(("client.create", String::new())));
        assert_eq!(
            write_of(&axum::http::Method::DELETE, "/workloads/spiffe%3A%2F%2Fexample.org%2Fa"),
            Some(("workload.delete", "workload:spiffe://example.org/a".to_owned()))
        );
        assert_eq!(write_of(&axum::http::Method::GET, "/clients"), None);
        assert_eq!(write_of(&post, "/clients//rotate-secret"), None);
        assert_eq!(write_of(&post, "/keys/rotate"), None, "records its own failures");
        assert_eq!(target("client", &"x".repeat(300)).len(), 7 + 128);
    }
}
