//! Moving a single-node SQLite install to PostgreSQL
//! (`castellan store migrate-sqlite-to-postgres`).
//!
//! [`sqlite_to_postgres`] copies every table of a Castellan SQLite store,
//! every column, into an empty PostgreSQL database, in one PostgreSQL
//! transaction: all or nothing.
//!
//! - **The source is never changed.** It is opened in SQLite's exclusive
//!   locking mode and read inside one `BEGIN EXCLUSIVE` transaction that is
//!   rolled back. That refuses at once ([`CopyError::SourceInUse`]) while
//!   another process has the database open (an authority running on the data
//!   dir keeps it open), keeps every other process from writing while the
//!   copy runs, and gives one consistent snapshot. (Closing may checkpoint
//!   SQLite's write-ahead log into the file: no row changes.)
//! - **The source must be at this binary's schema version.** The copy does
//!   not upgrade it (a failed copy then leaves the single-node install as it
//!   was): an older store is refused with the advice to start this version's
//!   `castellan serve` on it once, a newer one with the advice to copy with
//!   the version that wrote it.
//! - **The target must be empty.** [`PostgresStore::connect`] brings its
//!   schema up to date; then every table the copy fills is locked and the
//!   copy is refused if any holds a row or any counter has moved: it never
//!   merges into a live cluster. A node starting against the database
//!   meanwhile waits on the locks and then finds the copied store.
//! - **Numbering continues.** The `revocation_seq` counter is set to the
//!   highest sequence number SQLite ever assigned (`sqlite_sequence`
//!   remembers purged events), each `policy_version:<service>` counter to
//!   the service's newest version, the `audit_seq` counter to the highest
//!   audit sequence number SQLite ever assigned, and the decision and
//!   probe-run ids go on after the highest SQLite ever assigned.
//! - **The audit trail is copied as it is**: sequence numbers, hashes and
//!   all, so its chain (keyed by the master key) verifies on the target.
//! - **Sealed private keys are copied as opaque bytes**: they stay encrypted
//!   under the master key the install used, which every node then needs.
//! - **Leases are not copied**: they are state of the nodes running now.
//! - **Verified before commit**: every table's row count in the target must
//!   equal the source's.

use crate::migrations;
use crate::{PgOptions, PostgresStore};
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteLockingMode, SqliteRow};
use sqlx::{ConnectOptions, Connection, Postgres, QueryBuilder, Row};
use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Tables of the SQLite schema the copy leaves out, on purpose: SQLite's own
/// bookkeeping (`castellan_schema` is the schema version, `sqlite_sequence`
/// the highest ids ever assigned, which the copy reads into the PostgreSQL
/// counters), `leases` and `verifier_heartbeats`, state of the nodes and
/// verifiers running now.
pub const SKIPPED_TABLES: &[&str] = &["castellan_schema", "sqlite_sequence", "leases", "verifier_heartbeats"];

/// The tables the copy fills, in copy order (a table before those that refer to it).
pub fn copied_tables() -> Vec<&'static str> {
    TABLES.iter().map(|t| t.name).collect()
}

/// How long the source may stay locked by another connection before the
/// copy gives up: long enough for a write in flight, far shorter than an
/// authority keeps its store open.
const SOURCE_BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long reaching the target may take.
const TARGET_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the copy waits for the target's tables (a node using them).
const TARGET_LOCK_TIMEOUT: &str = "10s";
/// The longest one statement of the copy may run on the target.
const TARGET_STATEMENT_TIMEOUT: &str = "15min";
/// Source rows read per query.
const PAGE_ROWS: i64 = 1_000;
/// An `INSERT` is sent once its rows hold this many bytes of text and blobs.
const INSERT_BYTES: usize = 8 << 20;
/// PostgreSQL's limit on bind parameters per statement, with room to spare.
const MAX_PARAMS: usize = 60_000;
/// A big table reports progress every this many rows.
const PROGRESS_EVERY: u64 = 50_000;

/// How a column is stored: SQLite type -> PostgreSQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// TEXT -> TEXT.
    Text,
    /// INTEGER -> BIGINT.
    Int,
    /// BLOB -> BYTEA.
    Bytes,
    /// INTEGER 0/1 -> BOOLEAN.
    Flag,
}

