//! `castellan report`: the platform report — the stage of auth debt the
//! platform is at, each finding with its evidence and fix, from what the
//! authority knows and the last recorded probe runs.

use crate::admin::Admin;
use crate::cli::Conn;
use anyhow::{bail, Context};
use castellan_core::platform::{PlatformReport, Severity, STAGES};
use clap::Args;
use reqwest::Method;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Also write the report as a self-contained HTML page to FILE.
    #[arg(long = "html", value_name = "FILE")]
    pub html_file: Option<PathBuf>,
    /// Exit non-zero unless the platform has reached at least stage N (1 to 5).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=5))]
    pub require_stage: Option<u8>,
    #[command(flatten)]
    pub conn: Conn,
}

fn print_text(r: &PlatformReport) {
    out!("Stage {} of {}: {}", r.stage, STAGES.len(), r.stage_name);
    for (i, name) in STAGES.iter().enumerate() {
        let n = i + 1;
        let mark = if n <= usize::from(r.stage) { "x" } else { " " };
        let blockers = r
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Blocker && usize::from(f.blocks) == n)
            .count();
        let note = if blockers > 0 {
            format!("  ({blockers} finding(s) in the way)")
        } else {
            String::new()
        };
        out!("  [{mark}] {n}. {name}{note}");
    }
    if r.findings.is_empty() {
        out!("\nNo findings.");
    }
    for f in &r.findings {
        let kind = match f.severity {
            Severity::Blocker => format!("blocks stage {}", f.blocks),
            Severity::Notice => "notice".to_owned(),
        };
        out!("\n[{}] {} ({kind})", f.id, f.title);
        for e in &f.evidence {
            out!("    - {e}");
        }
        out!("    fix: {}", f.remedy);
    }
    out!(
        "\n{} service(s), {} verifier(s) ({} live), {} probe run(s) on record",
        r.services.len(),
        r.verifiers.len(),
        r.verifiers.iter().filter(|v| v.live).count(),
        r.probe_runs.len()
    );
}

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let admin = Admin::connect(&args.conn).await?;
    let value = admin.call(Method::GET, "/report", None).await?;
    let report: PlatformReport =
        serde_json::from_value(value.clone()).context("the authority's report is not in the expected form")?;
    if let Some(path) = &args.html_file {
        std::fs::write(path, castellan_probe::platform_html(&report))
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if args.conn.json {
        out!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_text(&report);
    }
    if let Some(want) = args.require_stage {
        if report.stage < want {
            bail!(
                "the platform is at stage {}, below the required stage {want}",
                report.stage
            );
        }
    }
    Ok(())
}
