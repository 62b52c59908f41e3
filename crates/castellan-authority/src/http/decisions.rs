//! The central decision log. Services (`castellan gate --policy-service`,
//! or any `castellan_authz::DecisionShipper`) ship every authorization
//! decision here in batches, authenticated as an OAuth client holding the
//! scope `castellan.decisions:<service>`; admins read them back
//! (`castellan decisions`). Rows are pruned after `decisions.retention`.

use super::admin::require_admin;
use super::client_auth::{authenticate, Peer};
use super::error::ApiError;
use super::form::{read_body, require_json, Form};
use super::policies::service_of;
use crate::Authority;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use castellan_authz::decision_log::{DecisionBatch, DecisionEntry, MAX_ITEM_BYTES, MAX_LIST, MAX_UID_BYTES};
use castellan_store::{DecisionQuery, DecisionRecord};
use serde::Deserialize;
use std::sync::Arc;

/// The scope a client needs to ship decisions for `service`.
pub fn scope_for(service: &str) -> String {
    format!("castellan.decisions:{service}")
}

/// Largest shipment body. Ordinary entries are a few hundred bytes, so a
/// default batch of 1,000 fits many times over; a shipment over it gets 413
/// and the shipper splits it. Bounded so one shipper cannot make the
/// authority parse arbitrarily large documents.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Shipments parsed at once; more get 503 and are retried.
const MAX_CONCURRENT: usize = 4;
static INGESTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT);
/// Most rows one admin query returns.
const MAX_QUERY_LIMIT: u32 = 10_000;

/// Admin routes, nested under `/admin/v1`.
pub fn admin_router() -> Router<Arc<Authority>> {
    Router::new().route("/decisions/{service}", get(query))
}

fn check_entry(i: usize, e: &DecisionEntry) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::invalid_request(format!("decisions[{i}]: {m}")));
    for (name, v) in [
        ("principal", &e.principal),
        ("action", &e.action),
        ("resource", &e.resource),
    ] {
        if v.is_empty() || v.len() > MAX_UID_BYTES {
            return bad(format!("`{name}` must be 1 to {MAX_UID_BYTES} bytes"));
        }
    }
    // Rows are printed on terminals (`castellan decisions`): no control characters.
    let texts = [&e.principal, &e.action, &e.resource]
        .into_iter()
        .chain(&e.policies)
        .chain(&e.errors);
    if texts.flat_map(|t| t.chars()).any(char::is_control) {
        return bad("control characters are not allowed".into());
    }
    match (e.decision.as_str(), e.reason.as_deref()) {
        ("allow", None) | ("deny", Some("forbidden" | "no_permit" | "no_bundle")) => {}
        ("allow", Some(_)) => return bad("an `allow` has no `reason`".into()),
        ("deny", _) => return bad("a `deny` has a `reason`: forbidden, no_permit or no_bundle".into()),
        _ => return bad("`decision` must be `allow` or `deny`".into()),
    }
    if e.policies.len() > MAX_LIST || e.errors.len() > MAX_LIST {
        return bad(format!("at most {MAX_LIST} policies and {MAX_LIST} errors"));
    }
    if e.policies
        .iter()
        .chain(&e.errors)
        .any(|p| p.is_empty() || p.len() > MAX_ITEM_BYTES)
    {
        return bad(format!("policy ids and errors must be 1 to {MAX_ITEM_BYTES} bytes"));
    }
    if e.time < 0 {
        return bad("`time` must not be negative".into());
    }
    if e.version.is_some_and(|v| v == 0 || i64::try_from(v).is_err()) {
        return bad("`version` must be a positive 63-bit integer".into());
    }
    Ok(())
}

