//! `castellan decisions`: the central decision log of a service, newest
//! first, filtered by principal, outcome and time.

use crate::admin::{print, s, url_encode, Admin};
use crate::cli::Conn;
use anyhow::{bail, Context};
use castellan_core::clock::rfc3339;
use clap::Args;
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct DecisionsArgs {
    /// The service whose decisions to show.
    #[arg(long)]
    pub service: String,
    /// Only this principal: an id (`alice`, read as `Principal::"alice"`) or a Cedar uid (`User::"alice"`).
    #[arg(long)]
    pub principal: Option<String>,
    /// Only `allow` or only `deny`.
    #[arg(long, value_parser = ["allow", "deny"])]
    pub decision: Option<String>,
    /// Only decisions since T: a duration ago (`15m`, `2h`, `7d`), an RFC 3339 time
    /// (`2026-11-29T08:00:00Z`), or seconds since the epoch.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// At most N rows (newest first; the authority caps it at 10000).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: u32,
    #[command(flatten)]
    pub conn: Conn,
}

/// This machine's time, seconds since the epoch (the CLI's edge, not domain code).
pub fn now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// `--since` as seconds since the epoch, relative to `now`.
pub fn parse_since(t: &str, now: i64) -> anyhow::Result<i64> {
    let t = t.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().context("--since: seconds out of range");
    }
    if let Ok(d) = castellan_core::parse_duration(t) {
        let secs = i64::try_from(d.as_secs()).context("--since: duration too long")?;
        return Ok(now.saturating_sub(secs));
    }
    match time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
        Ok(at) => Ok(at.unix_timestamp()),
        Err(_) => bail!("--since `{t}`: expected a duration (`15m`), an RFC 3339 time, or epoch seconds"),
    }
}

pub async fn run(args: DecisionsArgs) -> anyhow::Result<()> {
    let now = now();
    let mut query = vec![format!("limit={}", args.limit)];
    if let Some(p) = &args.principal {
        query.push(format!("principal={}", url_encode(p)));
    }
    if let Some(d) = &args.decision {
        query.push(format!("decision={d}"));
    }
    if let Some(t) = &args.since {
        query.push(format!("since={}", parse_since(t, now)?));
    }
    let admin = Admin::connect(&args.conn).await?;
    let v = admin
        .call(
            Method::GET,
            &format!("/decisions/{}?{}", url_encode(&args.service), query.join("&")),
            None,
        )
        .await?;
    // `--json` prints the rows themselves: one array, newest first.
    let rows = v.get("decisions").cloned().unwrap_or_else(|| json!([]));
    print(admin.json, &rows, |rows| {
        let rows = rows.as_array().map(Vec::as_slice).unwrap_or_default();
        out!(
            "{:<20} {:<18} {:<28} {:<14} {:<32} {:>7} POLICIES",
            "TIME",
            "RESULT",
            "PRINCIPAL",
            "ACTION",
            "RESOURCE",
            "VERSION"
        );
        for r in rows {
            let result = match (s(r, "decision"), r.get("reason").and_then(Value::as_str)) {
                ("deny", Some(reason)) => format!("deny ({reason})"),
                (d, _) => d.to_owned(),
            };
            let policies: Vec<&str> = r
                .get("policies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out!(
                "{:<20} {:<18} {:<28} {:<14} {:<32} {:>7} {}",
                rfc3339(r.get("time").and_then(Value::as_i64).unwrap_or(0)),
                result,
                s(r, "principal"),
                s(r, "action"),
                s(r, "resource"),
                r.get("policy_version")
                    .and_then(Value::as_i64)
                    .map_or_else(|| "-".to_owned(), |v| v.to_string()),
                policies.join(",")
            );
        }
        if rows.len() == args.limit as usize {
            out!("(showing the newest {}; --limit shows more)", args.limit);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_takes_durations_times_and_epoch_seconds() {
        let now = 1_800_000_000;
        assert_eq!(parse_since("15m", now).unwrap(), now - 900);
        assert_eq!(parse_since("1700000000", now).unwrap(), 1_700_000_000);
        assert_eq!(parse_since("2026-11-29T08:00:00Z", now).unwrap(), 1_795_939_200);
        assert_eq!(parse_since("2026-11-29T09:00:00+01:00", now).unwrap(), 1_795_939_200);
        for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "-5"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
