//! The key manager: signing keys through their lifecycle
//! `next -> active -> retired -> gone`, or `withdrawn` in an emergency.
//!
//! The store is the truth; after every change the manager reloads an
//! immutable [`KeySet`] and swaps it in, so the token endpoint reads keys
//! without locks.

use crate::secrets::{MasterKey, SecretError};
use arc_swap::ArcSwap;
use castellan_core::{Clock, UnixTime};
use castellan_jose::{Algorithm, JoseError, Jwks, PublicJwk, SigningKey, VerifyingKey};
use castellan_store::{KeyRecord, KeyState, RevocationEvent, RevocationKind, Store, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing or unsealing failed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A key could not be generated or parsed.
    #[error("signing key `{kid}`: {source}")]
    Jose { kid: String, source: JoseError },
    /// The stored keys break an invariant (for example two active keys).
    #[error("stored signing keys are inconsistent: {0}")]
    Inconsistent(String),
    /// Another node has been changing the keys for longer than a key change takes.
    #[error("another node holds the signing-key lease; try again")]
    Busy,
}

/// The lease every node takes, on a shared store, before it reads the keys
/// to change them: two nodes deciding on the same stored state would both
/// rotate.
pub const KEYS_LEASE: &str = "keys";

/// The schedule the manager follows.
#[derive(Debug, Clone, Copy)]
pub struct KeySchedule {
    /// Algorithm of new keys.
    pub algorithm: Algorithm,
    /// Seconds a key signs before the next takes over.
    pub rotation_interval: i64,
    /// JWKS `max-age` in seconds; a next key is published at least twice this before it signs.
    pub jwks_max_age: i64,
    /// Longest access-token lifetime plus leeway: how long a retired or withdrawn key is kept.
    pub token_horizon: i64,
    /// Seconds a key stays `removed` (private half kept only for probe canaries) before deletion.
    pub keep_removed_for: i64,
}

impl KeySchedule {
    /// The one promotion rule: the active key (signing since `activated`) has
    /// served its interval, and the next key (published at `next_published`)
    /// has been in JWKS for at least twice the JWKS max-age.
    pub fn promotion_due(&self, activated: UnixTime, next_published: UnixTime, now: UnixTime) -> bool {
        let served = activated.saturating_add(self.rotation_interval) <= now;
        let published = next_published.saturating_add(self.jwks_max_age.saturating_mul(2)) <= now;
        served && published
    }
}

/// What `keys list` shows about a key; never the private half.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// Lifecycle state.
    pub state: KeyState,
    /// Created and published.
    pub created_at: UnixTime,
    /// Started signing.
    pub activated_at: Option<UnixTime>,
    /// Stopped signing.
    pub retired_at: Option<UnixTime>,
    /// Deleted at (retired) / kept for introspection until (withdrawn).
    pub remove_at: Option<UnixTime>,
}

impl From<&KeyRecord> for KeyInfo {
    fn from(k: &KeyRecord) -> Self {
        Self {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            state: k.state,
            created_at: k.created_at,
            activated_at: k.activated_at,
            retired_at: k.retired_at,
            remove_at: k.remove_at,
        }
    }
}

/// An immutable snapshot of the keys.
#[derive(Debug)]
pub struct KeySet {
    /// The one key that signs.
    pub active: SigningKey,
    /// The published JWKS document, serialised once.
    pub jwks_json: Vec<u8>,
    /// Keys whose tokens are valid: active and retired (never next, never withdrawn).
    pub verifying: HashMap<String, VerifyingKey>,
    /// Every stored key, for listing.
    pub infos: Vec<KeyInfo>,
}

/// What one scheduler pass did to the keys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Maintenance {
    /// Keys were written (promoted, created, removed or deleted).
    pub changed: bool,
    /// This pass promoted the next key: (the key that stopped signing, the one that signs now).
    pub promoted: Option<(String, String)>,
}

/// Owns the signing keys.
#[derive(Debug)]
pub struct KeyManager {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    schedule: KeySchedule,
    current: ArcSwap<KeySet>,
    write_lock: tokio::sync::Mutex<()>,
}

