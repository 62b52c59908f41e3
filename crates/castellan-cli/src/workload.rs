//! `castellan workload ...`: register workloads (admin), and fetch an SVID
//! with a join token (no admin credentials). The workload's private key is
//! made here, written only to `svid_key.pem` (0600), and never printed.

use crate::admin::{print, s, time, url_encode, Admin};
use crate::cli::Conn;
use anyhow::{anyhow, bail, Context};
use castellan_ca::{certs_from_pem, generate_workload_key_unnamed, parse_svid_peer, SpiffeId, TrustDomain};
use castellan_core::clock::rfc3339;
use castellan_core::{format_duration, parse_duration, Clock as _, SystemClock};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The files `workload svid` writes into `--out` (the names the gate and
/// the agent read).
pub(crate) use castellan_workload::{BUNDLE_FILE, KEY_FILE, SVID_FILE};

#[derive(Debug, Subcommand)]
pub enum WorkloadCommand {
    /// Register a workload's SPIFFE ID and print a single-use join token
    /// (a fresh one when the ID is already registered).
    Register {
        /// The SPIFFE ID, inside the authority's trust domain (`spiffe://TD/path`).
        spiffe_id: String,
        /// Lifetime of the join token (`10m`, `1h`; default: the authority's `ca.join_token_ttl`).
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// Lifetime of the SVIDs issued to this workload (default: the authority's `ca.svid_ttl`).
        #[arg(long, value_name = "DURATION")]
        svid_ttl: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List registered workloads.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a workload: its unused join tokens stop working.
    Delete {
        /// The SPIFFE ID.
        spiffe_id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Exchange a join token for an SVID: makes a key here, sends only a CSR,
    /// and writes svid.pem, svid_key.pem (0600) and bundle.pem into `--out`.
    Svid(SvidArgs),
    /// Renew the SVID in `--out` once, over mTLS with that SVID (a new key,
    /// the same SPIFFE ID, a fresh bundle).
    Renew(RenewArgs),
    /// Keep the SVID in `--out` fresh: renew over mTLS at half-life (and
    /// retry with backoff), replacing the files atomically. With
    /// `--join-token`, fetch the first SVID when the directory has none.
    Agent(AgentArgs),
}

/// Where to renew: the authority and the SVID directory.
#[derive(Debug, Args)]
pub struct RenewArgs {
    /// Directory holding svid.pem, svid_key.pem and bundle.pem.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Authority URL (its discovery names the mTLS renewal endpoint).
    #[arg(long, env = "CASTELLAN_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The mTLS renewal endpoint, instead of discovering it.
    #[arg(long, env = "CASTELLAN_RENEWAL_ENDPOINT", value_name = "URL")]
    pub renewal_endpoint: Option<String>,
    /// Also trust this PEM CA certificate when the server is `https://`.
    #[arg(long, env = "CASTELLAN_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `castellan workload agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub renew: RenewArgs,
    /// Join token for the first SVID when `--out` holds none (or only an expired one).
    #[arg(long, env = "CASTELLAN_JOIN_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub join_token: Option<String>,
    /// Exit after this many renewals (for tests and cron-style use).
    #[arg(long, value_name = "N", hide = true)]
    pub max_renewals: Option<u64>,
}

/// `castellan workload svid`: no admin credentials, the join token is the credential.
#[derive(Debug, Args)]
pub struct SvidArgs {
    /// The single-use join token from `castellan workload register`.
    #[arg(long, env = "CASTELLAN_JOIN_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub join_token: String,
    /// Directory for svid.pem, svid_key.pem and bundle.pem (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Authority URL.
    #[arg(long, env = "CASTELLAN_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Also trust this PEM CA certificate when the server is `https://`.
    #[arg(long, env = "CASTELLAN_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: WorkloadCommand) -> anyhow::Result<()> {
    match cmd {
        WorkloadCommand::Register {
            spiffe_id,
            ttl,
            svid_ttl,
            conn,
        } => register(&spiffe_id, ttl, svid_ttl, &conn).await,
        WorkloadCommand::List { conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin.call(Method::GET, "/workloads", None).await?;
            print(admin.json, &v, |v| {
                out!("{:<64} {:>8} {:>11}", "SPIFFE_ID", "SVID_TTL", "CREATED");
                for w in v.get("workloads").and_then(Value::as_array).into_iter().flatten() {
                    out!(
                        "{:<64} {:>8} {:>11}",
                        s(w, "spiffe_id"),
                        secs_text(w, "svid_ttl"),
                        time(w, "created_at")
                    );
                }
            })
        }
        WorkloadCommand::Delete { spiffe_id, conn } => {
            let id = parse_id(&spiffe_id)?;
            let admin = Admin::connect(&conn).await?;
            admin
                .call(Method::DELETE, &format!("/workloads/{}", url_encode(id.as_str())), None)
                .await?;
            print(admin.json, &json!({ "deleted": id.as_str() }), |_| {
                out!(
                    "deleted workload `{id}`; its unused join tokens no longer work (SVIDs already issued stay valid until they expire)"
                );
            })
        }
        WorkloadCommand::Svid(args) => svid(args).await,
        WorkloadCommand::Renew(args) => {
            let outcome = crate::workload_agent::renew_once(&args).await?;
            crate::workload_agent::print_renewed(&args, &outcome)
        }
        WorkloadCommand::Agent(args) => crate::workload_agent::agent(args).await,
    }
}

fn parse_id(input: &str) -> anyhow::Result<SpiffeId> {
    Ok(SpiffeId::parse(input)?)
}

fn check_duration(flag: &str, value: Option<&String>) -> anyhow::Result<()> {
    if let Some(v) = value {
        parse_duration(v).with_context(|| flag.to_owned())?;
    }
    Ok(())
}

/// `castellan workload register`.
async fn register(spiffe_id: &str, ttl: Option<String>, svid_ttl: Option<String>, conn: &Conn) -> anyhow::Result<()> {
    let id = parse_id(spiffe_id)?;
    check_duration("--ttl", ttl.as_ref())?;
    check_duration("--svid-ttl", svid_ttl.as_ref())?;
    let mut body = serde_json::Map::new();
    body.insert("spiffe_id".to_owned(), json!(id.as_str()));
    if let Some(t) = &ttl {
        body.insert("join_token_ttl".to_owned(), json!(t));
    }
    if let Some(t) = &svid_ttl {
        body.insert("svid_ttl".to_owned(), json!(t));
    }
    let admin = Admin::connect(conn).await?;
    let v = admin
        .call(Method::POST, "/workloads", Some(Value::Object(body)))
        .await?;
    // An existing registration keeps its SVID lifetime; say so rather than ignore the flag silently.
    if let (Some(asked), Some(kept)) = (
        svid_ttl.as_deref().and_then(|t| parse_duration(t).ok()),
        v.get("svid_ttl").and_then(Value::as_u64),
    ) {
        if asked.as_secs() != kept {
            eprintln!(
                "warning: `{id}` was already registered with an svid ttl of {}; --svid-ttl was not applied (delete and register again to change it)",
                format_duration(Duration::from_secs(kept))
            );
        }
    }
    print(admin.json, &v, |v| {
        out!("spiffe id:   {}", s(v, "spiffe_id"));
        out!("svid ttl:    {}", secs_text(v, "svid_ttl"));
        out!("join token:  {}   (single use; shown once)", s(v, "join_token"));
        out!(
            "expires:     {}",
            when(v.get("join_token_expires_at").and_then(Value::as_i64))
        );
        out!("next:        castellan workload svid --join-token TOKEN --out DIR   (on the workload's machine)");
    })
}

/// A seconds field as `1h`, `90s`.
fn secs_text(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_u64)
        .map_or_else(|| "-".to_owned(), |n| format_duration(Duration::from_secs(n)))
}

/// `2025-01-02T03:04:05Z (unix 1735787045, in 59m 58s)`.
pub(crate) fn when(t: Option<i64>) -> String {
    let Some(t) = t else {
        return "-".to_owned();
    };
    let left = t.saturating_sub(SystemClock.now());
    let rel = if left >= 0 {
        format!("in {}", approx(left))
    } else {
        format!("{} ago", approx(left.saturating_neg()))
    };
    format!("{} (unix {t}, {rel})", rfc3339(t))
}

/// Two units at most: `1d 2h`, `59m 58s`, `7s`.
fn approx(secs: i64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// What `POST /workload/v1/svid` answers.
#[derive(Deserialize)]
pub(crate) struct SvidResponse {
    pub(crate) spiffe_id: String,
    pub(crate) svid_pem: String,
    pub(crate) bundle_pem: String,
    pub(crate) not_after: i64,
    pub(crate) renew_at: i64,
}

pub(crate) async fn error_of(resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let code = body.get("error").and_then(Value::as_str).unwrap_or("error");
    let desc = body.get("error_description").and_then(Value::as_str).unwrap_or("");
    anyhow!("{status}: {code}: {desc}")
}

pub(crate) fn http_client(ca_file: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    let mut http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).with_context(|| format!("cannot read CA file `{}`", path.display()))?;
        http = http.add_root_certificate(
            reqwest::Certificate::from_pem(&pem).with_context(|| format!("CA file `{}`", path.display()))?,
        );
    }
    Ok(http.build()?)
}

/// The join token is a bearer credential: warn when it would cross a network in clear text.
pub(crate) fn warn_if_cleartext(server: &str) {
    let Ok(url) = reqwest::Url::parse(server) else {
        return;
    };
    let host = url.host_str().unwrap_or("");
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if url.scheme() == "http" && !loopback {
        eprintln!("warning: {server} is plain http: the join token crosses the network unencrypted");
    }
}

/// `castellan workload svid`.
pub async fn svid(args: SvidArgs) -> anyhow::Result<()> {
    let server = args.server.trim_end_matches('/');
    let token = args.join_token.trim();
    if token.is_empty() {
        bail!("--join-token is empty");
    }
    warn_if_cleartext(server);
    let http = http_client(args.ca_file.as_deref())?;

    eprintln!("[1/5] discovering the authority at {server}");
    let meta = crate::admin::discover(&http, server).await?;
    let field = |name: &str| {
        meta.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("the authority at {server} does not issue SVIDs: discovery lacks `{name}`"))
    };
    let endpoint = field("castellan_svid_endpoint")?.to_owned();
    let trust_domain = TrustDomain::new(field("castellan_trust_domain")?)
        .context("discovery document names an invalid trust domain")?;

    // Before the join token is spent: a directory that cannot be written would waste it.
    eprintln!("[2/5] preparing {}", args.out.display());
    prepare_dir(&args.out)?;
    drop(write_temp(&args.out, "probe", b"", false)?);

    eprintln!("[3/5] generating an ECDSA P-256 key (it stays on this machine)");
    let key = generate_workload_key_unnamed().context("cannot generate a key")?;

    eprintln!("[4/5] requesting an SVID from {endpoint}");
    let resp = http
        .post(&endpoint)
        .json(&json!({ "join_token": token, "csr": key.csr_pem() }))
        .send()
        .await
        .with_context(|| format!("cannot reach {endpoint}"))?;
    if !resp.status().is_success() {
        return Err(error_of(resp).await.context("the authority refused to issue an SVID"));
    }
    let issued: SvidResponse = resp
        .json()
        .await
        .context("the SVID response is not the expected JSON")?;
    let id = check_issued(&issued, &trust_domain, key.pkcs8_der())?;

    eprintln!("[5/5] writing {KEY_FILE}, {SVID_FILE} and {BUNDLE_FILE}");
    write_svid(&args.out, &key, &issued)?;

    let paths = |f: &str| args.out.join(f).display().to_string();
    let v = json!({
        "spiffe_id": id.as_str(),
        "not_after": issued.not_after,
        "renew_at": issued.renew_at,
        "svid": paths(SVID_FILE),
        "key": paths(KEY_FILE),
        "bundle": paths(BUNDLE_FILE),
    });
    print(args.json, &v, |_| {
        out!("spiffe id:   {id}");
        out!("expires:     {}", when(Some(issued.not_after)));
        out!("renew at:    {}", when(Some(issued.renew_at)));
        out!("svid:        {}", paths(SVID_FILE));
        out!("key:         {}   (0600)", paths(KEY_FILE));
        out!("bundle:      {}", paths(BUNDLE_FILE));
    })
}