/// One copied table.
#[derive(Debug)]
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// `id` is `GENERATED ALWAYS AS IDENTITY` in PostgreSQL: inserted with
    /// `OVERRIDING SYSTEM VALUE`, and its sequence moved past SQLite's.
    identity: bool,
}

use Kind::{Bytes, Flag, Int, Text};

/// Every table of the current schema but [`SKIPPED_TABLES`]; the unit tests
/// below hold this list to both schemas.
const TABLES: &[Table] = &[
    Table {
        name: "meta",
        columns: &[("key", Text), ("value", Text)],
        identity: false,
    },
    Table {
        name: "clients",
        columns: &[
            ("client_id", Text),
            ("name", Text),
            ("secret_hash", Bytes),
            ("audiences", Text),
            ("scopes", Text),
            ("access_token_ttl", Int),
            ("jwks", Text),
            ("admin", Flag),
            ("created_at", Int),
            ("redirect_uris", Text),
            ("post_logout_redirect_uris", Text),
            ("public", Flag),
            ("serves", Text),
            ("exchange_audiences", Text),
            ("tls_client_auth_san_uri", Text),
        ],
        identity: false,
    },
    Table {
        name: "signing_keys",
        columns: &[
            ("kid", Text),
            ("alg", Text),
            ("state", Text),
            ("private_enc", Bytes),
            ("public_jwk", Text),
            ("created_at", Int),
            ("activated_at", Int),
            ("retired_at", Int),
            ("remove_at", Int),
        ],
        identity: false,
    },
    Table {
        name: "revocations",
        columns: &[
            ("seq", Int),
            ("kind", Text),
            ("value", Text),
            ("not_before", Int),
            ("created_at", Int),
            ("expires_at", Int),
        ],
        identity: false,
    },
    Table {
        name: "assertion_jtis",
        columns: &[("client_id", Text), ("jti", Text), ("expires_at", Int)],
        identity: false,
    },
    Table {
        name: "users",
        columns: &[
            ("user_id", Text),
            ("username", Text),
            ("password_hash", Text),
            ("suspended", Flag),
            ("created_at", Int),
            ("federated_issuer", Text),
            ("federated_subject", Text),
        ],
        identity: false,
    },
    Table {
        name: "sessions",
        columns: &[
            ("sid", Text),
            ("user_id", Text),
            ("client_id", Text),
            ("audience", Text),
            ("scope", Text),
            ("auth_time", Int),
            ("created_at", Int),
            ("last_used_at", Int),
            ("expires_at", Int),
            ("ended_at", Int),
        ],
        identity: false,
    },
    Table {
        name: "auth_codes",
        columns: &[
            ("code_hash", Bytes),
            ("client_id", Text),
            ("redirect_uri", Text),
            ("code_challenge", Text),
            ("sid", Text),
            ("user_id", Text),
            ("nonce", Text),
            ("auth_time", Int),
            ("expires_at", Int),
            ("used_at", Int),
        ],
        identity: false,
    },
    Table {
        name: "refresh_tokens",
        columns: &[
            ("token_hash", Bytes),
            ("sid", Text),
            ("client_id", Text),
            ("user_id", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
        ],
        identity: false,
    },
    Table {
        name: "ca_keys",
        columns: &[
            ("ca_id", Text),
            ("state", Text),
            ("private_enc", Bytes),
            ("cert_der", Bytes),
            ("created_at", Int),
            ("activated_at", Int),
            ("retired_at", Int),
            ("remove_at", Int),
        ],
        identity: false,
    },
    Table {
        name: "workloads",
        columns: &[("spiffe_id", Text), ("svid_ttl", Int), ("created_at", Int)],
        identity: false,
    },
    // After `workloads`: its rows refer to them.
    Table {
        name: "join_tokens",
        columns: &[
            ("token_hash", Bytes),
            ("spiffe_id", Text),
            ("expires_at", Int),
            ("used_at", Int),
        ],
        identity: false,
    },
    Table {
        name: "policy_versions",
        columns: &[
            ("service", Text),
            ("version", Int),
            ("policies", Text),
            ("schema", Text),
            ("created_at", Int),
            ("created_by", Text),
            ("note", Text),
        ],
        identity: false,
    },
    Table {
        name: "decision_batches",
        columns: &[("reporter", Text), ("batch_id", Text), ("received_at", Int)],
        identity: false,
    },
    Table {
        name: "decisions",
        columns: &[
            ("id", Int),
            ("service", Text),
            ("time", Int),
            ("principal", Text),
            ("action", Text),
            ("resource", Text),
            ("decision", Text),
            ("reason", Text),
            ("policies", Text),
            ("errors", Text),
            ("policy_version", Int),
            ("reporter", Text),
            ("received_at", Int),
        ],
        identity: true,
    },
    Table {
        name: "probe_runs",
        columns: &[
            ("id", Int),
            ("recorded_at", Int),
            ("recorded_by", Text),
            ("report", Text),
        ],
        identity: true,
    },
    Table {
        name: "audit_events",
        columns: &[
            ("seq", Int),
            ("at", Int),
            ("actor", Text),
            ("action", Text),
            ("target", Text),
            ("outcome", Text),
            ("detail", Text),
            ("hash", Bytes),
        ],
        identity: false,
    },
];

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// The SQLite file copied.
    pub source: String,
    /// The target as `user@host:port/database` (never the password).
    pub target: String,
    /// The schema version of the source.
    pub schema_version: i64,
    /// Rows copied per table, in copy order; each equals the source's and the target's count.
    pub tables: Vec<TableCopied>,
    /// The highest revocation sequence number ever assigned; the target's next is one more.
    pub revocation_seq: i64,
    /// Tables left out on purpose ([`SKIPPED_TABLES`]).
    pub skipped: Vec<&'static str>,
}

