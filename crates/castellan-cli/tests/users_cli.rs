//! The real `castellan` binary: `castellan user ...` and public clients
//! (`client create --public --redirect-uri`) against a real authority.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use serde_json::Value;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};

mod common;

use common::{Authority, ADMIN_ID, ADMIN_SECRET, BIN};

const PASSWORD: &str = "correct-Horse-battery-staple-7Q";

fn start() -> (tempfile::TempDir, Authority) {
    let dir = tempfile::tempdir().unwrap();
    let auth = Authority::start(&dir.path().join("data"), "127.0.0.1:0");
    (dir, auth)
}

/// Runs the admin CLI with `stdin` as its standard input (closed when `None`).
fn cli(auth: &Authority, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--server", auth.url()])
        .env("CASTELLAN_CLIENT_ID", ADMIN_ID)
        .env("CASTELLAN_CLIENT_SECRET", ADMIN_SECRET)
        .env_remove("CASTELLAN_SERVER")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        // Dropping the handle closes stdin: the CLI reads to end of file.
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Succeeds with JSON on stdout.
fn ok_json(o: &Output) -> Value {
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Fails with exit code 1 and an `error: ...` line on stderr holding every one of `needles`.
fn failed(o: &Output, needles: &[&str]) -> String {
    assert_eq!(o.status.code(), Some(1), "stdout: {} stderr: {}", stdout(o), stderr(o));
    let err = stderr(o);
    assert!(err.starts_with("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
    err
}

fn no_password_in(outputs: &[&Output], password: &str) {
    for o in outputs {
        assert!(!stdout(o).contains(password), "password on stdout: {}", stdout(o));
        assert!(!stderr(o).contains(password), "password on stderr: {}", stderr(o));
    }
}

#[test]
fn user_lifecycle_through_the_cli() {
    let (_dir, auth) = start();

    let created = cli(
        &auth,
        &["user", "create", "Alice", "--password-stdin", "--json"],
        Some(&format!("{PASSWORD}\n")),
    );
    let v = ok_json(&created);
    assert_eq!(v["username"], "alice");
    assert_eq!(v["has_password"], true);
    assert_eq!(v["suspended"], false);
    let user_id = v["user_id"].as_str().unwrap().to_owned();
    assert!(user_id.starts_with("u-"), "{user_id}");

    let listed = cli(&auth, &["user", "list", "--json"], None);
    let users = ok_json(&listed)["users"].as_array().unwrap().clone();
    assert!(
        users
            .iter()
            .any(|u| u["user_id"] == user_id.as_str() && u["username"] == "alice"),
        "{users:?}"
    );
    let table = cli(&auth, &["user", "list"], None);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.starts_with("USERNAME"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("alice "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(&user_id) && row.contains(" no "), "{row}");

    let shown = cli(&auth, &["user", "show", "alice", "--json"], None);
    let v = ok_json(&shown);
    assert_eq!(v["user_id"], user_id.as_str());
    assert_eq!(v["sessions"], serde_json::json!([]));
    // By user id as well; the human form says there are no sessions.
    let human = cli(&auth, &["user", "show", &user_id], None);
    assert!(human.status.success(), "{}", stderr(&human));
    assert!(stdout(&human).contains("username:    alice"), "{}", stdout(&human));
    assert!(stdout(&human).contains("sessions:    none"), "{}", stdout(&human));

    // The new password ends every session: a subject revocation is recorded.
    let new_password = "a-Second-password-9Z";
    let changed = cli(
        &auth,
        &["user", "set-password", "alice", "--password-stdin", "--json"],
        Some(new_password),
    );
    let v = ok_json(&changed);
    assert_eq!(v["ended_sessions"], 0);
    assert!(v["revocation_seq"].as_i64().is_some(), "{v}");
    let kept = cli(
        &auth,
        &["user", "set-password", "alice", "--password-stdin", "--keep-sessions"],
        Some(&format!("{new_password}\r\n")),
    );
    assert!(kept.status.success(), "{}", stderr(&kept));
    assert!(stdout(&kept).contains("sessions kept"), "{}", stdout(&kept));

    let suspended = cli(&auth, &["user", "suspend", "alice", "--json"], None);
    let v = ok_json(&suspended);
    assert_eq!(v["ended_sessions"], 0);
    assert!(v["revocation_seq"].as_i64().is_some(), "{v}");
    let v = ok_json(&cli(&auth, &["user", "show", "alice", "--json"], None));
    assert_eq!(v["suspended"], true);
    let human = cli(&auth, &["user", "show", "alice"], None);
    assert!(stdout(&human).contains("suspended:   yes"), "{}", stdout(&human));

    let resumed = cli(&auth, &["user", "resume", "alice", "--json"], None);
    let v = ok_json(&resumed);
    assert_eq!(v["suspended"], false);
    assert_eq!(v["user_id"], user_id.as_str());

    let deleted = cli(&auth, &["user", "delete", "alice"], None);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(
        stdout(&deleted).contains("deleted user `alice`"),
        "{}",
        stdout(&deleted)
    );
    let gone = cli(&auth, &["user", "show", "alice"], None);
    failed(&gone, &["404", "not_found", "no user `alice`"]);
    assert!(stdout(&gone).is_empty(), "{}", stdout(&gone));
    failed(&cli(&auth, &["user", "delete", "alice"], None), &["404", "not_found"]);

    no_password_in(
        &[
            &created, &listed, &table, &shown, &human, &suspended, &resumed, &deleted, &gone,
        ],
        PASSWORD,
    );
    no_password_in(&[&changed, &kept], new_password);
}

#[test]
fn duplicate_user_is_a_conflict() {
    let (_dir, auth) = start();
    // No password flag: a federated-only person.
    let v = ok_json(&cli(&auth, &["user", "create", "bob", "--json"], None));
    assert_eq!(v["has_password"], false);
    let again = cli(&auth, &["user", "create", "bob", "--password-stdin"], Some(PASSWORD));
    failed(&again, &["409", "conflict", "user `bob` exists"]);
    assert!(stdout(&again).is_empty(), "{}", stdout(&again));
    no_password_in(&[&again], PASSWORD);
    // Case-insensitive names: `Bob` is the same person.
    failed(&cli(&auth, &["user", "create", "Bob"], None), &["409", "conflict"]);
}

#[test]
fn bad_passwords_are_refused_without_echo() {
    let (_dir, auth) = start();
    for empty in ["", "\n", "\r\n"] {
        let o = cli(&auth, &["user", "create", "carol", "--password-stdin"], Some(empty));
        failed(&o, &["the password on stdin is empty"]);
    }
    // Nothing was created.
    failed(&cli(&auth, &["user", "show", "carol"], None), &["404", "not_found"]);

    ok_json(&cli(
        &auth,
        &["user", "create", "carol", "--password-stdin", "--json"],
        Some(PASSWORD),
    ));
    failed(
        &cli(
            &auth,
            &["user", "set-password", "carol", "--password-stdin"],
            Some("\n"),
        ),
        &["the password on stdin is empty"],
    );
    // The only password source is stdin: without the flag, clap refuses (usage error, exit 2).
    let no_flag = cli(&auth, &["user", "set-password", "carol"], None);
    assert_eq!(no_flag.status.code(), Some(2), "{}", stderr(&no_flag));
    assert!(stderr(&no_flag).contains("--password-stdin"), "{}", stderr(&no_flag));

    // The authority's own rule (too short) comes back precisely, without the password.
    let short = "Ab1-xyz";
    let o = cli(
        &auth,
        &["user", "set-password", "carol", "--password-stdin"],
        Some(short),
    );
    failed(&o, &["400", "invalid_request", "password must be"]);
    no_password_in(&[&o], short);
}

#[test]
fn public_client_gets_no_secret() {
    let (_dir, auth) = start();
    let o = cli(
        &auth,
        &[
            "client",
            "create",
            "web",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
            "--audience",
            "svc",
            "--json",
        ],
        None,
    );
    let v = ok_json(&o);
    assert_eq!(v["public"], true);
    assert_eq!(v["auth_method"], "none");
    assert_eq!(v["redirect_uris"], serde_json::json!(["http://127.0.0.1:9/cb"]));
    assert_eq!(v["audiences"], serde_json::json!(["svc"]));
    assert!(v.get("client_secret").is_none(), "{v}");
    assert!(!stdout(&o).contains("client_secret"), "{}", stdout(&o));

    // Several values after one flag, the flag repeated, and post-logout URIs; human output.
    let o = cli(
        &auth,
        &[
            "client",
            "create",
            "app",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1:9/a",
            "https://app.example/cb",
            "--redirect-uri",
            "com.example.app:/cb",
            "--post-logout-redirect-uri",
            "https://app.example/bye",
            "--audience",
            "svc",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("PKCE"), "{text}");
    assert!(text.contains("auth method: none"), "{text}");
    assert!(!text.contains("secret:"), "{text}");
    assert!(
        text.contains("redirects:   http://127.0.0.1:9/a https://app.example/cb com.example.app:/cb"),
        "{text}"
    );
    assert!(text.contains("logout to:   https://app.example/bye"), "{text}");
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("client_id:"))
        .unwrap()
        .trim()
        .to_owned();
    let v = ok_json(&cli(&auth, &["client", "show", &id, "--json"], None));
    assert_eq!(v["public"], true);
    assert_eq!(
        v["post_logout_redirect_uris"],
        serde_json::json!(["https://app.example/bye"])
    );

    // A confidential client with a redirect URI still gets its secret, once.
    let v = ok_json(&cli(
        &auth,
        &[
            "client",
            "create",
            "srv",
            "--redirect-uri",
            "https://srv.example/cb",
            "--audience",
            "svc",
            "--json",
        ],
        None,
    ));
    assert_eq!(v["public"], false);
    assert_eq!(v["auth_method"], "client_secret");
    assert!(v["client_secret"].as_str().is_some_and(|s| s.len() >= 43), "{v}");
}

#[test]
fn bad_public_clients_are_refused() {
    let (_dir, auth) = start();
    let o = cli(
        &auth,
        &["client", "create", "web", "--public", "--audience", "svc", "--json"],
        None,
    );
    failed(
        &o,
        &[
            "400",
            "invalid_request",
            "a public client needs at least one redirect URI",
        ],
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    let o = cli(
        &auth,
        &[
            "client",
            "create",
            "web",
            "--public",
            "--redirect-uri",
            "http://evil.example/cb",
            "--audience",
            "svc",
        ],
        None,
    );
    failed(
        &o,
        &[
            "400",
            "invalid_request",
            "redirect URI `http://evil.example/cb` is not acceptable",
        ],
    );
    // Nothing was registered.
    let v = ok_json(&cli(&auth, &["client", "list", "--json"], None));
    assert!(
        v["clients"].as_array().unwrap().iter().all(|c| c["name"] != "web"),
        "{v}"
    );
}