fn jose(kid: &str) -> impl FnOnce(JoseError) -> KeyError + '_ {
    move |source| KeyError::Jose {
        kid: kid.to_owned(),
        source,
    }
}

impl KeyManager {
    /// Loads the keys, creating the first active and next keys on an empty store.
    pub async fn open(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        clock: Arc<dyn Clock>,
        schedule: KeySchedule,
    ) -> Result<Self, KeyError> {
        let now = clock.now();
        let mut keys = store.list_keys().await?;
        let mut upserts = Vec::new();
        if !keys.iter().any(|k| k.state == KeyState::Active) {
            let mut first = new_record(&master, schedule.algorithm, now)?;
            first.state = KeyState::Active;
            first.activated_at = Some(now);
            upserts.push(first);
        }
        if !keys.iter().any(|k| k.state == KeyState::Next) {
            upserts.push(new_record(&master, schedule.algorithm, now)?);
        }
        if !upserts.is_empty() {
            store.write_keys(&upserts, &[]).await?;
            keys = store.list_keys().await?;
        }
        let set = build_set(&master, &keys)?;
        Ok(Self {
            store,
            master,
            clock,
            schedule,
            current: ArcSwap::from_pointee(set),
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// The schedule in force.
    pub fn schedule(&self) -> KeySchedule {
        self.schedule
    }

    /// Reads the keys again (another node may have rotated them); true when
    /// a key appeared, left, or changed state.
    ///
    /// # Errors
    /// The store, or a key that cannot be unsealed.
    pub async fn refresh(&self) -> Result<bool, KeyError> {
        // Never interleaved with a local change: a read from before it must
        // not replace the set it just stored.
        let _guard = self.write_lock.lock().await;
        let before: Vec<(String, KeyState)> = self.current().infos.iter().map(|k| (k.kid.clone(), k.state)).collect();
        let after = self.reload().await?;
        Ok(after.infos.iter().map(|k| (k.kid.clone(), k.state)).ne(before))
    }

    async fn reload(&self) -> Result<Arc<KeySet>, KeyError> {
        let keys = self.store.list_keys().await?;
        let set = Arc::new(build_set(&self.master, &keys)?);
        self.current.store(set.clone());
        Ok(set)
    }

    /// One scheduler step: drop keys past their horizon, keep a next key
    /// published, and promote it once the active key has served its interval
    /// and the next key has been published for at least twice the JWKS max-age.
    /// Returns true when the key set changed.
    pub async fn maintain(&self) -> Result<Maintenance, KeyError> {
        let _guard = self.write_lock.lock().await;
        let _cluster = crate::cluster::hold(&self.store, self.clock.as_ref(), KEYS_LEASE)
            .await
            .map_err(|e| match e {
                crate::cluster::HoldError::Store(e) => KeyError::Store(e),
                crate::cluster::HoldError::Busy => KeyError::Busy,
            })?;
        let now = self.clock.now();
        let keys = self.store.list_keys().await?;
        let s = self.schedule;
        let due = |k: &&KeyRecord| k.remove_at.is_some_and(|t| t <= now);
        let mut upserts = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        for k in keys.iter().filter(due) {
            match k.state {
                KeyState::Retired | KeyState::Withdrawn if s.keep_removed_for > 0 => {
                    tracing::info!(kid = %k.kid, "key removed from every verifier; kept for probe canaries only");
                    upserts.push(KeyRecord {
                        state: KeyState::Removed,
                        remove_at: Some(now.saturating_add(s.keep_removed_for)),
                        ..k.clone()
                    });
                }
                KeyState::Retired | KeyState::Withdrawn | KeyState::Removed => {
                    tracing::info!(kid = %k.kid, "key deleted");
                    deletes.push(k.kid.clone());
                }
                KeyState::Next | KeyState::Active => {}
            }
        }
        let active = keys.iter().find(|k| k.state == KeyState::Active);
        let next = keys.iter().find(|k| k.state == KeyState::Next);
        let mut promoted = None;
        match (active, next) {
            (Some(active), Some(next)) => {
                if s.promotion_due(active.activated_at.unwrap_or(active.created_at), next.created_at, now) {
                    upserts.extend(promote(active, next, now, s.token_horizon, KeyState::Retired));
                    upserts.push(new_record(&self.master, s.algorithm, now)?);
                    tracing::info!(old = %active.kid, new = %next.kid, "scheduled key rotation");
                    promoted = Some((active.kid.clone(), next.kid.clone()));
                }
            }
            (Some(_), None) => upserts.push(new_record(&self.master, s.algorithm, now)?),
            (None, _) => return Err(KeyError::Inconsistent("no active key".to_owned())),
        }
        if upserts.is_empty() && deletes.is_empty() {
            return Ok(Maintenance::default());
        }
        self.store.write_keys(&upserts, &deletes).await?;
        self.reload().await?;
        Ok(Maintenance {
            changed: true,
            promoted,
        })
    }

    /// Signs `claims` with the newest key no verifier may trust any more
    /// (withdrawn, or removed after its last token): only for the drift
    /// probe's `removed-key` canary, never for a real token. Returns the
    /// token and the key's kid; `None` when no such key is kept.
    ///
    /// # Errors
    /// The store, or a key that cannot be unsealed.
    pub async fn sign_with_removed_key<C: serde::Serialize>(
        &self,
        typ: &str,
        claims: &C,
    ) -> Result<Option<(String, String)>, KeyError> {
        let keys = self.store.list_keys().await?;
        let Some(rec) = keys
            .iter()
            .filter(|k| matches!(k.state, KeyState::Withdrawn | KeyState::Removed))
            .max_by_key(|k| (k.retired_at.unwrap_or(k.created_at), k.created_at))
        else {
            return Ok(None);
        };
        let alg: Algorithm = rec.alg.parse().map_err(jose(&rec.kid))?;
        let pkcs8 = self.master.open(&rec.kid, &rec.private_enc)?;
        let key = SigningKey::from_pkcs8(alg, &pkcs8).map_err(jose(&rec.kid))?;
        let token = key.sign_compact(typ, claims).map_err(jose(&rec.kid))?;
        Ok(Some((token, rec.kid.clone())))
    }

    /// Makes the published next key active now. In an emergency the active
    /// key is withdrawn (gone from JWKS at once, its tokens invalid) instead
    /// of retired. A new next key is published either way.
    pub async fn rotate(&self, emergency: bool) -> Result<(Arc<KeySet>, Option<RevocationEvent>), KeyError> {
        let _guard = self.write_lock.lock().await;
        let _cluster = crate::cluster::hold(&self.store, self.clock.as_ref(), KEYS_LEASE)
            .await
            .map_err(|e| match e {
                crate::cluster::HoldError::Store(e) => KeyError::Store(e),
                crate::cluster::HoldError::Busy => KeyError::Busy,
            })?;
        let now = self.clock.now();
        let s = self.schedule;
        let keys = self.store.list_keys().await?;
        let active = keys
            .iter()
            .find(|k| k.state == KeyState::Active)
            .ok_or_else(|| KeyError::Inconsistent("no active key".to_owned()))?;
        let generated;
        let next = match keys.iter().find(|k| k.state == KeyState::Next) {
            Some(n) => n,
            None => {
                generated = new_record(&self.master, s.algorithm, now)?;
                &generated
            }
        };
        let old_state = if emergency {
            KeyState::Withdrawn
        } else {
            KeyState::Retired
        };
        let mut upserts: Vec<KeyRecord> = promote(active, next, now, s.token_horizon, old_state).collect();
        upserts.push(new_record(&self.master, s.algorithm, now)?);
        self.store.write_keys(&upserts, &[]).await?;
        let mut withdrawn = None;
        if emergency {
            let event = self
                .store
                .append_revocation(
                    RevocationKind::Key,
                    &active.kid,
                    now,
                    now,
                    now.saturating_add(s.token_horizon),
                )
                .await?;
            tracing::warn!(withdrawn = %active.kid, active = %next.kid, "emergency rotation: key withdrawn");
            withdrawn = Some(event);
        } else {
            tracing::info!(retired = %active.kid, active = %next.kid, "manual key rotation");
        }
        Ok((self.reload().await?, withdrawn))
    }

    /// The next key's kid when the schedule would promote it now.
    pub fn due_for_promotion(&self) -> Option<String> {
        let now = self.clock.now();
        let s = self.schedule;
        let set = self.current();
        let active = set.infos.iter().find(|k| k.state == KeyState::Active)?;
        let next = set.infos.iter().find(|k| k.state == KeyState::Next)?;
        s.promotion_due(active.activated_at.unwrap_or(active.created_at), next.created_at, now)
            .then(|| next.kid.clone())
    }

    /// The next key's kid.
    pub fn next_kid(&self) -> Option<String> {
        self.current()
            .infos
            .iter()
            .find(|k| k.state == KeyState::Next)
            .map(|k| k.kid.clone())
    }
}

fn promote(
    active: &KeyRecord,
    next: &KeyRecord,
    now: UnixTime,
    horizon: i64,
    old_state: KeyState,
) -> impl Iterator<Item = KeyRecord> {
    let old = KeyRecord {
        state: old_state,
        retired_at: Some(now),
        remove_at: Some(now.saturating_add(horizon)),
        ..active.clone()
    };
    let new = KeyRecord {
        state: KeyState::Active,
        activated_at: Some(now),
        ..next.clone()
    };
    [old, new].into_iter()
}

fn new_record(master: &MasterKey, alg: Algorithm, now: UnixTime) -> Result<KeyRecord, KeyError> {
    let (key, pkcs8) = SigningKey::generate(alg).map_err(jose("new"))?;
    let public_jwk = serde_json::to_string(key.public_jwk()).map_err(|e| KeyError::Inconsistent(e.to_string()))?;
    Ok(KeyRecord {
        kid: key.kid().to_owned(),
        alg: alg.as_str().to_owned(),
        state: KeyState::Next,
        private_enc: master.seal(key.kid(), &pkcs8)?,
        public_jwk,
        created_at: now,
        activated_at: None,
        retired_at: None,
        remove_at: None,
    })
}

fn build_set(master: &MasterKey, keys: &[KeyRecord]) -> Result<KeySet, KeyError> {
    let mut actives = keys.iter().filter(|k| k.state == KeyState::Active);
    let active_rec = actives
        .next()
        .ok_or_else(|| KeyError::Inconsistent("no active key".to_owned()))?;
    if actives.next().is_some() {
        return Err(KeyError::Inconsistent("more than one active key".to_owned()));
    }
    let alg: Algorithm = active_rec.alg.parse().map_err(jose(&active_rec.kid))?;
    let pkcs8 = master.open(&active_rec.kid, &active_rec.private_enc)?;
    let active = SigningKey::from_pkcs8(alg, &pkcs8).map_err(jose(&active_rec.kid))?;
    if active.kid() != active_rec.kid {
        return Err(KeyError::Inconsistent(format!(
            "key `{}` does not match its id",
            active_rec.kid
        )));
    }
    let mut published: Vec<PublicJwk> = Vec::new();
    let mut verifying = HashMap::new();
    // Active first, then next, then retired: verifiers that try keys in order find the common case first.
    for state in [KeyState::Active, KeyState::Next, KeyState::Retired] {
        for rec in keys.iter().filter(|k| k.state == state) {
            let jwk: PublicJwk = serde_json::from_str(&rec.public_jwk).map_err(|e| KeyError::Jose {
                kid: rec.kid.clone(),
                source: JoseError::BadKey(e.to_string()),
            })?;
            if state != KeyState::Next {
                verifying.insert(rec.kid.clone(), VerifyingKey::from_jwk(&jwk).map_err(jose(&rec.kid))?);
            }
            published.push(jwk);
        }
    }
    let jwks_json = serde_json::to_vec(&Jwks { keys: published }).map_err(|e| KeyError::Inconsistent(e.to_string()))?;
    Ok(KeySet {
        active,
        jwks_json,
        verifying,
        infos: {
            let rank = |s: KeyState| {
                [
                    KeyState::Active,
                    KeyState::Next,
                    KeyState::Retired,
                    KeyState::Withdrawn,
                    KeyState::Removed,
                ]
                .iter()
                .position(|x| *x == s)
            };
            let mut infos: Vec<KeyInfo> = keys.iter().map(KeyInfo::from).collect();
            infos.sort_by_key(|k| (rank(k.state), k.created_at));
            infos
        },
    })
}