impl CopyReport {
    /// Rows copied into `table`, when the copy handles it.
    pub fn rows(&self, table: &str) -> Option<u64> {
        self.tables.iter().find(|t| t.table == table).map(|t| t.rows)
    }

    /// Rows copied in all.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// Rows copied into one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCopied {
    /// The table.
    pub table: &'static str,
    /// Its rows (the same in source and target).
    pub rows: u64,
}

/// Why a copy failed. Nothing was committed to the target, and the source is
/// unchanged. Messages name the target as `user@host:port/database` and
/// never carry its password.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The SQLite file is missing.
    #[error("no SQLite store at `{path}`")]
    SourceMissing {
        /// The path given.
        path: String,
    },
    /// The file is not a Castellan store.
    #[error("`{path}` is not a castellan store: {reason}")]
    NotAStore {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store predates this binary's schema.
    #[error(
        "`{path}` is at schema version {found}, older than this binary's {supported}: start this version's \
         `castellan serve` on the data dir once (it upgrades the store), stop it, then copy"
    )]
    SourceSchemaTooOld {
        /// The path given.
        path: String,
        /// Its schema version.
        found: i64,
        /// This binary's.
        supported: i64,
    },
    /// The store was written by a newer binary.
    #[error(
        "`{path}` is at schema version {found}, newer than this binary's {supported}: copy with the castellan \
         version that wrote it"
    )]
    SourceSchemaTooNew {
        /// The path given.
        path: String,
        /// Its schema version.
        found: i64,
        /// This binary's.
        supported: i64,
    },
    /// Another process has the store open.
    #[error(
        "`{path}` is in use by another process (is the authority still running on this data dir?): stop it, \
         then copy"
    )]
    SourceInUse {
        /// The path given.
        path: String,
    },
    /// Reading the store failed.
    #[error("reading `{path}`: {reason}")]
    Source {
        /// The path given.
        path: String,
        /// Why.
        reason: String,
    },
    /// The target database could not be reached or prepared.
    #[error("target database `{target}`: {reason}")]
    TargetConnect {
        /// `user@host:port/database`.
        target: String,
        /// Why (without the password).
        reason: String,
    },
    /// The target already holds data.
    #[error(
        "target database `{target}` is not empty (rows in {tables}): the copy only fills a fresh database, it \
         never merges into a live one"
    )]
    TargetNotEmpty {
        /// `user@host:port/database`.
        target: String,
        /// The tables that hold rows, comma separated.
        tables: String,
    },
    /// Another session kept the target's tables locked.
    #[error(
        "target database `{target}` is in use: its tables stayed locked for {TARGET_LOCK_TIMEOUT} (stop every \
         authority node using it)"
    )]
    TargetBusy {
        /// `user@host:port/database`.
        target: String,
    },
    /// Writing one table failed.
    #[error("copying `{table}` to `{target}`: {reason}; nothing was committed")]
    Copy {
        /// The table.
        table: &'static str,
        /// `user@host:port/database`.
        target: String,
        /// Why (without the password).
        reason: String,
    },
    /// The target failed outside any one table.
    #[error("target database `{target}`: {reason}; nothing was committed")]
    Target {
        /// `user@host:port/database`.
        target: String,
        /// Why (without the password).
        reason: String,
    },
    /// A table's row count differs after the copy.
    #[error(
        "`{table}` holds {found} rows in the target after the copy, {expected} in the source; nothing was committed"
    )]
    CountMismatch {
        /// The table.
        table: &'static str,
        /// Rows in the source.
        expected: u64,
        /// Rows in the target.
        found: u64,
    },
}

