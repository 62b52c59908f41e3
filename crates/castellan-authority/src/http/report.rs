//! Probe runs kept at the authority (`POST/GET /admin/v1/probe-runs`) and
//! the platform report drawn from them and from what the authority knows
//! (`GET /admin/v1/report`). Admin only.

use super::admin::{json_body_up_to, require_admin};
use super::error::ApiError;
use crate::report::{assess, Facts, RecordedRun};
use crate::Authority;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use castellan_core::platform::{KeyFacts, PlatformReport, TokenFacts};
use castellan_core::probe_run::ProbeRun;
use castellan_store::{KeyState, ProbeRunRecord};
use serde::Deserialize;
use std::sync::Arc;

/// Largest probe report accepted (1,000 targets of 15 checks fit).
pub const MAX_RUN_BYTES: usize = 4 * 1024 * 1024;
/// Probe runs kept; older ones are dropped as new ones arrive.
pub const KEEP_RUNS: usize = 100;

/// Admin routes, nested under `/admin/v1`.
pub fn admin_router() -> Router<Arc<Authority>> {
    Router::new()
        .route("/probe-runs", get(list_runs).post(record_run))
        .route("/report", get(report))
}

/// A stored run read back; `None` (and a warning) for a row this version
/// cannot read, which must not take the report down with it.
pub(crate) fn parse_run(r: &ProbeRunRecord) -> Option<RecordedRun> {
    match serde_json::from_str::<ProbeRun>(&r.report) {
        Ok(run) => Some(RecordedRun {
            id: r.id,
            recorded_at: r.recorded_at,
            recorded_by: r.recorded_by.clone(),
            run,
        }),
        Err(e) => {
            tracing::warn!(run = r.id, error = %e, "stored probe run is unreadable; left out");
            None
        }
    }
}

async fn record_run(State(auth): State<Arc<Authority>>, req: Request) -> Result<Response, ApiError> {
    let caller = require_admin(&auth, req.headers()).await?;
    let run: ProbeRun = json_body_up_to(req, false, MAX_RUN_BYTES)
        .await?
        .ok_or_else(|| ApiError::invalid_request("body required"))?;
    run.check().map_err(ApiError::invalid_request)?;
    // Stored as re-serialised from the checked value: nothing unchecked is kept.
    let text = serde_json::to_string(&run).map_err(|e| ApiError::server_error(&e))?;
    let now = auth.now();
    let stored = auth
        .store()
        .append_probe_run(&caller.client_id, now, &text, KEEP_RUNS)
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let failed = run.targets.iter().filter(|t| !t.passed()).count();
    auth.audit(
        crate::audit::AuditEntry::new(
            crate::audit::client_actor(&caller.client_id),
            "probe_run.record",
            format!("probe_run:{}", stored.id),
        )
        .detail(serde_json::json!({ "run": stored.id, "targets": run.targets.len(), "failed": failed })),
    )
    .await;
    metrics::counter!("castellan_probe_runs_recorded_total").increment(1);
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": stored.id, "recorded_at": now })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<usize>,
}

async fn list_runs(
    State(auth): State<Arc<Authority>>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    let Query(p) = params.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let limit = p.limit.unwrap_or(10);
    if !(1..=KEEP_RUNS).contains(&limit) {
        return Err(ApiError::invalid_request(format!("limit must be 1 to {KEEP_RUNS}")));
    }
    let rows = auth
        .store()
        .list_probe_runs(limit)
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let mut runs = Vec::with_capacity(rows.len());
    for parsed in rows.iter().filter_map(parse_run) {
        runs.push(serde_json::json!({
            "id": parsed.id,
            "recorded_at": parsed.recorded_at,
            "recorded_by": parsed.recorded_by,
            "report": parsed.run,
        }));
    }
    Ok(Json(serde_json::json!({ "runs": runs })).into_response())
}

async fn report(State(auth): State<Arc<Authority>>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_admin(&auth, &headers).await?;
    Ok(Json(platform_report(&auth).await?).into_response())
}

/// The platform report as it stands (the admin API's and the console's).
pub(crate) async fn platform_report(auth: &Authority) -> Result<PlatformReport, ApiError> {
    let now = auth.now();
    let store = auth.store();
    let config = auth.config();
    let set = auth.keys().current();
    let schedule = auth.keys().schedule();
    let of = |state: KeyState| -> Vec<String> {
        set.infos
            .iter()
            .filter(|k| k.state == state)
            .map(|k| k.kid.clone())
            .collect()
    };
    let active = set.infos.iter().find(|k| k.state == KeyState::Active);
    // As the key scheduler reads it: a key without an activation time has signed since it was created.
    let active_since = active.map(|k| k.activated_at.unwrap_or(k.created_at));
    let mut published = of(KeyState::Active);
    published.extend(of(KeyState::Next));
    published.extend(of(KeyState::Retired));
    published.sort();
    let keys = KeyFacts {
        algorithm: active.map(|k| k.alg.clone()).unwrap_or_default(),
        active_kid: active.map(|k| k.kid.clone()),
        active_since,
        rotation_age_seconds: active_since.map(|t| now.saturating_sub(t)),
        rotation_interval_seconds: schedule.rotation_interval,
        next_kid: of(KeyState::Next).into_iter().next(),
        published,
        withdrawn: of(KeyState::Withdrawn),
    };

    let clients = store.list_clients().await.map_err(|e| ApiError::server_error(&e))?;
    let t = &config.tokens;
    let default_ttl = t.access_token_ttl.secs();
    let max_ttl = t.max_access_token_ttl.secs();
    let mut longest = (t.lifetime_for(None), None);
    let mut client_audiences = Vec::new();
    for c in &clients {
        // The lifetime a client really gets, as the token endpoint computes it.
        let ttl = t.lifetime_for(c.access_token_ttl);
        if ttl > longest.0 && c.access_token_ttl.is_some() {
            longest = (ttl, Some(c.client_id.clone()));
        }
        for aud in c
            .audiences
            .iter()
            .chain(c.exchange_audiences.iter())
            .chain(c.serves.iter())
        {
            client_audiences.push((aud.clone(), c.client_id.clone()));
        }
    }
    let tokens = TokenFacts {
        access_token_ttl_seconds: default_ttl,
        max_access_token_ttl_seconds: max_ttl,
        longest_seconds: longest.0,
        longest_client: longest.1,
        session_idle_seconds: config.sessions.idle_timeout.secs(),
        session_absolute_seconds: config.sessions.absolute_lifetime.secs(),
    };

    // Every kept run; the assessment uses those of the last week.
    let rows = store
        .list_probe_runs(KEEP_RUNS)
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let runs: Vec<RecordedRun> = rows.iter().filter_map(parse_run).collect();
    let unreadable_runs: Vec<i64> = rows
        .iter()
        .filter(|r| !runs.iter().any(|x| x.id == r.id))
        .map(|r| r.id)
        .collect();
    let policy_services = store
        .list_policy_services()
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let facts = Facts {
        now,
        issuer: auth.issuer().to_owned(),
        keys,
        rotation_grace: auth.rotation_grace(),
        tokens,
        verifiers: auth.verifier_views().await,
        client_audiences,
        policy_services,
        runs,
        unreadable_runs,
    };
    Ok(assess(facts))
}
