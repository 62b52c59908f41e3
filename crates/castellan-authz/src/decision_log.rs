//! The decision log: every decision an [`crate::Authorizer`] makes, kept in
//! a bounded in-memory queue until a [`crate::DecisionShipper`] sends it to
//! the authority in batches. Recording never blocks a request and never
//! grows without bound: when the queue is full the new entry is dropped and
//! counted ([`DecisionLog::dropped`], metric
//! `castellan_decisions_dropped_total{reason="full"}`).

use crate::decision::Decision;
use crate::request::AuthzRequest;
use castellan_core::{Clock, UnixTime};
use cedar_policy::EntityUid;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Default number of entries held while the authority is away.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Longest principal, action or resource uid kept, bytes; longer ones are
/// cut at a character boundary and marked with `…`.
pub const MAX_UID_BYTES: usize = 1_024;
/// Most determining policy ids or errors kept per entry.
pub const MAX_LIST: usize = 32;
/// Longest policy id or error kept, bytes.
pub const MAX_ITEM_BYTES: usize = 512;

/// One decision as it is shipped to the authority (the wire format of
/// `POST {castellan_decision_log_endpoint}`; the authority deserialises
/// this same type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionEntry {
    /// When it was decided (seconds since the epoch, the service's clock).
    pub time: UnixTime,
    /// The principal's entity uid, e.g. `Principal::"alice"`.
    pub principal: String,
    /// The action's uid, e.g. `Action::"GET"`.
    pub action: String,
    /// The resource's uid, e.g. `Route::"/orders/7"`.
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// For a deny: `forbidden`, `no_permit` or `no_bundle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The determining policy ids.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Policies that failed to evaluate.
    #[serde(default)]
    pub errors: Vec<String>,
    /// The bundle version that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// One shipment: a batch id (random, so a retried shipment is stored once)
/// and the entries, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBatch {
    /// Names the shipment; the authority stores a batch id once per client.
    pub batch_id: String,
    /// The decisions.
    pub decisions: Vec<DecisionEntry>,
}

/// `s` without control characters (each becomes a space), cut to `max`
/// bytes at a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.chars().any(char::is_control) {
        let clean: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        return cut(&clean, max);
    }
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = s.get(..end).unwrap_or_default().to_owned();
    out.push('…');
    out
}

fn uid(u: Option<&cedar_policy::EntityUid>) -> String {
    u.map_or_else(|| "(unknown)".to_owned(), |u| cut(&u.to_string(), MAX_UID_BYTES))
}

fn list(items: &[String]) -> Vec<String> {
    items.iter().take(MAX_LIST).map(|s| cut(s, MAX_ITEM_BYTES)).collect()
}

impl DecisionEntry {
    /// The entry for `decision` on `request` at `time`, with every field
    /// bounded (see [`MAX_UID_BYTES`], [`MAX_LIST`], [`MAX_ITEM_BYTES`]).
    #[must_use]
    pub fn new(request: &AuthzRequest, decision: &Decision, time: UnixTime) -> Self {
        Self::from_parts(
            [request.principal(), request.action(), request.resource()],
            decision,
            time,
        )
    }

    fn from_parts(uids: [Option<&EntityUid>; 3], decision: &Decision, time: UnixTime) -> Self {
        let [principal, action, resource] = uids;
        let (verdict, reason) = match decision {
            Decision::Allow { .. } => ("allow", None),
            Decision::Deny { reason, .. } => ("deny", Some(reason.label().to_owned())),
        };
        Self {
            time,
            principal: uid(principal),
            action: uid(action),
            resource: uid(resource),
            decision: verdict.to_owned(),
            reason,
            policies: list(decision.determining()),
            errors: list(decision.errors()),
            version: decision.version(),
        }
    }
}

/// What the queue holds: a decision as made (formatted into an entry only
/// when taken, off the request path), or an entry built elsewhere.
#[derive(Debug)]
enum Queued {
    Decided(Box<Decided>),
    Entry(DecisionEntry),
}

#[derive(Debug)]
struct Decided {
    time: UnixTime,
    uids: [Option<EntityUid>; 3],
    decision: Decision,
}

impl Queued {
    fn into_entry(self) -> DecisionEntry {
        match self {
            Self::Entry(e) => e,
            Self::Decided(d) => {
                let [p, a, r] = &d.uids;
                DecisionEntry::from_parts([p.as_ref(), a.as_ref(), r.as_ref()], &d.decision, d.time)
            }
        }
    }
}

/// The bounded queue of decisions waiting to be shipped.
#[derive(Debug)]
pub struct DecisionLog {
    capacity: usize,
    clock: Arc<dyn Clock>,
    queue: Mutex<VecDeque<Queued>>,
    recorded: AtomicU64,
    dropped: AtomicU64,
    wake: tokio::sync::Notify,
    wake_at: usize,
}

