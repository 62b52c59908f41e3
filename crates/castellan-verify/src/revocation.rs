//! The revocation state a verifier keeps, built from the authority's ordered
//! event log.

use castellan_core::UnixTime;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One event of the authority's revocation log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEvent {
    /// Monotonic sequence number.
    pub seq: i64,
    /// `session`, `subject`, `client` or `key`.
    pub kind: String,
    /// The sid, subject, client id or kid.
    pub value: String,
    /// Tokens issued at or before this are revoked (subject, client).
    pub not_before: UnixTime,
    /// When it was recorded.
    #[serde(default)]
    pub created_at: UnixTime,
    /// After this no token it affects is valid; it can be forgotten.
    pub expires_at: UnixTime,
}

/// Revoked sessions, subjects, clients and keys, with the last sequence number applied.
#[derive(Debug, Default, Clone)]
pub struct RevocationState {
    sessions: HashMap<String, UnixTime>,
    subjects: HashMap<String, (UnixTime, UnixTime)>,
    clients: HashMap<String, (UnixTime, UnixTime)>,
    keys: HashMap<String, UnixTime>,
    last_seq: i64,
}

fn keep_latest(map: &mut HashMap<String, (UnixTime, UnixTime)>, value: &str, not_before: UnixTime, expires: UnixTime) {
    let entry = map.entry(value.to_owned()).or_insert((not_before, expires));
    entry.0 = entry.0.max(not_before);
    entry.1 = entry.1.max(expires);
}

impl RevocationState {
    /// The last sequence number applied.
    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.sessions.len() + self.subjects.len() + self.clients.len() + self.keys.len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies an event; events at or below the last sequence number are
    /// ignored (a replay after reconnect). Unknown kinds are ignored too, so
    /// older verifiers survive newer authorities; they still advance the sequence.
    /// Returns true when the event was new.
    pub fn apply(&mut self, ev: &RevocationEvent) -> bool {
        if ev.seq <= self.last_seq {
            return false;
        }
        self.last_seq = ev.seq;
        match ev.kind.as_str() {
            "session" => {
                let e = self.sessions.entry(ev.value.clone()).or_insert(ev.expires_at);
                *e = (*e).max(ev.expires_at);
            }
            "subject" => keep_latest(&mut self.subjects, &ev.value, ev.not_before, ev.expires_at),
            "client" => keep_latest(&mut self.clients, &ev.value, ev.not_before, ev.expires_at),
            "key" => {
                self.keys.insert(ev.value.clone(), ev.expires_at);
            }
            other => tracing::debug!(kind = other, "ignoring unknown revocation kind"),
        }
        true
    }

    /// Follows an authority whose log restarted: the entries stay, the next
    /// event accepted is the one after `seq` (0 replays the whole new log).
    pub fn rewind(&mut self, seq: i64) {
        self.last_seq = seq;
    }

    /// Forgets entries that can no longer affect a valid token.
    pub fn purge(&mut self, now: UnixTime) {
        self.sessions.retain(|_, exp| *exp >= now);
        self.subjects.retain(|_, (_, exp)| *exp >= now);
        self.clients.retain(|_, (_, exp)| *exp >= now);
        self.keys.retain(|_, exp| *exp >= now);
    }

    /// Whether a key was withdrawn.
    pub fn key_withdrawn(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Which revocation, if any, covers a token with these claims.
    pub fn check(&self, sid: &str, sub: &str, client_id: &str, iat: UnixTime) -> Option<crate::RevokedBy> {
        use crate::RevokedBy;
        if self.sessions.contains_key(sid) {
            return Some(RevokedBy::Session);
        }
        if self.subjects.get(sub).is_some_and(|(nb, _)| iat <= *nb) {
            return Some(RevokedBy::Subject);
        }
        if self.clients.get(client_id).is_some_and(|(nb, _)| iat <= *nb) {
            return Some(RevokedBy::Client);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RevokedBy;

    fn ev(seq: i64, kind: &str, value: &str, nb: i64) -> RevocationEvent {
        RevocationEvent {
            seq,
            kind: kind.into(),
            value: value.into(),
            not_before: nb,
            created_at: nb,
            expires_at: nb + 100,
        }
    }

    #[test]
    fn applies_in_order_and_ignores_replays() {
        let mut s = RevocationState::default();
        assert!(s.apply(&ev(1, "session", "s1", 10)));
        assert!(s.apply(&ev(2, "subject", "alice", 20)));
        assert!(!s.apply(&ev(2, "subject", "bob", 20)), "replayed sequence number");
        assert!(s.apply(&ev(5, "client", "c", 30)));
        assert!(s.apply(&ev(6, "future-kind", "x", 30)));
        assert_eq!(s.last_seq(), 6);
        assert_eq!(s.check("s1", "x", "y", 0), Some(RevokedBy::Session));
        assert_eq!(s.check("s2", "alice", "y", 20), Some(RevokedBy::Subject));
        assert_eq!(
            s.check("s2", "alice", "y", 21),
            None,
            "issued after the subject revocation"
        );
        assert_eq!(s.check("s2", "bob", "c", 30), Some(RevokedBy::Client));
        assert_eq!(s.check("s2", "bob", "c", 31), None);
        s.purge(111);
        assert_eq!(s.check("s1", "x", "y", 0), None, "expired entries are forgotten");
        assert_eq!(s.check("s2", "alice", "y", 20), Some(RevokedBy::Subject));
    }
}
