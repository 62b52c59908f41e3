//! `castellan probe`: fire the battery (a genuine token, local forgeries,
//! canaries the authority signs) at every target and report which checks
//! each gets wrong. Exit status 0 only when every target passes.

use crate::admin::Admin;
use crate::cli::Conn;
use anyhow::{anyhow, bail, Context};
use castellan_probe::{fire, CheckId, Forger, Pace, Shot, Target, TargetReport};
use clap::Args;
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

/// The signing key of `token` from the authority's JWKS.
async fn signing_jwk(admin: &Admin, token: &str) -> anyhow::Result<castellan_jose::PublicJwk> {
    let kid = castellan_jose::decode_unverified_header(token)
        .ok()
        .and_then(|h| h.get("kid").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| anyhow!("the genuine canary has no kid"))?;
    let uri = admin
        .meta
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("discovery document lacks `jwks_uri`"))?;
    let jwks: castellan_jose::Jwks = admin.http().get(uri).send().await?.json().await?;
    jwks.keys
        .into_iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| anyhow!("key `{kid}` is not in the authority's JWKS"))
}

/// Everything to send to one target.
async fn battery(
    admin: &Admin,
    target: &Target,
    jku_url: &str,
    jku_keys: &mut Vec<Value>,
) -> anyhow::Result<Vec<Shot>> {
    let genuine = canary(admin, &target.audience, CheckId::Genuine)
        .await
        .map_err(|e| anyhow!("target `{}`: {e}", target.name))?;
    let forger = Forger::new(&genuine, &signing_jwk(admin, &genuine).await?)?;
    jku_keys.extend(
        forger
            .attacker_jwks()
            .keys
            .iter()
            .filter_map(|k| serde_json::to_value(k).ok()),
    );
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

    let mut reports = Vec::with_capacity(total);
    for (i, target) in targets.iter().enumerate() {
        eprintln!("[{}/{total}] probing `{}` at {}", i + 1, target.name, target.url);
        let mut keys = Vec::new();
        let mut shots = battery(&admin, target, &jku_url, &mut keys).await?;
        if let Ok(mut k) = jku_jwks.lock() {
            k.extend(keys);
        }
        let mut report = fire(&http, target, &shots, pace).await;
        // Revoked session last: minted and revoked, then fired once the
        // revocation had time to reach every verifier.
        let revoked = canary(&admin, &target.audience, CheckId::RevokedSession).await;
        if revoked.is_ok() {
            tokio::time::sleep(PROPAGATION).await;
        }
        shots = vec![Shot {
            check: CheckId::RevokedSession,
            tokens: revoked.map(|t| vec![Some(t)]),
        }];
        let last = fire(&http, target, &shots, pace).await;
        report.checks.extend(last.checks);
        reports.push(report);
    }
    jku_server.abort();

    let report = json!({ "targets": reports, "summary": summary(&reports) });
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
