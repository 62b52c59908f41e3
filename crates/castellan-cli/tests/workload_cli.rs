//! The real `castellan` binary: `castellan workload register/list/delete`
//! (admin) and `castellan workload svid` (join token only) against a real
//! authority, the SVID inspected with the `openssl` command.
//!
//! Without `openssl` the openssl checks print a loud `SKIPPED:` line and the
//! rest runs, unless `CI` is set, when the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

mod common;

use common::{Proc, ADMIN_ID, ADMIN_SECRET, BIN};

const TD: &str = "example.org";
const ID: &str = "spiffe://example.org/payments/api";

/// The authority with a known admin and the trust domain `example.org`.
fn start(data_dir: &Path) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--trust-domain", TD, "--data-dir"])
        .arg(data_dir)
        .env("CASTELLAN_BOOTSTRAP_ADMIN_ID", ADMIN_ID)
        .env("CASTELLAN_BOOTSTRAP_ADMIN_SECRET", ADMIN_SECRET)
        .env_remove("CASTELLAN_MASTER_KEY")
        .env_remove("CASTELLAN_CONFIG");
    Proc::spawn(cmd)
}

/// Runs the CLI with admin credentials in the environment.
fn admin(url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--server", url])
        .env("CASTELLAN_CLIENT_ID", ADMIN_ID)
        .env("CASTELLAN_CLIENT_SECRET", ADMIN_SECRET)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs `castellan workload svid` as a workload does: no admin credentials,
/// the server from `CASTELLAN_SERVER`.
fn svid(url: &str, token: &str, out: &Path, json: bool) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["workload", "svid", "--join-token", token, "--out"])
        .arg(out)
        .env("CASTELLAN_SERVER", url)
        .env_remove("CASTELLAN_CLIENT_ID")
        .env_remove("CASTELLAN_CLIENT_SECRET")
        .env_remove("CASTELLAN_JOIN_TOKEN")
        .stdin(Stdio::null());
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok_json(o: &Output) -> Value {
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Fails with exit code 1 and an `error: ...` line on stderr holding every one of `needles`.
fn failed(o: &Output, needles: &[&str]) -> String {
    assert_eq!(o.status.code(), Some(1), "stdout: {} stderr: {}", stdout(o), stderr(o));
    let err = stderr(o);
    assert!(err.contains("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
    err
}

fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

/// Registers `ID` and returns the join token.
fn register(url: &str, extra: &[&str]) -> Value {
    let mut args = vec!["workload", "register", ID];
    args.extend_from_slice(extra);
    args.push("--json");
    ok_json(&admin(url, &args))
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Whether the `openssl` command runs; without it, a loud SKIPPED line (or a failure under CI).
fn have_openssl() -> bool {
    static HAVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAVE.get_or_init(find_openssl)
}

fn find_openssl() -> bool {
    if Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the openssl command is required under CI"
    );
    eprintln!("\n*** SKIPPED: the openssl command is not installed; the SVID was not inspected with openssl ***\n");
    false
}

/// Runs `openssl ARGS` in `dir`; returns stdout, asserting success.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(o.status.success(), "openssl {args:?}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// The lines following `header` that are indented deeper (one extension's value).
fn extension(text: &str, header: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| !l.trim_start().starts_with(header));
    let head = lines.next().unwrap_or_else(|| panic!("no {header:?} in {text}"));
    let indent = head.len() - head.trim_start().len();
    lines
        .take_while(|l| l.len() - l.trim_start().len() > indent)
        .map(|l| l.trim().to_owned())
        .collect()
}

/// What `openssl` says about the SVID in `dir`: one URI SAN (the ID), not a
/// CA, digitalSignature only, serverAuth + clientAuth, about an hour left,
/// chains to the bundle, and carries the public half of `svid_key.pem`.
fn inspect_with_openssl(dir: &Path) {
    let text = openssl(dir, &["x509", "-in", "svid.pem", "-noout", "-text"]);
    assert_eq!(text.matches("URI:").count(), 1, "{text}");
    assert_eq!(
        extension(&text, "X509v3 Subject Alternative Name"),
        [format!("URI:{ID}")]
    );
    assert_eq!(extension(&text, "X509v3 Basic Constraints"), ["CA:FALSE"]);
    assert_eq!(extension(&text, "X509v3 Key Usage"), ["Digital Signature"]);
    assert_eq!(
        extension(&text, "X509v3 Extended Key Usage"),
        ["TLS Web Server Authentication, TLS Web Client Authentication"]
    );
    // Valid for about an hour: still valid in 55 minutes, gone in 65.
    let live = |secs: &str| {
        Command::new("openssl")
            .args(["x509", "-in", "svid.pem", "-noout", "-checkend", secs])
            .current_dir(dir)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(live("3300"), "the SVID expires within 55 minutes");
    assert!(!live("3900"), "the SVID outlives 65 minutes");

    let verified = openssl(dir, &["verify", "-x509_strict", "-CAfile", "bundle.pem", "svid.pem"]);
    assert_eq!(verified.trim(), "svid.pem: OK");
    for purpose in ["sslclient", "sslserver"] {
        openssl(
            dir,
            &[
                "verify",
                "-x509_strict",
                "-purpose",
                purpose,
                "-CAfile",
                "bundle.pem",
                "svid.pem",
            ],
        );
    }

    openssl(dir, &["pkey", "-in", "svid_key.pem", "-noout"]);
    assert_eq!(
        openssl(dir, &["pkey", "-in", "svid_key.pem", "-pubout"]),
        openssl(dir, &["x509", "-in", "svid.pem", "-noout", "-pubkey"]),
        "svid_key.pem is not the key of svid.pem"
    );
}

/// The three files and nothing else (no temporaries left behind).
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

#[test]
fn register_fetch_inspect_reuse_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let auth = start(&tmp.path().join("data"));
    let url = auth.url.clone();

    // Register: a single-use join token living as long as --ttl.
    let before = now();
    let reg = register(&url, &["--ttl", "10m"]);
    assert_eq!(reg["spiffe_id"], ID);
    assert_eq!(reg["svid_ttl"], 3_600);
    let token = reg["join_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cjt_"), "{reg}");
    let expires = reg["join_token_expires_at"].as_i64().unwrap();
    assert!((before + 600..=now() + 600).contains(&expires), "{reg}");

    // Fetch into a directory that does not exist yet, with no admin credentials.
    let out = tmp.path().join("svid").join("payments");
    let fetched = svid(&url, &token, &out, true);
    let v = ok_json(&fetched);
    assert_eq!(v["spiffe_id"], ID);
    let not_after = v["not_after"].as_i64().unwrap();
    assert!((before + 3_500..=now() + 3_700).contains(&not_after), "{v}");
    let renew_at = v["renew_at"].as_i64().unwrap();
    assert!(renew_at > now() && renew_at < not_after, "{v}");
    assert_eq!(v["key"], out.join("svid_key.pem").display().to_string());
    // A line per step, on stderr.
    let progress = stderr(&fetched);
    for step in ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"] {
        assert!(progress.contains(step), "{step} missing from {progress}");
    }

    // Files: the three, the key owner-only, the directory created 0700.
    assert_eq!(files_in(&out), ["bundle.pem", "svid.pem", "svid_key.pem"]);
    let key_pem = std::fs::read_to_string(out.join("svid_key.pem")).unwrap();
    assert!(
        key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "not a PKCS#8 PEM key"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("svid.pem"))
            .unwrap()
            .matches("-----BEGIN CERTIFICATE-----")
            .count(),
        2,
        "svid.pem holds the leaf and its CA"
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&out.join("svid_key.pem")), 0o600);
        assert_eq!(mode(&out), 0o700);
        assert_eq!(mode(&out.join("svid.pem")) & 0o022, 0);
    }
    // The key is never printed, nor the join token echoed.
    let key_body: String = key_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    for secret in [key_body.as_str(), "PRIVATE KEY", token.as_str()] {
        assert!(
            !stdout(&fetched).contains(secret),
            "secret on stdout: {}",
            stdout(&fetched)
        );
        assert!(
            !stderr(&fetched).contains(secret),
            "secret on stderr: {}",
            stderr(&fetched)
        );
    }

    if have_openssl() {
        inspect_with_openssl(&out);
    }

    // The join token is single-use: a second try is refused and nothing is touched.
    let svid_before = std::fs::read(out.join("svid.pem")).unwrap();
    failed(
        &svid(&url, &token, &out, false),
        &["invalid_grant", "join token is invalid, expired or used"],
    );
    assert_eq!(std::fs::read(out.join("svid.pem")).unwrap(), svid_before);
    assert_eq!(std::fs::read_to_string(out.join("svid_key.pem")).unwrap(), key_pem);
    failed(&svid(&url, "cjt_never-issued", &out, false), &["invalid_grant"]);

    // Registering again gives a fresh token; fetching again replaces every file.
    let again = register(&url, &[]);
    assert_ne!(again["join_token"], token.as_str());
    let human = svid(&url, again["join_token"].as_str().unwrap(), &out, false);
    assert!(human.status.success(), "{}", stderr(&human));
    assert!(
        stdout(&human).contains(&format!("spiffe id:   {ID}")),
        "{}",
        stdout(&human)
    );
    assert!(stdout(&human).contains("expires:     "), "{}", stdout(&human));
    assert_ne!(std::fs::read_to_string(out.join("svid_key.pem")).unwrap(), key_pem);
    assert_eq!(files_in(&out), ["bundle.pem", "svid.pem", "svid_key.pem"]);
    #[cfg(unix)]
    assert_eq!(mode(&out.join("svid_key.pem")), 0o600);
    if have_openssl() {
        inspect_with_openssl(&out);
    }

    // IDs outside the trust domain, or not SPIFFE IDs at all, are refused.
    failed(
        &admin(&url, &["workload", "register", "spiffe://other.org/payments/api"]),
        &[
            "invalid_request",
            "`spiffe://other.org/payments/api` is outside the trust domain `example.org`",
        ],
    );
    failed(
        &admin(&url, &["workload", "register", "https://example.org/x"]),
        &["invalid spiffe id `https://example.org/x`"],
    );
    failed(
        &admin(&url, &["workload", "register", ID, "--ttl", "10 minutes"]),
        &["--ttl", "10 minutes"],
    );

    // List, delete, list.
    let listed = ok_json(&admin(&url, &["workload", "list", "--json"]));
    let ids: Vec<&str> = listed["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["spiffe_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ID]);
    let table = admin(&url, &["workload", "list"]);
    assert!(table.status.success(), "{}", stderr(&table));
    assert!(stdout(&table).starts_with("SPIFFE_ID"), "{}", stdout(&table));
    assert!(
        stdout(&table).lines().any(|l| l.starts_with(ID) && l.contains(" 1h ")),
        "{}",
        stdout(&table)
    );

    let unused = register(&url, &[]);
    let deleted = admin(&url, &["workload", "delete", ID]);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(
        stdout(&deleted).contains(&format!("deleted workload `{ID}`")),
        "{}",
        stdout(&deleted)
    );
    assert_eq!(
        ok_json(&admin(&url, &["workload", "list", "--json"]))["workloads"],
        serde_json::json!([])
    );
    failed(
        &admin(&url, &["workload", "delete", ID]),
        &["404", &format!("no workload `{ID}`")],
    );
    // A token of a deleted workload no longer works.
    failed(
        &svid(
            &url,
            unused["join_token"].as_str().unwrap(),
            &tmp.path().join("gone"),
            false,
        ),
        &["invalid_grant"],
    );
}

#[test]
fn an_unusable_out_dir_is_refused_before_the_token_is_spent() {
    let tmp = tempfile::tempdir().unwrap();
    let auth = start(&tmp.path().join("data"));
    let token = register(&auth.url, &[])["join_token"].as_str().unwrap().to_owned();

    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    failed(&svid(&auth.url, &token, &file, false), &["is not a directory"]);

    // The token still works.
    let out = tmp.path().join("out");
    let v = ok_json(&svid(&auth.url, &token, &out, true));
    assert_eq!(v["spiffe_id"], ID);
    assert_eq!(files_in(&out), ["bundle.pem", "svid.pem", "svid_key.pem"]);

    // No admin credentials are needed, and an unreachable authority is a precise error.
    failed(
        &svid("http://127.0.0.1:9", &token, &out, false),
        &["cannot reach the authority at http://127.0.0.1:9"],
    );
}