impl DecisionLog {
    /// A log holding at most `capacity` entries (at least 1), stamping them
    /// with `clock`.
    #[must_use]
    pub fn new(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            clock,
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(1_024))),
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
            wake_at: (capacity / 2).max(1),
        }
    }

    /// Records `decision` on `request`, now. Never blocks for longer than
    /// a queue push; when the queue is full the entry is dropped and counted.
    /// The uids are formatted when the entry is taken, not here.
    pub fn record(&self, request: &AuthzRequest, decision: &Decision) {
        self.enqueue(Queued::Decided(Box::new(Decided {
            time: self.clock.now(),
            uids: [
                request.principal().cloned(),
                request.action().cloned(),
                request.resource().cloned(),
            ],
            decision: decision.clone(),
        })));
    }

    /// Queues an entry built elsewhere (dropped and counted when full).
    pub fn push(&self, entry: DecisionEntry) {
        self.enqueue(Queued::Entry(entry));
    }

    fn enqueue(&self, entry: Queued) {
        let len = {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if q.len() >= self.capacity {
                drop(q);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("castellan_decisions_dropped_total", "reason" => "full").increment(1);
                return;
            }
            q.push_back(entry);
            q.len()
        };
        self.recorded.fetch_add(1, Ordering::Relaxed);
        if len == self.wake_at {
            // Half full: ship now rather than at the next tick.
            self.wake.notify_one();
        }
    }

    /// Takes up to `max` of the oldest entries.
    pub fn take(&self, max: usize) -> Vec<DecisionEntry> {
        let taken: Vec<Queued> = {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let n = q.len().min(max);
            q.drain(..n).collect()
        };
        // Formatting happens here, on the shipper's task, outside the lock.
        taken.into_iter().map(Queued::into_entry).collect()
    }

    /// Entries waiting.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Entries recorded since start.
    #[must_use]
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Entries dropped because the queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The most entries held.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Resolves when the queue reaches half its capacity.
    pub(crate) async fn half_full(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::entity_uid;
    use castellan_core::ManualClock;
    use cedar_policy::Context;

    fn request(path: &str) -> AuthzRequest {
        AuthzRequest::new(
            entity_uid("Principal", "alice").unwrap(),
            entity_uid("Action", "GET").unwrap(),
            entity_uid("Route", path).unwrap(),
            Context::empty(),
        )
        .unwrap()
    }

    fn deny() -> Decision {
        Decision::Deny {
            reason: crate::DenyReason::Forbidden,
            determining: vec!["no-admin".into()],
            errors: vec![],
            version: Some(4),
        }
    }

    #[test]
    fn entries_carry_the_decision() {
        let log = DecisionLog::new(4, Arc::new(ManualClock::new(1_000)));
        log.record(&request("/admin"), &deny());
        let e = log.take(10);
        assert_eq!(
            e,
            vec![DecisionEntry {
                time: 1_000,
                principal: "Principal::\"alice\"".into(),
                action: "Action::\"GET\"".into(),
                resource: "Route::\"/admin\"".into(),
                decision: "deny".into(),
                reason: Some("forbidden".into()),
                policies: vec!["no-admin".into()],
                errors: vec![],
                version: Some(4),
            }]
        );
        assert_eq!(log.pending(), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let log = DecisionLog::new(3, Arc::new(ManualClock::new(0)));
        for i in 0..5 {
            log.record(&request(&format!("/{i}")), &deny());
        }
        assert_eq!((log.pending(), log.recorded(), log.dropped()), (3, 3, 2));
        let batch = log.take(2);
        assert_eq!(batch.len(), 2);
        // Taking makes room again; the oldest entries went first.
        log.record(&request("/new"), &deny());
        log.record(&request("/newer"), &deny());
        log.record(&request("/full"), &deny());
        assert_eq!((log.pending(), log.dropped()), (3, 3));
        let order: Vec<String> = log.take(10).into_iter().map(|e| e.resource).collect();
        assert_eq!(order, ["Route::\"/2\"", "Route::\"/new\"", "Route::\"/newer\""]);
    }

    #[test]
    fn long_fields_are_cut_at_a_character_boundary() {
        let log = DecisionLog::new(2, Arc::new(ManualClock::new(0)));
        let long = format!("/{}", "é".repeat(2_000));
        let many: Vec<String> = (0..100).map(|i| format!("p{i}")).collect();
        let d = Decision::Allow {
            determining: many,
            version: 1,
            errors: vec!["x".repeat(5_000)],
        };
        log.record(&request(&long), &d);
        let e = log.take(1).pop().unwrap();
        assert!(e.resource.len() <= MAX_UID_BYTES && e.resource.ends_with('…'));
        assert_eq!(e.policies.len(), MAX_LIST);
        assert!(e.errors[0].len() <= MAX_ITEM_BYTES);
        let d = Decision::Allow {
            determining: vec!["a\nb".into()],
            version: 1,
            errors: vec!["line one\n\u{1b}[31mred".into()],
        };
        log.record(&request("/x"), &d);
        let e = log.take(1).pop().unwrap();
        assert_eq!(
            (e.policies[0].as_str(), e.errors[0].as_str()),
            ("a b", "line one  [31mred")
        );
    }
}
