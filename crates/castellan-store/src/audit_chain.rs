//! The audit trail's hash chain, in one place: both backends compute each
//! new event's hash here when appending, and [`ChainCheck`] recomputes them
//! here when verifying.
//!
//! `hash(n) = HMAC-SHA-256(chain_key, hash(n-1) || encoding(n))`, with
//! `hash(0)` = 32 zero bytes ([`GENESIS`]). The encoding is a fixed domain
//! tag, then `seq` and `at` as 8-byte big-endian integers, then actor,
//! action, target, outcome and detail each as an 8-byte big-endian length
//! followed by its UTF-8 bytes: no two different events encode alike, and
//! no byte can move from one field to the next.
//!
//! The key is derived from the master key by the authority: without it no
//! one can compute a matching hash for an edited event.

use crate::{AuditRecord, NewAuditEvent};
use aws_lc_rs::hmac;
use std::fmt;

/// Length of every link hash.
pub const HASH_LEN: usize = 32;

/// The hash the first event links to.
pub const GENESIS: [u8; HASH_LEN] = [0; HASH_LEN];

/// Domain separation: a hash made for anything else never matches.
const DOMAIN: &[u8] = b"castellan/audit-event/v1";

/// The fields an event's hash covers (all of them but the hash).
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it happened, Unix seconds.
    pub at: i64,
    /// Who acted.
    pub actor: &'a str,
    /// What was done.
    pub action: &'a str,
    /// What it was done to.
    pub target: &'a str,
    /// `success` or `failure`.
    pub outcome: &'a str,
    /// Further facts, JSON text exactly as stored.
    pub detail: &'a str,
}

impl<'a> EventFields<'a> {
    /// The fields of a new event about to get `seq`.
    pub fn new_event(seq: i64, event: &'a NewAuditEvent) -> Self {
        Self {
            seq,
            at: event.at,
            actor: &event.actor,
            action: &event.action,
            target: &event.target,
            outcome: &event.outcome,
            detail: &event.detail,
        }
    }

    /// The fields of a stored event.
    pub fn stored(record: &'a AuditRecord) -> Self {
        Self {
            seq: record.seq,
            at: record.at,
            actor: &record.actor,
            action: &record.action,
            target: &record.target,
            outcome: &record.outcome,
            detail: &record.detail,
        }
    }

    /// The canonical, length-prefixed encoding.
    fn encode(&self) -> Vec<u8> {
        let texts = [self.actor, self.action, self.target, self.outcome, self.detail];
        let mut out = Vec::with_capacity(DOMAIN.len() + 16 + texts.iter().map(|t| t.len() + 8).sum::<usize>());
        out.extend_from_slice(DOMAIN);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.at.to_be_bytes());
        for text in texts {
            out.extend_from_slice(&u64::try_from(text.len()).unwrap_or(u64::MAX).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out
    }
}

/// The hash of an event linked after `prev_hash`.
pub fn link_hash(chain_key: &[u8], prev_hash: &[u8], fields: &EventFields<'_>) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, chain_key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(&u64::try_from(prev_hash.len()).unwrap_or(u64::MAX).to_be_bytes());
    ctx.update(prev_hash);
    ctx.update(&fields.encode());
    ctx.sign().as_ref().to_vec()
}

/// Lowercase hex, for hashes shown to people and tools.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Where a chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first sequence number that is wrong or missing.
    pub seq: i64,
    /// What is wrong with it.
    pub problem: ChainProblem,
}

/// What is wrong at the first bad sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    /// The event's fields no longer give its stored hash (edited), or it
    /// no longer links to the event before it (that one edited or replaced).
    HashMismatch,
    /// The event is not there: the next stored one has a higher number (deleted).
    Missing {
        /// The next sequence number found.
        next_found: i64,
    },
    /// A sequence number below the expected one (duplicated or renumbered).
    OutOfOrder {
        /// The number found.
        found: i64,
    },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        match &self.problem {
            ChainProblem::HashMismatch => write!(
                f,
                "event {seq} does not match its hash: it (or the event it links to) was edited"
            ),
            ChainProblem::Missing { next_found } => {
                write!(f, "event {seq} is missing (the next stored is {next_found}): deleted")
            }
            ChainProblem::OutOfOrder { found } => write!(f, "event {found} is stored where {seq} belongs"),
        }
    }
}

