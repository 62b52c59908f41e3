//! Secrets never reach a log line: the authority and a gate run with debug
//! logging (JSON) while every secret-bearing path is exercised — admin and
//! client secrets (right and wrong), issued and introspected tokens, a
//! rotated secret, a person's password, revocation, the gate checking a
//! token — and then the whole log is searched for each secret.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

mod common;

use common::{client_credentials, echo, Proc, ADMIN_ID, ADMIN_SECRET, BIN};
use serde_json::{json, Value};
use std::process::{Command, Stdio};

/// 32 bytes, base64: the master key the authority runs with.
const MASTER_KEY: &str = "bWFzdGVyIGtleSBuZXZlciB0byBiZSBsb2dnZWQhISE=";
const PASSWORD: &str = "correct horse battery staple 42";

/// Starts a process with debug JSON logs to `log`; its first stdout line is `listening on URL`.
fn spawn_logging(mut cmd: Command, log: &std::path::Path) -> Proc {
    cmd.env("RUST_LOG", "debug")
        .arg("--log-format")
        .arg("json")
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no listening line; see {}", log.display()))
        .to_owned();
    Proc { child, url }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_token_or_key_reaches_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (auth_log, gate_log) = (dir.path().join("authority.log"), dir.path().join("gate.log"));
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("CASTELLAN_MASTER_KEY", MASTER_KEY)
        .env("CASTELLAN_BOOTSTRAP_ADMIN_ID", ADMIN_ID)
        .env("CASTELLAN_BOOTSTRAP_ADMIN_SECRET", ADMIN_SECRET);
    let mut authority = spawn_logging(cmd, &auth_log);
    let url = authority.url.clone();
    let http = castellan_testkit::http_client();

    let admin_token = |http: reqwest::Client, url: String| async move {
        let (status, v) = client_credentials(
            &http,
            &url,
            ADMIN_ID,
            ADMIN_SECRET,
            &[("scope", "castellan.admin"), ("audience", url.as_str())],
        )
        .await;
        assert_eq!(status, 200, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    };
    let admin = admin_token(http.clone(), url.clone()).await;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{url}/admin/v1{path}"))
            .bearer_auth(&admin);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // A client, its secret rotated; tokens with the right and a wrong secret.
    let (status, client) = call(
        reqwest::Method::POST,
        "/clients",
        Some(json!({"name": "caller", "audiences": ["orders"]})),
    )
    .await;
    assert_eq!(status, 201, "{client}");
    let id = client["client_id"].as_str().unwrap().to_owned();
    let first_secret = client["client_secret"].as_str().unwrap().to_owned();
    let (status, rotated) = call(reqwest::Method::POST, &format!("/clients/{id}/rotate-secret"), None).await;
    assert_eq!(status, 200, "{rotated}");
    let secret = rotated["client_secret"].as_str().unwrap().to_owned();
    let (status, _) = client_credentials(&http, &url, &id, &first_secret, &[("audience", "orders")]).await;
    assert_eq!(status, 401, "the old secret is refused");
    let (status, t) = client_credentials(&http, &url, &id, &secret, &[("audience", "orders")]).await;
    assert_eq!(status, 200, "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();
    let r = http
        .post(format!("{url}/oauth2/introspect"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A person with a password; a password change.
    let (status, v) = call(
        reqwest::Method::POST,
        "/users",
        Some(json!({"username": "alice", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{v}");

    // A gate checks the token (and a forged one), then the session is revoked.
    let upstream = echo().await;
    let mut g = Command::new(BIN);
    g.args([
        "gate",
        "--listen",
        "127.0.0.1:0",
        "--authority",
        &url,
        "--audience",
        "orders",
    ])
    .args(["--upstream", &upstream.url]);
    let mut gate = spawn_logging(g, &gate_log);
    common::within(std::time::Duration::from_secs(10), || {
        let (http, u) = (http.clone(), format!("{}/.castellan/ready", gate.url));
        async move { http.get(u).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    for bearer in [token.clone(), format!("{token}x")] {
        http.get(format!("{}/orders", gate.url))
            .bearer_auth(&bearer)
            .send()
            .await
            .unwrap();
    }
    let sid = castellan_jose::decode_unverified_claims(&token).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(reqwest::Method::POST, &format!("/sessions/{sid}/revoke"), None).await;
    assert!(status < 300);
    std::thread::sleep(std::time::Duration::from_millis(300));
    gate.kill9();
    authority.kill9();

    let logs = format!(
        "{}\n{}",
        std::fs::read_to_string(&auth_log).unwrap(),
        std::fs::read_to_string(&gate_log).unwrap()
    );
    assert!(
        logs.lines().count() > 20,
        "debug logging was on: {} lines",
        logs.lines().count()
    );
    // The lines about these requests are there (the search below is not vacuous).
    assert!(logs.contains(&id), "the client's id is logged, its secrets are not");
    assert!(logs.contains(&sid), "the revoked session is logged");
    let signature = token.rsplit('.').next().unwrap();
    for (what, secret) in [
        ("the admin secret", ADMIN_SECRET),
        ("a client secret", first_secret.as_str()),
        ("a rotated client secret", secret.as_str()),
        ("an access token", token.as_str()),
        ("an access token's signature", signature),
        ("the admin's access token", admin.as_str()),
        ("a password", PASSWORD),
        ("the master key", MASTER_KEY),
    ] {
        assert!(!logs.contains(secret), "{what} is in the logs");
    }
}
