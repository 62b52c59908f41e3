//! `castellan store ...`: work on a store file directly, with the authority stopped.

use anyhow::bail;
use castellan_authority::secrets::MasterKey;
use castellan_authority::BOOTSTRAP_FILE;
use castellan_store::copy::{sqlite_to_postgres, CopyReport};
use castellan_store::{PgOptions, PostgresStore, Store};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The SQLite store in a data dir (as `castellan serve` names it).
const STORE_FILE: &str = "castellan.db";
/// The master key a single node generated into its data dir (see `secrets.rs`).
const MASTER_KEY_FILE: &str = "master.key";

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy a single-node install's SQLite store into an empty PostgreSQL
    /// database, to run the authority as a cluster.
    #[command(long_about = MIGRATE_ABOUT)]
    MigrateSqliteToPostgres(MigrateArgs),
}

const MIGRATE_ABOUT: &str = "\
Copy a single-node install's SQLite store into an empty PostgreSQL database, to run the authority as a cluster.

Every table moves, all or nothing, in one PostgreSQL transaction: clients, users, signing keys (still sealed \
under the same master key), sessions, codes, refresh tokens, revocations (numbering continues), CAs, workloads, \
join tokens, policy versions, decisions and probe runs. Row counts are checked before the commit. Leases (state \
of running nodes) are not copied. The SQLite store is left as it was.

STOP THE AUTHORITY FIRST. The copy holds SQLite's exclusive lock on DATA_DIR/castellan.db while it runs: it \
refuses at once when another process has the store open (a running authority keeps it open), and nothing can \
write to the store meanwhile. Keep the single node stopped afterwards: what it would write lands in SQLite only.

The target must be an empty database (`createdb castellan`); the copy creates the schema. A database holding \
any data is refused: the copy never merges into a live cluster.

The store's schema must be this version's: after an upgrade, start this version's `castellan serve` on the \
data dir once (it upgrades the store), stop it, then copy.

Afterwards every node needs CASTELLAN_MASTER_KEY (the contents of DATA_DIR/master.key), the same --issuer as \
before, and CASTELLAN_BOOTSTRAP_ADMIN_ID/SECRET; the command prints these steps.";

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The single node's data dir (holds castellan.db and master.key).
    #[arg(long = "from", value_name = "DATA_DIR", env = "CASTELLAN_DATA_DIR")]
    pub from: PathBuf,
    /// The empty PostgreSQL database (`postgres://user:password@host:5432/castellan`).
    #[arg(long = "to", value_name = "URL", env = "CASTELLAN_DATABASE", hide_env_values = true)]
    pub to: String,
    /// Print the copy report as JSON on stdout (the next steps go to stderr).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: StoreCommand) -> anyhow::Result<()> {
    match cmd {
        StoreCommand::MigrateSqliteToPostgres(args) => migrate(args).await,
    }
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let db = args.from.join(STORE_FILE);
    if !db.is_file() {
        bail!(
            "no store at `{}`: --from must be the data dir of a single-node authority (it holds {STORE_FILE})",
            db.display()
        );
    }
    // Never echo the URL: it may carry a password.
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        bail!("--to must be a postgres:// or postgresql:// URL");
    }
    let started = Instant::now();
    eprintln!("copying {} (locked until the copy ends); rows per table:", db.display());
    let report = sqlite_to_postgres(&db, &args.to, &mut |table, rows| {
        eprintln!("  {table:<18} {rows:>10}");
    })
    .await?;
    let secs = started.elapsed().as_secs_f64();
    let steps = next_steps(&args.from, &args.to).await;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        eprintln!("{steps}");
    } else {
        out!("{}", summary(&report, secs));
        out!("{steps}");
    }
    Ok(())
}

fn summary(report: &CopyReport, secs: f64) -> String {
    let mut text = format!(
        "copied {} rows from {} to {} in {secs:.1}s (schema version {}; row counts verified)\n",
        report.total_rows(),
        report.source,
        report.target,
        report.schema_version
    );
    for t in &report.tables {
        text.push_str(&format!("  {:<18} {:>10}\n", t.table, t.rows));
    }
    // The SQLite bookkeeping tables are read, not copied; name what was left out.
    let skipped: Vec<&str> = report
        .skipped
        .iter()
        .copied()
        .filter(|t| !matches!(*t, "castellan_schema" | "sqlite_sequence"))
        .collect();
    text.push_str(&format!(
        "not copied: {} (state of the nodes running now)\nrevocation numbering continues after {}",
        skipped.join(", "),
        report.revocation_seq
    ));
    text
}