/// Copies the Castellan SQLite store `sqlite_db` into the empty PostgreSQL
/// database `pg_url`, all or nothing (see the module docs for the rules).
///
/// `progress` hears each table's name and rows copied so far: every
/// 50,000 rows of a big table, and once with the total when a table is done
/// (so at least once per table, in copy order).
pub async fn sqlite_to_postgres(
    sqlite_db: &Path,
    pg_url: &str,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<CopyReport, CopyError> {
    let redact = Redactor::for_url(pg_url);
    let path = sqlite_db.display().to_string();
    if !sqlite_db.is_file() {
        return Err(CopyError::SourceMissing { path });
    }
    let src = Source { path: path.clone() };
    let mut conn = src.open(sqlite_db).await?;
    let outcome = copy_locked(&src, &mut conn, pg_url, &redact, progress).await;
    // Best effort: closing only ends the read, nothing was written.
    let _ = conn.close().await;
    outcome
}

/// Names the source in errors.
struct Source {
    path: String,
}

impl Source {
    /// A connection in exclusive locking mode: its first transaction keeps
    /// every other connection out until it closes.
    async fn open(&self, file: &Path) -> Result<SqliteConnection, CopyError> {
        let options = SqliteConnectOptions::new()
            .filename(file)
            .create_if_missing(false)
            .locking_mode(SqliteLockingMode::Exclusive)
            .busy_timeout(SOURCE_BUSY_TIMEOUT);
        options.connect().await.map_err(|e| self.error(e))
    }

    fn error(&self, e: sqlx::Error) -> CopyError {
        let path = self.path.clone();
        let code = e
            .as_database_error()
            .and_then(|d| d.code())
            .and_then(|c| c.parse::<i64>().ok());
        match code.map(|c| c & 0xff) {
            // SQLITE_BUSY, SQLITE_LOCKED (extended codes keep the primary in the low byte)
            Some(5 | 6) => CopyError::SourceInUse { path },
            // SQLITE_NOTADB
            Some(26) => CopyError::NotAStore {
                path,
                reason: "not an SQLite database".to_owned(),
            },
            _ => CopyError::Source {
                path,
                reason: e.to_string(),
            },
        }
    }
}

/// What the copy needs to know of the source before it starts.
struct Snapshot {
    schema_version: i64,
    /// Rows per table of [`TABLES`], in order.
    counts: Vec<u64>,
    revocation_seq: i64,
    /// The highest audit sequence number ever assigned.
    audit_seq: i64,
    /// Highest id ever assigned per identity table.
    last_ids: Vec<(&'static str, i64)>,
}

async fn copy_locked(
    src: &Source,
    conn: &mut SqliteConnection,
    pg_url: &str,
    redact: &Redactor,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<CopyReport, CopyError> {
    let mut read = conn.begin_with("BEGIN EXCLUSIVE").await.map_err(|e| src.error(e))?;
    let snapshot = snapshot(src, &mut read).await?;
    let target = redact.target(pg_url);
    let target_err = |e: &dyn Display| CopyError::Target {
        target: target.clone(),
        reason: redact.clean(e),
    };

    // One attempt first: the pool below retries an unreachable server for long.
    let connect_err = |reason: &dyn Display| CopyError::TargetConnect {
        target: target.clone(),
        reason: redact.clean(reason),
    };
    let mut pg = match tokio::time::timeout(TARGET_CONNECT_TIMEOUT, connect_target(pg_url)).await {
        Ok(Ok(pg)) => pg,
        Ok(Err(e)) => return Err(connect_err(&e)),
        Err(_) => return Err(connect_err(&format!("no answer within {TARGET_CONNECT_TIMEOUT:?}"))),
    };
    // Brings the target's schema up to date (and refuses a newer one).
    let options = PgOptions {
        max_connections: 1,
        ..PgOptions::default()
    };
    drop(
        PostgresStore::connect(pg_url, options)
            .await
            .map_err(|e| connect_err(&e))?,
    );

    let mut write = pg.begin().await.map_err(|e| target_err(&e))?;
    sqlx::raw_sql(&format!(
        "SET LOCAL lock_timeout = '{TARGET_LOCK_TIMEOUT}'; SET LOCAL statement_timeout = '{TARGET_STATEMENT_TIMEOUT}'"
    ))
    .execute(&mut *write)
    .await
    .map_err(|e| target_err(&e))?;
    // Writers wait (a node starting meanwhile finds the copied store); readers do not.
    let names: Vec<String> = TABLES.iter().map(|t| quoted(t.name)).collect();
    let lock = format!("LOCK TABLE counters, {} IN EXCLUSIVE MODE", names.join(", "));
    if let Err(e) = sqlx::query(&lock).execute(&mut *write).await {
        return Err(if sqlstate(&e).as_deref() == Some("55P03") {
            CopyError::TargetBusy { target }
        } else {
            target_err(&e)
        });
    }
    let occupied = occupied_tables(&mut write).await.map_err(|e| target_err(&e))?;
    if !occupied.is_empty() {
        return Err(CopyError::TargetNotEmpty {
            target,
            tables: occupied.join(", "),
        });
    }

    let mut tables = Vec::with_capacity(TABLES.len());
    for (table, &expected) in TABLES.iter().zip(&snapshot.counts) {
        let rows = copy_table(src, &mut read, &mut write, table, expected, progress)
            .await
            .map_err(|e| match e {
                Failure::Source(e) => e,
                Failure::Target(e) => CopyError::Copy {
                    table: table.name,
                    target: target.clone(),
                    reason: redact.clean(&e),
                },
            })?;
        if rows != expected {
            return Err(CopyError::CountMismatch {
                table: table.name,
                expected,
                found: rows,
            });
        }
        tables.push(TableCopied {
            table: table.name,
            rows,
        });
    }

    continue_numbering(&mut write, &snapshot)
        .await
        .map_err(|e| target_err(&e))?;
    for (table, &expected) in TABLES.iter().zip(&snapshot.counts) {
        let found: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quoted(table.name)))
            .fetch_one(&mut *write)
            .await
            .map_err(|e| target_err(&e))?;
        let found = u64::try_from(found).unwrap_or(0);
        if found != expected {
            return Err(CopyError::CountMismatch {
                table: table.name,
                expected,
                found,
            });
        }
    }
    write.commit().await.map_err(|e| target_err(&e))?;
    // Best effort: the copy is committed; closing only says goodbye.
    let _ = pg.close().await;
    // Nothing was written to the source.
    let _ = read.rollback().await;
    Ok(CopyReport {
        source: src.path.clone(),
        target,
        schema_version: snapshot.schema_version,
        tables,
        revocation_seq: snapshot.revocation_seq,
        skipped: SKIPPED_TABLES.to_vec(),
    })
}

async fn connect_target(pg_url: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnectOptions::from_str(pg_url)?
        .application_name("castellan-migrate")
        .connect()
        .await
}

/// Checks the schema version and reads the counts and counters.
async fn snapshot(src: &Source, conn: &mut SqliteConnection) -> Result<Snapshot, CopyError> {
    let path = || src.path.clone();
    let has_schema: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'castellan_schema'")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| src.error(e))?;
    if has_schema == 0 {
        return Err(CopyError::NotAStore {
            path: path(),
            reason: "it has no schema version table".to_owned(),
        });
    }
    let found: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM castellan_schema")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| src.error(e))?;
    let supported = i64::try_from(migrations::SQLITE.len()).unwrap_or(i64::MAX);
    if found < supported {
        return Err(CopyError::SourceSchemaTooOld {
            path: path(),
            found,
            supported,
        });
    }
    if found > supported {
        return Err(CopyError::SourceSchemaTooNew {
            path: path(),
            found,
            supported,
        });
    }
    let mut counts = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quoted(table.name)))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| src.error(e))?;
        counts.push(u64::try_from(n).unwrap_or(0));
    }
    // `sqlite_sequence` remembers the highest id ever handed out, even when
    // the rows are gone; MAX() covers a row inserted with an explicit id.
    let last_assigned = |table: &'static str, column: &'static str| {
        format!(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0), \
             COALESCE((SELECT MAX({column}) FROM {table}), 0))"
        )
    };
    let revocation_seq: i64 = sqlx::query_scalar(&last_assigned("revocations", "seq"))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| src.error(e))?;
    let audit_seq: i64 = sqlx::query_scalar(&last_assigned("audit_events", "seq"))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| src.error(e))?;
    let mut last_ids = Vec::new();
    for table in TABLES.iter().filter(|t| t.identity) {
        let id: i64 = sqlx::query_scalar(&last_assigned(table.name, "id"))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| src.error(e))?;
        last_ids.push((table.name, id));
    }
    Ok(Snapshot {
        schema_version: found,
        counts,
        revocation_seq,
        audit_seq,
        last_ids,
    })
}

