#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap
//! The admin console end to end: the real `castellan` binary with a config
//! naming an admin, people created with the CLI, one of them signed in to an
//! app; then Debian's Chromium, driven by Playwright
//! (`tests/browser/console.mjs`), signs the admin in, rotates the keys,
//! suspends the person, rolls a policy back, finds the three actions in the
//! audit trail (and the chain intact) and visits every page; this test
//! then checks each change through the admin API and the CLI. A CSRF check
//! runs without the browser.
//!
//! Needs `/usr/bin/chromium`, Node.js 20 or later and npm (`npm ci` runs in
//! `tests/browser` when `node_modules` is missing). Without them the browser
//! part prints a loud `SKIPPED:` line and passes, unless `CI` is set, when it
//! fails. Screenshots are kept under `<target>/test-artifacts/console/`.

mod common;

use castellan_testkit::browser::{pkce, sign_in, AuthRequest, Browser};
use common::{Authority, BIN};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const ADMIN: &str = "root-admin";
const PERSON: &str = "dave";
const OUTSIDER: &str = "erin";
const PASSWORD: &str = "correct horse battery staple";
const APP_REDIRECT: &str = "http://127.0.0.1:9/callback";
const BROWSER_DEADLINE: Duration = Duration::from_secs(240);
const V1: &str = "@id(\"readers\")\npermit(principal, action == Action::\"GET\", resource);\n";
const V2: &str = "@id(\"readers\")\npermit(principal, action == Action::\"GET\", resource);\n\n@id(\"no-admin\")\nforbid(principal, action, resource)\nwhen { resource.path like \"/admin/*\" };\n";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("browser")
}

/// `<target>/test-artifacts/console`, emptied.
fn artifacts_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
        Some(t) => workspace.join(t),
        None => workspace.join("target"),
    };
    let dir = target.join("test-artifacts").join("console");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Chromium, Node.js 20+ and `playwright-core`, or why not.
fn browser_tooling() -> Result<(), String> {
    if !Path::new(CHROMIUM).is_file() {
        return Err(format!("{CHROMIUM} is missing (apt-get install -y chromium)"));
    }
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node cannot be run: {e}"))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        return Err(format!("playwright-core needs Node.js 20 or later, found {version:?}"));
    }
    let dir = browser_dir();
    if !dir.join("node_modules/playwright-core/package.json").is_file() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("npm cannot be run: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`npm ci` failed: {}",
                tail(&String::from_utf8_lossy(&out.stderr))
            ));
        }
    }
    Ok(())
}

/// The authority with `[console] admins = [ADMIN]`.
fn start(tmp: &Path) -> Authority {
    let config = tmp.join("castellan.toml");
    std::fs::write(&config, format!("[console]\nadmins = [\"{ADMIN}\"]\n")).unwrap();
    Authority::start_with(
        &tmp.join("data"),
        "127.0.0.1:0",
        &["--config", config.to_str().unwrap()],
    )
}

