//! The authority's internal CA: key pairs sealed by the master key in the
//! store, and their rotation. The lifecycle is the signing keys': the
//! `next` CA is in the trust bundle before it signs; after a rotation the
//! old one stays in the bundle (retired) until the last SVID it signed has
//! expired, then goes.

use crate::secrets::MasterKey;
use arc_swap::ArcSwap;
use castellan_ca::{bundle_pem, spiffe_bundle_json, CaCert, CaError, CaKey, TrustDomain};
use castellan_core::{Clock, UnixTime};
use castellan_store::{CaRecord, KeyState, Store, StoreError};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Why the CA could not load or rotate.
#[derive(Debug, thiserror::Error)]
pub enum CaManagerError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored CA is unusable, or generation failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// Another node has been changing the CAs for longer than a change takes.
    #[error("another node holds the CA lease; try again")]
    Busy,
    /// A sealed private key could not be opened (wrong master key?).
    #[error("CA `{0}`: private key cannot be unsealed")]
    Unseal(String),
    /// The next CA has not been in the bundle long enough for every
    /// workload to have renewed since (and so to trust it).
    #[error(
        "the next CA has been published for {published_secs}s, less than ca.max_svid_ttl ({needed_secs}s): \
         workloads that have not renewed since would fail handshakes; force it only after a compromise"
    )]
    TooSoon {
        /// How long the next CA has been in the bundle.
        published_secs: i64,
        /// `ca.max_svid_ttl`.
        needed_secs: i64,
    },
}

/// The CAs in force.
pub struct CaSet {
    /// The one that signs.
    pub active: CaKey,
    /// Every CA in the trust bundle: next, active, retired.
    pub published: Vec<CaCert>,
    /// States, for the admin view.
    pub records: Vec<(String, KeyState, UnixTime)>,
    /// Grows whenever the bundle changes (SPIFFE `spiffe_sequence`).
    pub sequence: u64,
}

impl std::fmt::Debug for CaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSet")
            .field("active", &self.active.id())
            .field("published", &self.published.len())
            .finish_non_exhaustive()
    }
}

impl CaSet {
    /// `bundle.pem`.
    pub fn bundle_pem(&self) -> String {
        bundle_pem(&self.published.iter().collect::<Vec<_>>())
    }

    /// The SPIFFE bundle JSON.
    pub fn spiffe_bundle(&self, refresh_hint: u64) -> String {
        spiffe_bundle_json(&self.published.iter().collect::<Vec<_>>(), self.sequence, refresh_hint)
    }
}

/// Timing of the CA lifecycle.
#[derive(Debug, Clone, Copy)]
pub struct CaSchedule {
    /// How long a CA signs.
    pub rotation_interval: i64,
    /// Longest SVID lifetime.
    pub max_svid_ttl: i64,
}

impl CaSchedule {
    /// A CA's certificate must outlive: waiting as next, signing, then its last SVID.
    fn ca_lifetime(&self) -> u64 {
        let secs = self
            .rotation_interval
            .saturating_mul(2)
            .saturating_add(self.max_svid_ttl)
            .saturating_add(86_400);
        u64::try_from(secs).unwrap_or(u64::MAX)
    }
}

/// The lease every node takes, on a shared store, before it changes the CAs.
pub const CA_LEASE: &str = "ca";

/// Loads, rotates and hands out the CA.
pub struct CaManager {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    clock: Arc<dyn Clock>,
    trust_domain: TrustDomain,
    schedule: CaSchedule,
    current: ArcSwap<CaSet>,
    writing: Mutex<()>,
}

impl std::fmt::Debug for CaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaManager")
            .field("trust_domain", &self.trust_domain.as_str())
            .finish_non_exhaustive()
    }
}

fn context(ca_id: &str) -> String {
    format!("ca:{ca_id}")
}

