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