/// `POST /policies/{service}/decisions`: a shipment of decisions.
pub async fn ingest(State(auth): State<Arc<Authority>>, Path(service): Path<String>, req: Request) -> Response {
    let result: Result<Response, ApiError> = async {
        let service = service_of(&service)?;
        let peer = Peer::of(&req);
        let (parts, body) = req.into_parts();
        let endpoint = format!("{}/policies/{service}/decisions", auth.issuer());
        let client = authenticate(&auth, &parts.headers, &Form::default(), &endpoint, &peer).await?;
        let scope = scope_for(service);
        if !client.scopes.contains(&scope) {
            return Err(ApiError::access_denied(format!(
                "client `{}` may not ship decisions for `{service}`: it needs the scope `{scope}`",
                client.client_id
            )));
        }
        let _permit = INGESTING
            .try_acquire()
            .map_err(|_| ApiError::busy("the decision log is busy; retry shortly"))?;
        let max_batch = auth.config().decisions.max_batch;
        let bytes = read_body(body, MAX_BODY_BYTES).await?;
        require_json(&parts.headers)?;
        let batch: DecisionBatch =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid_request(format!("body: {e}")))?;
        let id_ok = (1..=128).contains(&batch.batch_id.len())
            && batch
                .batch_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !id_ok {
            return Err(ApiError::invalid_request(
                "`batch_id` must be 1 to 128 characters of A-Z a-z 0-9 - _ .",
            ));
        }
        if batch.decisions.len() > max_batch {
            return Err(ApiError::invalid_request(format!(
                "at most {max_batch} decisions per shipment"
            )));
        }
        for (i, e) in batch.decisions.iter().enumerate() {
            check_entry(i, e)?;
        }
        let now = auth.now();
        let rows: Vec<DecisionRecord> = batch
            .decisions
            .into_iter()
            .map(|e| DecisionRecord {
                id: 0,
                service: service.to_owned(),
                time: e.time,
                principal: e.principal,
                action: e.action,
                resource: e.resource,
                decision: e.decision,
                reason: e.reason,
                policies: e.policies,
                errors: e.errors,
                policy_version: e.version.and_then(|v| i64::try_from(v).ok()),
                reporter: client.client_id.clone(),
                received_at: now,
            })
            .collect();
        let allowed = rows.iter().filter(|r| r.decision == "allow").count();
        let denied = rows.len().saturating_sub(allowed);
        let fresh = auth
            .store()
            .append_decisions(&client.client_id, &batch.batch_id, now, &rows)
            .await
            .map_err(|e| ApiError::server_error(&e))?;
        if fresh {
            // `service` names a service some client may ship for (checked above): bounded.
            for (decision, n) in [("allow", allowed), ("deny", denied)] {
                metrics::counter!("castellan_decisions_received_total", "service" => service.to_owned(), "decision" => decision)
                    .increment(n as u64);
            }
        }
        let accepted = if fresh { allowed.saturating_add(denied) } else { 0 };
        Ok(Json(serde_json::json!({ "accepted": accepted, "duplicate": !fresh })).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /admin/v1/decisions/{service}` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Only this principal uid (`Principal::"alice"`); a bare id means `Principal::"<id>"`.
    pub principal: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// Only decisions at or after this time (seconds since the epoch).
    pub since: Option<i64>,
    /// Only rows with a smaller id (the previous page's `next_before_id`).
    pub before_id: Option<i64>,
    /// At most this many rows (default 100, at most 10000).
    pub limit: Option<u32>,
}

/// A bare principal id (`alice`) means the gate's `Principal::"alice"`,
/// written as Cedar writes uids (what the services record).
pub fn principal_uid(p: &str) -> String {
    if p.contains("::\"") {
        return p.to_owned();
    }
    castellan_authz::entity_uid("Principal", p).map_or_else(|_| p.to_owned(), |u| u.to_string())
}

async fn query(
    State(auth): State<Arc<Authority>>,
    headers: HeaderMap,
    Path(service): Path<String>,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&auth, &headers).await?;
    let service = service_of(&service)?;
    let Query(p) = params.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    if p.decision.as_deref().is_some_and(|d| d != "allow" && d != "deny") {
        return Err(ApiError::invalid_request("`decision` must be `allow` or `deny`"));
    }
    let limit = p.limit.unwrap_or(100);
    if !(1..=MAX_QUERY_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_request(format!(
            "`limit` must be between 1 and {MAX_QUERY_LIMIT}"
        )));
    }
    let q = DecisionQuery {
        service: service.to_owned(),
        principal: p.principal.as_deref().map(principal_uid),
        decision: p.decision,
        since: p.since,
        before_id: p.before_id,
        limit,
    };
    let rows = auth
        .store()
        .query_decisions(&q)
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(serde_json::json!({
        "service": service,
        "decisions": rows,
        "next_before_id": next,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_principals_are_gate_principals() {
        assert_eq!(principal_uid("alice"), "Principal::\"alice\"");
        assert_eq!(principal_uid("a\"b"), "Principal::\"a\\\"b\"");
        assert_eq!(principal_uid("User::\"bob\""), "User::\"bob\"");
        assert_eq!(
            principal_uid("o'brien"),
            "Principal::\"o\\'brien\"",
            "as Cedar escapes it"
        );
    }
}
