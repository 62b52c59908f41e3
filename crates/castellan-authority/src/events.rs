//! What the authority pushes to verifiers, and what verifiers report back.
//!
//! Revocation events are appended to the store (the durable, ordered log)
//! and then broadcast to every open stream. Verifiers report which kids they
//! hold; rotation waits for them.

use castellan_core::UnixTime;
use castellan_store::{HeartbeatRecord, RevocationEvent};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// An item on the live stream.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    /// A new entry of the revocation log.
    Revocation(RevocationEvent),
    /// The published key set changed; verifiers should refetch JWKS now.
    Keys {
        /// Kids now published.
        kids: Vec<String>,
    },
    /// A new policy version is in force for a service; its services fetch
    /// the signed bundle now.
    Policy {
        /// The service.
        service: String,
        /// The new version.
        version: i64,
    },
}

/// Fan-out of live events to every open stream.
#[derive(Debug)]
pub struct EventHub {
    tx: broadcast::Sender<StreamEvent>,
    closing: tokio::sync::watch::Sender<bool>,
}

impl Default for EventHub {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(4096);
        let (closing, _) = tokio::sync::watch::channel(false);
        Self { tx, closing }
    }
}

impl EventHub {
    /// Sends to every subscriber; nobody listening is fine.
    pub fn publish(&self, event: StreamEvent) {
        let _ = self.tx.send(event);
    }
    /// A receiver of events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StreamEvent> {
        self.tx.subscribe()
    }
    /// Open streams.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
    /// Ends every open stream (graceful shutdown: verifiers reconnect elsewhere or later).
    pub fn close(&self) {
        // `send` would not store the value while no stream is subscribed,
        // and a stream that subscribes a moment later would then never end
        // (graceful shutdown would wait forever): always store it.
        self.closing.send_replace(true);
    }
    /// Resolves when [`close`](Self::close) is called.
    pub fn closed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

/// What a verifier reports (`POST /verifiers/heartbeat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Stable id of this verifier instance (random per process).
    pub verifier_id: String,
    /// The audience it checks tokens for.
    pub audience: String,
    /// Kids it holds, parsed and ready.
    pub kids: Vec<String>,
    /// Last revocation sequence number it applied.
    pub last_seq: i64,
    /// `library` or `gate`.
    #[serde(default)]
    pub kind: Option<String>,
    /// How the calls it accepted arrived: `mtls` (all with a client
    /// certificate), `plain`, `mixed`; absent before the first.
    #[serde(default)]
    pub transport: Option<String>,
}

impl Heartbeat {
    /// Size and shape limits; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let short = |s: &str, max: usize| !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control);
        if !short(&self.verifier_id, 128) {
            return Err("verifier_id must be 1 to 128 printable characters".into());
        }
        if !short(&self.audience, 256) {
            return Err("audience must be 1 to 256 printable characters".into());
        }
        if self.kids.len() > 64 || !self.kids.iter().all(|k| short(k, 128)) {
            return Err("kids must be at most 64 ids of 1 to 128 characters".into());
        }
        if self.last_seq < 0 {
            return Err("last_seq must not be negative".into());
        }
        if let Some(kind) = &self.kind {
            if !short(kind, 32) {
                return Err("kind must be 1 to 32 characters".into());
            }
        }
        if let Some(t) = &self.transport {
            if !["mtls", "plain", "mixed"].contains(&t.as_str()) {
                return Err("transport must be `mtls`, `plain` or `mixed`".into());
            }
        }
        Ok(())
    }
}