/// Checks what came back before anything is written: the leaf names the ID
/// the authority reports (inside its trust domain), carries the key made
/// here, and its issuers are in the trust bundle.
pub(crate) fn check_issued(
    issued: &SvidResponse,
    trust_domain: &TrustDomain,
    pkcs8_der: &[u8],
) -> anyhow::Result<SpiffeId> {
    let id = SpiffeId::parse(&issued.spiffe_id).context("the authority answered an invalid SPIFFE ID")?;
    if !id.is_member_of(trust_domain) {
        bail!(
            "the authority issued `{id}`, outside its own trust domain `{}`; nothing written",
            trust_domain.as_str()
        );
    }
    let chain = certs_from_pem(issued.svid_pem.as_bytes()).context("svid_pem in the response")?;
    let leaf = chain
        .first()
        .ok_or_else(|| anyhow!("svid_pem in the response holds no certificate"))?;
    let named = parse_svid_peer(leaf).context("the issued certificate is not an SVID")?;
    if named != id {
        bail!("the issued certificate names `{named}`, but the authority reported `{id}`; nothing written");
    }
    let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&rustls::pki_types::PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8_der),
    ))
    .map_err(|_| anyhow!("the key made here does not load"))?;
    rustls::sign::CertifiedKey::new(chain.clone(), signer)
        .keys_match()
        .map_err(|_| anyhow!("the issued certificate does not carry the key made here; nothing written"))?;
    if chain.len() < 2 {
        bail!("svid_pem in the response holds the leaf only, without its issuing CA; nothing written");
    }
    let bundle = certs_from_pem(issued.bundle_pem.as_bytes()).context("bundle_pem in the response")?;
    if chain.iter().skip(1).any(|ca| !bundle.contains(ca)) {
        bail!("the SVID's issuing CA is not in the trust bundle; nothing written");
    }
    Ok(id)
}

