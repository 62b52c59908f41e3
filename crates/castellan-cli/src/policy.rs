//! `castellan policy ...`: Cedar policies per service on the authority:
//! push (checked there before it is stored), list, show, diff, rollback.

use crate::admin::{print, s, time, url_encode, Admin};
use crate::cli::Conn;
use anyhow::{bail, Context};
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
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        bail!("`{}` is larger than {MAX_FILE_BYTES} bytes", path.display());
    }
    std::fs::read_to_string(path).with_context(|| format!("`{}` is not readable UTF-8 text", path.display()))
}

pub async fn run(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
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

/// A line diff: unchanged lines with two spaces, removed with `-`, added with
/// `+` (longest common subsequence; for very large inputs, removed then added).
pub fn diff_lines(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > 4_000_000 {
        return a
            .iter()
            .filter(|l| !b.contains(l))
            .map(|l| format!("-{l}"))
            .chain(b.iter().filter(|l| !a.contains(l)).map(|l| format!("+{l}")))
            .collect();
    }
    // lcs[i][j]: length of the LCS of a[i..] and b[j..], as one flat table.
    let w = m + 1;
    let mut lcs = vec![0u32; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let v = if a.get(i) == b.get(j) {
                lcs.get((i + 1) * w + j + 1).copied().unwrap_or(0) + 1
            } else {
                let down = lcs.get((i + 1) * w + j).copied().unwrap_or(0);
                let right = lcs.get(i * w + j + 1).copied().unwrap_or(0);
                down.max(right)
            };
            if let Some(cell) = lcs.get_mut(i * w + j) {
                *cell = v;
            }
        }
    }
    let at = |i: usize, j: usize| lcs.get(i * w + j).copied().unwrap_or(0);
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(n + m));
    while i < n || j < m {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                out.push(format!("  {x}"));
                i += 1;
                j += 1;
            }
            (Some(x), Some(_)) if at(i + 1, j) >= at(i, j + 1) => {
                out.push(format!("-{x}"));
                i += 1;
            }
            (_, Some(y)) => {
                out.push(format!("+{y}"));
                j += 1;
            }
            (Some(x), None) => {
                out.push(format!("-{x}"));
                i += 1;
            }
            (None, None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::diff_lines;

    #[test]
    fn diff_keeps_common_lines_and_marks_changes() {
        assert_eq!(diff_lines("a\nb\nc", "a\nc\nd"), vec!["  a", "-b", "  c", "+d"]);
        assert_eq!(diff_lines("", "x"), vec!["+x"]);
        assert_eq!(diff_lines("x", ""), vec!["-x"]);
        assert!(diff_lines("same\n", "same\n").iter().all(|l| l.starts_with("  ")));
    }
}
