//! The revocation log as verifiers see it: admin revocations, the JSON
//! snapshot, the SSE stream with resume, heartbeats and rotation acknowledgement.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_testkit::TestAuthority;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// Reads SSE frames until `want` revocation events arrived (or 5 s pass).
async fn read_events(resp: reqwest::Response, want: usize) -> (Vec<Value>, Vec<String>) {
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut revocations = Vec::new();
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while revocations.len() < want {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("events in time")
            .unwrap()
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut event = "message".to_owned();
            let mut data = String::new();
            let mut id = None;
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_owned());
                }
            }
            if data.is_empty() {
                continue;
            }
            kinds.push(event.clone());
            if event == "revocation" {
                let v: Value = serde_json::from_str(&data).unwrap();
                assert_eq!(
                    id.as_deref(),
                    Some(v["seq"].to_string().as_str()),
                    "SSE id is the sequence number"
                );
                revocations.push(v);
            }
        }
    }
    (revocations, kinds)
}

#[tokio::test]
async fn admin_revocations_reach_the_snapshot_and_the_stream_in_order() {
    let ta = TestAuthority::start().await;
    let (id, secret) = ta.client("svc", &["orders"], &[]).await;
    let token = ta.access_token(&id, &secret, &[]).await;
    let sid = ta.introspect(&token).await["sid"].as_str().unwrap().to_owned();
    let (status, v) = ta.admin(Method::POST, &format!("/sessions/{sid}/revoke"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["event"]["kind"], "session");
    let first_seq = v["event"]["seq"].as_i64().unwrap();
    assert_eq!(ta.introspect(&token).await["active"], false);
    let (status, _) = ta.admin(Method::POST, "/subjects/alice/revoke", None).await;
    assert_eq!(status, 200);
    let (status, _) = ta.admin(Method::POST, &format!("/clients/{id}/revoke"), None).await;
    assert_eq!(status, 200);
    let (status, _) = ta.admin(Method::POST, "/clients/nobody/revoke", None).await;
    assert_eq!(status, 404);
    let fresh = ta.access_token(&id, &secret, &[]).await;
    // Issued in the same second as the client revocation: revoked too (not-before is inclusive).
    assert_eq!(ta.introspect(&fresh).await["active"], false);
    ta.clock.advance(1);
    let later = ta.access_token(&id, &secret, &[]).await;
    assert_eq!(
        ta.introspect(&later).await["active"],
        true,
        "tokens issued after a client revocation are valid"
    );

    let snap: Value = ta.get_json("/revocations?after=0").await;
    let events = snap["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["session", "subject", "client"]);
    assert_eq!(snap["latest_seq"], events[2]["seq"]);
    let snap: Value = ta.get_json(&format!("/revocations?after={first_seq}")).await;
    assert_eq!(
        snap["events"].as_array().unwrap().len(),
        2,
        "resume after a sequence number"
    );

    // The stream replays from `after`, then goes live.
    let resp = ta
        .http
        .get(format!("{}/revocations/stream?after={first_seq}", ta.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let reader = tokio::spawn(read_events(resp, 3));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = ta.admin(Method::POST, "/sessions/live-one/revoke", None).await;
    assert_eq!(status, 200);
    let (got, kinds) = reader.await.unwrap();
    let values: Vec<&str> = got.iter().map(|e| e["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["alice", id.as_str(), "live-one"]);
    assert!(
        kinds.contains(&"ready".to_owned()),
        "a ready event marks the end of the replay"
    );
    let seqs: Vec<i64> = got.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    // Last-Event-ID resumes too.
    let resp = ta
        .http
        .get(format!("{}/revocations/stream", ta.url))
        .header("last-event-id", seqs[1].to_string())
        .send()
        .await
        .unwrap();
    let (got, _) = read_events(resp, 1).await;
    assert_eq!(got[0]["value"], "live-one");
    for bad in ["?after=-1", "?after=x", "?nope=1"] {
        let r = ta
            .http
            .get(format!("{}/revocations/stream{bad}", ta.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn heartbeats_are_validated_and_listed() {
    let ta = TestAuthority::start().await;
    let url = format!("{}/verifiers/heartbeat", ta.url);
    let kids = ta.published_kids().await;
    let good = json!({"verifier_id": "v1", "audience": "orders", "kids": kids, "last_seq": 0, "kind": "gate"});
    assert_eq!(ta.http.post(&url).json(&good).send().await.unwrap().status(), 204);
    for bad in [
        json!({"verifier_id": "", "audience": "orders", "kids": [], "last_seq": 0}),
        json!({"verifier_id": "v", "audience": "orders", "kids": [], "last_seq": -1}),
        json!({"verifier_id": "v", "audience": "orders", "kids": vec!["k"; 100], "last_seq": 0}),
        json!({"verifier_id": "v", "audience": "orders", "kids": [], "last_seq": 0, "extra": 1}),
        json!({"verifier_id": "v"}),
    ] {
        assert_eq!(
            ta.http.post(&url).json(&bad).send().await.unwrap().status(),
            400,
            "{bad}"
        );
    }
    let r = ta.http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 415);
    let (status, v) = ta.admin(Method::GET, "/verifiers", None).await;
    assert_eq!(status, 200);
    let list = v["verifiers"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["verifier_id"], "v1");
    assert_eq!(list[0]["live"], true);
    assert_eq!(list[0]["kind"], "gate");
    ta.clock.advance(31);
    let (_, v) = ta.admin(Method::GET, "/verifiers", None).await;
    assert_eq!(v["verifiers"][0]["live"], false);
}

#[tokio::test]
async fn routine_rotation_waits_for_verifiers_but_not_forever() {
    let ta = TestAuthority::start_with(|c| c.keys.ack_timeout = "1s".parse().unwrap()).await;
    let kids = ta.published_kids().await;
    let url = format!("{}/verifiers/heartbeat", ta.url);
    // One verifier holds only the active key: rotation waits, then goes ahead and names it.
    let lagging = json!({"verifier_id": "slow", "audience": "orders", "kids": [kids[0]], "last_seq": 0});
    ta.http.post(&url).json(&lagging).send().await.unwrap();
    let started = std::time::Instant::now();
    let (status, v) = ta.admin(Method::POST, "/keys/rotate", None).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for the acknowledgement"
    );
    assert_eq!(v["laggards"], json!(["slow"]));
    // When every live verifier holds the next key, no wait and no laggards.
    let kids = ta.published_kids().await;
    let holding = json!({"verifier_id": "slow", "audience": "orders", "kids": kids, "last_seq": 0});
    ta.http.post(&url).json(&holding).send().await.unwrap();
    let started = std::time::Instant::now();
    let (_, v) = ta.admin(Method::POST, "/keys/rotate", None).await;
    assert!(started.elapsed() < Duration::from_millis(900));
    assert!(v.get("laggards").is_none(), "{v}");
    // A caller that gives up during the wait does not cancel the rotation.
    let lagging = json!({"verifier_id": "slow", "audience": "orders", "kids": [], "last_seq": 0});
    ta.http.post(&url).json(&lagging).send().await.unwrap();
    let before = ta.published_kids().await;
    let token = ta.admin_token().await;
    let impatient = ta
        .http
        .post(format!("{}/admin/v1/keys/rotate", ta.url))
        .bearer_auth(&token)
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(impatient.is_err(), "the caller timed out");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ta.published_kids().await[0], before[1], "the rotation completed anyway");
    // An emergency never waits.
    let lagging = json!({"verifier_id": "slow", "audience": "orders", "kids": [], "last_seq": 0});
    ta.http.post(&url).json(&lagging).send().await.unwrap();
    let started = std::time::Instant::now();
    let (status, _) = ta
        .admin(Method::POST, "/keys/rotate", Some(json!({"emergency": true})))
        .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_millis(900));
}

#[tokio::test]
async fn discovery_carries_the_validation_profile() {
    let ta = TestAuthority::start().await;
    let meta: Value = ta.get_json("/.well-known/openid-configuration").await;
    let p = &meta["castellan_validation_profile"];
    assert_eq!(p["allowed_algorithms"], json!(["ES256"]));
    assert_eq!(p["token_type"], "at+jwt");
    assert_eq!(p["max_leeway_seconds"], 30);
    assert_eq!(p["max_token_lifetime_seconds"], 3600);
    assert_eq!(p["staleness_window_seconds"], 300);
    for claim in ["iss", "sub", "aud", "exp", "iat", "sid"] {
        assert!(
            p["required_claims"].as_array().unwrap().contains(&json!(claim)),
            "{claim}"
        );
    }
    assert!(meta["castellan_revocation_stream_endpoint"]
        .as_str()
        .unwrap()
        .ends_with("/revocations/stream"));
}

#[tokio::test]
async fn a_closed_stream_is_released_without_waiting_for_an_event() {
    let ta = TestAuthority::start().await;
    let streams = || ta.authority.events().subscribers();
    let before = streams();
    let resp = ta
        .http
        .get(format!("{}/revocations/stream", ta.url))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let _ = tokio::time::timeout(Duration::from_secs(2), body.next()).await; // the `ready` event
    assert_eq!(streams(), before + 1);
    drop(body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while streams() > before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream still held after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