/// A verifier as `castellan verifiers list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifierView {
    /// Instance id.
    pub verifier_id: String,
    /// Audience.
    pub audience: String,
    /// `library` or `gate`.
    pub kind: Option<String>,
    /// Kids held.
    pub kids: Vec<String>,
    /// Last sequence number applied.
    pub last_seq: i64,
    /// Events it had not applied when it last reported, counting only those
    /// older than its previous heartbeat (the authority's newest sequence
    /// number at that heartbeat, minus `last_seq`): an event appended just
    /// before a heartbeat is in flight, not lag.
    pub stream_lag: i64,
    /// Last heartbeat.
    pub last_seen: UnixTime,
    /// Heard from within the liveness window.
    pub live: bool,
    /// How the calls it accepted arrived: `mtls`, `plain`, `mixed`.
    pub transport: Option<String>,
}

/// Most verifiers remembered at once; the longest-silent is forgotten first.
pub const MAX_VERIFIERS: usize = 10_000;

/// Verifiers not heard from for this long are not live, and rotation stops waiting for them.
pub const LIVENESS_SECONDS: i64 = 30;

/// Every verifier heard from recently.
#[derive(Debug, Default)]
pub struct VerifierRegistry {
    inner: Mutex<HashMap<String, HeartbeatRecord>>,
}

impl VerifierView {
    /// What a recorded heartbeat says at `now`: lag counts only events older
    /// than the verifier's previous heartbeat; live if heard from within
    /// [`LIVENESS_SECONDS`].
    #[must_use]
    pub fn at(h: HeartbeatRecord, now: UnixTime) -> Self {
        Self {
            stream_lag: h.latest_at_previous.saturating_sub(h.last_seq).max(0),
            live: now.saturating_sub(h.seen_at) <= LIVENESS_SECONDS,
            verifier_id: h.verifier_id,
            audience: h.audience,
            kind: h.kind,
            kids: h.kids,
            last_seq: h.last_seq,
            last_seen: h.seen_at,
            transport: h.transport,
        }
    }
}

impl VerifierRegistry {
    /// Records a heartbeat that arrived at `now`, when the newest sequence
    /// number was `latest_seq`; returns it as recorded.
    pub fn record(&self, hb: Heartbeat, now: UnixTime, latest_seq: i64) -> HeartbeatRecord {
        let record = |latest_at_previous| HeartbeatRecord {
            verifier_id: hb.verifier_id.clone(),
            audience: hb.audience.clone(),
            kind: hb.kind.clone(),
            kids: hb.kids.clone(),
            last_seq: hb.last_seq,
            transport: hb.transport.clone(),
            seen_at: now,
            latest_seq,
            latest_at_previous,
        };
        let Ok(mut map) = self.inner.lock() else {
            return record(hb.last_seq);
        };
        map.retain(|_, r| now.saturating_sub(r.seen_at) <= LIVENESS_SECONDS * 10);
        if map.len() >= MAX_VERIFIERS && !map.contains_key(&hb.verifier_id) {
            if let Some(oldest) = map.iter().min_by_key(|(_, r)| r.seen_at).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        // The first heartbeat has no earlier reference: no lag is known yet.
        let latest_at_previous = map
            .get(&hb.verifier_id)
            .map_or(hb.last_seq, |previous| previous.latest_seq);
        let recorded = record(latest_at_previous);
        map.insert(hb.verifier_id.clone(), recorded.clone());
        recorded
    }

    /// Every remembered verifier.
    pub fn list(&self, now: UnixTime) -> Vec<VerifierView> {
        let Ok(map) = self.inner.lock() else { return Vec::new() };
        let mut out: Vec<VerifierView> = map.values().map(|r| VerifierView::at(r.clone(), now)).collect();
        out.sort_by(|a, b| a.audience.cmp(&b.audience).then(a.verifier_id.cmp(&b.verifier_id)));
        out
    }
}

#[cfg(test)]
mod close_tests {
    use super::EventHub;

    #[test]
    fn a_stream_that_subscribes_after_close_sees_it() {
        // No stream open when shutdown starts; one opens a moment later.
        let hub = EventHub::default();
        hub.close();
        assert!(*hub.closed().borrow(), "close must be remembered without subscribers");
    }
}
