//! The authority: state shared by every endpoint, first start, and the
//! key-rotation scheduler.

use crate::audit::AuditEntry;
use crate::ca::{CaManager, CaSchedule};
use crate::config::Config;
use crate::events::{EventHub, StreamEvent, VerifierRegistry};
use crate::federation::Federation;
use crate::http::error::ApiError;
use crate::keys::{KeyError, KeyManager, KeySchedule};
use crate::passwords::Passwords;
use crate::secrets::{new_client_secret, random_id, write_private_file, MasterKey, SecretError};
use crate::throttle::Throttle;
use castellan_core::{Clock, UnixTime};
use castellan_store::{
    Change, ClientRecord, PgOptions, PostgresStore, RevocationEvent, RevocationKind, SqliteStore, Store, StoreError,
};

/// The actor of what the authority's own schedule does (rotations).
pub const SCHEDULER_ACTOR: &str = "castellan";

/// How long the node creating the first keys, CAs and admin holds the
/// bootstrap lease, seconds.
const BOOTSTRAP_LEASE_SECS: i64 = 30;
use metrics_exporter_prometheus::PrometheusHandle;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// The scope that grants the admin API.
pub const ADMIN_SCOPE: &str = "castellan.admin";

/// Name of the bootstrap credentials file in the data dir.
pub const BOOTSTRAP_FILE: &str = "bootstrap-admin.json";

/// Secrets and overrides read from the environment at start.
#[derive(Default, Clone)]
pub struct StartEnv {
    /// `CASTELLAN_MASTER_KEY`.
    pub master_key: Option<String>,
    /// `CASTELLAN_BOOTSTRAP_ADMIN_ID`.
    pub bootstrap_admin_id: Option<String>,
    /// `CASTELLAN_BOOTSTRAP_ADMIN_SECRET`.
    pub bootstrap_admin_secret: Option<String>,
}

impl std::fmt::Debug for StartEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartEnv")
            .field("master_key", &self.master_key.as_ref().map(|_| "<set>"))
            .field("bootstrap_admin_id", &self.bootstrap_admin_id)
            .field(
                "bootstrap_admin_secret",
                &self.bootstrap_admin_secret.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

impl StartEnv {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            master_key: var("CASTELLAN_MASTER_KEY"),
            bootstrap_admin_id: var("CASTELLAN_BOOTSTRAP_ADMIN_ID"),
            bootstrap_admin_secret: var("CASTELLAN_BOOTSTRAP_ADMIN_SECRET"),
        }
    }
}

/// Why the authority could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration refused.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Data dir problems.
    #[error("data dir `{path}`: {reason}")]
    DataDir { path: String, reason: String },
    /// Master key problems.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The master key is not the one this store was created with.
    #[error("the master key does not match the one {0} was created with; refusing to start (nodes of one cluster share CASTELLAN_MASTER_KEY)")]
    WrongMasterKey(&'static str),
    /// A cluster node lacks a setting every node must share.
    #[error("a node on a shared database needs {0}")]
    Cluster(String),
    /// The database could not be reached or opened.
    #[error("database `{url}` cannot be used")]
    Database {
        /// The URL, password replaced.
        url: String,
        /// Why.
        source: StoreError,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Keys failed to load.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// Bootstrap admin settings refused.
    #[error("bootstrap admin: {0}")]
    Bootstrap(String),
}

/// Nodes of one cluster must agree on the issuer, the master key and the
/// bootstrap admin; none of them may be made up per node.
fn cluster_settings(config: &Config, env: &StartEnv) -> Result<(), StartError> {
    if config.issuer.is_none() {
        return Err(StartError::Cluster(
            "--issuer (CASTELLAN_ISSUER): the default, http:// + the listen address, differs from node to node".into(),
        ));
    }
    if env.master_key.is_none() {
        return Err(StartError::Cluster(
            "CASTELLAN_MASTER_KEY (base64, 32 bytes, the same on every node): a key generated per node could not read the others' keys".into(),
        ));
    }
    if env.bootstrap_admin_id.is_none() || env.bootstrap_admin_secret.is_none() {
        return Err(StartError::Cluster(
            "CASTELLAN_BOOTSTRAP_ADMIN_ID and CASTELLAN_BOOTSTRAP_ADMIN_SECRET: nodes starting together must agree on the first admin".into(),
        ));
    }
    Ok(())
}

/// The running authority.
#[derive(Debug)]
pub struct Authority {
    /// This process among the nodes sharing a database (random per start).
    node_id: String,
    /// Bounds heartbeat writes to a shared store.
    heartbeat_writers: Arc<tokio::sync::Semaphore>,
    config: Config,
    issuer: String,
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    keys: KeyManager,
    clock: Arc<dyn Clock>,
    metrics: PrometheusHandle,
    events: EventHub,
    verifiers: VerifierRegistry,
    revocation_log_id: String,
    passwords: Passwords,
    throttle: Throttle,
    federation: Option<Federation>,
    ca: CaManager,
}

/// What a rotation did.
#[derive(Debug)]
pub struct RotationOutcome {
    /// The keys afterwards.
    pub keys: Arc<crate::keys::KeySet>,
    /// Live verifiers that did not hold the promoted key when it started signing.
    pub laggards: Vec<String>,
}

/// How long an audit append may delay the action it records.
const AUDIT_APPEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The process's recorder, installed once (several authorities in one test
/// process share it); its samples drained every 5 seconds.
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| castellan_core::observe::install_prometheus(std::time::Duration::from_secs(5)))
        .clone()
}

