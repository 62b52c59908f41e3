//! `castellan user ...`: people on a running authority, through
//! `/admin/v1/users`. Passwords come from stdin only and are never printed.

use crate::admin::{print, s, time, url_encode, Admin};
use crate::cli::UserCommand;
use anyhow::{anyhow, bail, Context};
use reqwest::Method;
use serde_json::{json, Value};

/// Read at most this much of stdin; the authority's own limit is far lower.
const MAX_STDIN_PASSWORD_BYTES: u64 = 64 * 1024;

pub async fn run(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            username,
            password_stdin,
            federated_subject,
            conn,
        } => {
            let mut body = json!({ "username": username });
            if let (Some(sub), Some(obj)) = (federated_subject, body.as_object_mut()) {
                obj.insert("federated_subject".to_owned(), json!(sub));
            }
            if password_stdin {
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("password".to_owned(), json!(password_from_stdin()?));
                }
            }
            let admin = Admin::connect(&conn).await?;
            let v = admin.call(Method::POST, "/users", Some(body)).await?;
            print(admin.json, &v, print_user)
        }
        UserCommand::List { conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin.call(Method::GET, "/users", None).await?;
            print(admin.json, &v, |v| {
                out!(
                    "{:<32} {:<24} {:<9} {:>11}",
                    "USERNAME",
                    "USER_ID",
                    "SUSPENDED",
                    "CREATED"
                );
                for u in v.get("users").and_then(Value::as_array).into_iter().flatten() {
                    out!(
                        "{:<32} {:<24} {:<9} {:>11}",
                        s(u, "username"),
                        s(u, "user_id"),
                        yes_no(u, "suspended"),
                        time(u, "created_at")
                    );
                }
            })
        }
        UserCommand::Show { username, conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin.call(Method::GET, &user_path(&username, "")?, None).await?;
            print(admin.json, &v, |v| {
                print_user(v);
                print_sessions(v);
            })
        }
        UserCommand::Delete { username, conn } => {
            let admin = Admin::connect(&conn).await?;
            admin.call(Method::DELETE, &user_path(&username, "")?, None).await?;
            print(admin.json, &json!({ "deleted": username }), |_| {
                out!("deleted user `{username}`; their sessions ended and their tokens are revoked");
            })
        }
        UserCommand::SetPassword {
            username,
            password_stdin: _,
            keep_sessions,
            conn,
        } => {
            let body = json!({ "password": password_from_stdin()?, "end_sessions": !keep_sessions });
            let admin = Admin::connect(&conn).await?;
            let v = admin
                .call(Method::POST, &user_path(&username, "/password")?, Some(body))
                .await?;
            print(admin.json, &v, |v| {
                if keep_sessions {
                    out!("password of `{username}` changed; sessions kept");
                } else {
                    out!("password of `{username}` changed; {}", ended(v));
                }
            })
        }
        UserCommand::Suspend { username, conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin
                .call(Method::POST, &user_path(&username, "/suspend")?, None)
                .await?;
            print(admin.json, &v, |v| {
                out!("suspended `{username}`; {}", ended(v));
            })
        }
        UserCommand::Resume { username, conn } => {
            let admin = Admin::connect(&conn).await?;
            let v = admin
                .call(Method::POST, &user_path(&username, "/resume")?, None)
                .await?;
            print(admin.json, &v, print_user)
        }
    }
}

/// `/users/{name}{rest}`, the name percent-encoded as one path segment.
/// `.` and `..` cannot be one: URL parsers resolve them (even encoded) as dot segments.
fn user_path(username: &str, rest: &str) -> anyhow::Result<String> {
    if matches!(username, "" | "." | "..") {
        bail!(
            "`{username}` cannot be sent as a path segment; name the user by its user id (see `castellan user list`)"
        );
    }
    Ok(format!("/users/{}{rest}", url_encode(username)))
}

