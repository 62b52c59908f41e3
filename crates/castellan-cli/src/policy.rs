//! `castellan policy ...`: Cedar policies per service on the authority:
//! push (checked there before it is stored), list, show, diff, rollback;
//! and test (policy CI: a table of requests with expected decisions, run
//! locally against a stored version or a local policy file).

use crate::admin::{print, s, time, url_encode, Admin};
use crate::cli::Conn;
use anyhow::{bail, Context};
use castellan_authz::{
    CasesError, CasesFormat, CompiledBundle, PolicyBundle, PolicyTests, TestReport, MAX_CASES_BYTES,
};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Largest policy or schema file read.
const MAX_FILE_BYTES: u64 = 256 * 1024;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Store a new version of a service's policies. The authority parses
    /// them (and validates them against `--schema`) first; anything that
    /// fails is refused with Cedar's diagnostics and the version in force stays.
    Push {
        /// The service the policies govern.
        service: String,
        /// Cedar policy file.
        #[arg(long, value_name = "FILE")]
        policies: PathBuf,
        /// Cedar schema file (human-readable `.cedarschema` format).
        #[arg(long, value_name = "FILE")]
        schema: Option<PathBuf>,
        /// A note kept with the version.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List a service's versions (without SERVICE: every service and its newest version).
    List {
        /// The service.
        service: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print a version's policies (default: the newest).
    Show {
        /// The service.
        service: String,
        /// The version (default: the newest).
        version: Option<i64>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Lines that differ between two versions.
    Diff {
        /// The service.
        service: String,
        /// The older version.
        from: i64,
        /// The newer version.
        to: i64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Put an older version back in force (stored again as a new version).
    Rollback {
        /// The service.
        service: String,
        /// The version to restore.
        version: i64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Policy CI: decide a table of requests with expected decisions against a
    /// stored version (default: the newest) or a local policy file, as the
    /// services decide. Prints each case and a summary; exits non-zero unless
    /// every case passes. Cases format: docs/authorization.md, "Policy CI".
    Test {
        /// The service.
        service: String,
        /// Cases file: JSON (`.json`) or TOML (`.toml`).
        #[arg(long, value_name = "FILE")]
        cases: PathBuf,
        /// The stored version to test (default: the newest).
        #[arg(long, value_name = "N", conflicts_with = "policies")]
        version: Option<i64>,
        /// Test this Cedar policy file instead of a stored version; the
        /// authority is not contacted.
        #[arg(long, value_name = "FILE")]
        policies: Option<PathBuf>,
        /// With --policies: the Cedar schema (`.cedarschema`) to validate them against.
        #[arg(long, value_name = "FILE", requires = "policies")]
        schema: Option<PathBuf>,
        #[command(flatten)]
        conn: Conn,
    },
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        bail!("`{}` is larger than {MAX_FILE_BYTES} bytes", path.display());
    }
    std::fs::read_to_string(path).with_context(|| format!("`{}` is not readable UTF-8 text", path.display()))
}

/// Reads and parses a cases file, its format from its extension.
fn read_cases(path: &Path) -> anyhow::Result<PolicyTests> {
    let format = CasesFormat::from_path(path)
        .with_context(|| format!("cases file `{}` must end in `.json` or `.toml`", path.display()))?;
    let context = || format!("`{}`", path.display());
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if len > MAX_CASES_BYTES {
        return Err(CasesError::TooLarge {
            len,
            max: MAX_CASES_BYTES,
        })
        .with_context(context);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("`{}` is not readable UTF-8 text", path.display()))?;
    PolicyTests::parse(&text, format).with_context(context)
}

/// The stored version `v` (as `GET /policies/{service}/{version}` returns it), compiled.
fn stored_bundle(v: &Value) -> anyhow::Result<CompiledBundle> {
    let bundle: PolicyBundle =
        serde_json::from_value(v.clone()).context("the authority's policy version is not of the expected shape")?;
    let (service, version) = (bundle.service.clone(), bundle.version);
    CompiledBundle::compile(bundle)
        .with_context(|| format!("stored `{service}` version {version} does not compile here"))
}

/// The report as a table, then a summary line naming what was tested.
fn print_report(report: &TestReport, tested: &str) {
    let got = |c: &castellan_authz::CaseResult| match &c.decision {
        Some(castellan_authz::Decision::Allow { .. }) => "allow".to_owned(),
        Some(castellan_authz::Decision::Deny { reason, .. }) => format!("deny ({})", reason.label()),
        None => "refused".to_owned(),
    };
    let rows: Vec<[String; 5]> = report
        .cases
        .iter()
        .map(|c| {
            let determining = c
                .decision
                .as_ref()
                .map(|d| d.determining().join(", "))
                .unwrap_or_default();
            [
                c.name.clone(),
                c.expect.label().to_owned(),
                got(c),
                if determining.is_empty() {
                    "-".to_owned()
                } else {
                    determining
                },
                if c.ok { "PASS" } else { "FAIL" }.to_owned(),
            ]
        })
        .collect();
    let width = |i: usize, header: &str| {
        rows.iter()
            .filter_map(|r| r.get(i))
            .map(|s| s.chars().count())
            .chain([header.len()])
            .max()
            .unwrap_or(0)
            .min(60)
    };
    let (w0, w2, w3) = (width(0, "CASE"), width(2, "GOT"), width(3, "DETERMINING"));
    out!(
        "{:<w0$}  {:<6}  {:<w2$}  {:<w3$}  RESULT",
        "CASE",
        "EXPECT",
        "GOT",
        "DETERMINING"
    );
    for (row, case) in rows.iter().zip(&report.cases) {
        let [name, expect, got, determining, result] = row;
        out!("{name:<w0$}  {expect:<6}  {got:<w2$}  {determining:<w3$}  {result}");
        if let Some(detail) = &case.detail {
            out!("    {detail}");
        }
        for error in case
            .decision
            .as_ref()
            .map(castellan_authz::Decision::errors)
            .unwrap_or_default()
        {
            out!("    evaluation error: {error}");
        }
    }
    let total = report.total();
    out!(
        "{total} case{} against {tested}: {} passed, {} failed",
        if total == 1 { "" } else { "s" },
        report.passed(),
        report.failed()
    );
}

pub async fn run(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Test {
            service,
            cases,
            version,
            policies,
            schema,
            conn,
        } => {
            let tests = read_cases(&cases)?;
            let (bundle, tested, source) = match &policies {
                Some(path) => {
                    let bundle = PolicyBundle {
                        service: service.clone(),
                        version: 0,
                        policies: read_text(path)?,
                        schema: schema.as_deref().map(read_text).transpose()?,
                        created_at: 0,
                    };
                    let compiled = CompiledBundle::compile(bundle)
                        .with_context(|| format!("`{}` does not compile", path.display()))?;
                    (compiled, format!("local `{}`", path.display()), "local")
                }
                None => {
                    let admin = Admin::connect(&conn).await?;
                    let compiled = stored_bundle(&fetch(&admin, &service, version).await?)?;
                    let tested = format!("`{service}` version {}", compiled.version());
                    (compiled, tested, "stored")
                }
            };
            let report = tests.run(&bundle);
            let mut v = serde_json::to_value(&report)?;
            if let Some(obj) = v.as_object_mut() {
                obj.insert("service".to_owned(), json!(service));
                obj.insert("source".to_owned(), json!(source));
                let version = (source == "stored").then(|| bundle.version());
                obj.insert("version".to_owned(), json!(version));
            }
            print(conn.json, &v, |_| print_report(&report, &tested))?;
            if !report.all_passed() {
                let failed: Vec<String> = report
                    .cases
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| format!("`{}`", c.name))
                    .collect();
                bail!(
                    "{} of {} cases failed: {}",
                    report.failed(),
                    report.total(),
                    failed.join(", ")
                );
            }
            Ok(())
        }
        PolicyCommand::Push {
            service,
            policies,
            schema,
            note,
            conn,
        } => {
            let mut body = json!({ "policies": read_text(&policies)? });
            if let (Some(path), Some(obj)) = (&schema, body.as_object_mut()) {
                obj.insert("schema".to_owned(), json!(read_text(path)?));
            }
            if let (Some(n), Some(obj)) = (note, body.as_object_mut()) {
                obj.insert("note".to_owned(), json!(n));
            }
            let admin = Admin::connect(&conn).await?;
            let v = admin
                .call(Method::POST, &format!("/policies/{}", url_encode(&service)), Some(body))
                .await?;
            print(admin.json, &v, |v| {
                out!(
                    "stored `{}` version {}{}",
                    s(v, "service"),
                    v.get("version").and_then(Value::as_i64).unwrap_or(0),
                    if v.get("has_schema").and_then(Value::as_bool) == Some(true) {
                        " (validated against the schema)"
                    } else {
                        " (parsed; no schema given, so not validated)"
                    }
                );
                if let Some(summary) = v.get("summary") {
                    out!("policies:    {summary}");
                }
            })
        }
        PolicyCommand::List { service: None, conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin.call(Method::GET, "/policies", None).await?;
            print(admin.json, &v, |v| {
                out!("{:<40} {:>8}", "SERVICE", "VERSION");
                for e in v.get("services").and_then(Value::as_array).into_iter().flatten() {
                    out!(
                        "{:<40} {:>8}",
                        s(e, "service"),
                        e.get("version").and_then(Value::as_i64).unwrap_or(0)
                    );
                }
            })
        }
        PolicyCommand::List {
            service: Some(service),
            conn,
        } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin
                .call(Method::GET, &format!("/policies/{}", url_encode(&service)), None)
                .await?;
            print(admin.json, &v, |v| {
                out!("{:>7} {:>11} {:<24} {:<16} NOTE", "VERSION", "CREATED", "BY", "SHA256");
                for e in v.get("versions").and_then(Value::as_array).into_iter().flatten() {
                    out!(
                        "{:>7} {:>11} {:<24} {:<16} {}",
                        e.get("version").and_then(Value::as_i64).unwrap_or(0),
                        time(e, "created_at"),
                        s(e, "created_by"),
                        s(e, "policies_sha256").get(..16).unwrap_or(""),
                        s(e, "note")
                    );
                }
            })
        }
        PolicyCommand::Show { service, version, conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = fetch(&admin, &service, version).await?;
            print(admin.json, &v, |v| {
                out!(
                    "// `{}` version {} by {} at {}",
                    s(v, "service"),
                    v.get("version").and_then(Value::as_i64).unwrap_or(0),
                    s(v, "created_by"),
                    time(v, "created_at")
                );
                out!("{}", s(v, "policies"));
            })
        }
        PolicyCommand::Diff {
            service,
            from,
            to,
            conn,
        } => {
            let admin = Admin::connect(&conn).await?;
            let old = fetch(&admin, &service, Some(from)).await?;
            let new = fetch(&admin, &service, Some(to)).await?;
            let lines = diff_lines(s(&old, "policies"), s(&new, "policies"));
            let v = json!({ "service": service, "from": from, "to": to, "diff": lines });
            print(admin.json, &v, |_| {
                out!("--- {service} version {from}");
                out!("+++ {service} version {to}");
                for l in &lines {
                    out!("{l}");
                }
            })
        }
        PolicyCommand::Rollback { service, version, conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin
                .call(
                    Method::POST,
                    &format!("/policies/{}/rollback", url_encode(&service)),
                    Some(json!({ "version": version })),
                )
                .await?;
            print(admin.json, &v, |v| {
                out!(
                    "`{}` version {} is in force: the text of version {version}",
                    s(v, "service"),
                    v.get("version").and_then(Value::as_i64).unwrap_or(0)
                );
            })
        }
    }
}

async fn fetch(admin: &Admin, service: &str, version: Option<i64>) -> anyhow::Result<Value> {
    let v = version.map_or_else(|| "latest".to_owned(), |v| v.to_string());
    admin
        .call(Method::GET, &format!("/policies/{}/{v}", url_encode(service)), None)
        .await
}

pub use castellan_core::diff::diff_lines;
