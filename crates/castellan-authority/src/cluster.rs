//! Several authority nodes on one shared database.
//!
//! Every node serves every request from the database, so an admin change
//! made on one node is honoured by the others at once, except for what a
//! node keeps in memory: the signing keys, the CAs, and the live event
//! streams it feeds its verifiers. Those follow the database:
//!
//! - a node that writes announces the change (PostgreSQL `NOTIFY`);
//! - every node listens, and also reads the database every
//!   `database.poll_interval` for anything a notification missed (a dropped
//!   listener connection, a node that died between its commit and its
//!   announcement);
//! - revocations are read back in sequence order from the log, whose
//!   numbers are global: a verifier that reconnects to another node resumes
//!   exactly where it was.
//!
//! Scheduled work (key and CA rotation, pruning) runs on one node at a time:
//! the holder of the `scheduler` lease in the database, renewed on every
//! pass. If it dies, another node takes the lease over once it expires.
//! Rotation decisions are always taken on state read from the database, so
//! even two nodes passing at once cannot rotate twice.

use crate::events::StreamEvent;
use crate::Authority;
use castellan_store::{Change, Notice};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Heartbeat writes to a shared store in flight at once, per node.
pub const HEARTBEAT_WRITERS: usize = 4;

/// The lease that elects the node running scheduled work.
pub const SCHEDULER_LEASE: &str = "scheduler";
/// The lease held while the first keys, CAs and admin are created.
pub const BOOTSTRAP_LEASE: &str = "bootstrap";

/// What a node has already passed on to its own streams.
#[derive(Debug, Default)]
struct Followed {
    seq: i64,
    policies: HashMap<String, i64>,
}

impl Authority {
    /// Tells the other nodes about a change this node wrote. Best effort:
    /// they also poll, so a lost announcement only delays them.
    pub(crate) async fn announce(&self, change: Change) {
        if let Err(e) = self.store().announce(&change).await {
            tracing::warn!(error = %e, ?change, "could not announce a change to the other nodes; they will poll it");
        }
    }