/// Reads the whole of stdin as the password, minus one trailing newline.
fn password_from_stdin() -> anyhow::Result<String> {
    use std::io::{IsTerminal as _, Read as _};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading the password from stdin; end it with Ctrl-D");
    }
    let mut bytes = Vec::new();
    stdin
        .lock()
        .take(MAX_STDIN_PASSWORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .context("cannot read the password from stdin")?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_STDIN_PASSWORD_BYTES {
        bail!("the password on stdin is longer than {MAX_STDIN_PASSWORD_BYTES} bytes");
    }
    // The error would not show the bytes, but say nothing about them anyway.
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("the password on stdin is not UTF-8"))?;
    strip_one_newline(text)
}

/// Drops one trailing `\n` or `\r\n` (what `echo` and editors add); refuses an empty result.
fn strip_one_newline(mut text: String) -> anyhow::Result<String> {
    let len = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .map_or(text.len(), str::len);
    text.truncate(len);
    if text.is_empty() {
        bail!("the password on stdin is empty");
    }
    Ok(text)
}

fn yes_no(v: &Value, k: &str) -> &'static str {
    if v.get(k).and_then(Value::as_bool).unwrap_or(false) {
        "yes"
    } else {
        "no"
    }
}

/// "ended N session(s) (revocation event S)".
fn ended(v: &Value) -> String {
    let n = v.get("ended_sessions").and_then(Value::as_u64).unwrap_or(0);
    let sessions = if n == 1 { "session" } else { "sessions" };
    match v.get("revocation_seq").and_then(Value::as_i64) {
        Some(seq) => format!("ended {n} {sessions}; their tokens are revoked (event {seq})"),
        None => format!("ended {n} {sessions}"),
    }
}

fn print_user(u: &Value) {
    out!("username:    {}", s(u, "username"));
    out!("user_id:     {}", s(u, "user_id"));
    out!("suspended:   {}", yes_no(u, "suspended"));
    out!(
        "password:    {}",
        if yes_no(u, "has_password") == "yes" {
            "set"
        } else {
            "none"
        }
    );
    if let Some(issuer) = u.get("federated_issuer").and_then(Value::as_str) {
        out!("federated:   {issuer} {}", s(u, "federated_subject"));
    }
    out!("created:     {}", time(u, "created_at"));
}

fn print_sessions(u: &Value) {
    let sessions = u
        .get("sessions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if sessions.is_empty() {
        out!("sessions:    none");
        return;
    }
    out!("sessions:");
    out!(
        "  {:<24} {:<24} {:<20} {:>11} {:>11} {:>11}",
        "SID",
        "CLIENT_ID",
        "AUDIENCE",
        "AUTH_TIME",
        "LAST_USED",
        "EXPIRES"
    );
    for x in sessions {
        out!(
            "  {:<24} {:<24} {:<20} {:>11} {:>11} {:>11}",
            s(x, "sid"),
            s(x, "client_id"),
            s(x, "audience"),
            time(x, "auth_time"),
            time(x, "last_used_at"),
            time(x, "expires_at")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{strip_one_newline, user_path};

    #[test]
    fn one_trailing_newline_is_stripped() {
        assert_eq!(strip_one_newline("hunter2hunter2\n".into()).unwrap(), "hunter2hunter2");
        assert_eq!(
            strip_one_newline("hunter2hunter2\r\n".into()).unwrap(),
            "hunter2hunter2"
        );
        assert_eq!(strip_one_newline("pw\n\n".into()).unwrap(), "pw\n");
        assert_eq!(strip_one_newline("pw\r".into()).unwrap(), "pw\r");
        assert_eq!(strip_one_newline(" pw ".into()).unwrap(), " pw ");
    }

    #[test]
    fn empty_passwords_are_refused() {
        for empty in ["", "\n", "\r\n"] {
            assert!(strip_one_newline(empty.into()).is_err(), "{empty:?}");
        }
    }

    #[test]
    fn usernames_are_one_encoded_path_segment() {
        assert_eq!(
            user_path("a+b@x.io", "/suspend").unwrap(),
            "/users/a%2Bb%40x.io/suspend"
        );
        assert_eq!(user_path("../keys", "").unwrap(), "/users/..%2Fkeys");
        assert_eq!(user_path("a.b", "").unwrap(), "/users/a.b");
        for dots in ["", ".", ".."] {
            assert!(user_path(dots, "").is_err(), "{dots:?}");
        }
    }
}
