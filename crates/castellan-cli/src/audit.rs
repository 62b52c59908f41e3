//! `castellan audit`: the authority's hash-chained audit trail: list events,
//! export them as JSON lines for a SIEM, verify the chain.

use crate::admin::{s, url_encode, Admin};
use crate::cli::Conn;
use crate::decisions::{now, parse_since};
use anyhow::bail;
use castellan_core::clock::rfc3339;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write as _;

/// Events per page the authority returns at most.
const PAGE: u32 = 1_000;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, oldest first (the first N that match; continue with `--after`).
    List {
        /// Only events since T: a duration ago (`1h`, `7d`), an RFC 3339 time
        /// (`2026-11-29T08:00:00Z`), or seconds since the epoch.
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only events by this actor (`client:<id>`, `user:<id>`, `castellan`, `anonymous`).
        #[arg(long, value_name = "A")]
        actor: Option<String>,
        /// Only events after this sequence number.
        #[arg(long, value_name = "SEQ")]
        after: Option<i64>,
        /// At most N events (1 to 1000).
        #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[command(flatten)]
        conn: Conn,
    },
    /// Write every event (from `--since` or `--after`) to stdout as JSON lines, one
    /// event a line, for a SIEM; progress and the last sequence number go to stderr.
    Export {
        /// Only events since T (a duration ago, an RFC 3339 time, or epoch seconds).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only events after this sequence number (the last one a previous export wrote).
        #[arg(long, value_name = "SEQ")]
        after: Option<i64>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Check the hash chain from the first event: exit 0 and print the head
    /// (record it elsewhere) when intact; exit non-zero naming the first bad sequence number.
    Verify {
        #[command(flatten)]
        conn: Conn,
    },
}

/// One page of events after `after`, with the filters; and where the next page starts.
async fn page(admin: &Admin, filters: &[String], after: i64, limit: u32) -> anyhow::Result<(Vec<Value>, Option<i64>)> {
    let mut query = filters.to_vec();
    query.push(format!("after={after}"));
    query.push(format!("limit={limit}"));
    let v = admin
        .call(Method::GET, &format!("/audit?{}", query.join("&")), None)
        .await?;
    let events = v.get("events").and_then(Value::as_array).cloned().unwrap_or_default();
    Ok((events, v.get("next_after").and_then(Value::as_i64)))
}

fn filters(since: Option<&str>, actor: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    if let Some(t) = since {
        out.push(format!("since={}", parse_since(t, now())?));
    }
    if let Some(a) = actor {
        out.push(format!("actor={}", url_encode(a)));
    }
    Ok(out)
}

fn print_table(events: &[Value]) {
    out!(
        "{:>6}  {:<20}  {:<30}  {:<22}  {:<7}  {:<36}  DETAIL",
        "SEQ",
        "TIME",
        "ACTOR",
        "ACTION",
        "OUTCOME",
        "TARGET"
    );
    for e in events {
        let detail = e.get("detail").map(Value::to_string).unwrap_or_default();
        let detail: String = detail.chars().take(120).collect();
        out!(
            "{:>6}  {:<20}  {:<30}  {:<22}  {:<7}  {:<36}  {}",
            e.get("seq").and_then(Value::as_i64).unwrap_or(0),
            rfc3339(e.get("at").and_then(Value::as_i64).unwrap_or(0)),
            s(e, "actor"),
            s(e, "action"),
            s(e, "outcome"),
            s(e, "target"),
            detail
        );
    }
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::List {
            since,
            actor,
            after,
            limit,
            conn,
        } => {
            let filters = filters(since.as_deref(), actor.as_deref())?;
            let admin = Admin::connect(&conn).await?;
            let (events, next) = page(&admin, &filters, after.unwrap_or(0), limit).await?;
            if admin.json {
                out!("{}", serde_json::to_string_pretty(&Value::Array(events))?);
            } else {
                print_table(&events);
                if let Some(n) = next {
                    eprintln!("(more events: continue with --after {n})");
                }
            }
            Ok(())
        }
        AuditCommand::Export { since, after, conn } => {
            let filters = filters(since.as_deref(), None)?;
            let admin = Admin::connect(&conn).await?;
            let mut after = after.unwrap_or(0);
            let mut written: u64 = 0;
            let mut stdout = std::io::stdout().lock();
            loop {
                let (events, next) = page(&admin, &filters, after, PAGE).await?;
                for e in &events {
                    writeln!(stdout, "{}", serde_json::to_string(e)?)?;
                }
                stdout.flush()?;
                written = written.saturating_add(u64::try_from(events.len()).unwrap_or(0));
                if let Some(last) = events.last().and_then(|e| e.get("seq")).and_then(Value::as_i64) {
                    after = last;
                }
                eprintln!("exported {written} event(s), through seq {after}");
                if next.is_none() {
                    break;
                }
            }
            eprintln!("done: {written} event(s); the next export continues with --after {after}");
            Ok(())
        }
        AuditCommand::Verify { conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin.call(Method::GET, "/audit/verify", None).await?;
            let ok = v.get("ok").and_then(Value::as_bool).unwrap_or(false);
            let head = v.get("head").cloned().unwrap_or(Value::Null);
            let events = v.get("events").and_then(Value::as_i64).unwrap_or(0);
            if admin.json {
                out!("{}", serde_json::to_string_pretty(&v)?);
            } else if ok {
                match head.get("seq").and_then(Value::as_i64) {
                    Some(seq) => out!(
                        "audit chain intact: {events} event(s); head seq {seq} hash {}",
                        s(&head, "hash")
                    ),
                    None => out!("audit chain intact: no events yet"),
                }
            }
            if !ok {
                let seq = v.get("first_bad_seq").cloned().unwrap_or(json!(null));
                bail!(
                    "audit chain broken at seq {seq}: {} ({events} event(s) before it verify)",
                    s(&v, "problem")
                );
            }
            Ok(())
        }
    }
}
