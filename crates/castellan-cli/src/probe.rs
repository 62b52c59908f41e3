//! `castellan probe`: fire the battery (a genuine token, local forgeries,
//! canaries the authority signs) at every target and report which checks
//! each gets wrong. Exit status 0 only when every target passes.

use crate::admin::Admin;
use crate::cli::Conn;
use anyhow::{anyhow, bail, Context};
use castellan_probe::{fire, CheckId, Forger, Pace, Shot, Target, TargetReport};
use clap::Args;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// How long the probe waits after revoking a canary session before firing
/// it: the platform's revocation propagation target.
const PROPAGATION: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// A service to probe: `name=NAME,url=URL,audience=AUD[,method=GET][,path=/p]` (repeat).
    #[arg(long = "target", value_name = "SPEC", value_parser = parse_target, required_unless_present = "config")]
    pub targets: Vec<Target>,
    /// Read targets from a TOML file (`[[target]]` tables with name, url, audience,
    /// and optionally method and path); combined with any --target.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write the JSON report to FILE (`-` for stdout).
    #[arg(long = "json", value_name = "FILE")]
    pub json_file: Option<PathBuf>,
    /// Write the HTML report (a matrix of targets by checks, with the meaning and
    /// fix of each failure) to FILE.
    #[arg(long = "html", value_name = "FILE")]
    pub html_file: Option<PathBuf>,
    /// Authority URL.
    #[arg(long, env = "CASTELLAN_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// JSON file with the admin `client_id` and `client_secret`.
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// Also trust this PEM CA certificate when the authority is `https://`.
    #[arg(long, env = "CASTELLAN_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Targets probed at once (each still gets one request at a time, 20 ms apart).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub concurrency: u16,
    /// Do not record the run at the authority (`castellan report` reads recorded runs).
    #[arg(long)]
    pub no_record: bool,
}

fn parse_target(s: &str) -> Result<Target, String> {
    s.parse()
}

async fn canary(admin: &Admin, audience: &str, check: CheckId) -> Result<String, String> {
    match admin
        .call(
            reqwest::Method::POST,
            "/canaries",
            Some(json!({"audience": audience, "check": check.as_str()})),
        )
        .await
    {
        Ok(v) => v
            .get("token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "the canary answer lacks a token".to_owned()),
        Err(e) => Err(format!("the authority minted no canary: {e}")),
    }
}

async fn fetch_jwks(admin: &Admin) -> anyhow::Result<castellan_jose::Jwks> {
    let uri = admin
        .meta
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("discovery document lacks `jwks_uri`"))?;
    Ok(admin.http().get(uri).send().await?.json().await?)
}

/// The signing key of `token` from the authority's JWKS, fetched once per
/// run, and again only if the key is not in it (a rotation mid-run).
async fn signing_jwk(
    admin: &Admin,
    jwks: &castellan_jose::Jwks,
    token: &str,
) -> anyhow::Result<castellan_jose::PublicJwk> {
    let kid = castellan_jose::decode_unverified_header(token)
        .ok()
        .and_then(|h| h.get("kid").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| anyhow!("the genuine canary has no kid"))?;
    if let Some(k) = jwks.keys.iter().find(|k| k.kid == kid) {
        return Ok(k.clone());
    }
    fetch_jwks(admin)
        .await?
        .keys
        .into_iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| anyhow!("key `{kid}` is not in the authority's JWKS"))
}

/// Everything to send to one target.
async fn battery(
    admin: &Admin,
    jwks: &castellan_jose::Jwks,
    target: &Target,
    jku_url: &str,
    jku_keys: &std::sync::Mutex<Vec<Value>>,
) -> anyhow::Result<Vec<Shot>> {
    let genuine = canary(admin, &target.audience, CheckId::Genuine)
        .await
        .map_err(|e| anyhow!("target `{}`: {e}", target.name))?;
    let forger = Forger::new(&genuine, &signing_jwk(admin, jwks, &genuine).await?)?;
    // Published on the probe's own loopback JWKS before any token naming it is sent.
    if let Ok(mut keys) = jku_keys.lock() {
        keys.extend(
            forger
                .attacker_jwks()
                .keys
                .iter()
                .filter_map(|k| serde_json::to_value(k).ok()),
        );
    }
    let mut shots = Vec::new();
    for check in CheckId::ALL {
        let tokens = match check {
            CheckId::Genuine => Ok(vec![Some(genuine.clone())]),
            CheckId::NoToken => Ok(vec![None]),
            c if c.is_local_forgery() => forger
                .forge(c, jku_url)
                .map(|v| v.into_iter().map(Some).collect())
                .map_err(|e| e.to_string()),
            CheckId::RevokedSession => continue, // fired last, after propagation
            c => canary(admin, &target.audience, c).await.map(|t| vec![Some(t)]),
        };
        shots.push(Shot { check, tokens });
    }
    Ok(shots)
}

fn summary(reports: &[TargetReport]) -> Value {
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.name.as_str())
        .collect();
    json!({
        "targets": reports.len(),
        "passed": reports.len() - failed.len(),
        "failed": failed.len(),
        "failing_targets": failed,
        "misconfigured_targets": reports.iter().filter(|r| r.misconfigured()).map(|r| r.name.as_str()).collect::<Vec<_>>(),
        "failed_checks": reports.iter().map(|r| r.checks.iter().filter(|c| !c.ok).count()).sum::<usize>(),
    })
}

