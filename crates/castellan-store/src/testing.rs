//! Throwaway PostgreSQL databases for tests (cargo feature `testing`).
//!
//! The server is named by `CASTELLAN_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), as a role that may create
//! databases. Each call creates `castellan_test_<random hex>` and hands back
//! its URL with a guard that drops it (`WITH (FORCE)`) again.
//!
//! Without a server a test is skipped loudly on a developer machine, but
//! fails when `CI` is set: CI must never skip the PostgreSQL tests.

use crate::StoreResult;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The environment variable naming the test server.
pub const SERVER_ENV: &str = "CASTELLAN_TEST_POSTGRES";
/// The test server when [`SERVER_ENV`] is unset.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long reaching the server may take before it counts as absent.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server URL tests use.
pub fn server_url() -> String {
    std::env::var(SERVER_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned())
}

/// `url` with any password replaced, for messages.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() && u.set_password(Some("redacted")).is_err() {
                return "<url>".to_owned();
            }
            u.to_string()
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}

/// Creates a fresh, empty database for `test` (named in messages) and
/// returns its URL and the guard that drops it.
///
/// `None` when no server answers and `CI` is unset, after printing
/// `SKIPPED: <test>: no PostgreSQL at <url> ...` to stderr; the caller
/// returns. Panics when `CI` is set and no server answers, or when the
/// server answers but cannot create the database.
#[expect(
    clippy::panic,
    reason = "a test helper: a broken test server fails the test, and CI never skips"
)]
pub async fn fresh_postgres_database(test: &str) -> Option<(String, DropGuard)> {
    let server = server_url();
    let shown = redacted(&server);
    let mut admin = match connect(&server).await {
        Ok(conn) => conn,
        Err(reason) => {
            if std::env::var_os("CI").is_some() {
                panic!("{test}: no PostgreSQL at {shown} ({reason}); CI must not skip (set {SERVER_ENV})");
            }
            eprintln!("SKIPPED: {test}: no PostgreSQL at {shown} (set {SERVER_ENV})");
            eprintln!("         reason: {reason}");
            return None;
        }
    };
    let name = format!("castellan_test_{}", random_hex());
    if let Err(e) = sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
    {
        panic!("{test}: cannot create a database on {shown}: {e}");
    }
    // Best effort: the database exists and the guard will drop it.
    let _ = admin.close().await;
    let url = match with_database(&server, &name) {
        Ok(url) => url,
        Err(reason) => panic!("{test}: {SERVER_ENV} is not a usable URL: {reason}"),
    };
    Some((
        url,
        DropGuard {
            server,
            name,
            dropped: false,
        },
    ))
}

/// Drops its database when dropped (or by [`DropGuard::drop_database`]),
/// ending any connections still open to it.
pub struct DropGuard {
    server: String,
    name: String,
    dropped: bool,
}

impl fmt::Debug for DropGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropGuard")
            .field("database", &self.name)
            .finish_non_exhaustive()
    }
}

impl DropGuard {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now.
    pub async fn drop_database(mut self) -> StoreResult<()> {
        self.dropped = true;
        drop_database(&self.server, &self.name).await
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop cannot await, and may run inside a runtime: use a thread with one of its own.
        let (server, name) = (self.server.clone(), self.name.clone());
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match runtime {
                Ok(rt) => rt.block_on(drop_database(&server, &name)).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: test database {} was not dropped: {e}", self.name),
            Err(_) => eprintln!("warning: test database {} was not dropped", self.name),
        }
    }
}

async fn drop_database(server: &str, name: &str) -> StoreResult<()> {
    let mut admin = PgConnectOptions::from_str(server)?.connect().await?;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}

async fn connect(server: &str) -> Result<PgConnection, String> {
    let options = PgConnectOptions::from_str(server).map_err(|e| e.to_string())?;
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

/// `server` pointing at database `name` instead.
fn with_database(server: &str, name: &str) -> Result<String, String> {
    let mut url = url::Url::parse(server).map_err(|e| e.to_string())?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// 64 random bits as hex: a database name no other test run picks.
fn random_hex() -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}