/// Checks a chain event by event, in sequence order from 1.
pub struct ChainCheck {
    key: Vec<u8>,
    expected: i64,
    prev: Vec<u8>,
}

impl fmt::Debug for ChainCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainCheck")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl ChainCheck {
    /// A check from the first event, under `chain_key`.
    pub fn new(chain_key: &[u8]) -> Self {
        Self {
            key: chain_key.to_vec(),
            expected: 1,
            prev: GENESIS.to_vec(),
        }
    }

    /// Checks the next stored event; on success it becomes the head.
    pub fn check(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        let seq = self.expected;
        if record.seq > seq {
            return Err(ChainBreak {
                seq,
                problem: ChainProblem::Missing { next_found: record.seq },
            });
        }
        if record.seq < seq {
            return Err(ChainBreak {
                seq,
                problem: ChainProblem::OutOfOrder { found: record.seq },
            });
        }
        let want = link_hash(&self.key, &self.prev, &EventFields::stored(record));
        if !constant_time_eq(&want, &record.hash) {
            return Err(ChainBreak {
                seq,
                problem: ChainProblem::HashMismatch,
            });
        }
        self.prev = want;
        self.expected = seq.saturating_add(1);
        Ok(())
    }

    /// Events checked so far.
    pub fn events(&self) -> i64 {
        self.expected.saturating_sub(1)
    }

    /// The last good event's `(seq, hash)`; `None` before any.
    pub fn head(&self) -> Option<(i64, &[u8])> {
        (self.expected > 1).then_some((self.expected - 1, self.prev.as_slice()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)] // tests may unwrap
    use super::*;

    fn event(actor: &str, target: &str) -> NewAuditEvent {
        NewAuditEvent {
            at: 1_000,
            actor: actor.to_owned(),
            action: "client.create".to_owned(),
            target: target.to_owned(),
            outcome: "success".to_owned(),
            detail: "{}".to_owned(),
        }
    }

    fn record(seq: i64, e: &NewAuditEvent, prev: &[u8]) -> AuditRecord {
        let hash = link_hash(b"k", prev, &EventFields::new_event(seq, e));
        AuditRecord {
            seq,
            at: e.at,
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            outcome: e.outcome.clone(),
            detail: e.detail.clone(),
            hash,
        }
    }

    #[test]
    fn field_boundaries_cannot_shift() {
        let a = link_hash(b"k", &GENESIS, &EventFields::new_event(1, &event("client:ab", "c")));
        let b = link_hash(b"k", &GENESIS, &EventFields::new_event(1, &event("client:a", "bc")));
        assert_ne!(a, b);
    }

    #[test]
    fn the_key_and_the_link_matter() {
        let e = event("client:a", "x");
        let a = link_hash(b"k", &GENESIS, &EventFields::new_event(1, &e));
        assert_ne!(a, link_hash(b"other", &GENESIS, &EventFields::new_event(1, &e)));
        assert_ne!(a, link_hash(b"k", &[1; 32], &EventFields::new_event(1, &e)));
        assert_ne!(a, link_hash(b"k", &GENESIS, &EventFields::new_event(2, &e)));
        assert_eq!(to_hex(&[0, 0xab, 0x10]), "00ab10");
    }

    #[test]
    fn check_finds_edits_and_gaps() {
        let r1 = record(1, &event("a", "1"), &GENESIS);
        let r2 = record(2, &event("a", "2"), &r1.hash);
        let r3 = record(3, &event("a", "3"), &r2.hash);
        let mut c = ChainCheck::new(b"k");
        for r in [&r1, &r2, &r3] {
            c.check(r).unwrap();
        }
        assert_eq!(c.head().unwrap(), (3, r3.hash.as_slice()));

        let mut edited = r2.clone();
        edited.actor = "b".to_owned();
        let mut c = ChainCheck::new(b"k");
        c.check(&r1).unwrap();
        let err = c.check(&edited).unwrap_err();
        assert_eq!(err.seq, 2);
        assert_eq!(err.problem, ChainProblem::HashMismatch);
        assert_eq!(c.head().unwrap().0, 1);

        let mut c = ChainCheck::new(b"k");
        c.check(&r1).unwrap();
        let err = c.check(&r3).unwrap_err();
        assert_eq!(err.seq, 2);
        assert_eq!(err.problem, ChainProblem::Missing { next_found: 3 });
        assert!(err.to_string().contains("event 2 is missing"), "{err}");
    }
}