impl CaManager {
    /// Loads the CAs, creating the first (active and next) on first start.
    pub async fn open(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        clock: Arc<dyn Clock>,
        trust_domain: TrustDomain,
        schedule: CaSchedule,
    ) -> Result<Self, CaManagerError> {
        let now = clock.now();
        let mut records = store.list_cas().await?;
        if !records.iter().any(|r| r.state == KeyState::Active) {
            let active = Self::generate(&master, &trust_domain, schedule, KeyState::Active, now)?;
            let next = Self::generate(&master, &trust_domain, schedule, KeyState::Next, now)?;
            store.write_cas(&[active.clone(), next.clone()], &[]).await?;
            tracing::info!(ca = %active.ca_id, trust_domain = %trust_domain.as_str(), "internal CA created");
            records = store.list_cas().await?;
        }
        let set = Self::load(&master, &records)?;
        Ok(Self {
            store,
            master,
            clock,
            trust_domain,
            schedule,
            current: ArcSwap::from_pointee(set),
            writing: Mutex::new(()),
        })
    }

    fn generate(
        master: &MasterKey,
        td: &TrustDomain,
        schedule: CaSchedule,
        state: KeyState,
        now: UnixTime,
    ) -> Result<CaRecord, CaManagerError> {
        let key = CaKey::generate(td, schedule.ca_lifetime(), now)?;
        let sealed = master
            .seal(&context(key.id()), &key.private_key_pkcs8_der())
            .map_err(|_| CaManagerError::Unseal(key.id().to_owned()))?;
        Ok(CaRecord {
            ca_id: key.id().to_owned(),
            state,
            private_enc: sealed,
            cert_der: key.cert_der().to_vec(),
            created_at: now,
            activated_at: (state == KeyState::Active).then_some(now),
            retired_at: None,
            remove_at: None,
        })
    }

    fn load(master: &MasterKey, records: &[CaRecord]) -> Result<CaSet, CaManagerError> {
        let mut active = None;
        let mut published = Vec::new();
        let mut states = Vec::new();
        for r in records {
            states.push((r.ca_id.clone(), r.state, r.created_at));
            match r.state {
                KeyState::Active => {
                    let pkcs8 = master
                        .open(&context(&r.ca_id), &r.private_enc)
                        .map_err(|_| CaManagerError::Unseal(r.ca_id.clone()))?;
                    let key = CaKey::from_pkcs8_der(&pkcs8, &r.cert_der)?;
                    published.push(key.cert().clone());
                    active = Some(key);
                }
                KeyState::Next | KeyState::Retired => published.push(CaCert::from_der(&r.cert_der)?),
                KeyState::Withdrawn | KeyState::Removed => {}
            }
        }
        let active = active.ok_or_else(|| CaManagerError::Unseal("no active CA".to_owned()))?;
        let sequence = records
            .iter()
            .map(|r| r.created_at.max(r.retired_at.unwrap_or(0)))
            .max()
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(0);
        Ok(CaSet {
            active,
            published,
            records: states,
            sequence,
        })
    }

    async fn cluster_lock(&self) -> Result<crate::cluster::HeldLease, CaManagerError> {
        crate::cluster::hold(&self.store, self.clock.as_ref(), CA_LEASE)
            .await
            .map_err(|e| match e {
                crate::cluster::HoldError::Store(e) => CaManagerError::Store(e),
                crate::cluster::HoldError::Busy => CaManagerError::Busy,
            })
    }

    /// Reads the CAs again (another node may have rotated them); true when
    /// one appeared, left, or changed state.
    ///
    /// # Errors
    /// The store, or a CA key that cannot be unsealed.
    pub async fn refresh(&self) -> Result<bool, CaManagerError> {
        // Never interleaved with a local change (see KeyManager::refresh).
        let _guard = self.writing.lock().await;
        let records = self.store.list_cas().await?;
        let set = Self::load(&self.master, &records)?;
        let changed = set.records.iter().map(|(id, state, _)| (id, state)).ne(self
            .current()
            .records
            .iter()
            .map(|(id, state, _)| (id, state)));
        if changed {
            self.current.store(Arc::new(set));
        }
        Ok(changed)
    }