fn print_table(reports: &[TargetReport]) {
    let width = reports.iter().map(|r| r.name.len()).max().unwrap_or(6).max(6);
    eprint!("{:<20}", "CHECK");
    for r in reports {
        eprint!(" {:<width$}", r.name);
    }
    eprintln!();
    for (i, check) in CheckId::ALL.iter().enumerate() {
        eprint!("{:<20}", check.as_str());
        for r in reports {
            let cell = match r.checks.get(i) {
                Some(c) if c.skipped => "skip",
                Some(c) if c.ok => "ok",
                Some(c) if c.status.is_none() => "ERROR",
                Some(_) => "FAIL",
                None => "-",
            };
            eprint!(" {cell:<width$}");
        }
        eprintln!();
    }
    for r in reports {
        for c in r.checks.iter().filter(|c| !c.ok || c.skipped) {
            eprintln!("{}: {}: {}", r.name, c.id, c.detail);
        }
        if r.misconfigured() {
            eprintln!(
                "{}: MISCONFIGURED: it refuses a genuine token, so its other results prove little",
                r.name
            );
        }
    }
}

pub async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let mut targets = args.targets.clone();
    if let Some(path) = &args.config {
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        if meta.len() > 1024 * 1024 {
            bail!("`{}` is larger than 1 MiB", path.display());
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
        targets.extend(castellan_probe::ProbeConfig::parse(&text).map_err(|e| anyhow!("`{}`: {e}", path.display()))?);
    }
    if targets.is_empty() {
        bail!("no targets: pass --target or a --config file with [[target]] tables");
    }
    let mut names = std::collections::HashSet::new();
    if let Some(dup) = targets.iter().find(|t| !names.insert(t.name.as_str())) {
        bail!("target name `{}` is used twice", dup.name);
    }
    let total = targets.len();
    let conn = Conn {
        server: args.server.clone(),
        credentials: args.credentials.clone(),
        json: false,
        ca_file: args.ca_file.clone(),
    };
    let admin = Admin::connect(&conn).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("http client")?;
    let pace = Pace::default();
    // The attacker's keys are collected while the batteries are built and
    // served for the whole run.
    let jku_jwks = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let shared = jku_jwks.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let jku_url = format!("http://{}/jwks.json", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let keys = shared.lock().map(|k| k.clone()).unwrap_or_default();
            async move { axum::Json(json!({ "keys": keys })) }
        }),
    );
    let jku_server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // Targets `--concurrency` at a time; each target's tokens (canaries live
    // 60 s) are made just before it is probed.
    let jwks = fetch_jwks(&admin).await?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let (admin, http, done, jwks, jku_url, jku_jwks) = (&admin, &http, &done, &jwks, &jku_url, &jku_jwks);
    let results: Vec<anyhow::Result<TargetReport>> = stream::iter(targets.iter())
        .map(|target| async move {
            eprintln!("probing `{}` at {}", target.name, target.url);
            let shots = battery(admin, jwks, target, jku_url, jku_jwks).await?;
            let mut report = fire(http, target, &shots, pace).await;
            // Revoked session last: minted and revoked, then fired once the
            // revocation had time to reach every verifier.
            let revoked = canary(admin, &target.audience, CheckId::RevokedSession).await;
            if revoked.is_ok() {
                tokio::time::sleep(PROPAGATION).await;
            }
            let last = Shot {
                check: CheckId::RevokedSession,
                tokens: revoked.map(|t| vec![Some(t)]),
            };
            report.checks.extend(fire(http, target, &[last], pace).await.checks);
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let verdict = if report.passed() { "passed" } else { "FAILED" };
            eprintln!("[{n}/{total}] `{}` at {}: {verdict}", target.name, target.url);
            anyhow::Ok(report)
        })
        .buffered(usize::from(args.concurrency))
        .collect()
        .await;
    jku_server.abort();
    let reports = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;

    let report = json!({ "targets": reports, "summary": summary(&reports) });
    if !args.no_record {
        match admin
            .call(reqwest::Method::POST, "/probe-runs", Some(report.clone()))
            .await
        {
            Ok(v) => eprintln!(
                "recorded as run {} at the authority (`castellan report` reads it)",
                v.get("id").and_then(Value::as_i64).unwrap_or_default()
            ),
            Err(e) => eprintln!("WARNING: the run was not recorded at the authority: {e:#}"),
        }
    }
    if let Some(path) = &args.html_file {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        std::fs::write(path, castellan_probe::html_report(&reports, &now))
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    match &args.json_file {
        Some(path) if path.as_os_str() == "-" => out!("{}", serde_json::to_string_pretty(&report)?),
        Some(path) => {
            std::fs::write(path, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            print_table(&reports);
        }
        None => print_table(&reports),
    }
    let failed = reports.iter().filter(|r| !r.passed()).count();
    if failed > 0 {
        bail!("{failed} of {total} target(s) validate tokens wrongly");
    }
    eprintln!("all {total} target(s) passed every check");
    Ok(())
}
