//! Load script: how fast does one revocation reach N connected subscribers?
//!
//! Opens N revocation streams (the same HTTP stream every verifier follows),
//! waits until all have replayed and are live, then revokes sessions through
//! the admin API and records, per subscriber, the time from just before the
//! revoke call to the event's arrival. Prints p50 / p90 / p99 / max.
//!
//! ```sh
//! cargo run --release -p castellan-verify --example revocation_fanout -- \
//!     http://127.0.0.1:8080 ADMIN_ID ADMIN_SECRET 1000 5
//! ```
//! Loopback only; bounded: N streams, M events, a 30 s timeout per event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // a load script: failing loudly is fine

use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Barrier};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let authority = args.get(1).cloned().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let admin_id = args.get(2).cloned().expect("admin client id");
    let admin_secret = args.get(3).cloned().expect("admin client secret");
    let subscribers: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let events: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(5);

    castellan_verify::install_tls_provider();
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let latest: serde_json::Value = http
        .get(format!("{authority}/revocations?after=0&limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after = latest["latest_seq"].as_i64().unwrap_or(0);

    let ready = Arc::new(Barrier::new(subscribers + 1));
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Instant)>();
    eprintln!("opening {subscribers} streams...");
    for i in 0..subscribers {
        let http = http.clone();
        let url = format!("{authority}/revocations/stream?after={after}");
        let ready = ready.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let resp = http
                .get(&url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("stream {i}: {e}"));
            let mut body = resp.bytes_stream();
            let mut buf = String::new();
            let mut waiting = true;
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    if waiting && frame.contains("event: ready") {
                        waiting = false;
                        ready.wait().await;
                    }
                    if frame.contains("event: revocation") {
                        if let Some(start) = frame.find("\"value\":\"") {
                            let rest = &frame[start + 9..];
                            let value = rest[..rest.find('"').unwrap_or(0)].to_owned();
                            let _ = tx.send((value, Instant::now()));
                        }
                    }
                }
            }
        });
    }
    ready.wait().await;
    eprintln!("all {subscribers} streams live; revoking {events} sessions");

    let form = [
        ("grant_type", "client_credentials"),
        ("scope", "castellan.admin"),
        ("audience", authority.as_str()),
    ];
    let token: serde_json::Value = http
        .post(format!("{authority}/oauth2/token"))
        .basic_auth(&admin_id, Some(&admin_secret))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().expect("admin token").to_owned();

    let mut all: Vec<Duration> = Vec::with_capacity(subscribers * events);
    for e in 0..events {
        let sid = format!("fanout-{}-{e}", std::process::id());
        let start = Instant::now();
        let r = http
            .post(format!("{authority}/admin/v1/sessions/{sid}/revoke"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "revoke: {}", r.status());
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while got < subscribers {
            let (value, at) = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("events in time")
                .unwrap();
            if value == sid {
                all.push(at.duration_since(start));
                got += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    all.sort();
    let pct = |p: f64| {
        all[((all.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(all.len() - 1)]
    };
    println!(
        "subscribers={subscribers} events={events} deliveries={} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        all.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.90).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.last().unwrap().as_secs_f64() * 1e3
    );
}