/// `castellan user create NAME --password-stdin --json`.
fn create_user(auth: &Authority, name: &str) -> String {
    let mut child = Command::new(BIN)
        .args([
            "user",
            "create",
            name,
            "--password-stdin",
            "--json",
            "--server",
            auth.url(),
        ])
        .env("CASTELLAN_CLIENT_ID", common::ADMIN_ID)
        .env("CASTELLAN_CLIENT_SECRET", common::ADMIN_SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["user_id"].as_str().unwrap().to_owned()
}

fn cli_json(auth: &Authority, args: &[&str]) -> Value {
    let out = auth.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The person signs in to an app: (refresh token, access token).
async fn person_signs_in(auth: &Authority, client_id: &str) -> (String, String) {
    let p = pkce();
    let req = AuthRequest {
        issuer: auth.url(),
        client_id,
        redirect_uri: APP_REDIRECT,
        scope: "openid",
        challenge: &p.challenge,
        state: "s",
        nonce: "n",
    };
    let back = sign_in(&req, PERSON, PASSWORD).await;
    assert_eq!(back.status, 303, "{}", back.body);
    let code = back.redirect_param("code").unwrap();
    let v: Value = auth
        .http
        .post(format!("{}/oauth2/token", auth.url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code.as_str()),
            ("code_verifier", p.verifier.as_str()),
            ("redirect_uri", APP_REDIRECT),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        v["refresh_token"].as_str().unwrap().to_owned(),
        v["access_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(auth: &Authority, client_id: &str, token: &str) -> (u16, Value) {
    let r = auth
        .http
        .post(format!("{}/oauth2/token", auth.url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", token),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn introspect(auth: &Authority, token: &str) -> Value {
    auth.http
        .post(format!("{}/oauth2/introspect", auth.url()))
        .basic_auth(common::ADMIN_ID, Some(common::ADMIN_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn keys(auth: &Authority) -> Vec<(String, String)> {
    auth.admin(Method::GET, "/keys", None).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn kid_in(keys: &[(String, String)], state: &str) -> String {
    keys.iter().find(|(_, s)| s == state).unwrap().0.clone()
}

/// `node console.mjs ...` with a deadline: (success, stdout, stderr).
fn run_browser(url: &str, shots: &Path, admin_id: &str) -> (bool, String, String) {
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut child = Command::new("node")
        .arg("console.mjs")
        .args([url, ADMIN, PASSWORD, PERSON, OUTSIDER])
        .arg(shots)
        .arg(admin_id)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn node");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > BROWSER_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let mut stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    if status.is_none() {
        stderr.push_str(&format!("\n(killed: no exit within {BROWSER_DEADLINE:?})"));
    }
    (status.is_some_and(|s| s.success()), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_rotates_keys_suspends_a_person_and_rolls_back_a_policy_in_chromium() {
    if let Err(reason) = tokio::task::spawn_blocking(browser_tooling).await.unwrap() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the console browser test cannot run and CI is set: {reason}"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: an_admin_rotates_keys_suspends_a_person_and_rolls_back_a_policy_in_chromium: {reason}"
        );
        return;
    }
    let shots = artifacts_dir();
    let tmp = tempfile::tempdir().unwrap();
    let auth = start(tmp.path());
    let url = auth.url().to_owned();
    let admin_id = create_user(&auth, ADMIN);
    let person_id = create_user(&auth, PERSON);
    create_user(&auth, OUTSIDER);

    // The person holds two sessions at an app.
    let app = auth
        .admin(
            Method::POST,
            "/clients",
            Some(
                json!({"name": "Orders web", "audiences": ["orders"], "public": true, "redirect_uris": [APP_REDIRECT]}),
            ),
        )
        .await;
    let app_id = app["client_id"].as_str().unwrap().to_owned();
    let (refresh_token, access_token) = person_signs_in(&auth, &app_id).await;
    person_signs_in(&auth, &app_id).await;
    assert_eq!(introspect(&auth, &access_token).await["active"], true);

    // Two policy versions for `orders`.
    for (name, text) in [("v1.cedar", V1), ("v2.cedar", V2)] {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        cli_json(
            &auth,
            &[
                "policy",
                "push",
                "orders",
                "--policies",
                path.to_str().unwrap(),
                "--json",
            ],
        );
    }
    let before = keys(&auth).await;

    let (ok, stdout, stderr) = {
        let (url, shots, admin_id) = (url.clone(), shots.clone(), admin_id.clone());
        tokio::task::spawn_blocking(move || run_browser(&url, &shots, &admin_id))
            .await
            .unwrap()
    };
    assert!(
        ok,
        "the browser run failed (screenshots in {}).\n--- console.mjs stderr ---\n{}\n--- stdout ---\n{stdout}",
        shots.display(),
        stderr
            .lines()
            .filter(|l| l.starts_with("console.mjs:"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap();

    // Keys: what the browser saw is what the authority holds.
    let after = keys(&auth).await;
    assert_eq!(seen["retired"], kid_in(&before, "active").as_str());
    assert_eq!(seen["active"], kid_in(&before, "next").as_str());
    assert_eq!(kid_in(&after, "active"), kid_in(&before, "next"));
    assert!(after
        .iter()
        .any(|(k, s)| *k == kid_in(&before, "active") && s == "retired"));

    // The person: suspended, sessions ended, refresh refused, access token revoked.
    assert_eq!(seen["sessions_before"], 2);
    let shown = auth.admin(Method::GET, &format!("/users/{person_id}"), None).await;
    assert_eq!(shown["suspended"], true, "{shown}");
    assert_eq!(shown["sessions"], json!([]), "{shown}");
    let (status, v) = refresh(&auth, &app_id, &refresh_token).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
    assert_eq!(introspect(&auth, &access_token).await["active"], false);

    // The audit trail the browser read: the admin's three actions.
    let actions = seen["audit_actions"].as_array().unwrap();
    for action in ["key.rotate", "user.suspend", "policy.rollback"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }

    // The policy: version 3 is version 1 again.
    let list = cli_json(&auth, &["policy", "list", "orders", "--json"]);
    let versions = list["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3, "{list}");
    let latest = cli_json(&auth, &["policy", "show", "orders", "--json"]);
    assert_eq!(latest["version"], 3);
    assert_eq!(latest["policies"], V1);
    assert_eq!(latest["note"], "rollback to 1");

    for shot in [
        "01-login.png",
        "02-overview.png",
        "03-keys.png",
        "05-keys-rotated.png",
        "09-person-suspended.png",
        "13-policy-rolled-back.png",
        "14-audit-filtered.png",
        "15-audit-chain-verified.png",
    ] {
        let len = std::fs::metadata(shots.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "screenshot {shot} missing or empty in {}", shots.display());
    }
    let _ = writeln!(std::io::stderr(), "console screenshots: {}", shots.display());
}

/// CSRF without a browser: an action without the session's token, or with
/// a wrong one, is refused with 403 and changes nothing.
#[tokio::test]
async fn console_actions_without_the_csrf_token_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let auth = start(tmp.path());
    let url = auth.url().to_owned();
    create_user(&auth, ADMIN);
    let mut b = Browser::new();
    let login = b.get(&format!("{url}/admin/login")).await;
    let page = b.get(login.location.as_deref().unwrap()).await;
    let form = page.login_form();
    let back = b.submit_login(&form, ADMIN, PASSWORD).await;
    let done = b.get(back.location.as_deref().unwrap()).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let keys_page = b.get(&format!("{url}/admin/keys")).await;
    assert_eq!(keys_page.status, 200);
    let before = keys(&auth).await;
    let rotate = format!("{url}/admin/keys/rotate");
    for fields in [
        vec![("confirm", "yes"), ("emergency", "yes")],
        vec![("confirm", "yes"), ("emergency", "yes"), ("csrf", "not-the-token")],
    ] {
        let p = b.post_form(&rotate, &fields).await;
        assert_eq!(p.status, 403, "{fields:?}: {}", p.body);
    }
    assert_eq!(keys(&auth).await, before, "nothing changed");
    let suspend = format!("{url}/admin/people/{ADMIN}/suspend");
    assert_eq!(b.post_form(&suspend, &[("confirm", "yes")]).await.status, 403);
    let shown = auth.admin(Method::GET, &format!("/users/{ADMIN}"), None).await;
    assert_eq!(shown["suspended"], false);
}
