//! Castellan's persistent store.
//!
//! One [`Store`] trait holds everything the authority must not lose: clients,
//! signing keys (private halves encrypted by the caller), the ordered
//! revocation log and the replay cache for client assertions. SQLite is the
//! embedded default; PostgreSQL serves several authority nodes sharing one
//! database. Both implement the same trait and pass the same conformance
//! tests (`tests/conformance.rs`).
#![forbid(unsafe_code)]

pub mod audit_chain;
pub mod copy;
mod metered;
mod migrations;
mod model;
mod postgres;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

pub use metered::MeteredStore;
pub use model::{
    AuditQuery, AuditRecord, AuthCodeRecord, CaRecord, ClientRecord, DecisionQuery, DecisionRecord, HeartbeatRecord,
    JoinTokenRecord, KeyRecord, KeyState, NewAuditEvent, PolicyVersionRecord, ProbeRunRecord, Redeemed,
    RefreshTokenRecord, RevocationEvent, RevocationKind, SessionRecord, UserRecord, WorkloadRecord,
};
pub use postgres::{PgOptions, PostgresStore};
pub use sqlite::SqliteStore;

use castellan_core::UnixTime;

/// A change one node wrote that the other nodes sharing the store must
/// follow (announced with PostgreSQL `NOTIFY`; they also poll for it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A revocation was appended with this sequence number.
    Revocation {
        /// Its sequence number.
        seq: i64,
    },
    /// Signing keys changed (rotation, withdrawal, removal).
    Keys,
    /// Internal CAs changed.
    Ca,
    /// A new policy version is in force.
    Policy {
        /// The service.
        service: String,
        /// The version.
        version: i64,
    },
}

/// What a change subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Another node (or this one) announced a change.
    Change(Change),
    /// The listening connection was lost and made again: changes announced
    /// meanwhile were missed, so read everything again.
    Reconnected,
}

/// A storage failure. Messages never include stored secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A row could not be read back (corrupt or from a newer version).
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt { what: &'static str, reason: String },
    /// A unique value already exists.
    #[error("{what} `{id}` already exists")]
    Conflict { what: &'static str, id: String },
    /// The schema is newer than this binary.
    #[error("store schema version {found} is newer than this binary supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
}

impl StoreError {
    /// The store could not be reached or answer in time, or refused for a
    /// passing reason (connection lost or refused, pool exhausted, statement
    /// cancelled by its timeout, server shutting down, a deadlock or
    /// serialization failure, a lock not available, a read-only standby): a
    /// retry may succeed. A connection lost during a commit leaves the
    /// outcome unknown: the retry may find the write done.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(e) => match e {
                // A connection cut during its handshake reads as a protocol
                // error (e.g. an empty answer to the SSL request).
                sqlx::Error::Io(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                // 57014 query_canceled (statement_timeout), 57P01..57P03
                // shutdown and cannot-connect-now, 08xxx connection exceptions,
                // 53300 too many connections; SQLITE_BUSY (5) after busy_timeout.
                sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                    matches!(
                        c.as_ref(),
                        "57014" | "53300" | "40P01" | "40001" | "55P03" | "25006" | "5"
                    ) || c.starts_with("57P")
                        || c.starts_with("08")
                }),
                _ => false,
            },
            _ => false,
        }
    }
}