impl Authority {
    /// Opens the data dir (creating store, master key, signing keys and the
    /// bootstrap admin on first start) and returns a ready authority.
    pub async fn open(config: Config, env: &StartEnv, clock: Arc<dyn Clock>) -> Result<Arc<Self>, StartError> {
        config.validate()?;
        let dir = config.data_dir.clone();
        let dir_err = |e: std::io::Error| StartError::DataDir {
            path: dir.display().to_string(),
            reason: e.to_string(),
        };
        let fresh = !dir.exists();
        std::fs::create_dir_all(&dir).map_err(dir_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if fresh {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(dir_err)?;
            } else if std::fs::metadata(&dir).map_err(dir_err)?.permissions().mode() & 0o077 != 0 {
                tracing::warn!(data_dir = %dir.display(), "data dir is readable by group or others; chmod 700 it");
            }
        }
        if config.database.url.is_some() {
            cluster_settings(&config, env)?;
        }
        let master = Arc::new(MasterKey::load_or_create(env.master_key.as_deref(), &dir)?);
        let (store, what): (Arc<dyn Store>, &'static str) = match &config.database.url {
            None => {
                let db_path = dir.join("castellan.db");
                if !db_path.exists() {
                    // SQLite gives its -wal and -shm files the mode of the database file.
                    write_private_file(&db_path, b"").map_err(|e| StartError::DataDir {
                        path: db_path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                }
                (Arc::new(SqliteStore::open(&db_path).await?), "this data dir")
            }
            Some(url) => {
                let db = &config.database;
                let options = PgOptions {
                    max_connections: db.max_connections,
                    acquire_timeout: db.acquire_timeout.0,
                    statement_timeout: db.statement_timeout.0,
                };
                let store =
                    PostgresStore::connect(url.expose(), options)
                        .await
                        .map_err(|source| StartError::Database {
                            url: url.redacted(),
                            source,
                        })?;
                tracing::info!(database = %url.redacted(), "store: PostgreSQL");
                (Arc::new(store), "this database")
            }
        };
        let store: Arc<dyn Store> = Arc::new(castellan_store::MeteredStore::new(store));
        let stored_check = store.init_meta("master_key_check", master.check_value()).await?;
        if stored_check != master.check_value() {
            return Err(StartError::WrongMasterKey(what));
        }
        if store.is_shared() {
            // Tokens carry the issuer: a node with another one would issue
            // tokens the rest of the cluster's verifiers refuse.
            let issuer = config.issuer();
            let stored = store.init_meta("issuer", &issuer).await?;
            if stored != issuer {
                return Err(StartError::Cluster(format!(
                    "the issuer its other nodes use, `{stored}` (this node was given `{issuer}`)"
                )));
            }
        }
        // The first keys, CAs and admin are created by one node at a time:
        // nodes starting together on an empty database wait for the first.
        let node_id = random_id("node-")?;
        let bootstrap_held = store.is_shared();
        if bootstrap_held
            && !crate::cluster::wait_for_lease(
                store.as_ref(),
                crate::cluster::BOOTSTRAP_LEASE,
                &node_id,
                clock.as_ref(),
                BOOTSTRAP_LEASE_SECS,
                std::time::Duration::from_secs(BOOTSTRAP_LEASE_SECS.unsigned_abs() + 15),
            )
            .await?
        {
            return Err(StartError::Cluster(
                "the bootstrap lease, which another node has held for too long; is one stuck starting?".into(),
            ));
        }
        let t = &config.tokens;
        let schedule = KeySchedule {
            algorithm: config.keys.algorithm,
            rotation_interval: config.keys.rotation_interval.secs(),
            jwks_max_age: config.keys.jwks_max_age.secs(),
            token_horizon: t.max_access_token_ttl.secs().saturating_add(t.leeway.secs()),
            keep_removed_for: config.keys.keep_removed_for.secs(),
        };
        let keys = KeyManager::open(store.clone(), master.clone(), clock.clone(), schedule).await?;
        // Names this store's revocation log: a verifier that sees another id knows the
        // sequence numbers restarted (store replaced or restored) and replays from zero.
        let revocation_log_id = store.init_meta("revocation_log_id", &random_id("")?).await?;
        let trust_domain = castellan_ca::TrustDomain::new(&config.trust_domain())
            .map_err(|e| StartError::Bootstrap(format!("trust domain: {e}; set --trust-domain")))?;
        let ca = CaManager::open(
            store.clone(),
            master.clone(),
            clock.clone(),
            trust_domain,
            CaSchedule {
                rotation_interval: config.ca.rotation_interval.secs(),
                max_svid_ttl: config.ca.max_svid_ttl.secs(),
            },
        )
        .await
        .map_err(|e| StartError::Bootstrap(format!("internal CA: {e}")))?;
        let authority = Arc::new(Self {
            node_id,
            heartbeat_writers: Arc::new(tokio::sync::Semaphore::new(crate::cluster::HEARTBEAT_WRITERS)),
            issuer: config.issuer(),
            store,
            master,
            keys,
            clock,
            metrics: prometheus(),
            events: EventHub::default(),
            verifiers: VerifierRegistry::default(),
            revocation_log_id,
            ca,
            passwords: Passwords::new(&config.signin).map_err(|e| StartError::Bootstrap(e.to_string()))?,
            throttle: Throttle::new(&config.signin),
            federation: match &config.federation {
                Some(f) => Some(Federation::new(f.clone()).map_err(|e| StartError::Bootstrap(e.to_string()))?),
                None => None,
            },
            config,
        });
        authority.bootstrap_admin(env).await?;
        if bootstrap_held {
            if let Err(e) = authority
                .store
                .release_lease(crate::cluster::BOOTSTRAP_LEASE, &authority.node_id)
                .await
            {
                tracing::warn!(error = %e, "could not release the bootstrap lease; it expires on its own");
            }
        }
        authority.check_console_admins().await;
        Ok(authority)
    }

    /// Warns about names in `[console] admins` that cannot use the console:
    /// no such person, or a person created by federation.
    async fn check_console_admins(&self) {
        if !self.config.console.enabled {
            return;
        }
        for name in &self.config.console.admins {
            let Some(name) = crate::users::normalize_username(name) else {
                continue;
            };
            match self.store.get_user_by_name(&name).await {
                Ok(Some(u)) if u.federated_issuer.is_some() => tracing::warn!(
                    admin = %name,
                    "console admin `{name}` was created by federation and cannot use the console; console admins are local accounts with a password"
                ),
                Ok(Some(_)) => {}
                Ok(None) => tracing::warn!(
                    admin = %name,
                    "console admin `{name}` matches no user; create the account (`castellan user create --password-stdin`) or fix the name"
                ),
                Err(e) => tracing::warn!(error = %e, "could not check the console admins against the store"),
            }
        }
    }

    async fn bootstrap_admin(&self, env: &StartEnv) -> Result<(), StartError> {
        if self.store.get_meta("bootstrap_admin").await?.is_some() {
            return Ok(());
        }
        let (id, secret, write_file) = match (&env.bootstrap_admin_id, &env.bootstrap_admin_secret) {
            (Some(id), Some(secret)) => {
                if secret.len() < 32 {
                    return Err(StartError::Bootstrap(
                        "CASTELLAN_BOOTSTRAP_ADMIN_SECRET must be at least 32 characters".to_owned(),
                    ));
                }
                if !valid_client_id(id) {
                    return Err(StartError::Bootstrap(format!("client id `{id}` is not acceptable")));
                }
                (id.clone(), secret.clone(), false)
            }
            (None, None) => (random_id("admin-")?, new_client_secret()?, true),
            _ => {
                return Err(StartError::Bootstrap(
                    "set both CASTELLAN_BOOTSTRAP_ADMIN_ID and CASTELLAN_BOOTSTRAP_ADMIN_SECRET, or neither".to_owned(),
                ))
            }
        };
        let path = self.bootstrap_file();
        if write_file {
            let body = serde_json::json!({ "client_id": id, "client_secret": secret });
            let text = serde_json::to_string_pretty(&body).map_err(|e| StartError::Bootstrap(e.to_string()))?;
            write_private_file(&path, format!("{text}\n").as_bytes()).map_err(|e| StartError::DataDir {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        let record = ClientRecord {
            client_id: id.clone(),
            name: "bootstrap admin".to_owned(),
            secret_hash: Some(self.master.hash_secret(&secret)),
            audiences: vec![],
            scopes: vec![ADMIN_SCOPE.to_owned()],
            access_token_ttl: None,
            jwks: None,
            admin: true,
            created_at: self.now(),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            public: false,
            serves: None,
            exchange_audiences: vec![],
            tls_client_auth_san_uri: None,
        };
        match self.store.insert_client(&record).await {
            Ok(()) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.store.init_meta("bootstrap_admin", &id).await?;
        if write_file {
            tracing::info!(client_id = %id, file = %path.display(), "bootstrap admin credentials written");
        } else {
            tracing::info!(client_id = %id, "bootstrap admin created from environment");
        }
        Ok(())
    }

    /// Where first start writes the admin credentials.
    pub fn bootstrap_file(&self) -> PathBuf {
        self.config.data_dir.join(BOOTSTRAP_FILE)
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
    /// The master key.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }
    /// The key manager.
    pub fn keys(&self) -> &KeyManager {
        &self.keys
    }
    /// Now, from the injected clock.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }
    /// Leeway in seconds.
    pub fn leeway(&self) -> i64 {
        self.config.tokens.leeway.secs()
    }
    /// Prometheus text of every metric.
    pub fn render_metrics(&self) -> String {
        self.metrics.render()
    }

    /// Reads a client, mapping storage failure to a 500.
    /// The console's own sign-in client is virtual (never stored, so it
    /// cannot be deleted or changed, and a stored client of that id is shadowed).
    pub async fn client(&self, id: &str) -> Result<Option<ClientRecord>, ApiError> {
        if id == crate::http::console::CLIENT_ID {
            let console = &self.config.console;
            return Ok(
                (console.enabled && !console.admins.is_empty()).then(|| crate::http::console::client_record(self))
            );
        }
        self.store.get_client(id).await.map_err(|e| ApiError::server_error(&e))
    }

    /// The id of this store's revocation log.
    pub fn revocation_log_id(&self) -> &str {
        &self.revocation_log_id
    }

    /// Live events for open streams.
    pub fn events(&self) -> &EventHub {
        &self.events
    }

    /// The password hasher.
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// The internal CA.
    pub fn ca(&self) -> &CaManager {
        &self.ca
    }

    /// The upstream identity provider, when configured.
    pub fn federation(&self) -> Option<&Federation> {
        self.federation.as_ref()
    }

    /// This node's id among the nodes sharing the database.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub(crate) fn heartbeat_writers(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.heartbeat_writers
    }

    /// The sign-in throttle.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// Verifiers that reported in.
    pub fn verifiers(&self) -> &VerifierRegistry {
        &self.verifiers
    }

    /// Records an audit event (see [`crate::audit`]). Never fails the caller:
    /// a store error is logged and counted.
    pub async fn audit(&self, entry: crate::audit::AuditEntry) {
        use crate::audit::storable;
        let actor = storable(entry.actor);
        let target = storable(entry.target);
        tracing::info!(
            target: "castellan::audit",
            actor = %actor,
            action = entry.action,
            target_id = %target,
            outcome = entry.outcome.as_str(),
            "audit"
        );
        let detail = match &entry.detail {
            serde_json::Value::Null => "{}".to_owned(),
            d => d.to_string(),
        };
        let event = castellan_store::NewAuditEvent {
            at: self.now(),
            actor,
            action: entry.action.to_owned(),
            target,
            outcome: entry.outcome.as_str().to_owned(),
            detail,
        };
        // A slow store delays the audited answer by at most this long; a
        // timed-out append is rolled back, logged and counted like a failed one.
        let append = self.store.append_audit(&event, self.master.audit_chain_key());
        let appended = tokio::time::timeout(AUDIT_APPEND_TIMEOUT, append)
            .await
            .map_err(|_| "the store did not answer in time".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match appended {
            Ok(record) => {
                tracing::debug!(target: "castellan::audit", seq = record.seq, "audit event recorded");
                metrics::counter!(
                    "castellan_audit_events_total",
                    "action" => entry.action,
                    "outcome" => entry.outcome.as_str()
                )
                .increment(1);
            }
            Err(e) => {
                tracing::error!(
                    target: "castellan::audit",
                    error = %e,
                    action = entry.action,
                    "audit event could not be recorded"
                );
                metrics::counter!("castellan_audit_failures_total").increment(1);
            }
        }
    }

    /// Walks the audit chain from its first event, recomputing every hash:
    /// names the first edited or missing event, or the head of an intact chain.
    pub async fn verify_audit(&self) -> Result<crate::audit::AuditVerification, StoreError> {
        use castellan_store::audit_chain::{to_hex, ChainCheck};
        let mut check = ChainCheck::new(self.master.audit_chain_key());
        let mut after = 0;
        let mut first_bad = None;
        'pages: loop {
            let page = self
                .store
                .list_audit(&castellan_store::AuditQuery {
                    after_seq: after,
                    since: None,
                    actor: None,
                    limit: crate::audit::VERIFY_PAGE,
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for record in &page {
                if let Err(b) = check.check(record) {
                    first_bad = Some(b);
                    break 'pages;
                }
            }
        }
        Ok(crate::audit::AuditVerification {
            events: check.events(),
            head: check.head().map(|(seq, hash)| crate::audit::ChainHead {
                seq,
                hash: to_hex(hash),
            }),
            first_bad,
        })
    }

    /// Appends a revocation to the durable log and pushes it to every open
    /// stream. It expires once no token it could affect is still valid.
    pub async fn record_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        not_before: UnixTime,
    ) -> Result<RevocationEvent, StoreError> {
        let now = self.now();
        let horizon = self.keys.schedule().token_horizon;
        let event = self
            .store
            .append_revocation(kind, value, not_before, now, now.saturating_add(horizon))
            .await?;
        metrics::counter!("castellan_revocations_total", "kind" => kind.as_str()).increment(1);
        self.events.publish(StreamEvent::Revocation(event.clone()));
        self.announce(Change::Revocation { seq: event.seq }).await;
        Ok(event)
    }

    pub(crate) fn publish_keys(&self) {
        let kids = self
            .keys
            .current()
            .infos
            .iter()
            .filter(|k| {
                !matches!(
                    k.state,
                    castellan_store::KeyState::Withdrawn | castellan_store::KeyState::Removed
                )
            })
            .map(|k| k.kid.clone())
            .collect();
        self.events.publish(StreamEvent::Keys { kids });
    }

    /// Waits until every live verifier holds `kid`, at most `keys.ack_timeout`;
    /// returns the ones that still do not.
    async fn wait_for_ack(&self, kid: &str) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + self.config.keys.ack_timeout.0;
        loop {
            let laggards: Vec<String> = self
                .verifier_views()
                .await
                .into_iter()
                .filter(|v| v.live && !v.kids.iter().any(|k| k == kid))
                .map(|v| v.verifier_id)
                .collect();
            if laggards.is_empty() || tokio::time::Instant::now() >= deadline {
                if !laggards.is_empty() {
                    tracing::warn!(kid, laggards = ?laggards, "promoting a key some live verifiers do not hold yet");
                    metrics::counter!("castellan_rotation_ack_timeouts_total").increment(1);
                }
                return laggards;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Rotates now. A routine rotation first waits (bounded) for every live
    /// verifier to hold the next key; an emergency never waits.
    pub async fn rotate_keys(&self, emergency: bool) -> Result<RotationOutcome, KeyError> {
        let mut laggards = Vec::new();
        if !emergency {
            if let Some(next) = self.keys.next_kid() {
                laggards = self.wait_for_ack(&next).await;
            }
        }
        let (keys, withdrawn) = self.keys.rotate(emergency).await?;
        if let Some(event) = withdrawn {
            metrics::counter!("castellan_revocations_total", "kind" => "key").increment(1);
            let seq = event.seq;
            self.events.publish(StreamEvent::Revocation(event));
            self.announce(Change::Revocation { seq }).await;
        }
        self.publish_keys();
        self.announce(Change::Keys).await;
        Ok(RotationOutcome { keys, laggards })
    }

    /// One scheduler pass: rotate when due (after the verifiers hold the
    /// next key, or the acknowledgement wait ran out), drop expired keys and events.
    pub async fn maintain(&self) -> Result<(), KeyError> {
        if let Some(next) = self.keys.due_for_promotion() {
            self.wait_for_ack(&next).await;
        }
        let pass = self.keys.maintain().await?;
        if pass.changed {
            self.publish_keys();
            self.announce(Change::Keys).await;
        }
        // Only the pass that promoted records the rotation: a reload showing
        // another node's rotation is not this node's act.
        if let Some((previous, active)) = pass.promoted {
            self.audit(
                AuditEntry::new(SCHEDULER_ACTOR, "key.rotate", format!("key:{previous}"))
                    .detail(serde_json::json!({ "previous_kid": previous, "active_kid": active, "scheduled": true })),
            )
            .await;
        }
        let now = self.now();
        let purged = self.store.purge_revocations(now).await?;
        if purged > 0 {
            tracing::debug!(purged, "expired revocation events purged");
        }
        let purged = self.store.purge_grants(now).await?;
        if purged > 0 {
            tracing::debug!(purged, "expired codes, sessions and refresh tokens purged");
        }
        if self.store.is_shared() {
            self.store
                .prune_heartbeats(now.saturating_sub(crate::events::LIVENESS_SECONDS * 10))
                .await?;
        }
        let cut = now.saturating_sub(self.config.decisions.retention.secs());
        let pruned = self.store.prune_decisions(cut).await?;
        if pruned > 0 {
            tracing::debug!(pruned, "decision log rows past retention pruned");
        }
        self.throttle.prune(now);
        let ca_before = self.ca.current().active.id().to_owned();
        match self.ca.maintain().await {
            Ok(true) => {
                self.announce(Change::Ca).await;
                let active = self.ca.current().active.id().to_owned();
                if active != ca_before {
                    self.audit(
                        AuditEntry::new(SCHEDULER_ACTOR, "ca.rotate", format!("ca:{active}"))
                            .detail(serde_json::json!({ "previous_ca": ca_before, "scheduled": true })),
                    )
                    .await;
                }
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "CA maintenance failed; will retry"),
        }
        let set = self.keys.current();
        metrics::gauge!("castellan_signing_keys").set(set.infos.len() as f64);
        Ok(())
    }

    /// Runs [`maintain`](Self::maintain) every `keys.check_interval` until the task is dropped.
    pub async fn run_scheduler(self: Arc<Self>) {
        let period = self.config.keys.check_interval.0;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Every node forgets old sign-in throttle entries; only the
            // holder of the scheduler lease runs the rest.
            self.throttle.prune(self.now());
            if !self.lead().await {
                continue;
            }
            // A pass may wait for verifiers (up to keys.ack_timeout): the
            // lease is renewed meanwhile so no other node takes over mid-pass.
            let pass = self.maintain();
            tokio::pin!(pass);
            let mut renew =
                tokio::time::interval((self.config.database.leader_lease.0 / 3).max(std::time::Duration::from_secs(1)));
            renew.tick().await;
            let result = loop {
                tokio::select! {
                    r = &mut pass => break r,
                    _ = renew.tick() => {
                        if !self.lead().await {
                            tracing::warn!("lost the scheduler lease during a pass; key changes stay safe under the key lease");
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "key maintenance failed; will retry");
            }
        }
    }
}

/// Client ids: 1 to 128 characters of `A-Z a-z 0-9 - _ . ~ :`.
pub fn valid_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':'))
}