/// The copied tables holding rows, and `counters` when a counter moved.
async fn occupied_tables(pg: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    let mut occupied = Vec::new();
    for table in TABLES {
        let any: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {})", quoted(table.name)))
            .fetch_one(&mut *pg)
            .await?;
        if any {
            occupied.push(table.name.to_owned());
        }
    }
    // A fresh database holds one counter: `revocation_seq` at 0.
    let moved: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM counters WHERE name <> 'revocation_seq' OR value <> 0)")
            .fetch_one(&mut *pg)
            .await?;
    if moved {
        occupied.push("counters".to_owned());
    }
    Ok(occupied)
}

/// Sets the counters and identity sequences so numbering continues where SQLite's stopped.
async fn continue_numbering(pg: &mut PgConnection, snapshot: &Snapshot) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO counters (name, value) VALUES ('revocation_seq', $1) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(snapshot.revocation_seq)
    .execute(&mut *pg)
    .await?;
    sqlx::query(
        "INSERT INTO counters (name, value) \
         SELECT 'policy_version:' || service, MAX(version) FROM policy_versions GROUP BY service",
    )
    .execute(&mut *pg)
    .await?;
    if snapshot.audit_seq > 0 {
        sqlx::query("INSERT INTO counters (name, value) VALUES ('audit_seq', $1)")
            .bind(snapshot.audit_seq)
            .execute(&mut *pg)
            .await?;
    }
    for &(table, last) in &snapshot.last_ids {
        // The sequence starts at 1 by itself; `setval` refuses 0.
        if last > 0 {
            sqlx::query("SELECT setval(pg_get_serial_sequence($1, 'id'), $2)")
                .bind(table)
                .bind(last)
                .execute(&mut *pg)
                .await?;
        }
    }
    Ok(())
}

