//! The embedded SQLite store (WAL, `synchronous=FULL`: an acknowledged write
//! survives `kill -9` and power loss).

use crate::audit_chain::{self, EventFields};
use crate::migrations;
use crate::{
    AuditQuery, AuditRecord, AuthCodeRecord, CaRecord, ClientRecord, DecisionQuery, DecisionRecord, HeartbeatRecord,
    JoinTokenRecord, KeyRecord, NewAuditEvent, PolicyVersionRecord, ProbeRunRecord, Redeemed, RefreshTokenRecord,
    RevocationEvent, RevocationKind, SessionRecord, Store, StoreError, StoreResult, UserRecord, WorkloadRecord,
};
use castellan_core::UnixTime;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// SQLite behind the [`Store`] trait.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// A transaction that holds the write lock from its first statement.
    ///
    /// A plain (deferred) transaction that reads before it writes fails with
    /// `SQLITE_BUSY` instead of waiting when another connection commits in
    /// between (WAL cannot upgrade a stale snapshot), so racing redemptions of
    /// one code or refresh token would error instead of losing cleanly.
    /// `BEGIN IMMEDIATE` waits on `busy_timeout` for the lock and then reads
    /// fresh state.
    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS castellan_schema (version INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let current: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM castellan_schema")
            .fetch_one(&mut *tx)
            .await?;
        let supported = i64::try_from(migrations::SQLITE.len()).unwrap_or(i64::MAX);
        if current > supported {
            return Err(StoreError::SchemaTooNew {
                found: current,
                supported,
            });
        }
        for (i, sql) in migrations::SQLITE
            .iter()
            .enumerate()
            .skip(usize::try_from(current).unwrap_or(0))
        {
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            let version = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
            sqlx::query("INSERT INTO castellan_schema (version) VALUES (?)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn corrupt(what: &'static str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: reason.to_string(),
    }
}

fn decision_from_row(row: &SqliteRow) -> StoreResult<DecisionRecord> {
    let policies: String = row.try_get("policies")?;
    let errors: String = row.try_get("errors")?;
    Ok(DecisionRecord {
        id: row.try_get("id")?,
        service: row.try_get("service")?,
        time: row.try_get("time")?,
        principal: row.try_get("principal")?,
        action: row.try_get("action")?,
        resource: row.try_get("resource")?,
        decision: row.try_get("decision")?,
        reason: row.try_get("reason")?,
        policies: serde_json::from_str(&policies).map_err(|e| corrupt("decision", e))?,
        errors: serde_json::from_str(&errors).map_err(|e| corrupt("decision", e))?,
        policy_version: row.try_get("policy_version")?,
        reporter: row.try_get("reporter")?,
        received_at: row.try_get("received_at")?,
    })
}

fn policy_from_row(row: &SqliteRow) -> StoreResult<PolicyVersionRecord> {
    Ok(PolicyVersionRecord {
        service: row.try_get("service")?,
        version: row.try_get("version")?,
        policies: row.try_get("policies")?,
        schema: row.try_get("schema")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        note: row.try_get("note")?,
    })
}

fn client_from_row(row: &SqliteRow) -> StoreResult<ClientRecord> {
    let audiences: String = row.try_get("audiences")?;
    let scopes: String = row.try_get("scopes")?;
    let redirect_uris: String = row.try_get("redirect_uris")?;
    let post_logout: String = row.try_get("post_logout_redirect_uris")?;
    let exchange: String = row.try_get("exchange_audiences")?;
    Ok(ClientRecord {
        client_id: row.try_get("client_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        audiences: serde_json::from_str(&audiences).map_err(|e| corrupt("client", e))?,
        scopes: serde_json::from_str(&scopes).map_err(|e| corrupt("client", e))?,
        access_token_ttl: row.try_get("access_token_ttl")?,
        jwks: row.try_get("jwks")?,
        admin: row.try_get::<i64, _>("admin")? != 0,
        created_at: row.try_get("created_at")?,
        redirect_uris: serde_json::from_str(&redirect_uris).map_err(|e| corrupt("client", e))?,
        post_logout_redirect_uris: serde_json::from_str(&post_logout).map_err(|e| corrupt("client", e))?,
        public: row.try_get::<i64, _>("public")? != 0,
        serves: row.try_get("serves")?,
        exchange_audiences: serde_json::from_str(&exchange).map_err(|e| corrupt("client", e))?,
        tls_client_auth_san_uri: row.try_get("tls_client_auth_san_uri")?,
    })
}

fn user_from_row(row: &SqliteRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        suspended: row.try_get::<i64, _>("suspended")? != 0,
        created_at: row.try_get("created_at")?,
        federated_issuer: row.try_get("federated_issuer")?,
        federated_subject: row.try_get("federated_subject")?,
    })
}