/// Replaces the key, the SVID and the bundle in `dir`, the key first.
pub(crate) fn write_svid(dir: &Path, key: &castellan_ca::WorkloadKey, issued: &SvidResponse) -> anyhow::Result<()> {
    let key_pem = key.key_pem();
    write_files(
        dir,
        &[
            (KEY_FILE, key_pem.as_bytes(), true),
            (SVID_FILE, issued.svid_pem.as_bytes(), false),
            (BUNDLE_FILE, issued.bundle_pem.as_bytes(), false),
        ],
    )
}

/// Creates `dir` (0700) when missing; refuses a path that is not a directory.
pub(crate) fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => bail!("`{}` exists and is not a directory", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect `{}`", dir.display())),
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create `{}`", dir.display()))
}

/// A temporary file in the output directory, removed on drop unless renamed into place.
struct Temp {
    path: PathBuf,
    committed: bool,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `contents` to a new temporary file next to its target: 0600 when
/// `private` (set at creation, so the bytes are never readable by others),
/// else 0644 (less the umask).
fn write_temp(dir: &Path, name: &str, contents: &[u8], private: bool) -> anyhow::Result<Temp> {
    use std::io::Write as _;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let temp = Temp {
        path: dir.join(format!(".{name}.{}.{nonce:08x}.tmp", std::process::id())),
        committed: false,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts
        .open(&temp.path)
        .with_context(|| format!("cannot create `{}`", temp.path.display()))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write `{}`", temp.path.display()))?;
    Ok(temp)
}

/// The symlink naming the version directory in force.
const CURRENT: &str = ".current";
/// Prefix of version directories.
const VERSION_PREFIX: &str = ".svid-";

/// Replaces the files as one set. Each `name` in `dir` is a symlink to
/// `.current/name`, and `.current` to a version directory holding the
/// files; a new set is written into a new version directory (fsynced) and
/// `.current` is swapped to it with one rename, so readers and crashes see
/// either the old set or the new one, never a mix. Files written before this
/// layout existed are first moved into a version directory unchanged.
#[cfg(unix)]
pub(crate) fn write_files(dir: &Path, files: &[(&str, &[u8], bool)]) -> anyhow::Result<()> {
    let names: Vec<&str> = files.iter().map(|(n, _, _)| *n).collect();
    if !dir.join(CURRENT).exists() && names.iter().any(|n| dir.join(n).exists()) {
        // The old layout: adopt the files as they are, then switch.
        let mut old = Vec::new();
        for (name, _, private) in files {
            if let Ok(bytes) = std::fs::read(dir.join(name)) {
                old.push((*name, bytes, *private));
            }
        }
        let old: Vec<(&str, &[u8], bool)> = old.iter().map(|(n, b, p)| (*n, b.as_slice(), *p)).collect();
        swap_in(dir, &old, &names)?;
    }
    swap_in(dir, files, &names)
}

#[cfg(unix)]
fn swap_in(dir: &Path, files: &[(&str, &[u8], bool)], names: &[&str]) -> anyhow::Result<()> {
    use std::os::unix::fs::symlink;
    let nonce = u64::from(std::process::id()) << 32
        | u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0),
        );
    let version = format!("{VERSION_PREFIX}{nonce:016x}");
    let vdir = dir.join(&version);
    prepare_dir(&vdir)?;
    for (name, contents, private) in files {
        let mut temp = write_temp(&vdir, name, contents, *private)?;
        let target = vdir.join(name);
        std::fs::rename(&temp.path, &target).with_context(|| format!("cannot write `{}`", target.display()))?;
        temp.committed = true;
    }
    sync_dir(&vdir);
    // One rename switches the whole set.
    let link = dir.join(format!("{CURRENT}.{nonce:016x}.tmp"));
    symlink(&version, &link).with_context(|| format!("cannot create `{}`", link.display()))?;
    std::fs::rename(&link, dir.join(CURRENT))
        .with_context(|| format!("cannot switch `{}`", dir.join(CURRENT).display()))?;
    // The stable names point through `.current` (made once; atomic per name).
    for name in names {
        let path = dir.join(name);
        let wanted = Path::new(CURRENT).join(name);
        if std::fs::read_link(&path).is_ok_and(|t| t == wanted) {
            continue;
        }
        let tmp = dir.join(format!(".{name}.{nonce:016x}.link"));
        symlink(&wanted, &tmp).with_context(|| format!("cannot create `{}`", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace `{}`", path.display()))?;
    }
    sync_dir(dir);
    // Older versions are no longer reachable.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(VERSION_PREFIX) && name != version {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Without symlinks: each file replaced atomically, one after another.
#[cfg(not(unix))]
pub(crate) fn write_files(dir: &Path, files: &[(&str, &[u8], bool)]) -> anyhow::Result<()> {
    let mut temps = Vec::with_capacity(files.len());
    for (name, contents, private) in files {
        temps.push((write_temp(dir, name, contents, *private)?, *name));
    }
    for (temp, name) in &mut temps {
        let target = dir.join(*name);
        std::fs::rename(&temp.path, &target).with_context(|| format!("cannot replace `{}`", target.display()))?;
        temp.committed = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{approx, write_files};

    #[test]
    fn approx_keeps_two_units() {
        assert_eq!(approx(7), "7s");
        assert_eq!(approx(3_598), "59m 58s");
        assert_eq!(approx(3_600), "1h 0m");
        assert_eq!(approx(90_061), "1d 1h");
    }

    #[test]
    fn files_are_replaced_and_no_temporaries_remain() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.pem"), "old").unwrap();
        std::fs::write(dir.path().join("b.pem"), "old b").unwrap();
        write_files(dir.path(), &[("a.pem", b"new a", true), ("b.pem", b"new b", false)]).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("a.pem")).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(dir.path().join("b.pem")).unwrap(), "new b");
        write_files(dir.path(), &[("a.pem", b"newer a", true), ("b.pem", b"newer b", false)]).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("a.pem")).unwrap(), "newer a");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // The two names, `.current`, and exactly one version directory: no temporaries.
        assert_eq!(names.len(), 4, "{names:?}");
        assert_eq!(&names[..2], [".current", &names[1]]);
        assert!(names[1].starts_with(".svid-"), "{names:?}");
        assert_eq!(&names[2..], ["a.pem", "b.pem"]);
        let version = std::fs::read_dir(dir.path().join(&names[1])).unwrap().count();
        assert_eq!(version, 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |f: &str| std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode("a.pem"), 0o600);
            assert_eq!(mode("b.pem") & 0o022, 0);
        }
    }
}
