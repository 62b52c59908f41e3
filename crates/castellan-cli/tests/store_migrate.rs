//! `castellan store migrate-sqlite-to-postgres` end to end, with the real
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap
//! binary: a single node on SQLite issues a client and a token; after the
//! copy a node on PostgreSQL (same issuer, same master key) honours both,
//! publishes the same keys, and the old admin credentials still work.

mod common;

use common::{client_credentials, jwks_kids, Proc, ADMIN_ID, ADMIN_SECRET, BIN};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Starts `serve` with `args` and `env`; on failure, panics with its log.
fn serve(args: &[&str], env: &[(&str, &str)], log: &Path) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(args)
        .env_remove("CASTELLAN_MASTER_KEY")
        .env_remove("CASTELLAN_BOOTSTRAP_ADMIN_ID")
        .env_remove("CASTELLAN_BOOTSTRAP_ADMIN_SECRET")
        .env_remove("CASTELLAN_DATABASE")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    match line.trim().strip_prefix("listening on ") {
        Some(url) => Proc {
            child,
            url: url.to_owned(),
        },
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve {args:?} did not start: {line:?}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

/// Runs the binary (no server flags, no inherited credentials).
fn castellan(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("CASTELLAN_CLIENT_ID")
        .env_remove("CASTELLAN_CLIENT_SECRET")
        .env_remove("CASTELLAN_DATABASE")
        .env_remove("CASTELLAN_DATA_DIR")
        .env_remove("CASTELLAN_MASTER_KEY")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn token(http: &reqwest::Client, url: &str, id: &str, secret: &str) -> (u16, Value) {
    client_credentials(http, url, id, secret, &[]).await
}

async fn introspect(http: &reqwest::Client, url: &str, (id, secret): (&str, &str), token: &str) -> Value {
    http.post(format!("{url}/oauth2/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_moves_to_postgres_keeping_clients_keys_and_tokens() {
    let Some((database, db)) =
        castellan_store::testing::fresh_postgres_database("store_migrate::a_single_node_moves_to_postgres").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let http = castellan_testkit::http_client();

    // A single node on SQLite, as first started: generated master key and admin.
    let mut single = serve(
        &["--listen", "127.0.0.1:0", "--data-dir", data_arg],
        &[],
        &dir.path().join("single.log"),
    );
    let url = single.url.clone();
    let port = single.port();
    let creds_file = data.join("bootstrap-admin.json");
    let creds: Value = serde_json::from_str(&std::fs::read_to_string(&creds_file).unwrap()).unwrap();
    let (admin_id, admin_secret) = (
        creds["client_id"].as_str().unwrap().to_owned(),
        creds["client_secret"].as_str().unwrap().to_owned(),
    );
    let created = castellan(&[
        "client",
        "create",
        "orders-caller",
        "--audience",
        "orders",
        "--scope",
        "read",
        "--json",
        "--server",
        &url,
        "--credentials",
        creds_file.to_str().unwrap(),
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let client: Value = serde_json::from_slice(&created.stdout).unwrap();
    let (client_id, client_secret) = (
        client["client_id"].as_str().unwrap().to_owned(),
        client["client_secret"].as_str().unwrap().to_owned(),
    );
    let (status, issued) = token(&http, &url, &client_id, &client_secret).await;
    assert_eq!(status, 200, "{issued}");
    let issued = issued["access_token"].as_str().unwrap().to_owned();
    let kids_before = jwks_kids(&http, &url).await;
    assert!(kids_before.len() >= 2, "{kids_before:?}");

    let migrate = |extra: &[&str]| {
        let mut args = vec![
            "store",
            "migrate-sqlite-to-postgres",
            "--from",
            data_arg,
            "--to",
            &database,
        ];
        args.extend_from_slice(extra);
        castellan(&args)
    };
    // Refused while the authority runs on the data dir, and nothing is written.
    let running = migrate(&[]);
    assert!(!running.status.success());
    let err = text(&running.stderr);
    assert!(err.contains("in use") && err.contains("stop it"), "{err}");

    assert!(single.terminate().success());
    // Refused without a store in the data dir.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let none = castellan(&[
        "store",
        "migrate-sqlite-to-postgres",
        "--from",
        empty.to_str().unwrap(),
        "--to",
        &database,
    ]);
    assert!(!none.status.success());
    assert!(text(&none.stderr).contains("castellan.db"), "{}", text(&none.stderr));

    let copied = migrate(&["--json"]);
    let progress = text(&copied.stderr);
    assert!(copied.status.success(), "{progress}");
    let report: Value = serde_json::from_slice(&copied.stdout).unwrap();
    let rows = |table: &str| {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table)
            .unwrap_or_else(|| panic!("{table} not in {report}"))["rows"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(rows("clients"), 2, "{report}");
    assert_eq!(rows("audit_events"), 1, "the client's creation: {report}");
    assert_eq!(rows("signing_keys"), u64::try_from(kids_before.len()).unwrap());
    for table in [
        "meta",
        "clients",
        "signing_keys",
        "revocations",
        "decisions",
        "probe_runs",
    ] {
        assert!(progress.contains(table), "no progress for {table}: {progress}");
    }
    // The next steps name the master key file, the issuer and the admin, never the key.
    let master_key = std::fs::read_to_string(data.join("master.key")).unwrap();
    let master_key = master_key.trim();
    assert!(
        progress.contains("master.key") && progress.contains("--issuer"),
        "{progress}"
    );
    assert!(progress.contains(&admin_id), "{progress}");
    for shown in [&progress, &text(&copied.stdout)] {
        assert!(!shown.contains(master_key), "the master key was printed");
    }

    // A node on PostgreSQL: same address and issuer, the data dir's master key,
    // and the bootstrap admin a shared database requires (not created: the store has one).
    let issuer = format!("http://127.0.0.1:{port}");
    let node_dir = dir.path().join("node");
    let node = serve(
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--issuer",
            &issuer,
            "--database",
            &database,
            "--data-dir",
            node_dir.to_str().unwrap(),
        ],
        &[
            ("CASTELLAN_MASTER_KEY", master_key),
            ("CASTELLAN_BOOTSTRAP_ADMIN_ID", ADMIN_ID),
            ("CASTELLAN_BOOTSTRAP_ADMIN_SECRET", ADMIN_SECRET),
        ],
        &dir.path().join("node.log"),
    );
    assert_eq!(node.url, url);

    let (status, again) = token(&http, &node.url, &client_id, &client_secret).await;
    assert_eq!(status, 200, "the old client secret still works: {again}");
    assert_eq!(
        jwks_kids(&http, &node.url).await,
        kids_before,
        "the same keys are published"
    );
    let seen = introspect(&http, &node.url, (&client_id, &client_secret), &issued).await;
    assert_eq!(
        seen["active"], true,
        "the token issued before the move is still valid: {seen}"
    );
    assert_eq!(seen["client_id"], client_id.as_str());
    // The new token is signed by a key the old JWKS already held.
    let kid = castellan_testkit::kid_of(again["access_token"].as_str().unwrap());
    assert!(kids_before.contains(&kid), "{kid}");

    // The old admin still administers; the env admin was not added.
    let listed = castellan(&[
        "client",
        "list",
        "--json",
        "--server",
        &node.url,
        "--credentials",
        creds_file.to_str().unwrap(),
    ]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(text(&listed.stdout).contains(&client_id), "{}", text(&listed.stdout));
    let (status, _) = token(&http, &node.url, &admin_id, &admin_secret).await;
    assert_eq!(status, 200);
    // The audit trail moved with its chain: it verifies on PostgreSQL (the
    // chain key comes from the same master key) and goes on from its head.
    let audit = |args: &[&str]| {
        let mut all = vec!["audit"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--json",
            "--server",
            &node.url,
            "--credentials",
            creds_file.to_str().unwrap(),
        ]);
        let o = castellan(&all);
        assert!(o.status.success(), "{}", text(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let events = audit(&["list"]);
    assert_eq!(events[0]["action"], "client.create");
    assert_eq!(events[0]["target"], format!("client:{client_id}"));
    let verified = audit(&["verify"]);
    assert_eq!(
        (verified["ok"].clone(), verified["head"]["seq"].clone()),
        (json!(true), json!(1)),
        "{verified}"
    );
    let rotated = castellan(&[
        "keys",
        "rotate",
        "--server",
        &node.url,
        "--credentials",
        creds_file.to_str().unwrap(),
    ]);
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    let verified = audit(&["verify"]);
    assert_eq!(
        (verified["ok"].clone(), verified["head"]["seq"].clone()),
        (json!(true), json!(2)),
        "{verified}"
    );
    let (status, _) = token(&http, &node.url, ADMIN_ID, ADMIN_SECRET).await;
    assert_eq!(status, 401, "the env admin is created only in a store without one");

    // The cluster's database is live now: a second copy is refused.
    drop(node);
    let twice = migrate(&[]);
    assert!(!twice.status.success());
    assert!(text(&twice.stderr).contains("not empty"), "{}", text(&twice.stderr));
    // The password of the URL (if any) is never printed.
    if let Ok(u) = url::Url::parse(&database) {
        if let Some(pw) = u.password() {
            for o in [&running, &copied, &twice] {
                assert!(!text(&o.stdout).contains(pw) && !text(&o.stderr).contains(pw));
            }
        }
    }
    db.drop_database().await.unwrap();
}
