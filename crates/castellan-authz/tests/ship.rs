//! The decision shipper against a stub authority on loopback: a shipment
//! whose answer is lost is sent again with the same batch id; a refused
//! shipment is split until only the bad entry is dropped; bad credentials
//! drop and count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use castellan_authz::decision_log::{DecisionBatch, DecisionEntry};
use castellan_authz::{DecisionLog, DecisionShipper, ShipError};
use castellan_core::ManualClock;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Stub {
    /// Every shipment received: (batch id, resources).
    seen: Vec<(String, Vec<String>)>,
    /// Batch ids stored, like the authority's once-per-batch rule.
    stored: Vec<String>,
    /// Answer the next this many stored shipments with 503 (stored anyway: the answer is lost).
    lose_answers: usize,
}

async fn ingest(
    State(stub): State<Arc<Mutex<Stub>>>,
    headers: HeaderMap,
    Json(batch): Json<DecisionBatch>,
) -> StatusCode {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    // `gate:s3cret`, form-encoded then base64 (RFC 6749 §2.3.1).
    if auth != "Basic Z2F0ZTpzM2NyZXQ=" {
        return StatusCode::UNAUTHORIZED;
    }
    let mut s = stub.lock().unwrap();
    let resources: Vec<String> = batch.decisions.iter().map(|d| d.resource.clone()).collect();
    s.seen.push((batch.batch_id.clone(), resources.clone()));
    if resources.iter().any(|r| r == "bad") {
        return StatusCode::BAD_REQUEST;
    }
    if !s.stored.contains(&batch.batch_id) {
        s.stored.push(batch.batch_id.clone());
    }
    if s.lose_answers > 0 {
        s.lose_answers -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::OK
}

async fn stub() -> (String, Arc<Mutex<Stub>>) {
    let state = Arc::new(Mutex::new(Stub::default()));
    let app = Router::new().route("/d", post(ingest)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/d", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

fn entry(resource: &str) -> DecisionEntry {
    DecisionEntry {
        time: 1,
        principal: "Principal::\"alice\"".into(),
        action: "Action::\"GET\"".into(),
        resource: resource.into(),
        decision: "allow".into(),
        reason: None,
        policies: vec!["p".into()],
        errors: vec![],
        version: Some(1),
    }
}

fn log_with(resources: &[&str]) -> DecisionLog {
    let log = DecisionLog::new(100, Arc::new(ManualClock::new(0)));
    for r in resources {
        log.push(entry(r));
    }
    log
}

#[tokio::test]
async fn a_shipment_whose_answer_was_lost_is_resent_with_its_batch_id() {
    let (url, stub) = stub().await;
    stub.lock().unwrap().lose_answers = 1;
    let shipper = DecisionShipper::new(http(), url, "gate", "s3cret").batch(2);
    let log = log_with(&["a", "b", "c"]);
    assert!(matches!(shipper.ship_pending(&log).await, Err(ShipError::Deferred(_))));
    assert_eq!(shipper.in_flight().await, 2, "kept in flight, not back in the log");
    log.push(entry("d"));
    // A clone (what the gate keeps for its shutdown flush) sends the same shipment first.
    assert_eq!(shipper.clone().ship_pending(&log).await.unwrap(), 4);
    let s = stub.lock().unwrap();
    assert_eq!(s.seen.len(), 3);
    assert_eq!(s.seen[0], s.seen[1], "the same batch id and entries, in order");
    assert_eq!(s.seen[2].1, ["c", "d"]);
    assert_eq!(s.stored.len(), 2, "stored once");
    assert_eq!((log.pending(), log.dropped()), (0, 0));
}

#[tokio::test]
async fn a_refused_shipment_is_split_until_only_the_bad_entry_is_dropped() {
    let (url, stub) = stub().await;
    let shipper = DecisionShipper::new(http(), url, "gate", "s3cret");
    let log = log_with(&["a", "b", "c", "bad", "e", "f", "g"]);
    let err = shipper.ship_pending(&log).await.unwrap_err();
    assert!(matches!(err, ShipError::Refused { status: 400, .. }), "{err}");
    assert_eq!(shipper.in_flight().await, 0);
    // The rest landed in the same call, in order.
    let s = stub.lock().unwrap();
    let landed: Vec<String> = s
        .seen
        .iter()
        .filter(|(id, _)| s.stored.contains(id))
        .flat_map(|(_, r)| r.clone())
        .collect();
    assert_eq!(landed, ["a", "b", "c", "e", "f", "g"]);
}

#[tokio::test]
async fn bad_credentials_drop_the_shipment() {
    let (url, stub) = stub().await;
    let shipper = DecisionShipper::new(http(), url, "gate", "wrong");
    let log = log_with(&["a", "b"]);
    let err = shipper.ship_pending(&log).await.unwrap_err();
    assert!(matches!(err, ShipError::Refused { status: 401, .. }), "{err}");
    assert!(!err.to_string().contains("wrong"), "no secret in errors: {err}");
    assert!(!format!("{shipper:?}").contains("wrong"), "no secret in Debug");
    assert_eq!((log.pending(), shipper.in_flight().await), (0, 0));
    assert!(stub.lock().unwrap().stored.is_empty());
}

#[tokio::test]
async fn an_unreachable_authority_keeps_everything() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/d", listener.local_addr().unwrap());
    drop(listener);
    let shipper = DecisionShipper::new(http(), url, "gate", "s3cret").batch(2);
    let log = log_with(&["a", "b", "c"]);
    for _ in 0..3 {
        assert!(matches!(shipper.ship_pending(&log).await, Err(ShipError::Deferred(_))));
    }
    assert_eq!((shipper.in_flight().await, log.pending(), log.dropped()), (2, 1, 0));
}

fn http() -> reqwest::Client {
    castellan_verify::install_tls_provider();
    reqwest::Client::new()
}
