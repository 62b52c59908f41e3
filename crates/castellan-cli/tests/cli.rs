//! The real `castellan` binary: first start, the admin CLI, restart
//! persistence, and refusal of bad configuration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;

use common::{Proc, BIN};

/// The authority with its bootstrap credentials in a file, as a newcomer runs it.
struct Server {
    proc: Proc,
    url: String,
    data_dir: PathBuf,
}

impl Server {
    fn start(data_dir: &Path, listen: &str, envs: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .env_remove("CASTELLAN_MASTER_KEY")
            .env_remove("CASTELLAN_BOOTSTRAP_ADMIN_ID")
            .env_remove("CASTELLAN_BOOTSTRAP_ADMIN_SECRET");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let proc = Proc::spawn(cmd);
        Self {
            url: proc.url.clone(),
            proc,
            data_dir: data_dir.to_owned(),
        }
    }

    fn port(&self) -> String {
        self.proc.port()
    }

    fn kill9(&mut self) {
        self.proc.kill9();
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .args(["--server", &self.url, "--credentials"])
            .arg(self.data_dir.join("bootstrap-admin.json"))
            .env_remove("CASTELLAN_CLIENT_ID")
            .output()
            .unwrap()
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn http() -> reqwest::Client {
    castellan_testkit::http_client()
}

async fn token(url: &str, id: &str, secret: &str) -> (u16, Value) {
    let r = http()
        .post(format!("{url}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn introspect(url: &str, id: &str, secret: &str, token: &str) -> Value {
    http()
        .post(format!("{url}/oauth2/introspect"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn kids(url: &str) -> Vec<String> {
    let v: Value = http()
        .get(format!("{url}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn first_start_writes_private_bootstrap_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, "127.0.0.1:0", &[]);
    let boot: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("bootstrap-admin.json")).unwrap()).unwrap();
    let obj = boot.as_object().unwrap();
    assert_eq!(obj.len(), 2);
    let secret = obj["client_secret"].as_str().unwrap();
    assert!(secret.len() >= 43, "256-bit secret");
    #[cfg(unix)]
    {
        assert_eq!(mode(&data.join("bootstrap-admin.json")), 0o600);
        assert_eq!(mode(&data.join("master.key")), 0o600);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("castellan.db")), 0o600);
        assert_eq!(mode(&data.join("castellan.db-wal")), 0o600);
    }
    assert!(data.join("castellan.db").exists());
    let meta: Value = http()
        .get(format!("{}/.well-known/openid-configuration", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["issuer"],
        server.url.as_str(),
        "issuer defaults to http:// + listen address"
    );
    // No private key material is stored in clear.
    let db = std::fs::read(data.join("castellan.db")).unwrap();
    let wal = std::fs::read(data.join("castellan.db-wal")).unwrap_or_default();
    for blob in [&db, &wal] {
        assert!(
            !blob.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "client secret stored in clear"
        );
        assert!(
            !blob.windows(5).any(|w| w == b"\"d\":\"" as &[u8]),
            "private JWK in clear"
        );
    }
}

#[tokio::test]
async fn admin_cli_manages_clients_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"), "127.0.0.1:0", &[]);
    let created = server.cli_json(&[
        "client",
        "create",
        "orders-caller",
        "--audience",
        "orders",
        "--scope",
        "read",
        "write",
        "--access-token-ttl",
        "2m",
    ]);
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(created["audiences"], serde_json::json!(["orders"]));
    assert_eq!(created["access_token_ttl"], "2m");
    let (status, tok) = token(&server.url, &id, &secret).await;
    assert_eq!(status, 200);
    assert_eq!(tok["expires_in"], 120);
    let listed = server.cli_json(&["client", "list"]);
    assert_eq!(listed["clients"].as_array().unwrap().len(), 2);
    let shown = server.cli_json(&["client", "show", &id]);
    assert!(shown.get("client_secret").is_none());
    let human = server.cli(&["client", "show", &id]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("orders-caller"));
    let rotated = server.cli_json(&["client", "rotate-secret", &id]);
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_eq!(token(&server.url, &id, &secret).await.0, 401);
    assert_eq!(token(&server.url, &id, new_secret).await.0, 200);

    let keys = server.cli_json(&["keys", "list"]);
    let states: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["active", "next"]);
    let before = kids(&server.url).await;
    let rotated = server.cli_json(&["keys", "rotate"]);
    let active = rotated["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "active")
        .unwrap();
    assert_eq!(
        active["kid"],
        before[1].as_str(),
        "the published next key became active"
    );
    let emergency = server.cli_json(&["keys", "rotate", "--emergency"]);
    let withdrawn = emergency["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "withdrawn")
        .unwrap();
    assert_eq!(withdrawn["kid"], before[1].as_str());
    assert!(!kids(&server.url).await.contains(&before[1]));

    let deleted = server.cli(&["client", "delete", &id]);
    assert!(deleted.status.success());
    assert_eq!(token(&server.url, &id, new_secret).await.0, 401);
    // Errors are reported, not panicked.
    let missing = server.cli(&["client", "show", "nobody"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not_found"));
    let bad_ttl = server.cli(&["client", "create", "x", "--audience", "a", "--access-token-ttl", "soon"]);
    assert!(!bad_ttl.status.success());
    let no_creds = Command::new(BIN)
        .args(["keys", "list", "--server", &server.url])
        .env_remove("CASTELLAN_CLIENT_ID")
        .output()
        .unwrap();
    assert!(!no_creds.status.success());
    assert!(String::from_utf8_lossy(&no_creds.stderr).contains("no credentials"));
}

#[tokio::test]
async fn everything_survives_a_kill_9_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut server = Server::start(&data, "127.0.0.1:0", &[]);
    let created = server.cli_json(&["client", "create", "svc", "--audience", "orders"]);
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let (_, kept) = token(&server.url, &id, &secret).await;
    let kept = kept["access_token"].as_str().unwrap().to_owned();
    let (_, revoked) = token(&server.url, &id, &secret).await;
    let revoked = revoked["access_token"].as_str().unwrap().to_owned();
    let r = http()
        .post(format!("{}/oauth2/revoke", server.url))
        .basic_auth(&id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={revoked}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let kids_before = kids(&server.url).await;
    let port = server.port();
    server.kill9();
    let server = Server::start(&data, &format!("127.0.0.1:{port}"), &[]);
    assert_eq!(kids(&server.url).await, kids_before, "same keys after restart");
    assert_eq!(token(&server.url, &id, &secret).await.0, 200, "client still works");
    assert_eq!(introspect(&server.url, &id, &secret, &kept).await["active"], true);
    assert_eq!(
        introspect(&server.url, &id, &secret, &revoked).await["active"],
        false,
        "revocation survived"
    );
    let boot: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("bootstrap-admin.json")).unwrap()).unwrap();
    assert!(boot["client_id"].is_string());
}

#[tokio::test]
async fn bootstrap_admin_and_master_key_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let master = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let secret = "env-admin-secret-0123456789-abcdefghijklmnop";
    let envs = [
        ("CASTELLAN_MASTER_KEY", master),
        ("CASTELLAN_BOOTSTRAP_ADMIN_ID", "ops-admin"),
        ("CASTELLAN_BOOTSTRAP_ADMIN_SECRET", secret),
    ];
    let mut server = Server::start(&data, "127.0.0.1:0", &envs);
    assert!(
        !data.join("bootstrap-admin.json").exists(),
        "no file when the environment names the admin"
    );
    assert!(
        !data.join("master.key").exists(),
        "no file when the environment holds the master key"
    );
    let r = http()
        .post(format!("{}/oauth2/token", server.url))
        .basic_auth("ops-admin", Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&scope=castellan.admin&audience={}",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.kill9();
    // Another master key cannot open this data dir: refuse to start, without echoing the key.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("CASTELLAN_MASTER_KEY", "HwECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master key does not match"), "{err}");
    assert!(!err.contains("HwECAwQF"));
    // A short bootstrap secret is refused.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("e"))
        .env_remove("CASTELLAN_MASTER_KEY")
        .env("CASTELLAN_BOOTSTRAP_ADMIN_ID", "a")
        .env("CASTELLAN_BOOTSTRAP_ADMIN_SECRET", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32"));
}

#[test]
fn config_check_validates_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "listen = \"127.0.0.1:9000\"\n[keys]\nalgorithm = \"EdDSA\"\nrotation_interval = \"1d\"\n[tokens]\naccess_token_ttl = \"2m\"\n",
    )
    .unwrap();
    let check = |args: &[&str], env: Option<(&str, &str)>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["config", "check"]).args(args).env_remove("CASTELLAN_LISTEN");
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let g = good.to_str().unwrap();
    let out = check(&[g, "--json"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["keys"]["algorithm"], "EdDSA");
    assert_eq!(v["tokens"]["access_token_ttl"], "2m");
    assert_eq!(v["listen"], "127.0.0.1:9000");
    // Environment overrides the file, flags override the environment.
    let out = check(&["--json", "--config", g], Some(("CASTELLAN_LISTEN", "127.0.0.1:9100")));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["listen"], "127.0.0.1:9100");
    let out = check(
        &["--json", "--listen", "127.0.0.1:9200", "--config", g],
        Some(("CASTELLAN_LISTEN", "127.0.0.1:9100")),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["listen"], "127.0.0.1:9200");
    let out = check(&["--json", g], Some(("CASTELLAN_TOKENS__ACCESS_TOKEN_TTL", "3m")));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["tokens"]["access_token_ttl"], "3m",
        "CASTELLAN_SECTION__KEY overrides the file"
    );
    let out = check(&[g], Some(("CASTELLAN_KEYS__NO_SUCH_KEY", "1")));
    assert!(!out.status.success());
    for (name, text, needle) in [
        ("unknown.toml", "[keys]\nrotate = \"1d\"\n", "unknown field"),
        (
            "duration.toml",
            "[tokens]\naccess_token_ttl = \"5 minutes\"\n",
            "duration",
        ),
        (
            "schedule.toml",
            "[keys]\nrotation_interval = \"5m\"\njwks_max_age = \"5m\"\n",
            "twice",
        ),
        ("alg.toml", "[keys]\nalgorithm = \"HS256\"\n", "HS256"),
        ("syntax.toml", "listen = ", "invalid"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let out = check(&[p.to_str().unwrap()], None);
        assert!(!out.status.success(), "{name} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{name}: {err}");
    }
    let missing = dir.path().join("missing.toml");
    assert!(!check(&[missing.to_str().unwrap()], None).status.success());
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "postgres://user:pw@db/castellan",
            "--data-dir",
        ])
        .arg(dir.path().join("pg"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // A cluster node refuses to make up what every node must share.
    assert!(err.contains("a node on a shared database needs --issuer"), "{err}");
    assert!(!err.contains("pw@"), "credentials in the URL are not echoed: {err}");
}

#[test]
fn json_logs_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("d"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on http://127.0.0.1:"));
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    let mut saw_ready = false;
    for l in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
        if v["fields"]["message"] == "castellan authority ready" {
            saw_ready = true;
        }
    }
    assert!(saw_ready, "{logs}");
}

#[test]
fn completions_cover_every_command_and_parse_in_their_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN).args(["completions", shell]).output().unwrap();
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = String::from_utf8(out.stdout).unwrap();
        for word in [
            "serve",
            "probe",
            "report",
            "migrate-sqlite-to-postgres",
            "database",
            "require-stage",
            "audit",
        ] {
            assert!(script.contains(word), "{shell} completion lacks `{word}`");
        }
        // Syntax-checked by the shell itself where it is installed (bash always is).
        let path = dir.path().join(format!("castellan.{shell}"));
        std::fs::write(&path, &script).unwrap();
        match Command::new(shell).arg("-n").arg(&path).output() {
            Ok(check) => assert!(
                check.status.success(),
                "{shell} -n: {}",
                String::from_utf8_lossy(&check.stderr)
            ),
            Err(_) if shell == "bash" || std::env::var_os("CI").is_some() => {
                panic!("{shell} is needed to check its completion script (CI installs zsh and fish)")
            }
            Err(_) => eprintln!("SKIPPED: {shell} not installed; its completion script was not syntax-checked"),
        }
    }
    let out = Command::new(BIN).args(["completions", "tcsh"]).output().unwrap();
    assert!(!out.status.success(), "an unknown shell is refused");
}
