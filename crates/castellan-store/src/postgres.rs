//! The PostgreSQL store, for several authority nodes sharing one database.
//!
//! Every connection runs at READ COMMITTED with a statement timeout; the
//! exactly-once operations get their guarantee from row locks, never from
//! retries:
//!
//! - Revocation sequence numbers come from the `revocation_seq` row of
//!   `counters`, incremented inside the inserting transaction. Its row lock
//!   holds the next writer until the previous one commits, so numbers are
//!   gapless and become visible in order: a reader that sees `n` can already
//!   see everything below it.
//! - Policy versions come from a `policy_version:<service>` counter row the
//!   same way, and audit sequence numbers from the `audit_seq` row: an
//!   append reads the newest event's hash only once it holds that row, so
//!   the hash chain has no forks.
//! - Codes and join tokens are spent by one conditional
//!   `UPDATE ... WHERE used_at IS NULL`; a racer blocks on the row and then
//!   finds it spent.
//! - Refresh tokens are rotated under `SELECT ... FOR UPDATE`, taken after
//!   the session's row lock (the order logout takes them in, so a refresh
//!   racing a logout waits instead of deadlocking).
//! - Replay-cache entries and decision batches are claimed by
//!   `INSERT ... ON CONFLICT`, counting the rows it wrote.

mod rows;

use crate::audit_chain::{self, EventFields};
use crate::migrations;
use crate::{
    AuditQuery, AuditRecord, AuthCodeRecord, CaRecord, Change, ClientRecord, DecisionQuery, DecisionRecord,
    HeartbeatRecord, JoinTokenRecord, KeyRecord, NewAuditEvent, Notice, PolicyVersionRecord, ProbeRunRecord, Redeemed,
    RefreshTokenRecord, RevocationEvent, RevocationKind, SessionRecord, Store, StoreError, StoreResult, UserRecord,
    WorkloadRecord,
};
use castellan_core::UnixTime;
use rows::corrupt;
use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row};
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

/// Connection-pool settings for [`PostgresStore::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Most connections this node holds open.
    pub max_connections: u32,
    /// How long a call waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// The server cancels any statement running (or waiting for a lock) longer than this.
    pub statement_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// PostgreSQL behind the [`Store`] trait.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// One connection of its own for readiness checks, so a busy `pool`
    /// never reads as a lost database.
    health: PgPool,
    /// `user@host:port/database`: what `Debug` shows (never the password).
    target: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .field("max_connections", &self.pool.options().get_max_connections())
            .finish_non_exhaustive()
    }
}

/// The `LISTEN`/`NOTIFY` channel of [`Change`]s.
const CHANGES_CHANNEL: &str = "castellan_changes";

/// Forwards announced changes to `tx` until its receiver is dropped. A
/// listening connection that drops loses what was announced meanwhile:
/// [`Notice::Reconnected`] tells the subscriber to read everything again.
async fn listen(pool: PgPool, tx: tokio::sync::mpsc::Sender<Notice>) {
    let mut listener = loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(CHANGES_CHANNEL).await {
                Ok(()) => break l,
                Err(e) => warn("listen", &e),
            },
            Err(e) => warn("connect", &e),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    loop {
        let notice = tokio::select! {
            r = listener.try_recv() => r,
            () = tx.closed() => return,
        };
        let notice = match notice {
            Ok(Some(n)) => match serde_json::from_str::<Change>(n.payload()) {
                Ok(change) => Notice::Change(change),
                // Someone else's payload on our channel: read everything.
                Err(_) => Notice::Reconnected,
            },
            // The connection dropped; the next call makes it again.
            Ok(None) => Notice::Reconnected,
            Err(e) => {
                warn("receive", &e);
                tokio::time::sleep(Duration::from_secs(1)).await;
                Notice::Reconnected
            }
        };
        if tx.send(notice).await.is_err() {
            return;
        }
    }
}

fn warn(what: &str, e: &sqlx::Error) {
    tracing::warn!(error = %e, "change listener: {what} failed; the subscriber polls meanwhile");
}

/// The schema versions in [`migrations::POSTGRES`], as sqlx's migrator wants them.
#[derive(Debug)]
struct Schema;