/// What the cluster's nodes need, read back from the copied store.
async fn next_steps(data_dir: &Path, url: &str) -> String {
    let (check, admin) = match PostgresStore::connect(url, PgOptions::default()).await {
        Ok(store) => (
            store.get_meta("master_key_check").await.ok().flatten(),
            store.get_meta("bootstrap_admin").await.ok().flatten(),
        ),
        Err(_) => (None, None),
    };
    let key_file = data_dir.join(MASTER_KEY_FILE);
    let check = check.as_deref();
    let file = std::fs::read_to_string(&key_file).ok().map(|t| key_check(&t, check));
    let env = std::env::var("CASTELLAN_MASTER_KEY").ok().map(|t| key_check(&t, check));
    let master = match (file, env) {
        (Some(KeyCheck::Matches | KeyCheck::Unchecked), _) => format!(
            "CASTELLAN_MASTER_KEY: the contents of `{}` (base64, one line). The signing and CA keys were copied \
             sealed under it; every node uses the same value. Keep it secret.",
            key_file.display()
        ),
        (_, Some(KeyCheck::Matches)) => "CASTELLAN_MASTER_KEY: the value this shell has (it matches the store). The \
                                         signing and CA keys were copied sealed under it; every node uses the same \
                                         value."
            .to_owned(),
        (Some(found), _) => format!(
            "CASTELLAN_MASTER_KEY: the master key the single node ran with. WARNING: `{}` {} (did the node run with \
             CASTELLAN_MASTER_KEY set?); nodes refuse to start with a wrong key.",
            key_file.display(),
            if found == KeyCheck::Invalid {
                "is not a master key (32 bytes, base64)"
            } else {
                "does NOT match the key this store was created with"
            }
        ),
        (None, _) => format!(
            "CASTELLAN_MASTER_KEY: the master key the single node ran with (there is no `{}`, so it came from \
             CASTELLAN_MASTER_KEY); nodes refuse to start with a wrong key.",
            key_file.display()
        ),
    };
    let creds = data_dir.join(BOOTSTRAP_FILE);
    let admin = match admin {
        Some(id) => {
            let file = if creds.is_file() {
                format!(" (credentials in `{}`)", creds.display())
            } else {
                String::new()
            };
            format!(
                "CASTELLAN_BOOTSTRAP_ADMIN_ID and CASTELLAN_BOOTSTRAP_ADMIN_SECRET: a shared database requires them, \
                 but this store already has its admin client `{id}`{file}, so none is created from them: the \
                 existing admin credentials keep working."
            )
        }
        None => "CASTELLAN_BOOTSTRAP_ADMIN_ID and CASTELLAN_BOOTSTRAP_ADMIN_SECRET: a shared database requires \
                 them; the first node creates that admin."
            .to_owned(),
    };
    let issuer = "--issuer: the same issuer as before, as tokens already issued carry it (without --issuer the \
                  single node used http:// + its listen address).";
    let mut text = "\nnext steps: keep the single node stopped, and start every node of the cluster with\n  \
                    castellan serve --database URL --issuer ISSUER --data-dir DIR\nwith:\n"
        .to_owned();
    for step in [master.as_str(), issuer, admin.as_str()] {
        text.push_str(&wrap(step, "  - ", "    "));
    }
    text
}

/// What a candidate master key is to the copied store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyCheck {
    /// It is the key the store was created with.
    Matches,
    /// It is another key.
    Differs,
    /// It is no master key at all.
    Invalid,
    /// The store holds no check value to compare with.
    Unchecked,
}

/// Compares a base64 master key with the store's `master_key_check`, never revealing it.
fn key_check(text: &str, stored: Option<&str>) -> KeyCheck {
    match (MasterKey::from_base64(text), stored) {
        (Err(_), _) => KeyCheck::Invalid,
        (Ok(_), None) => KeyCheck::Unchecked,
        (Ok(key), Some(check)) if key.check_value() == check => KeyCheck::Matches,
        (Ok(_), Some(_)) => KeyCheck::Differs,
    }
}

/// `text` wrapped at spaces into lines of at most 100 characters (longer words stay whole).
fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_owned();
    let mut fresh = true;
    for word in text.split(' ') {
        if !fresh && line.len() + 1 + word.len() > 100 {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_owned();
            fresh = true;
        }
        if !fresh {
            line.push(' ');
        }
        line.push_str(word);
        fresh = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}