/// A failure while copying a table: reading the source, or writing the target.
enum Failure {
    Source(CopyError),
    Target(sqlx::Error),
}

/// One value on its way.
#[derive(Debug)]
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bytes(Option<Vec<u8>>),
    Flag(Option<bool>),
}

impl Cell {
    fn read(row: &SqliteRow, index: usize, kind: Kind) -> Result<Self, sqlx::Error> {
        Ok(match kind {
            Text => Self::Text(row.try_get(index)?),
            Int => Self::Int(row.try_get(index)?),
            Bytes => Self::Bytes(row.try_get(index)?),
            Flag => Self::Flag(row.try_get::<Option<i64>, _>(index)?.map(|v| v != 0)),
        })
    }

    /// Bytes of payload, for sizing an `INSERT`.
    fn weight(&self) -> usize {
        match self {
            Self::Text(v) => v.as_ref().map_or(0, String::len),
            Self::Bytes(v) => v.as_ref().map_or(0, Vec::len),
            Self::Int(_) | Self::Flag(_) => 8,
        }
    }
}

/// Copies one table page by page (by rowid, within the source's snapshot);
/// returns the rows copied.
async fn copy_table(
    src: &Source,
    read: &mut SqliteConnection,
    write: &mut PgConnection,
    table: &Table,
    total: u64,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<u64, Failure> {
    let columns: Vec<String> = table.columns.iter().map(|(c, _)| quoted(c)).collect();
    let columns = columns.join(", ");
    let select = format!(
        "SELECT rowid, {columns} FROM {} WHERE rowid > ? ORDER BY rowid LIMIT {PAGE_ROWS}",
        quoted(table.name)
    );
    let insert = format!(
        "INSERT INTO {} ({columns}) {}",
        quoted(table.name),
        if table.identity { "OVERRIDING SYSTEM VALUE " } else { "" }
    );
    let rows_per_insert = (MAX_PARAMS / table.columns.len().max(1)).max(1);
    let mut after = i64::MIN;
    let mut copied = 0u64;
    loop {
        let page = sqlx::query(&select)
            .bind(after)
            .fetch_all(&mut *read)
            .await
            .map_err(|e| Failure::Source(src.error(e)))?;
        let Some(last) = page.last() else { break };
        after = last.try_get(0).map_err(|e| Failure::Source(src.error(e)))?;
        let mut batch: Vec<Vec<Cell>> = Vec::new();
        let mut bytes = 0;
        for row in &page {
            let mut cells = Vec::with_capacity(table.columns.len());
            for (i, &(column, kind)) in table.columns.iter().enumerate() {
                let cell = Cell::read(row, i + 1, kind).map_err(|e| {
                    Failure::Source(CopyError::Source {
                        path: src.path.clone(),
                        reason: format!("`{}`.`{column}`: {e}", table.name),
                    })
                })?;
                bytes += cell.weight();
                cells.push(cell);
            }
            batch.push(cells);
            if bytes >= INSERT_BYTES || batch.len() >= rows_per_insert {
                insert_rows(write, &insert, &batch).await.map_err(Failure::Target)?;
                batch.clear();
                bytes = 0;
            }
        }
        insert_rows(write, &insert, &batch).await.map_err(Failure::Target)?;
        let before = copied;
        copied += u64::try_from(page.len()).unwrap_or(u64::MAX);
        if copied < total && copied / PROGRESS_EVERY > before / PROGRESS_EVERY {
            progress(table.name, copied);
        }
    }
    progress(table.name, copied);
    Ok(copied)
}

/// One multi-row `INSERT`.
async fn insert_rows(pg: &mut PgConnection, insert: &str, rows: &[Vec<Cell>]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut query = QueryBuilder::<Postgres>::new(insert);
    query.push_values(rows, |mut values, row| {
        for cell in row {
            match cell {
                Cell::Text(v) => values.push_bind(v.clone()),
                Cell::Int(v) => values.push_bind(*v),
                Cell::Bytes(v) => values.push_bind(v.clone()),
                Cell::Flag(v) => values.push_bind(*v),
            };
        }
    });
    query.build().execute(pg).await?;
    Ok(())
}

/// `"name"`: identifiers are quoted (`key`, `value`, `time`, `schema` ... are column names).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
}