impl<'s> MigrationSource<'s> for Schema {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(migrations::POSTGRES
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

fn migrate_error(e: MigrateError) -> StoreError {
    StoreError::Database(e.into())
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?...`),
    /// brings the schema up to date, and opens the pool.
    ///
    /// Nodes starting together are safe: sqlx's migrator holds a PostgreSQL
    /// advisory lock while it checks and applies versions. A database whose
    /// schema is newer than this binary is refused with
    /// [`StoreError::SchemaTooNew`] and left untouched.
    pub async fn connect(url: &str, options: PgOptions) -> StoreResult<Self> {
        let base = PgConnectOptions::from_str(url)?.application_name("castellan");
        let target = format!(
            "{}@{}:{}/{}",
            base.get_username(),
            base.get_host(),
            base.get_port(),
            base.get_database().unwrap_or_default()
        );
        migrate(&base).await?;
        // Startup parameters, so they hold from a connection's first
        // statement: the isolation level this module's row locking relies
        // on (even when the server default is stricter), and the timeout.
        let session = base.options([
            ("statement_timeout", options.statement_timeout.as_millis().to_string()),
            ("default_transaction_isolation", r"read\ committed".to_owned()),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(session.clone())
            .await?;
        let health = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(session);
        Ok(Self { pool, health, target })
    }

    /// One round trip to the database on a connection of its own: for
    /// readiness checks (a pool busy with requests is not a lost database).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.health).await?;
        Ok(())
    }

    /// Spends a single-use row (`used_at` unset, not expired) of `table`,
    /// found by `key`, in one statement: a racer blocks on the row, then
    /// re-checks `used_at IS NULL` against the winner's commit and spends
    /// nothing. When nothing was spent, tells a replay from an unknown or
    /// expired value.
    async fn spend_once<T>(
        &self,
        table: &'static str,
        key: &'static str,
        hash: &[u8],
        now: UnixTime,
        decode: fn(&sqlx::postgres::PgRow) -> StoreResult<T>,
    ) -> StoreResult<Redeemed<T>> {
        let spent = sqlx::query(&format!(
            "UPDATE {table} SET used_at = $1 WHERE {key} = $2 AND used_at IS NULL AND expires_at > $1 RETURNING *"
        ))
        .bind(now)
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = spent {
            return Ok(Redeemed::Fresh(decode(&row)?));
        }
        let Some(row) = sqlx::query(&format!("SELECT * FROM {table} WHERE {key} = $1"))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(Redeemed::Unknown);
        };
        let used: Option<i64> = sqlx::Row::try_get(&row, "used_at")?;
        Ok(match used {
            Some(_) => Redeemed::Replayed(decode(&row)?),
            None => Redeemed::Unknown,
        })
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

/// Applies missing schema versions through a one-connection pool of its own
/// (without the statement timeout: waiting for another node's migration is
/// normal).
async fn migrate(options: &PgConnectOptions) -> StoreResult<()> {
    let migrator = Migrator::new(Schema).await.map_err(migrate_error)?;
    let supported = migrations::POSTGRES.iter().map(|m| m.0).max().unwrap_or(0);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    let outcome = match migrator.run(&pool).await {
        Ok(()) => Ok(()),
        Err(MigrateError::VersionMissing(version)) => {
            let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
            let found = newest.unwrap_or(version).max(version);
            if found > supported {
                Err(StoreError::SchemaTooNew { found, supported })
            } else {
                Err(migrate_error(MigrateError::VersionMissing(version)))
            }
        }
        Err(e) => Err(migrate_error(e)),
    };
    // Closing ends the session, and with it the migrator's advisory lock,
    // which it keeps when it stops on an error.
    pool.close().await;
    outcome
}

/// Maps a unique-constraint failure (SQLSTATE 23505) to `Conflict`.
fn conflict_or(e: sqlx::Error, what: &'static str, id: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict {
            what,
            id: id.to_owned(),
        },
        _ => StoreError::Database(e),
    }
}

/// PostgreSQL text cannot hold NUL, so no stored key contains one: a lookup
/// by such a key finds nothing (as on SQLite) instead of failing.
fn unstorable(key: &str) -> bool {
    key.contains('\0')
}

fn to_json(v: &[String], what: &'static str) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| corrupt(what, e))
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Rows per `INSERT` of decisions (12 parameters each, far below the
/// protocol's 65535).
const DECISION_ROWS_PER_INSERT: usize = 1_000;

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn get_meta(&self, key: &str) -> StoreResult<Option<String>> {
        if unstorable(key) {
            return Ok(None);
        }
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn init_meta(&self, key: &str, value: &str) -> StoreResult<String> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        self.get_meta(key)
            .await?
            .ok_or_else(|| corrupt("meta", "value vanished after insert"))
    }

    async fn insert_client(&self, c: &ClientRecord) -> StoreResult<()> {
        let res = sqlx::query(
            "INSERT INTO clients (client_id, name, secret_hash, audiences, scopes, access_token_ttl, jwks, admin, \
             created_at, redirect_uris, post_logout_redirect_uris, public, serves, exchange_audiences, \
             tls_client_auth_san_uri) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (client_id) DO NOTHING",
        )
        .bind(&c.client_id)
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(to_json(&c.audiences, "client")?)
        .bind(to_json(&c.scopes, "client")?)
        .bind(c.access_token_ttl)
        .bind(&c.jwks)
        .bind(c.admin)
        .bind(c.created_at)
        .bind(to_json(&c.redirect_uris, "client")?)
        .bind(to_json(&c.post_logout_redirect_uris, "client")?)
        .bind(c.public)
        .bind(&c.serves)
        .bind(to_json(&c.exchange_audiences, "client")?)
        .bind(&c.tls_client_auth_san_uri)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::Conflict {
                what: "client",
                id: c.client_id.clone(),
            });
        }
        Ok(())
    }

    async fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        if unstorable(client_id) {
            return Ok(None);
        }
        sqlx::query("SELECT * FROM clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::client)
            .transpose()
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        sqlx::query("SELECT * FROM clients ORDER BY created_at, client_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::client)
            .collect()
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        if unstorable(client_id) {
            return Ok(false);
        }
        let res = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn set_client_secret(&self, client_id: &str, secret_hash: &[u8]) -> StoreResult<bool> {
        if unstorable(client_id) {
            return Ok(false);
        }
        let res = sqlx::query("UPDATE clients SET secret_hash = $1 WHERE client_id = $2")
            .bind(secret_hash)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::key)
            .collect()
    }

    async fn write_keys(&self, upserts: &[KeyRecord], deletes: &[String]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        // Key writes from several nodes take turns (readers are not held up),
        // so two rotations never deadlock on each other's rows.
        sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        for k in upserts {
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, state, private_enc, public_jwk, created_at, activated_at, \
                 retired_at, remove_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (kid) DO UPDATE SET state = excluded.state, activated_at = excluded.activated_at, \
                 retired_at = excluded.retired_at, remove_at = excluded.remove_at",
            )
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(k.state.as_str())
            .bind(&k.private_enc)
            .bind(&k.public_jwk)
            .bind(k.created_at)
            .bind(k.activated_at)
            .bind(k.retired_at)
            .bind(k.remove_at)
            .execute(&mut *tx)
            .await?;
        }
        for kid in deletes {
            sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn append_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        not_before: UnixTime,
        created_at: UnixTime,
        expires_at: UnixTime,
    ) -> StoreResult<RevocationEvent> {
        let mut tx = self.begin().await?;
        // The counter row stays locked until commit: sequence numbers are
        // handed out, and become visible, strictly in order.
        let seq: i64 =
            sqlx::query_scalar("UPDATE counters SET value = value + 1 WHERE name = 'revocation_seq' RETURNING value")
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| corrupt("revocation sequence", "counter row is missing"))?;
        sqlx::query(
            "INSERT INTO revocations (seq, kind, value, not_before, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(seq)
        .bind(kind.as_str())
        .bind(value)
        .bind(not_before)
        .bind(created_at)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RevocationEvent {
            seq,
            kind,
            value: value.to_owned(),
            not_before,
            created_at,
            expires_at,
        })
    }

    async fn revocations_since(&self, after: i64, limit: u32) -> StoreResult<Vec<RevocationEvent>> {
        sqlx::query("SELECT * FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::event)
            .collect()
    }

    async fn find_revocations(
        &self,
        wanted: &[(RevocationKind, &str)],
        now: UnixTime,
    ) -> StoreResult<Vec<Option<RevocationEvent>>> {
        // One round trip: the newest unexpired event per pair, as find_revocation picks it.
        let (kinds, values): (Vec<&str>, Vec<&str>) = wanted
            .iter()
            .filter(|(_, v)| !unstorable(v))
            .map(|(k, v)| (k.as_str(), *v))
            .unzip();
        let rows = sqlx::query(
            "SELECT DISTINCT ON (r.kind, r.value) r.* FROM revocations r \
             JOIN unnest($1::text[], $2::text[]) AS q(kind, value) ON r.kind = q.kind AND r.value = q.value \
             WHERE r.expires_at >= $3 ORDER BY r.kind, r.value, r.not_before DESC, r.seq DESC",
        )
        .bind(&kinds)
        .bind(&values)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let found: Vec<RevocationEvent> = rows.iter().map(rows::event).collect::<StoreResult<_>>()?;
        Ok(wanted
            .iter()
            .map(|(k, v)| found.iter().find(|e| e.kind == *k && e.value == *v).cloned())
            .collect())
    }

    async fn find_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        now: UnixTime,
    ) -> StoreResult<Option<RevocationEvent>> {
        if unstorable(value) {
            return Ok(None);
        }
        sqlx::query(
            "SELECT * FROM revocations WHERE kind = $1 AND value = $2 AND expires_at >= $3 \
             ORDER BY not_before DESC, seq DESC LIMIT 1",
        )
        .bind(kind.as_str())
        .bind(value)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(rows::event)
        .transpose()
    }

    async fn latest_revocation_seq(&self) -> StoreResult<i64> {
        // The counter, unlike MAX(seq), remembers numbers whose events were purged.
        let seq: Option<i64> = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'revocation_seq'")
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn purge_revocations(&self, now: UnixTime) -> StoreResult<u64> {
        let res = sqlx::query("DELETE FROM revocations WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected())
    }

    async fn record_jti(&self, client_id: &str, jti: &str, expires_at: UnixTime, now: UnixTime) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // Sweep what expired, skipping rows another node is working on.
        sqlx::query(
            "DELETE FROM assertion_jtis WHERE (client_id, jti) IN \
             (SELECT client_id, jti FROM assertion_jtis WHERE expires_at < $1 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Claim the jti: a new row, or one that expired (and so was maybe
        // skipped above). A racer waits on the row and then finds it live.
        let res = sqlx::query(
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE assertion_jtis.expires_at < $4",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    async fn insert_user(&self, u: &UserRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (user_id, username, password_hash, suspended, created_at, federated_issuer, \
             federated_subject) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&u.user_id)
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(u.suspended)
        .bind(u.created_at)
        .bind(&u.federated_issuer)
        .bind(&u.federated_subject)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, "user", &u.username))?;
        Ok(())
    }

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<UserRecord>> {
        if unstorable(user_id) {
            return Ok(None);
        }
        sqlx::query("SELECT * FROM users WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn get_user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        if unstorable(username) {
            return Ok(None);
        }
        sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn get_user_by_federated(&self, issuer: &str, subject: &str) -> StoreResult<Option<UserRecord>> {
        if unstorable(issuer) || unstorable(subject) {
            return Ok(None);
        }
        sqlx::query("SELECT * FROM users WHERE federated_issuer = $1 AND federated_subject = $2")
            .bind(issuer)
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        sqlx::query("SELECT * FROM users ORDER BY username")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::user)
            .collect()
    }

    async fn delete_user(&self, user_id: &str) -> StoreResult<bool> {
        if unstorable(user_id) {
            return Ok(false);
        }
        let mut tx = self.begin().await?;
        // Sessions before their tokens: the lock order of every other writer.
        for sql in [
            "DELETE FROM sessions WHERE user_id = $1",
            "DELETE FROM refresh_tokens WHERE user_id = $1",
            "DELETE FROM auth_codes WHERE user_id = $1",
        ] {
            sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
        }
        let res = sqlx::query("DELETE FROM users WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    async fn set_user_password(&self, user_id: &str, password_hash: &str) -> StoreResult<bool> {
        if unstorable(user_id) {
            return Ok(false);
        }
        let res = sqlx::query("UPDATE users SET password_hash = $1 WHERE user_id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn set_user_suspended(&self, user_id: &str, suspended: bool) -> StoreResult<bool> {
        if unstorable(user_id) {
            return Ok(false);
        }
        let res = sqlx::query("UPDATE users SET suspended = $1 WHERE user_id = $2")
            .bind(suspended)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn begin_session(&self, s: &SessionRecord, c: &AuthCodeRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (sid, user_id, client_id, audience, scope, auth_time, created_at, last_used_at, \
             expires_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&s.sid)
        .bind(&s.user_id)
        .bind(&s.client_id)
        .bind(&s.audience)
        .bind(&s.scope)
        .bind(s.auth_time)
        .bind(s.created_at)
        .bind(s.last_used_at)
        .bind(s.expires_at)
        .bind(s.ended_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, "session", &s.sid))?;
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, client_id, redirect_uri, code_challenge, sid, user_id, nonce, \
             auth_time, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&c.code_hash)
        .bind(&c.client_id)
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(&c.sid)
        .bind(&c.user_id)
        .bind(&c.nonce)
        .bind(c.auth_time)
        .bind(c.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, "authorization code", "(hidden)"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_session(&self, sid: &str) -> StoreResult<Option<SessionRecord>> {
        if unstorable(sid) {
            return Ok(None);
        }
        sqlx::query("SELECT * FROM sessions WHERE sid = $1")
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::session)
            .transpose()
    }

    async fn list_sessions(&self, user_id: &str, now: UnixTime) -> StoreResult<Vec<SessionRecord>> {
        if unstorable(user_id) {
            return Ok(Vec::new());
        }
        sqlx::query(
            "SELECT * FROM sessions WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, sid",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::session)
        .collect()
    }

    async fn end_session(&self, sid: &str, now: UnixTime) -> StoreResult<bool> {
        if unstorable(sid) {
            return Ok(false);
        }
        let mut tx = self.begin().await?;
        let res = sqlx::query("UPDATE sessions SET ended_at = $1 WHERE sid = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(sid)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE sid = $1")
            .bind(sid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    async fn end_user_sessions(&self, user_id: &str, keep: Option<&str>, now: UnixTime) -> StoreResult<Vec<String>> {
        if unstorable(user_id) {
            return Ok(Vec::new());
        }
        // A sid that cannot be stored matches no session, like none at all.
        let keep = keep.filter(|k| !unstorable(k)).unwrap_or("");
        let mut tx = self.begin().await?;
        let sids: Vec<String> = sqlx::query_scalar(
            "UPDATE sessions SET ended_at = $1 WHERE user_id = $2 AND sid != $3 AND ended_at IS NULL RETURNING sid",
        )
        .bind(now)
        .bind(user_id)
        .bind(keep)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE user_id = $1 AND sid != $2")
            .bind(user_id)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM auth_codes WHERE user_id = $1 AND sid != $2")
            .bind(user_id)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(sids)
    }

    async fn redeem_code(&self, code_hash: &[u8], now: UnixTime) -> StoreResult<Redeemed<AuthCodeRecord>> {
        self.spend_once("auth_codes", "code_hash", code_hash, now, rows::code)
            .await
    }

    async fn insert_refresh_token(&self, t: &RefreshTokenRecord, now: UnixTime) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE sid = $2")
            .bind(now)
            .bind(&t.sid)
            .execute(&mut *tx)
            .await?;
        insert_refresh(&mut tx, t).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_refresh_token(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshTokenRecord>> {
        sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::refresh)
            .transpose()
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new: &RefreshTokenRecord,
        now: UnixTime,
    ) -> StoreResult<Redeemed<RefreshTokenRecord>> {
        let mut tx = self.begin().await?;
        let Some(sid) = sqlx::query_scalar::<_, String>("SELECT sid FROM refresh_tokens WHERE token_hash = $1")
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Redeemed::Unknown);
        };
        // The session first, then the token: the order logout locks them in.
        sqlx::query("SELECT 1 FROM sessions WHERE sid = $1 FOR NO KEY UPDATE")
            .bind(&sid)
            .fetch_optional(&mut *tx)
            .await?;
        // Racers queue here; each then reads the token as the previous one left it.
        let Some(row) = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE")
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Redeemed::Unknown);
        };
        let old = rows::refresh(&row)?;
        if old.used_at.is_some() {
            return Ok(Redeemed::Replayed(old));
        }
        sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(old_hash)
            .execute(&mut *tx)
            .await?;
        insert_refresh(&mut tx, new).await?;
        sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE sid = $2")
            .bind(now)
            .bind(&new.sid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Redeemed::Fresh(old))
    }

    async fn purge_grants(&self, now: UnixTime) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let mut n = 0;
        // Sessions before their tokens: the lock order of every other writer.
        for sql in [
            "DELETE FROM sessions WHERE expires_at < $1",
            "DELETE FROM refresh_tokens WHERE expires_at < $1",
            "DELETE FROM auth_codes WHERE expires_at < $1",
            "DELETE FROM join_tokens WHERE expires_at < $1",
        ] {
            n += sqlx::query(sql).bind(now).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn list_cas(&self) -> StoreResult<Vec<CaRecord>> {
        sqlx::query("SELECT * FROM ca_keys ORDER BY created_at, ca_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::ca)
            .collect()
    }

    async fn write_cas(&self, upserts: &[CaRecord], deletes: &[String]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        // As for signing keys: CA writes take turns.
        sqlx::query("LOCK TABLE ca_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        for c in upserts {
            sqlx::query(
                "INSERT INTO ca_keys (ca_id, state, private_enc, cert_der, created_at, activated_at, retired_at, \
                 remove_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (ca_id) DO UPDATE SET state = excluded.state, activated_at = excluded.activated_at, \
                 retired_at = excluded.retired_at, remove_at = excluded.remove_at",
            )
            .bind(&c.ca_id)
            .bind(c.state.as_str())
            .bind(&c.private_enc)
            .bind(&c.cert_der)
            .bind(c.created_at)
            .bind(c.activated_at)
            .bind(c.retired_at)
            .bind(c.remove_at)
            .execute(&mut *tx)
            .await?;
        }
        for id in deletes {
            sqlx::query("DELETE FROM ca_keys WHERE ca_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_workload(&self, w: &WorkloadRecord) -> StoreResult<()> {
        let res = sqlx::query(
            "INSERT INTO workloads (spiffe_id, svid_ttl, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (spiffe_id) DO NOTHING",
        )
        .bind(&w.spiffe_id)
        .bind(w.svid_ttl)
        .bind(w.created_at)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::Conflict {
                what: "workload",
                id: w.spiffe_id.clone(),
            });
        }
        Ok(())
    }

    async fn get_workload(&self, spiffe_id: &str) -> StoreResult<Option<WorkloadRecord>> {
        if unstorable(spiffe_id) {
            return Ok(None);
        }
        sqlx::query("SELECT * FROM workloads WHERE spiffe_id = $1")
            .bind(spiffe_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::workload)
            .transpose()
    }

    async fn list_workloads(&self) -> StoreResult<Vec<WorkloadRecord>> {
        sqlx::query("SELECT * FROM workloads ORDER BY spiffe_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::workload)
            .collect()
    }

    async fn delete_workload(&self, spiffe_id: &str) -> StoreResult<bool> {
        if unstorable(spiffe_id) {
            return Ok(false);
        }
        // Its join tokens go with it (ON DELETE CASCADE).
        let res = sqlx::query("DELETE FROM workloads WHERE spiffe_id = $1")
            .bind(spiffe_id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn insert_join_token(&self, t: &JoinTokenRecord) -> StoreResult<()> {
        sqlx::query("INSERT INTO join_tokens (token_hash, spiffe_id, expires_at) VALUES ($1, $2, $3)")
            .bind(&t.token_hash)
            .bind(&t.spiffe_id)
            .bind(t.expires_at)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, "join token", "(hidden)"))?;
        Ok(())
    }

    async fn redeem_join_token(&self, token_hash: &[u8], now: UnixTime) -> StoreResult<Redeemed<JoinTokenRecord>> {
        // Deleting a workload deletes its tokens: a token of a gone workload is unknown.
        self.spend_once("join_tokens", "token_hash", token_hash, now, rows::join_token)
            .await
    }

    async fn append_policy_version(
        &self,
        service: &str,
        policies: &str,
        schema: Option<&str>,
        created_at: UnixTime,
        created_by: &str,
        note: Option<&str>,
    ) -> StoreResult<PolicyVersionRecord> {
        let mut tx = self.begin().await?;
        // The service's counter row numbers its versions; its lock makes
        // concurrent pushes take turns.
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO counters (name, value) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
        )
        .bind(format!("policy_version:{service}"))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO policy_versions (service, version, policies, schema, created_at, created_by, note) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(service)
        .bind(version)
        .bind(policies)
        .bind(schema)
        .bind(created_at)
        .bind(created_by)
        .bind(note)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, "policy version", service))?;
        tx.commit().await?;
        Ok(PolicyVersionRecord {
            service: service.to_owned(),
            version,
            policies: policies.to_owned(),
            schema: schema.map(str::to_owned),
            created_at,
            created_by: created_by.to_owned(),
            note: note.map(str::to_owned),
        })
    }

    async fn get_policy_version(
        &self,
        service: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<PolicyVersionRecord>> {
        if unstorable(service) {
            return Ok(None);
        }
        let row = match version {
            Some(v) => {
                sqlx::query("SELECT * FROM policy_versions WHERE service = $1 AND version = $2")
                    .bind(service)
                    .bind(v)
                    .fetch_optional(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM policy_versions WHERE service = $1 ORDER BY version DESC LIMIT 1")
                    .bind(service)
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        row.as_ref().map(rows::policy).transpose()
    }

    async fn list_policy_versions(&self, service: &str) -> StoreResult<Vec<PolicyVersionRecord>> {
        if unstorable(service) {
            return Ok(Vec::new());
        }
        sqlx::query("SELECT * FROM policy_versions WHERE service = $1 ORDER BY version")
            .bind(service)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::policy)
            .collect()
    }

    async fn list_policy_services(&self) -> StoreResult<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT service, MAX(version) AS version FROM policy_versions GROUP BY service ORDER BY service",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn append_decisions(
        &self,
        reporter: &str,
        batch_id: &str,
        received_at: UnixTime,
        rows: &[DecisionRecord],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // A retry racing the original waits on the batch row, then finds it.
        let fresh = sqlx::query(
            "INSERT INTO decision_batches (reporter, batch_id, received_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(reporter)
        .bind(batch_id)
        .bind(received_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            return Ok(false);
        }
        for chunk in rows.chunks(DECISION_ROWS_PER_INSERT) {
            let mut encoded = Vec::with_capacity(chunk.len());
            for d in chunk {
                encoded.push((to_json(&d.policies, "decision")?, to_json(&d.errors, "decision")?));
            }
            // One multi-row INSERT: ids are assigned in row order.
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO decisions (service, time, principal, action, resource, decision, reason, policies, \
                 errors, policy_version, reporter, received_at) ",
            );
            insert.push_values(chunk.iter().zip(encoded), |mut b, (d, (policies, errors))| {
                b.push_bind(&d.service)
                    .push_bind(d.time)
                    .push_bind(&d.principal)
                    .push_bind(&d.action)
                    .push_bind(&d.resource)
                    .push_bind(&d.decision)
                    .push_bind(&d.reason)
                    .push_bind(policies)
                    .push_bind(errors)
                    .push_bind(d.policy_version)
                    .push_bind(reporter)
                    .push_bind(received_at);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn query_decisions(&self, q: &DecisionQuery) -> StoreResult<Vec<DecisionRecord>> {
        let filters = [Some(q.service.as_str()), q.principal.as_deref(), q.decision.as_deref()];
        if filters.into_iter().flatten().any(unstorable) {
            return Ok(Vec::new());
        }
        // NULL filters match everything; one statement, fully bound.
        sqlx::query(
            "SELECT * FROM decisions WHERE service = $1 \
             AND ($2::TEXT IS NULL OR principal = $2) AND ($3::TEXT IS NULL OR decision = $3) \
             AND ($4::BIGINT IS NULL OR time >= $4) AND ($5::BIGINT IS NULL OR id < $5) \
             ORDER BY id DESC LIMIT $6",
        )
        .bind(&q.service)
        .bind(&q.principal)
        .bind(&q.decision)
        .bind(q.since)
        .bind(q.before_id)
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::decision)
        .collect()
    }

    async fn prune_decisions(&self, before: UnixTime) -> StoreResult<u64> {
        // In chunks, each its own short transaction, so nothing waits behind
        // a large prune; nodes pruning at once split the rows between them.
        const CHUNK: i64 = 5_000;
        let mut n = 0;
        loop {
            let deleted = sqlx::query(
                "DELETE FROM decisions WHERE id IN \
                 (SELECT id FROM decisions WHERE received_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(before)
            .bind(CHUNK)
            .execute(&self.pool)
            .await?
            .rows_affected();
            n += deleted;
            if i64::try_from(deleted).unwrap_or(i64::MAX) < CHUNK {
                break;
            }
        }
        sqlx::query("DELETE FROM decision_batches WHERE received_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(n)
    }

    async fn append_probe_run(
        &self,
        recorded_by: &str,
        recorded_at: UnixTime,
        report: &str,
        keep: usize,
    ) -> StoreResult<ProbeRunRecord> {
        let mut tx = self.begin().await?;
        // Appends take turns, so "the newest `keep`" is exact.
        sqlx::query("LOCK TABLE probe_runs IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO probe_runs (recorded_at, recorded_by, report) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(recorded_at)
        .bind(recorded_by)
        .bind(report)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM probe_runs WHERE id NOT IN (SELECT id FROM probe_runs ORDER BY id DESC LIMIT $1)")
            .bind(to_i64(keep.max(1)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ProbeRunRecord {
            id,
            recorded_at,
            recorded_by: recorded_by.to_owned(),
            report: report.to_owned(),
        })
    }

    async fn record_heartbeat(&self, hb: &HeartbeatRecord) -> StoreResult<()> {
        let kids = serde_json::to_string(&hb.kids).map_err(|e| corrupt("heartbeat", e))?;
        sqlx::query(
            "INSERT INTO verifier_heartbeats (verifier_id, audience, kind, kids, last_seq, transport, seen_at, \
             latest_seq, latest_at_previous) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (verifier_id) DO UPDATE SET audience = excluded.audience, kind = excluded.kind, \
             kids = excluded.kids, last_seq = excluded.last_seq, transport = excluded.transport, \
             seen_at = excluded.seen_at, latest_at_previous = verifier_heartbeats.latest_seq, \
             latest_seq = excluded.latest_seq",
        )
        .bind(&hb.verifier_id)
        .bind(&hb.audience)
        .bind(&hb.kind)
        .bind(kids)
        .bind(hb.last_seq)
        .bind(&hb.transport)
        .bind(hb.seen_at)
        .bind(hb.latest_seq)
        // The first heartbeat has no earlier reference: no lag is known yet.
        .bind(hb.last_seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_heartbeats(&self, since: UnixTime) -> StoreResult<Vec<HeartbeatRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM verifier_heartbeats WHERE seen_at >= $1 ORDER BY audience, verifier_id LIMIT 10000",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kids: String = r.try_get("kids")?;
                Ok(HeartbeatRecord {
                    verifier_id: r.try_get("verifier_id")?,
                    audience: r.try_get("audience")?,
                    kind: r.try_get("kind")?,
                    kids: serde_json::from_str(&kids).map_err(|e| corrupt("heartbeat", e))?,
                    last_seq: r.try_get("last_seq")?,
                    transport: r.try_get("transport")?,
                    seen_at: r.try_get("seen_at")?,
                    latest_seq: r.try_get("latest_seq")?,
                    latest_at_previous: r.try_get("latest_at_previous")?,
                })
            })
            .collect()
    }

    async fn prune_heartbeats(&self, before: UnixTime) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM verifier_heartbeats WHERE seen_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn acquire_lease(&self, name: &str, holder: &str, now: UnixTime, ttl: i64) -> StoreResult<bool> {
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(ttl))
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn ping(&self) -> StoreResult<()> {
        PostgresStore::ping(self).await
    }

    async fn announce(&self, change: &Change) -> StoreResult<()> {
        let payload = serde_json::to_string(change).map_err(|e| corrupt("change", e))?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn subscribe(&self) -> Option<tokio::sync::mpsc::Receiver<Notice>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(listen(self.pool.clone(), tx));
        Some(rx)
    }

    async fn append_audit(&self, event: &NewAuditEvent, chain_key: &[u8]) -> StoreResult<AuditRecord> {
        let mut tx = self.begin().await?;
        // The counter row stays locked until commit: appends from every node
        // take turns, and each reads the hash its predecessor committed.
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO counters (name, value) VALUES ('audit_seq', 1) \
             ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        let prev: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let prev = prev.unwrap_or_else(|| audit_chain::GENESIS.to_vec());
        let hash = audit_chain::link_hash(chain_key, &prev, &EventFields::new_event(seq, event));
        sqlx::query(
            "INSERT INTO audit_events (seq, at, actor, action, target, outcome, detail, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(event.at)
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.target)
        .bind(&event.outcome)
        .bind(&event.detail)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AuditRecord {
            seq,
            at: event.at,
            actor: event.actor.clone(),
            action: event.action.clone(),
            target: event.target.clone(),
            outcome: event.outcome.clone(),
            detail: event.detail.clone(),
            hash,
        })
    }

    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditRecord>> {
        if q.actor.as_deref().is_some_and(unstorable) {
            return Ok(Vec::new());
        }
        sqlx::query(
            "SELECT * FROM audit_events WHERE seq > $1 \
             AND ($2::BIGINT IS NULL OR at >= $2) AND ($3::TEXT IS NULL OR actor = $3) \
             ORDER BY seq LIMIT $4",
        )
        .bind(q.after_seq)
        .bind(q.since)
        .bind(&q.actor)
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::audit)
        .collect()
    }

    async fn list_probe_runs(&self, limit: usize) -> StoreResult<Vec<ProbeRunRecord>> {
        sqlx::query("SELECT id, recorded_at, recorded_by, report FROM probe_runs ORDER BY id DESC LIMIT $1")
            .bind(to_i64(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::probe_run)
            .collect()
    }
}

async fn insert_refresh(tx: &mut sqlx::Transaction<'_, Postgres>, t: &RefreshTokenRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, sid, client_id, user_id, created_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&t.token_hash)
    .bind(&t.sid)
    .bind(&t.client_id)
    .bind(&t.user_id)
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(t.used_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| conflict_or(e, "refresh token", "(hidden)"))?;
    Ok(())
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::fresh_postgres_database;

    #[tokio::test]
    async fn sessions_run_read_committed_under_the_timeout() {
        let Some((url, db)) = fresh_postgres_database("postgres::sessions_run_read_committed_under_the_timeout").await
        else {
            return;
        };
        // Even when the database defaults to something stricter.
        let admin = PgPool::connect(&url).await.unwrap();
        sqlx::raw_sql(&format!(
            "ALTER DATABASE \"{}\" SET default_transaction_isolation = 'serializable'",
            db.name()
        ))
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
        let options = PgOptions {
            statement_timeout: Duration::from_millis(250),
            ..PgOptions::default()
        };
        let store = PostgresStore::connect(&url, options).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let isolation: String = sqlx::query_scalar("SHOW transaction_isolation")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(isolation, "read committed");
        tx.commit().await.unwrap();
        for (setting, expected) in [("statement_timeout", "250ms"), ("application_name", "castellan")] {
            let shown: String = sqlx::query_scalar(&format!("SHOW {setting}"))
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(shown, expected, "{setting}");
        }
        let err = sqlx::query("SELECT pg_sleep(2)")
            .execute(&store.pool)
            .await
            .unwrap_err();
        let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("57014"), "{err}");
        store.pool.close().await;
        db.drop_database().await.unwrap();
    }
}