fn session_from_row(row: &SqliteRow) -> StoreResult<SessionRecord> {
    Ok(SessionRecord {
        sid: row.try_get("sid")?,
        user_id: row.try_get("user_id")?,
        client_id: row.try_get("client_id")?,
        audience: row.try_get("audience")?,
        scope: row.try_get("scope")?,
        auth_time: row.try_get("auth_time")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
        ended_at: row.try_get("ended_at")?,
    })
}

fn code_from_row(row: &SqliteRow) -> StoreResult<AuthCodeRecord> {
    Ok(AuthCodeRecord {
        code_hash: row.try_get("code_hash")?,
        client_id: row.try_get("client_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        code_challenge: row.try_get("code_challenge")?,
        sid: row.try_get("sid")?,
        user_id: row.try_get("user_id")?,
        nonce: row.try_get("nonce")?,
        auth_time: row.try_get("auth_time")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn refresh_from_row(row: &SqliteRow) -> StoreResult<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        token_hash: row.try_get("token_hash")?,
        sid: row.try_get("sid")?,
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
    })
}

/// Maps a unique-constraint failure to `Conflict`.
fn conflict_or(e: sqlx::Error, what: &'static str, id: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict {
            what,
            id: id.to_owned(),
        },
        _ => StoreError::Database(e),
    }
}

fn key_from_row(row: &SqliteRow) -> StoreResult<KeyRecord> {
    let state: String = row.try_get("state")?;
    Ok(KeyRecord {
        kid: row.try_get("kid")?,
        alg: row.try_get("alg")?,
        state: state.parse().map_err(|e: String| corrupt("signing key", e))?,
        private_enc: row.try_get("private_enc")?,
        public_jwk: row.try_get("public_jwk")?,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        retired_at: row.try_get("retired_at")?,
        remove_at: row.try_get("remove_at")?,
    })
}

fn ca_from_row(row: &SqliteRow) -> StoreResult<CaRecord> {
    let state: String = row.try_get("state")?;
    Ok(CaRecord {
        ca_id: row.try_get("ca_id")?,
        state: state.parse().map_err(|e: String| corrupt("ca key", e))?,
        private_enc: row.try_get("private_enc")?,
        cert_der: row.try_get("cert_der")?,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        retired_at: row.try_get("retired_at")?,
        remove_at: row.try_get("remove_at")?,
    })
}

fn workload_from_row(row: &SqliteRow) -> StoreResult<WorkloadRecord> {
    Ok(WorkloadRecord {
        spiffe_id: row.try_get("spiffe_id")?,
        svid_ttl: row.try_get("svid_ttl")?,
        created_at: row.try_get("created_at")?,
    })
}

fn event_from_row(row: &SqliteRow) -> StoreResult<RevocationEvent> {
    let kind: String = row.try_get("kind")?;
    Ok(RevocationEvent {
        seq: row.try_get("seq")?,
        kind: RevocationKind::from_str(&kind).map_err(|e| corrupt("revocation", e))?,
        value: row.try_get("value")?,
        not_before: row.try_get("not_before")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn audit_from_row(row: &SqliteRow) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
        hash: row.try_get("hash")?,
    })
}