    /// The CAs now.
    pub fn current(&self) -> Arc<CaSet> {
        self.current.load_full()
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// Promotes the next CA: the active one retires (kept in the bundle
    /// until its last SVID expires), a new next one is published. Unless
    /// `force`, refused while the next CA has been published for less than
    /// `max_svid_ttl`: workloads learn the bundle when they renew. With
    /// `withdraw` (a compromised CA; implies `force`) the active CA leaves
    /// the bundle at once instead of retiring: every SVID it signed stops
    /// verifying, and its holders need a new join token.
    pub async fn rotate(&self, force: bool, withdraw: bool) -> Result<Arc<CaSet>, CaManagerError> {
        let force = force || withdraw;
        let _guard = self.writing.lock().await;
        let _cluster = self.cluster_lock().await?;
        let now = self.clock.now();
        let records = self.store.list_cas().await?;
        if !force {
            let published_secs = records
                .iter()
                .filter(|r| r.state == KeyState::Next)
                .map(|r| now.saturating_sub(r.created_at))
                .max()
                .unwrap_or(0);
            if published_secs < self.schedule.max_svid_ttl {
                return Err(CaManagerError::TooSoon {
                    published_secs,
                    needed_secs: self.schedule.max_svid_ttl,
                });
            }
        }
        let mut upserts = Vec::new();
        let mut withdrawn = Vec::new();
        let mut have_next = false;
        for r in &records {
            match r.state {
                KeyState::Active if withdraw => withdrawn.push(r.ca_id.clone()),
                KeyState::Active => upserts.push(CaRecord {
                    state: KeyState::Retired,
                    retired_at: Some(now),
                    remove_at: Some(now.saturating_add(self.schedule.max_svid_ttl).saturating_add(60)),
                    ..r.clone()
                }),
                KeyState::Next if !have_next => {
                    have_next = true;
                    upserts.push(CaRecord {
                        state: KeyState::Active,
                        activated_at: Some(now),
                        ..r.clone()
                    });
                }
                _ => {}
            }
        }
        if !have_next {
            upserts.push(Self::generate(
                &self.master,
                &self.trust_domain,
                self.schedule,
                KeyState::Active,
                now,
            )?);
        }
        upserts.push(Self::generate(
            &self.master,
            &self.trust_domain,
            self.schedule,
            KeyState::Next,
            now,
        )?);
        self.store.write_cas(&upserts, &withdrawn).await?;
        let set = Arc::new(Self::load(&self.master, &self.store.list_cas().await?)?);
        self.current.store(set.clone());
        if withdrawn.is_empty() {
            tracing::info!(active = %set.active.id(), "internal CA rotated");
        } else {
            tracing::warn!(active = %set.active.id(), withdrawn = ?withdrawn, "internal CA rotated and the old one withdrawn from the trust bundle");
        }
        metrics::counter!("castellan_ca_rotations_total").increment(1);
        Ok(set)
    }

    /// Rotates when the active CA has signed for `rotation_interval`, and
    /// drops retired CAs whose last SVID has expired. True if anything changed.
    pub async fn maintain(&self) -> Result<bool, CaManagerError> {
        let now = self.clock.now();
        let records = self.store.list_cas().await?;
        let due = records.iter().any(|r| {
            r.state == KeyState::Active
                && r.activated_at
                    .unwrap_or(r.created_at)
                    .saturating_add(self.schedule.rotation_interval)
                    <= now
        });
        if due {
            // The next CA is as old as the active one's signing period,
            // which the configuration keeps at least `max_svid_ttl`; not
            // forced, so a node passing just after another's rotation finds
            // the new next CA too young and rotates nothing.
            match self.rotate(false, false).await {
                Ok(_) => {}
                Err(CaManagerError::TooSoon { .. }) => {
                    tracing::debug!("the CA was rotated meanwhile (by another node); nothing to do");
                }
                Err(e) => return Err(e),
            }
        }
        let expired: Vec<String> = records
            .iter()
            .filter(|r| r.state == KeyState::Retired && r.remove_at.is_some_and(|t| t <= now))
            .map(|r| r.ca_id.clone())
            .collect();
        if expired.is_empty() {
            return Ok(due);
        }
        let _guard = self.writing.lock().await;
        let _cluster = self.cluster_lock().await?;
        self.store.write_cas(&[], &expired).await?;
        self.current
            .store(Arc::new(Self::load(&self.master, &self.store.list_cas().await?)?));
        tracing::info!(removed = ?expired, "retired CAs removed from the trust bundle");
        Ok(true)
    }
}
