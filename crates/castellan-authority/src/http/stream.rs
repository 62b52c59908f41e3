//! The revocation log for verifiers: a JSON snapshot, a live SSE stream that
//! resumes from a sequence number, and the heartbeat verifiers report on.

use super::error::ApiError;
use super::form::{read_body, require_json};
use crate::events::{Heartbeat, StreamEvent};
use crate::Authority;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use castellan_store::RevocationEvent;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// Events per store read.
const PAGE: u32 = 500;

/// `?after=SEQ&limit=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct After {
    /// Events with a higher sequence number than this.
    pub after: Option<i64>,
    /// Page size for the snapshot (1..=1000).
    pub limit: Option<u32>,
}

/// The query and where to resume: `?after=`, else `Last-Event-ID`, else 0.
fn resume_point(
    query: Result<Query<After>, axum::extract::rejection::QueryRejection>,
    headers: &HeaderMap,
) -> Result<(After, i64), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid_request(e.body_text()))?;
    let after = after_of(&q, headers)?;
    Ok((q, after))
}

fn after_of(q: &After, headers: &HeaderMap) -> Result<i64, ApiError> {
    let from_header = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::invalid_request("Last-Event-ID must be a sequence number"))
        })
        .transpose()?;
    let after = q.after.or(from_header).unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid_request("after must not be negative"));
    }
    Ok(after)
}

/// `GET /revocations?after=SEQ`: unexpired events after SEQ, and the latest sequence number.
pub async fn snapshot(
    State(auth): State<Arc<Authority>>,
    query: Result<Query<After>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (q, after) = resume_point(query, &headers)?;
    let limit = q.limit.unwrap_or(PAGE).clamp(1, 1000);
    let store = auth.store();
    let latest = store
        .latest_revocation_seq()
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    let events = store
        .revocations_since(after, limit)
        .await
        .map_err(|e| ApiError::server_error(&e))?;
    Ok(Json(serde_json::json!({ "events": events, "latest_seq": latest })).into_response())
}

fn revocation_event(ev: &RevocationEvent) -> Option<Event> {
    Event::default()
        .id(ev.seq.to_string())
        .event("revocation")
        .json_data(ev)
        .ok()
}

/// Sends every stored event after `*last`, in order; false when the client is gone.
async fn catch_up(auth: &Authority, tx: &mpsc::Sender<Event>, last: &mut i64) -> Result<bool, ()> {
    loop {
        let page = auth.store().revocations_since(*last, PAGE).await.map_err(|e| {
            tracing::warn!(error = %e, "revocation stream: store read failed");
        })?;
        let full = page.len() == PAGE as usize;
        for ev in &page {
            if let Some(e) = revocation_event(ev) {
                if tx.send(e).await.is_err() {
                    return Ok(false);
                }
            }
            *last = ev.seq;
        }
        if !full {
            return Ok(true);
        }
    }
}

async fn pump(
    auth: Arc<Authority>,
    mut live: broadcast::Receiver<StreamEvent>,
    mut last: i64,
    tx: mpsc::Sender<Event>,
) {
    // Subscribed before reading the store: nothing appended in between is missed.
    match catch_up(&auth, &tx, &mut last).await {
        Ok(true) => {}
        _ => return,
    }
    let latest = auth.store().latest_revocation_seq().await.unwrap_or(last);
    let ready = Event::default()
        .event("ready")
        .json_data(serde_json::json!({ "last_seq": last, "latest_seq": latest, "log_id": auth.revocation_log_id() }));
    if let Ok(e) = ready {
        if tx.send(e).await.is_err() {
            return;
        }
    }
    let mut closed = auth.events().closed();
    loop {
        let item = tokio::select! {
            item = live.recv() => item,
            _ = closed.wait_for(|c| *c) => return,
            // The client went away: stop now, not at the next event.
            _ = tx.closed() => return,
        };
        let ok = match item {
            Ok(StreamEvent::Revocation(ev)) if ev.seq <= last => true,
            Ok(StreamEvent::Revocation(ev)) if ev.seq == last + 1 => match revocation_event(&ev) {
                Some(e) => {
                    last = ev.seq;
                    tx.send(e).await.is_ok()
                }
                None => true,
            },
            // A gap (events broadcast out of order) or a lagging receiver: the store has them all.
            Ok(StreamEvent::Revocation(_)) | Err(broadcast::error::RecvError::Lagged(_)) => {
                matches!(catch_up(&auth, &tx, &mut last).await, Ok(true))
            }
            Ok(StreamEvent::Keys { kids }) => match Event::default()
                .event("keys")
                .json_data(serde_json::json!({ "kids": kids }))
            {
                Ok(e) => tx.send(e).await.is_ok(),
                Err(_) => true,
            },
            Ok(StreamEvent::Policy { service, version }) => match Event::default()
                .event("policy")
                .json_data(serde_json::json!({ "service": service, "version": version }))
            {
                Ok(e) => tx.send(e).await.is_ok(),
                Err(_) => true,
            },
            Err(broadcast::error::RecvError::Closed) => false,
        };
        if !ok {
            return;
        }
    }
}

/// `GET /revocations/stream?after=SEQ` (or `Last-Event-ID`): every unexpired
/// event after SEQ, then a `ready` event, then live events as they happen.
/// Every revocation event carries its sequence number as the SSE id; idle
/// streams carry keep-alive comments every `revocation.heartbeat_interval`.
pub async fn stream(
    State(auth): State<Arc<Authority>>,
    query: Result<Query<After>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, after) = resume_point(query, &headers)?;
    let live = auth.events().subscribe();
    let (tx, rx) = mpsc::channel::<Event>(256);
    metrics::gauge!("castellan_revocation_streams").set(auth.events().subscribers() as f64);
    let pumping = auth.clone();
    tokio::spawn(async move {
        pump(pumping.clone(), live, after, tx).await;
        // The pump's receiver is gone by now.
        metrics::gauge!("castellan_revocation_streams").set(pumping.events().subscribers() as f64);
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<Event, Infallible>(e), rx))
    });
    let keep_alive = KeepAlive::new()
        .interval(auth.config().revocation.heartbeat_interval.0)
        .text("keep-alive");
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

/// `POST /verifiers/heartbeat`: a verifier reports the kids it holds and how
/// far it has read the stream. Unauthenticated by design (verifiers hold no
/// credentials); it can only delay a routine rotation by `keys.ack_timeout`.
pub async fn heartbeat(State(auth): State<Arc<Authority>>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, 16 * 1024).await?;
    require_json(&parts.headers)?;
    let hb: Heartbeat = serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid_request(format!("body: {e}")))?;
    hb.check().map_err(ApiError::invalid_request)?;
    // Never an error for the verifier: without the newest sequence number the
    // heartbeat is still recorded (rotation waits on it), its lag unknown.
    // Bounded: a slow store must not hold the verifier's heartbeat past its own timeout.
    let latest = match tokio::time::timeout(
        std::time::Duration::from_millis(500),
        auth.store().latest_revocation_seq(),
    )
    .await
    {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "heartbeat: cannot read the newest sequence number");
            hb.last_seq
        }
        Err(_) => {
            tracing::warn!("heartbeat: the store did not answer within 500 ms");
            hb.last_seq
        }
    };
    auth.record_heartbeat(hb, latest);
    Ok(StatusCode::NO_CONTENT.into_response())
}