/// Keeps a database URL's password out of messages.
#[derive(Debug)]
struct Redactor {
    /// The password as written (percent-encoded) and decoded, from the user
    /// info and from `password=` query parameters.
    secrets: Vec<String>,
}

impl Redactor {
    fn for_url(url: &str) -> Self {
        let mut raw = Vec::new();
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = (rest.get(..end).unwrap_or(rest), rest.get(end..).unwrap_or(""));
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                raw.push(password.to_owned());
            }
        }
        if let Some((_, query)) = tail.split_once('?') {
            let query = query.split('#').next().unwrap_or("");
            for pair in query.split('&') {
                if let Some((key, value)) = pair.split_once('=') {
                    if key.to_ascii_lowercase().contains("password") {
                        raw.push(value.to_owned());
                    }
                }
            }
        }
        let mut secrets = Vec::new();
        for secret in raw {
            for s in [
                percent_decode(&secret),
                percent_decode(&secret.replace('+', " ")),
                secret,
            ] {
                if !s.is_empty() && !secrets.contains(&s) {
                    secrets.push(s);
                }
            }
        }
        // Longest first, so a password containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    /// `text` with every form of the password replaced by `***`.
    fn clean(&self, text: &dyn Display) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }

    /// `user@host:port/database` of `url`.
    fn target(&self, url: &str) -> String {
        match PgConnectOptions::from_str(url) {
            Ok(o) => self.clean(&format!(
                "{}@{}:{}/{}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or_default()
            )),
            Err(_) => "<unusable postgres url>".to_owned(),
        }
    }
}

