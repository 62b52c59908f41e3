//! Verified tokens, remembered by their exact text. A hit skips the
//! signature, never expiry or revocation: both are checked again on every hit.

use crate::{Rejection, RevocationState, VerifiedToken};
use castellan_core::UnixTime;
use std::collections::HashMap;
use std::sync::RwLock;

/// A bounded map from token text to its verified claims. Keys are the whole
/// token (compared in full), hashed with the standard library's randomly
/// keyed SipHash, so no one can aim a token at another's entry.
#[derive(Debug)]
pub struct TokenCache {
    map: RwLock<HashMap<Box<str>, VerifiedToken>>,
    capacity: usize,
}

impl TokenCache {
    /// A cache holding at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::with_capacity(capacity.min(4096))),
            capacity,
        }
    }

    /// A remembered token, re-checked against `now` (with `leeway`) and the revocation state.
    pub fn get(
        &self,
        token: &str,
        now: UnixTime,
        leeway: i64,
        revocations: &RevocationState,
    ) -> Option<Result<VerifiedToken, Rejection>> {
        let hit = self.map.read().ok()?.get(token).cloned()?;
        if now.saturating_sub(leeway) >= hit.exp {
            return Some(Err(Rejection::Expired));
        }
        if revocations.key_withdrawn(&hit.kid) {
            return Some(Err(Rejection::KeyWithdrawn));
        }
        if let Some(by) = revocations.check(&hit.sid, &hit.sub, &hit.client_id, hit.iat) {
            return Some(Err(Rejection::Revoked(by)));
        }
        Some(Ok(hit))
    }

    /// Remembers a verified token. When full, expired entries go first, then everything.
    pub fn insert(&self, token: &str, verified: VerifiedToken, now: UnixTime) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut map) = self.map.write() else { return };
        if map.len() >= self.capacity {
            map.retain(|_, v| v.exp > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(token.into(), verified);
    }
}