/// Result alias.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the authority persists. Every method is atomic; an `Ok` means
/// the write is durable.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Reads a value from the small key/value area (for example the secret-hash key id).
    async fn get_meta(&self, key: &str) -> StoreResult<Option<String>>;
    /// Writes a value in the key/value area only when absent; returns what is stored afterwards.
    async fn init_meta(&self, key: &str, value: &str) -> StoreResult<String>;

    /// Inserts a new client; `Conflict` when the id exists.
    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()>;
    /// Reads one client.
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>>;
    /// All clients, by creation.
    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>>;
    /// Deletes a client; false when there was none.
    async fn delete_client(&self, client_id: &str) -> StoreResult<bool>;
    /// Replaces a client's secret hash; false when there is no such client.
    async fn set_client_secret(&self, client_id: &str, secret_hash: &[u8]) -> StoreResult<bool>;

    /// Every signing key that still exists, oldest first.
    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>>;
    /// In one transaction: upserts `upserts` and deletes `deletes` (by kid).
    async fn write_keys(&self, upserts: &[KeyRecord], deletes: &[String]) -> StoreResult<()>;

    /// Appends to the revocation log; returns the event with its sequence number.
    async fn append_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        not_before: UnixTime,
        created_at: UnixTime,
        expires_at: UnixTime,
    ) -> StoreResult<RevocationEvent>;
    /// Events with a sequence number above `after`, in order, at most `limit`.
    async fn revocations_since(&self, after: i64, limit: u32) -> StoreResult<Vec<RevocationEvent>>;
    /// The newest event of `kind` for `value` that has not expired at `now`.
    async fn find_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        now: UnixTime,
    ) -> StoreResult<Option<RevocationEvent>>;
    /// [`find_revocation`](Self::find_revocation) for several `(kind, value)`
    /// pairs at once, in the order asked (one round trip where the backend
    /// allows it: token checks ask four at a time).
    async fn find_revocations(
        &self,
        wanted: &[(RevocationKind, &str)],
        now: UnixTime,
    ) -> StoreResult<Vec<Option<RevocationEvent>>> {
        let mut out = Vec::with_capacity(wanted.len());
        for (kind, value) in wanted {
            out.push(self.find_revocation(*kind, value, now).await?);
        }
        Ok(out)
    }
    /// The highest sequence number ever assigned (0 when none).
    async fn latest_revocation_seq(&self) -> StoreResult<i64>;
    /// Drops events that expired before `now`; returns how many.
    async fn purge_revocations(&self, now: UnixTime) -> StoreResult<u64>;

    /// Records a client assertion's `jti`; false when it was already seen (a replay).
    async fn record_jti(&self, client_id: &str, jti: &str, expires_at: UnixTime, now: UnixTime) -> StoreResult<bool>;

    /// Inserts a person; `Conflict` when the username (or upstream identity) is taken.
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Reads a person by id.
    async fn get_user(&self, user_id: &str) -> StoreResult<Option<UserRecord>>;
    /// Reads a person by username.
    async fn get_user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// Reads the person linked to an upstream identity.
    async fn get_user_by_federated(&self, issuer: &str, subject: &str) -> StoreResult<Option<UserRecord>>;
    /// Everyone, by username.
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Deletes a person with their sessions and refresh tokens; false when there was none.
    async fn delete_user(&self, user_id: &str) -> StoreResult<bool>;
    /// Replaces a password hash; false when there is no such person.
    async fn set_user_password(&self, user_id: &str, password_hash: &str) -> StoreResult<bool>;
    /// Sets or clears suspension; false when there is no such person.
    async fn set_user_suspended(&self, user_id: &str, suspended: bool) -> StoreResult<bool>;

    /// In one transaction: records a new session and the authorization code that starts it.
    async fn begin_session(&self, session: &SessionRecord, code: &AuthCodeRecord) -> StoreResult<()>;
    /// Reads a session.
    async fn get_session(&self, sid: &str) -> StoreResult<Option<SessionRecord>>;
    /// A person's sessions that have not ended nor expired at `now`, newest first.
    async fn list_sessions(&self, user_id: &str, now: UnixTime) -> StoreResult<Vec<SessionRecord>>;
    /// Ends one session and drops its refresh tokens; false when it was unknown or already ended.
    async fn end_session(&self, sid: &str, now: UnixTime) -> StoreResult<bool>;
    /// Ends every live session of a person (except `keep`) and drops their
    /// refresh tokens; returns the sids ended.
    async fn end_user_sessions(&self, user_id: &str, keep: Option<&str>, now: UnixTime) -> StoreResult<Vec<String>>;

    /// Spends an authorization code (single use, checked against `now`).
    async fn redeem_code(&self, code_hash: &[u8], now: UnixTime) -> StoreResult<Redeemed<AuthCodeRecord>>;
    /// In one transaction: stores a refresh token and marks its session used at `now`.
    async fn insert_refresh_token(&self, token: &RefreshTokenRecord, now: UnixTime) -> StoreResult<()>;
    /// Reads a refresh token.
    async fn get_refresh_token(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshTokenRecord>>;
    /// In one transaction: spends `old` (only if unspent) and stores `new` in its
    /// family, touching the session. `Replayed` when `old` was already spent.
    async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new: &RefreshTokenRecord,
        now: UnixTime,
    ) -> StoreResult<Redeemed<RefreshTokenRecord>>;
    /// Drops expired codes, refresh tokens and sessions; returns how many rows.
    async fn purge_grants(&self, now: UnixTime) -> StoreResult<u64>;

    /// Every CA key pair.
    async fn list_cas(&self) -> StoreResult<Vec<CaRecord>>;
    /// Inserts or updates CA records and deletes others, atomically.
    async fn write_cas(&self, upserts: &[CaRecord], deletes: &[String]) -> StoreResult<()>;
    /// Registers a workload; `Conflict` if the SPIFFE ID is registered.
    async fn insert_workload(&self, w: &WorkloadRecord) -> StoreResult<()>;
    /// One workload.
    async fn get_workload(&self, spiffe_id: &str) -> StoreResult<Option<WorkloadRecord>>;
    /// Every workload, by SPIFFE ID.
    async fn list_workloads(&self) -> StoreResult<Vec<WorkloadRecord>>;
    /// Removes a workload and its join tokens.
    async fn delete_workload(&self, spiffe_id: &str) -> StoreResult<bool>;
    /// Stores a join token.
    async fn insert_join_token(&self, t: &JoinTokenRecord) -> StoreResult<()>;
    /// Spends a join token: `Fresh` once, `Replayed` after, `Unknown` if
    /// absent, expired, or its workload is gone.
    async fn redeem_join_token(&self, token_hash: &[u8], now: UnixTime) -> StoreResult<Redeemed<JoinTokenRecord>>;

    /// Stores `policies` (and `schema`) as the service's next version,
    /// numbered atomically (concurrent pushes get distinct versions).
    async fn append_policy_version(
        &self,
        service: &str,
        policies: &str,
        schema: Option<&str>,
        created_at: UnixTime,
        created_by: &str,
        note: Option<&str>,
    ) -> StoreResult<PolicyVersionRecord>;
    /// One version, or the newest when `version` is `None`.
    async fn get_policy_version(&self, service: &str, version: Option<i64>)
        -> StoreResult<Option<PolicyVersionRecord>>;
    /// Every version of a service, oldest first.
    async fn list_policy_versions(&self, service: &str) -> StoreResult<Vec<PolicyVersionRecord>>;
    /// The services with policies, and their newest version.
    async fn list_policy_services(&self) -> StoreResult<Vec<(String, i64)>>;

    /// Appends a shipment of decision rows in one transaction (ids assigned
    /// in order; the `id` fields given are ignored). A shipment is named by
    /// its reporter and `batch_id`: `false`, and nothing stored, when that
    /// batch was stored before (a retry after a lost answer).
    async fn append_decisions(
        &self,
        reporter: &str,
        batch_id: &str,
        received_at: UnixTime,
        rows: &[DecisionRecord],
    ) -> StoreResult<bool>;
    /// Rows matching `query`, newest first (by id).
    async fn query_decisions(&self, query: &DecisionQuery) -> StoreResult<Vec<DecisionRecord>>;
    /// Drops rows (and batch ids) received before `before`; returns how many rows.
    async fn prune_decisions(&self, before: UnixTime) -> StoreResult<u64>;

    /// Keeps a probe run (its id assigned in order) and drops all but the
    /// newest `keep` runs, in one transaction.
    async fn append_probe_run(
        &self,
        recorded_by: &str,
        recorded_at: UnixTime,
        report: &str,
        keep: usize,
    ) -> StoreResult<ProbeRunRecord>;
    /// The newest `limit` probe runs, newest first.
    async fn list_probe_runs(&self, limit: usize) -> StoreResult<Vec<ProbeRunRecord>>;

    /// Takes or renews the lease `name` for `holder` until `now + ttl`
    /// seconds; false while another holder's lease has not expired.
    async fn acquire_lease(&self, name: &str, holder: &str, now: UnixTime, ttl: i64) -> StoreResult<bool>;
    /// Gives the lease up if `holder` has it.
    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()>;

    /// One cheap round trip: for readiness checks.
    async fn ping(&self) -> StoreResult<()> {
        self.get_meta("master_key_check").await.map(|_| ())
    }

    /// Whether other nodes may share this store (and must hear of changes).
    fn is_shared(&self) -> bool {
        false
    }
    /// Tells the other nodes sharing the store about `change`. Nothing to do
    /// for a store no other node shares.
    async fn announce(&self, _change: &Change) -> StoreResult<()> {
        Ok(())
    }
    /// Changes announced by any node, from now on; `None` for a store no
    /// other node shares.
    fn subscribe(&self) -> Option<tokio::sync::mpsc::Receiver<Notice>> {
        None
    }

    /// Records a verifier's heartbeat, replacing its previous one; the
    /// store sets `latest_at_previous` from the previous one's `latest_seq`.
    async fn record_heartbeat(&self, hb: &HeartbeatRecord) -> StoreResult<()>;
    /// Heartbeats that arrived at or after `since`, by audience and verifier id.
    async fn list_heartbeats(&self, since: UnixTime) -> StoreResult<Vec<HeartbeatRecord>>;
    /// Forgets heartbeats that arrived before `before`; returns how many.
    async fn prune_heartbeats(&self, before: UnixTime) -> StoreResult<u64>;

    /// Appends an audit event atomically: reads the newest event's hash,
    /// assigns the next sequence number (gapless; appends from every node
    /// take turns) and stores the event with its link hash
    /// ([`audit_chain::link_hash`] under `chain_key`). Audit events are never
    /// updated nor deleted.
    async fn append_audit(&self, event: &NewAuditEvent, chain_key: &[u8]) -> StoreResult<AuditRecord>;
    /// Audit events matching `query`, oldest first (by sequence number).
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditRecord>>;
}