    /// Follows changes written by other nodes until the task is dropped:
    /// revocations into this node's streams, key and CA changes into its
    /// memory, policy versions as stream events. Does nothing on a store
    /// no other node shares (SQLite).
    pub async fn run_follower(self: Arc<Self>) {
        if !self.store().is_shared() {
            return;
        }
        let mut followed = Followed {
            seq: self.store().latest_revocation_seq().await.unwrap_or(0),
            policies: self
                .store()
                .list_policy_services()
                .await
                .map(|v| v.into_iter().collect())
                .unwrap_or_default(),
        };
        let mut notices = self.store().subscribe();
        let poll = self.config().database.poll_interval.0;
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let notice = match notices.as_mut() {
                Some(rx) => tokio::select! {
                    n = rx.recv() => n,
                    _ = tick.tick() => Some(Notice::Reconnected),
                },
                None => {
                    tick.tick().await;
                    Some(Notice::Reconnected)
                }
            };
            match notice {
                Some(Notice::Change(Change::Revocation { .. })) => self.follow_revocations(&mut followed).await,
                Some(Notice::Change(Change::Keys)) => self.follow_keys().await,
                Some(Notice::Change(Change::Ca)) => self.follow_ca().await,
                Some(Notice::Change(Change::Policy { service, version })) => {
                    self.follow_policy(&mut followed, service, version);
                }
                // A poll, or the listener reconnected: it may have missed anything.
                Some(Notice::Reconnected) => self.follow_everything(&mut followed).await,
                None => {
                    // The listener is gone for good: poll only.
                    tracing::warn!("change notifications stopped; following the database by polling");
                    notices = None;
                }
            }
        }
    }

    async fn follow_everything(&self, followed: &mut Followed) {
        self.follow_revocations(followed).await;
        self.follow_keys().await;
        self.follow_ca().await;
        match self.store().list_policy_services().await {
            Ok(services) => {
                for (service, version) in services {
                    self.follow_policy(followed, service, version);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster: cannot read policy versions"),
        }
    }

    async fn follow_revocations(&self, followed: &mut Followed) {
        loop {
            let page = match self.store().revocations_since(followed.seq, 500).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: cannot read the revocation log");
                    return;
                }
            };
            let full = page.len() == 500;
            for event in page {
                followed.seq = followed.seq.max(event.seq);
                // Streams skip what they already sent (this node's own events among them).
                self.events().publish(StreamEvent::Revocation(event));
            }
            if !full {
                return;
            }
        }
    }

    async fn follow_keys(&self) {
        match self.keys().refresh().await {
            Ok(true) => {
                tracing::info!("signing keys changed on another node");
                self.publish_keys();
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cluster: cannot reload the signing keys"),
        }
    }

    async fn follow_ca(&self) {
        match self.ca().refresh().await {
            Ok(true) => tracing::info!("internal CAs changed on another node"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cluster: cannot reload the internal CAs"),
        }
    }

    fn follow_policy(&self, followed: &mut Followed, service: String, version: i64) {
        let known = followed.policies.get(&service).copied().unwrap_or(0);
        if version > known {
            followed.policies.insert(service.clone(), version);
            self.events().publish(StreamEvent::Policy { service, version });
        }
    }

    /// Records a verifier's heartbeat: in this node's memory at once and, on
    /// a shared store, in the store (where every node sees it; verifiers
    /// report to whichever node the load balancer picks). The store write is
    /// off the request path and bounded: at most [`HEARTBEAT_WRITERS`] at a
    /// time, the rest skipped (the verifier reports again within seconds), so
    /// a flood of heartbeats never takes the connections tokens need.
    pub(crate) fn record_heartbeat(self: &Arc<Self>, hb: crate::events::Heartbeat, latest_seq: i64) {
        let row = self.verifiers().record(hb, self.now(), latest_seq);
        if !self.store().is_shared() {
            return;
        }
        // The store sets its own reference from the row it replaces.
        match self.heartbeat_writers().clone().try_acquire_owned() {
            Ok(permit) => {
                let auth = Arc::clone(self);
                tokio::spawn(async move {
                    if let Err(e) = auth.store().record_heartbeat(&row).await {
                        tracing::warn!(error = %e, "heartbeat not shared with the other nodes; kept in this node's memory");
                    }
                    drop(permit);
                });
            }
            Err(_) => metrics::counter!("castellan_heartbeats_not_shared_total").increment(1),
        }
    }

    /// Every verifier heard from: all nodes' heartbeats on a shared store,
    /// this node's otherwise (or when the store cannot be read).
    pub async fn verifier_views(&self) -> Vec<crate::events::VerifierView> {
        let now = self.now();
        if self.store().is_shared() {
            let since = now.saturating_sub(crate::events::LIVENESS_SECONDS * 10);
            match self.store().list_heartbeats(since).await {
                Ok(rows) => {
                    let mut views: Vec<crate::events::VerifierView> = rows
                        .into_iter()
                        .map(|h| crate::events::VerifierView::at(h, now))
                        .collect();
                    // What this node heard but could not share yet.
                    let shared: std::collections::HashSet<String> =
                        views.iter().map(|v| v.verifier_id.clone()).collect();
                    for mine in self.verifiers().list(now) {
                        if !shared.contains(&mine.verifier_id) {
                            views.push(mine);
                        }
                    }
                    return views;
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the shared heartbeats; showing this node's"),
            }
        }
        self.verifiers().list(now)
    }

    /// Whether this node holds (and has just renewed) the scheduler lease.
    pub(crate) async fn lead(&self) -> bool {
        let lease = self.config().database.leader_lease.secs();
        match self
            .store()
            .acquire_lease(SCHEDULER_LEASE, self.node_id(), self.now(), lease)
            .await
        {
            Ok(held) => {
                metrics::gauge!("castellan_scheduler_leader").set(if held { 1.0 } else { 0.0 });
                held
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the scheduler lease; not running scheduled work");
                false
            }
        }
    }
}

/// Takes `lease` for `holder`, waiting up to `wait` while another node
/// holds it; false when it could not be had in time.
pub(crate) async fn wait_for_lease(
    store: &dyn castellan_store::Store,
    lease: &str,
    holder: &str,
    clock: &dyn castellan_core::Clock,
    ttl: i64,
    wait: Duration,
) -> Result<bool, castellan_store::StoreError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if store.acquire_lease(lease, holder, clock.now(), ttl).await? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Why a cluster-wide lock could not be had.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] castellan_store::StoreError),
    /// Another node has held it for longer than a change takes.
    #[error("another node holds the lease")]
    Busy,
}

/// How long a node may hold a [`hold`] lease, seconds.
const HOLD_SECS: i64 = 30;

/// Holds a lease taken by [`hold`] until dropped (released by a background
/// task; if there is no runtime any more it expires on its own).
#[derive(Debug)]
pub(crate) struct HeldLease {
    store: Option<Arc<dyn castellan_store::Store>>,
    name: &'static str,
    holder: String,
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            let (name, holder) = (self.name, std::mem::take(&mut self.holder));
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = store.release_lease(name, &holder).await {
                        tracing::warn!(error = %e, lease = name, "could not release a lease; it expires on its own");
                    }
                });
            }
        }
    }
}

/// On a store other nodes share, waits (at most 35 s) for the cluster-wide
/// lease `name`, so a change is decided on state no other node is changing;
/// nothing to take on a store no other node shares.
pub(crate) async fn hold(
    store: &Arc<dyn castellan_store::Store>,
    clock: &dyn castellan_core::Clock,
    name: &'static str,
) -> Result<HeldLease, HoldError> {
    if !store.is_shared() {
        return Ok(HeldLease {
            store: None,
            name,
            holder: String::new(),
        });
    }
    let holder = crate::secrets::random_id("hold-").map_err(|_| HoldError::Busy)?;
    if wait_for_lease(store.as_ref(), name, &holder, clock, HOLD_SECS, Duration::from_secs(35)).await? {
        Ok(HeldLease {
            store: Some(store.clone()),
            name,
            holder,
        })
    } else {
        Err(HoldError::Busy)
    }
}
