//! The embedded SQLite store (WAL, `synchronous=FULL`: an acknowledged write
//! survives `kill -9` and power loss).

use crate::migrations;
use crate::{ClientRecord, KeyRecord, RevocationEvent, RevocationKind, Store, StoreError, StoreResult};
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

fn client_from_row(row: &SqliteRow) -> StoreResult<ClientRecord> {
    let audiences: String = row.try_get("audiences")?;
    let scopes: String = row.try_get("scopes")?;
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
    })
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
            "INSERT INTO clients (client_id, name, secret_hash, audiences, scopes, access_token_ttl, jwks, admin, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (client_id) DO NOTHING",
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
}