fn to_json(v: &[String]) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| corrupt("client", e))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get_meta(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn init_meta(&self, key: &str, value: &str) -> StoreResult<String> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
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
            "INSERT INTO clients (client_id, name, secret_hash, audiences, scopes, access_token_ttl, jwks, admin, created_at, \
             redirect_uris, post_logout_redirect_uris, public, serves, exchange_audiences, tls_client_auth_san_uri) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (client_id) DO NOTHING",
        )
        .bind(&c.client_id)
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(to_json(&c.audiences)?)
        .bind(to_json(&c.scopes)?)
        .bind(c.access_token_ttl)
        .bind(&c.jwks)
        .bind(i64::from(c.admin))
        .bind(c.created_at)
        .bind(to_json(&c.redirect_uris)?)
        .bind(to_json(&c.post_logout_redirect_uris)?)
        .bind(i64::from(c.public))
        .bind(&c.serves)
        .bind(to_json(&c.exchange_audiences)?)
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
        sqlx::query("SELECT * FROM clients WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(client_from_row)
            .transpose()
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        sqlx::query("SELECT * FROM clients ORDER BY created_at, client_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(client_from_row)
            .collect()
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        let res = sqlx::query("DELETE FROM clients WHERE client_id = ?")
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn set_client_secret(&self, client_id: &str, secret_hash: &[u8]) -> StoreResult<bool> {
        let res = sqlx::query("UPDATE clients SET secret_hash = ? WHERE client_id = ?")
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
            .map(key_from_row)
            .collect()
    }

    async fn write_keys(&self, upserts: &[KeyRecord], deletes: &[String]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for k in upserts {
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, state, private_enc, public_jwk, created_at, activated_at, retired_at, remove_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
            sqlx::query("DELETE FROM signing_keys WHERE kid = ?")
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
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO revocations (kind, value, not_before, created_at, expires_at) VALUES (?, ?, ?, ?, ?) RETURNING seq",
        )
        .bind(kind.as_str())
        .bind(value)
        .bind(not_before)
        .bind(created_at)
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await?;
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
        sqlx::query("SELECT * FROM revocations WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    async fn find_revocation(
        &self,
        kind: RevocationKind,
        value: &str,
        now: UnixTime,
    ) -> StoreResult<Option<RevocationEvent>> {
        sqlx::query(
            "SELECT * FROM revocations WHERE kind = ? AND value = ? AND expires_at >= ? ORDER BY not_before DESC, seq DESC LIMIT 1",
        )
        .bind(kind.as_str())
        .bind(value)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(event_from_row)
        .transpose()
    }

    async fn latest_revocation_seq(&self) -> StoreResult<i64> {
        // sqlite_sequence remembers the highest AUTOINCREMENT value even after purges.
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'revocations'")
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn purge_revocations(&self, now: UnixTime) -> StoreResult<u64> {
        let res = sqlx::query("DELETE FROM revocations WHERE expires_at < ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected())
    }

    async fn record_jti(&self, client_id: &str, jti: &str, expires_at: UnixTime, now: UnixTime) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM assertion_jtis WHERE expires_at < ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let res = sqlx::query(
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES (?, ?, ?) ON CONFLICT (client_id, jti) DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(res.rows_affected() == 1)
    }

    async fn insert_user(&self, u: &UserRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (user_id, username, password_hash, suspended, created_at, federated_issuer, federated_subject) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.user_id)
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(i64::from(u.suspended))
        .bind(u.created_at)
        .bind(&u.federated_issuer)
        .bind(&u.federated_subject)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, "user", &u.username))?;
        Ok(())
    }

    async fn get_user(&self, user_id: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn get_user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn get_user_by_federated(&self, issuer: &str, subject: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE federated_issuer = ? AND federated_subject = ?")
            .bind(issuer)
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        sqlx::query("SELECT * FROM users ORDER BY username")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    async fn delete_user(&self, user_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM refresh_tokens WHERE user_id = ?",
            "DELETE FROM auth_codes WHERE user_id = ?",
            "DELETE FROM sessions WHERE user_id = ?",
        ] {
            sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
        }
        let res = sqlx::query("DELETE FROM users WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    async fn set_user_password(&self, user_id: &str, password_hash: &str) -> StoreResult<bool> {
        let res = sqlx::query("UPDATE users SET password_hash = ? WHERE user_id = ?")
            .bind(password_hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn set_user_suspended(&self, user_id: &str, suspended: bool) -> StoreResult<bool> {
        let res = sqlx::query("UPDATE users SET suspended = ? WHERE user_id = ?")
            .bind(i64::from(suspended))
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn begin_session(&self, s: &SessionRecord, c: &AuthCodeRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (sid, user_id, client_id, audience, scope, auth_time, created_at, last_used_at, expires_at, ended_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            "INSERT INTO auth_codes (code_hash, client_id, redirect_uri, code_challenge, sid, user_id, nonce, auth_time, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        sqlx::query("SELECT * FROM sessions WHERE sid = ?")
            .bind(sid)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(session_from_row)
            .transpose()
    }

    async fn list_sessions(&self, user_id: &str, now: UnixTime) -> StoreResult<Vec<SessionRecord>> {
        sqlx::query(
            "SELECT * FROM sessions WHERE user_id = ? AND ended_at IS NULL AND expires_at > ? ORDER BY created_at DESC, sid",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(session_from_row)
        .collect()
    }

    async fn end_session(&self, sid: &str, now: UnixTime) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query("UPDATE sessions SET ended_at = ? WHERE sid = ? AND ended_at IS NULL")
            .bind(now)
            .bind(sid)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE sid = ?")
            .bind(sid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    async fn end_user_sessions(&self, user_id: &str, keep: Option<&str>, now: UnixTime) -> StoreResult<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let keep = keep.unwrap_or("");
        let sids: Vec<String> = sqlx::query_scalar(
            "UPDATE sessions SET ended_at = ? WHERE user_id = ? AND sid != ? AND ended_at IS NULL RETURNING sid",
        )
        .bind(now)
        .bind(user_id)
        .bind(keep)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE user_id = ? AND sid != ?")
            .bind(user_id)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM auth_codes WHERE user_id = ? AND sid != ?")
            .bind(user_id)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(sids)
    }

    async fn redeem_code(&self, code_hash: &[u8], now: UnixTime) -> StoreResult<Redeemed<AuthCodeRecord>> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query("SELECT * FROM auth_codes WHERE code_hash = ?")
            .bind(code_hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Redeemed::Unknown);
        };
        let code = code_from_row(&row)?;
        let used: Option<i64> = row.try_get("used_at")?;
        if used.is_some() {
            return Ok(Redeemed::Replayed(code));
        }
        if code.expires_at <= now {
            return Ok(Redeemed::Unknown);
        }
        let res = sqlx::query("UPDATE auth_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL")
            .bind(now)
            .bind(code_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(if res.rows_affected() == 1 {
            Redeemed::Fresh(code)
        } else {
            Redeemed::Replayed(code)
        })
    }

    async fn insert_refresh_token(&self, t: &RefreshTokenRecord, now: UnixTime) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_refresh(&mut tx, t).await?;
        sqlx::query("UPDATE sessions SET last_used_at = ? WHERE sid = ?")
            .bind(now)
            .bind(&t.sid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_refresh_token(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshTokenRecord>> {
        sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(refresh_from_row)
            .transpose()
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new: &RefreshTokenRecord,
        now: UnixTime,
    ) -> StoreResult<Redeemed<RefreshTokenRecord>> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = ?")
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Redeemed::Unknown);
        };
        let old = refresh_from_row(&row)?;
        let res = sqlx::query("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL")
            .bind(now)
            .bind(old_hash)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() != 1 {
            return Ok(Redeemed::Replayed(old));
        }
        insert_refresh(&mut tx, new).await?;
        sqlx::query("UPDATE sessions SET last_used_at = ? WHERE sid = ?")
            .bind(now)
            .bind(&new.sid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Redeemed::Fresh(old))
    }

    async fn purge_grants(&self, now: UnixTime) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for sql in [
            "DELETE FROM auth_codes WHERE expires_at < ?",
            "DELETE FROM refresh_tokens WHERE expires_at < ?",
            "DELETE FROM sessions WHERE expires_at < ?",
            "DELETE FROM join_tokens WHERE expires_at < ?",
        ] {
            n += sqlx::query(sql).bind(now).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn list_cas(&self) -> StoreResult<Vec<CaRecord>> {
        let rows = sqlx::query("SELECT * FROM ca_keys ORDER BY created_at, ca_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ca_from_row).collect()
    }

    async fn write_cas(&self, upserts: &[CaRecord], deletes: &[String]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for c in upserts {
            sqlx::query(
                "INSERT INTO ca_keys (ca_id, state, private_enc, cert_der, created_at, activated_at, retired_at, remove_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
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
            sqlx::query("DELETE FROM ca_keys WHERE ca_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_workload(&self, w: &WorkloadRecord) -> StoreResult<()> {
        let res = sqlx::query(
            "INSERT INTO workloads (spiffe_id, svid_ttl, created_at) VALUES (?, ?, ?) ON CONFLICT (spiffe_id) DO NOTHING",
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
        let row = sqlx::query("SELECT * FROM workloads WHERE spiffe_id = ?")
            .bind(spiffe_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(workload_from_row).transpose()
    }

    async fn list_workloads(&self) -> StoreResult<Vec<WorkloadRecord>> {
        let rows = sqlx::query("SELECT * FROM workloads ORDER BY spiffe_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(workload_from_row).collect()
    }

    async fn delete_workload(&self, spiffe_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM join_tokens WHERE spiffe_id = ?")
            .bind(spiffe_id)
            .execute(&mut *tx)
            .await?;
        let res = sqlx::query("DELETE FROM workloads WHERE spiffe_id = ?")
            .bind(spiffe_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected() > 0)
    }

    async fn insert_join_token(&self, t: &JoinTokenRecord) -> StoreResult<()> {
        sqlx::query("INSERT INTO join_tokens (token_hash, spiffe_id, expires_at) VALUES (?, ?, ?)")
            .bind(&t.token_hash)
            .bind(&t.spiffe_id)
            .bind(t.expires_at)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, "join token", "(hidden)"))?;
        Ok(())
    }

    async fn redeem_join_token(&self, token_hash: &[u8], now: UnixTime) -> StoreResult<Redeemed<JoinTokenRecord>> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query("SELECT * FROM join_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Redeemed::Unknown);
        };
        let record = JoinTokenRecord {
            token_hash: row.try_get("token_hash")?,
            spiffe_id: row.try_get("spiffe_id")?,
            expires_at: row.try_get("expires_at")?,
        };
        let used: Option<i64> = row.try_get("used_at")?;
        if used.is_some() {
            return Ok(Redeemed::Replayed(record));
        }
        if record.expires_at <= now {
            return Ok(Redeemed::Unknown);
        }
        sqlx::query("UPDATE join_tokens SET used_at = ? WHERE token_hash = ?")
            .bind(now)
            .bind(token_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Redeemed::Fresh(record))
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
        let mut tx = self.begin_write().await?;
        let version: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM policy_versions WHERE service = ?")
                .bind(service)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO policy_versions (service, version, policies, schema, created_at, created_by, note) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(service)
        .bind(version)
        .bind(policies)
        .bind(schema)
        .bind(created_at)
        .bind(created_by)
        .bind(note)
        .execute(&mut *tx)
        .await?;
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
        let row = match version {
            Some(v) => {
                sqlx::query("SELECT * FROM policy_versions WHERE service = ? AND version = ?")
                    .bind(service)
                    .bind(v)
                    .fetch_optional(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM policy_versions WHERE service = ? ORDER BY version DESC LIMIT 1")
                    .bind(service)
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        row.as_ref().map(policy_from_row).transpose()
    }

    async fn list_policy_versions(&self, service: &str) -> StoreResult<Vec<PolicyVersionRecord>> {
        sqlx::query("SELECT * FROM policy_versions WHERE service = ? ORDER BY version")
            .bind(service)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(policy_from_row)
            .collect()
    }

    async fn list_policy_services(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT service, MAX(version) AS version FROM policy_versions GROUP BY service ORDER BY service",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("service")?, r.try_get("version")?)))
            .collect()
    }

    async fn append_decisions(
        &self,
        reporter: &str,
        batch_id: &str,
        received_at: UnixTime,
        rows: &[DecisionRecord],
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let fresh = sqlx::query(
            "INSERT INTO decision_batches (reporter, batch_id, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
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
        for d in rows {
            let policies = serde_json::to_string(&d.policies).map_err(|e| corrupt("decision", e))?;
            let errors = serde_json::to_string(&d.errors).map_err(|e| corrupt("decision", e))?;
            sqlx::query(
                "INSERT INTO decisions (service, time, principal, action, resource, decision, reason, policies, \
                 errors, policy_version, reporter, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&d.service)
            .bind(d.time)
            .bind(&d.principal)
            .bind(&d.action)
            .bind(&d.resource)
            .bind(&d.decision)
            .bind(&d.reason)
            .bind(policies)
            .bind(errors)
            .bind(d.policy_version)
            .bind(reporter)
            .bind(received_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn query_decisions(&self, q: &DecisionQuery) -> StoreResult<Vec<DecisionRecord>> {
        // NULL filters match everything; one statement, fully bound.
        sqlx::query(
            "SELECT * FROM decisions WHERE service = ? \
             AND (?2 IS NULL OR principal = ?2) AND (?3 IS NULL OR decision = ?3) \
             AND (?4 IS NULL OR time >= ?4) AND (?5 IS NULL OR id < ?5) \
             ORDER BY id DESC LIMIT ?6",
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
        .map(decision_from_row)
        .collect()
    }

    async fn prune_decisions(&self, before: UnixTime) -> StoreResult<u64> {
        // In chunks, each its own short write, so token issuance is never
        // held up behind a large prune.
        const CHUNK: i64 = 5_000;
        let mut n = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let deleted = sqlx::query(
                "DELETE FROM decisions WHERE id IN (SELECT id FROM decisions WHERE received_at < ? LIMIT ?)",
            )
            .bind(before)
            .bind(CHUNK)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n += deleted;
            if deleted < u64::try_from(CHUNK).unwrap_or(u64::MAX) {
                break;
            }
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM decision_batches WHERE received_at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn append_probe_run(
        &self,
        recorded_by: &str,
        recorded_at: UnixTime,
        report: &str,
        keep: usize,
    ) -> StoreResult<ProbeRunRecord> {
        let mut tx = self.begin_write().await?;
        let id: i64 =
            sqlx::query("INSERT INTO probe_runs (recorded_at, recorded_by, report) VALUES (?, ?, ?) RETURNING id")
                .bind(recorded_at)
                .bind(recorded_by)
                .bind(report)
                .fetch_one(&mut *tx)
                .await?
                .try_get("id")?;
        sqlx::query("DELETE FROM probe_runs WHERE id NOT IN (SELECT id FROM probe_runs ORDER BY id DESC LIMIT ?)")
            .bind(i64::try_from(keep.max(1)).unwrap_or(i64::MAX))
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
             latest_seq, latest_at_previous) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
            "SELECT * FROM verifier_heartbeats WHERE seen_at >= ? ORDER BY audience, verifier_id LIMIT 10000",
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
        Ok(sqlx::query("DELETE FROM verifier_heartbeats WHERE seen_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn acquire_lease(&self, name: &str, holder: &str, now: UnixTime, ttl: i64) -> StoreResult<bool> {
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4",
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
        sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_probe_runs(&self, limit: usize) -> StoreResult<Vec<ProbeRunRecord>> {
        let rows = sqlx::query("SELECT id, recorded_at, recorded_by, report FROM probe_runs ORDER BY id DESC LIMIT ?")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ProbeRunRecord {
                    id: r.try_get("id")?,
                    recorded_at: r.try_get("recorded_at")?,
                    recorded_by: r.try_get("recorded_by")?,
                    report: r.try_get("report")?,
                })
            })
            .collect()
    }

    async fn append_audit(&self, event: &NewAuditEvent, chain_key: &[u8]) -> StoreResult<AuditRecord> {
        // The write lock is held from the first read: appends take turns.
        let mut tx = self.begin_write().await?;
        let last: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        // `sqlite_sequence` remembers numbers whose rows are gone, so a
        // deleted tail leaves a gap the next append makes visible.
        let assigned: i64 =
            sqlx::query_scalar("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'), 0)")
                .fetch_one(&mut *tx)
                .await?;
        let (last_seq, prev) = last.unwrap_or((0, audit_chain::GENESIS.to_vec()));
        let seq = last_seq.max(assigned).saturating_add(1);
        let hash = audit_chain::link_hash(chain_key, &prev, &EventFields::new_event(seq, event));
        sqlx::query(
            "INSERT INTO audit_events (seq, at, actor, action, target, outcome, detail, hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
        // NULL filters match everything; one statement, fully bound.
        sqlx::query(
            "SELECT * FROM audit_events WHERE seq > ?1 \
             AND (?2 IS NULL OR at >= ?2) AND (?3 IS NULL OR actor = ?3) \
             ORDER BY seq LIMIT ?4",
        )
        .bind(q.after_seq)
        .bind(q.since)
        .bind(&q.actor)
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(audit_from_row)
        .collect()
    }
}

async fn insert_refresh(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, t: &RefreshTokenRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, sid, client_id, user_id, created_at, expires_at, used_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
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