/// `%XX` decoded; invalid escapes are kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use std::collections::BTreeMap;

    /// `table -> column -> declared type` of a schema.
    type Columns = BTreeMap<String, BTreeMap<String, String>>;

    fn expected(kind_name: fn(Kind) -> &'static str) -> Columns {
        TABLES
            .iter()
            .map(|t| {
                let columns = t.columns.iter().map(|&(c, k)| (c.to_owned(), kind_name(k).to_owned()));
                (t.name.to_owned(), columns.collect())
            })
            .collect()
    }

    /// Fails when the SQLite schema grows a table (or column) the copy does
    /// not handle: add it to `TABLES`, or to `SKIPPED_TABLES` with a reason.
    #[tokio::test]
    async fn every_sqlite_table_and_column_is_copied_or_skipped_on_purpose() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("castellan.db");
        let store = SqliteStore::open(&file).await.unwrap();
        let mut conn = SqliteConnectOptions::new().filename(&file).connect().await.unwrap();
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let mut found = Columns::new();
        for name in names {
            if SKIPPED_TABLES.contains(&name.as_str()) {
                continue;
            }
            let rows = sqlx::query(&format!("PRAGMA table_info({})", quoted(&name)))
                .fetch_all(&mut conn)
                .await
                .unwrap();
            let columns = rows
                .iter()
                .map(|r| (r.get::<String, _>("name"), r.get::<String, _>("type")))
                .collect();
            found.insert(name, columns);
        }
        let sqlite_type = |k| match k {
            Text => "TEXT",
            Int | Flag => "INTEGER",
            Bytes => "BLOB",
        };
        assert_eq!(found, expected(sqlite_type));
        for skipped in SKIPPED_TABLES {
            assert!(!copied_tables().contains(skipped), "{skipped}");
        }
        conn.close().await.unwrap();
        drop(store);
    }

    /// And the copy fills every PostgreSQL table but the counters (set from
    /// SQLite's sequences) and the leases, with the types it binds.
    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn every_postgres_table_and_column_is_filled() {
        let Some((url, db)) =
            crate::testing::fresh_postgres_database("copy::every_postgres_table_and_column_is_filled").await
        else {
            return;
        };
        drop(PostgresStore::connect(&url, PgOptions::default()).await.unwrap());
        let mut conn = connect_target(&url).await.unwrap();
        let rows = sqlx::query(
            "SELECT table_name::TEXT AS t, column_name::TEXT AS c, data_type::TEXT AS d \
             FROM information_schema.columns WHERE table_schema = 'public' \
             AND table_name NOT IN ('counters', 'leases', 'verifier_heartbeats', '_sqlx_migrations')",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut found = Columns::new();
        for r in &rows {
            found.entry(r.get("t")).or_default().insert(r.get("c"), r.get("d"));
        }
        let pg_type = |k| match k {
            Text => "text",
            Int => "bigint",
            Bytes => "bytea",
            Flag => "boolean",
        };
        assert_eq!(found, expected(pg_type));
        conn.close().await.unwrap();
        db.drop_database().await.unwrap();
    }

    #[test]
    fn every_form_of_the_password_is_redacted() {
        let r = Redactor::for_url("postgres://castellan:p%40ss%2Fw0rd@db.internal:6432/auth?sslmode=require");
        let shown = r.clean(&"failed for p@ss/w0rd and p%40ss%2Fw0rd");
        assert_eq!(shown, "failed for *** and ***");
        assert_eq!(
            r.target("postgres://castellan:p%40ss%2Fw0rd@db.internal:6432/auth"),
            "castellan@db.internal:6432/auth"
        );
        let q = Redactor::for_url("postgresql:///auth?host=/run/pg&user=me&password=hunter2-long");
        assert_eq!(q.clean(&"x hunter2-long y"), "x *** y");
        let none = Redactor::for_url("postgres://me@localhost/auth");
        assert!(none.secrets.is_empty());
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
