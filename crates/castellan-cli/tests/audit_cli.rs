//! The real `castellan` binary: `castellan audit list / export / verify`
//! against a real authority, and tampering with the audit trail in its
//! SQLite file (an edited row, a deleted row) found by `audit verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

mod common;

use common::{Authority, ADMIN_ID};

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

fn seqs(events: &Value) -> Vec<i64> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

/// Runs `sql` on the authority's SQLite file (the authority stopped).
async fn tamper(data: &Path, sql: &str) {
    let url = format!("sqlite://{}", data.join("castellan.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let done = sqlx::query(sql).execute(&pool).await.unwrap();
    assert_eq!(done.rows_affected(), 1, "{sql}");
    pool.close().await;
}

/// Stops the authority, runs `sql` on its file, starts it again on the same port.
async fn tamper_offline(auth: &mut Authority, sql: &str) {
    let port = auth.proc.port();
    let data = auth.data_dir.clone();
    auth.proc.kill9();
    tamper(&data, sql).await;
    *auth = Authority::start(&data, &format!("127.0.0.1:{port}"));
}

#[tokio::test]
async fn audit_list_export_and_verify_and_tampering_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut auth = Authority::start(&data, "127.0.0.1:0");

    // Audited actions.
    let (svc, _) = auth.client(&["orders"]).await;
    auth.admin(
        Method::POST,
        "/users",
        Some(json!({"username": "bob", "password": "a-long-enough-password-1"})),
    )
    .await;
    auth.admin(Method::POST, "/keys/rotate", None).await;
    auth.admin(Method::POST, &format!("/clients/{svc}/revoke"), None).await;
    auth.admin(
        Method::POST,
        "/policies/orders",
        Some(json!({"policies": "permit(principal, action, resource);"})),
    )
    .await;
    let admin = format!("client:{ADMIN_ID}");

    // list --json: a JSON array, oldest first.
    let all = ok_json(&auth.cli(&["audit", "list", "--json"]));
    let actions: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "client.create",
            "user.create",
            "key.rotate",
            "client.revoke",
            "policy.push"
        ]
    );
    assert_eq!(seqs(&all), vec![1, 2, 3, 4, 5]);
    assert_eq!(all[3]["target"], format!("client:{svc}"));
    assert_eq!(all[3]["outcome"], "success");
    for e in all.as_array().unwrap() {
        assert_eq!(e["hash"].as_str().unwrap().len(), 64, "{e}");
    }

    // --actor, --since (a duration and an RFC 3339 time), --limit.
    let by_admin = ok_json(&auth.cli(&["audit", "list", "--actor", &admin, "--json"]));
    assert_eq!(by_admin, all);
    let nobody = ok_json(&auth.cli(&["audit", "list", "--actor", "user:nobody", "--json"]));
    assert_eq!(nobody, json!([]));
    assert_eq!(ok_json(&auth.cli(&["audit", "list", "--since", "1h", "--json"])), all);
    let future = ok_json(&auth.cli(&["audit", "list", "--since", "2999-01-01T00:00:00Z", "--json"]));
    assert_eq!(future, json!([]));
    assert_eq!(
        seqs(&ok_json(&auth.cli(&["audit", "list", "--limit", "2", "--json"]))),
        vec![1, 2]
    );
    let bad = auth.cli(&["audit", "list", "--since", "yesterday"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--since"), "{}", stderr(&bad));

    // The human table.
    let table = auth.cli(&["audit", "list"]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.starts_with("   SEQ"), "{text}");
    assert!(text.contains("key.rotate") && text.contains(&admin), "{text}");

    // export: JSON lines, one event a line, the same events; `--after` resumes.
    let export = auth.cli(&["audit", "export"]);
    assert!(export.status.success(), "{}", stderr(&export));
    let lines: Vec<Value> = stdout(&export)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(Value::Array(lines.clone()), all);
    assert!(stderr(&export).contains("--after 5"), "{}", stderr(&export));
    let rest = auth.cli(&["audit", "export", "--after", "3"]);
    assert!(rest.status.success());
    let rest: Vec<Value> = stdout(&rest)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rest, lines[3..].to_vec());

    // verify: intact, head = the last event.
    let verified = auth.cli(&["audit", "verify"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let head_hash = all[4]["hash"].as_str().unwrap();
    assert!(
        stdout(&verified).contains(&format!("head seq 5 hash {head_hash}")),
        "{}",
        stdout(&verified)
    );
    let v = ok_json(&auth.cli(&["audit", "verify", "--json"]));
    assert_eq!(v["ok"], true);
    assert_eq!(v["head"], json!({"seq": 5, "hash": head_hash}));

    // An edited row: found, named by its sequence number.
    let original_detail = serde_json::to_string(&all[1]["detail"]).unwrap();
    tamper_offline(
        &mut auth,
        r#"UPDATE audit_events SET detail = '{"username":"mallory","federated":false}' WHERE seq = 2"#,
    )
    .await;
    let broken = auth.cli(&["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1), "{}", stdout(&broken));
    let err = stderr(&broken);
    assert!(err.contains("broken at seq 2") && err.contains("edited"), "{err}");
    let v = auth.cli(&["audit", "verify", "--json"]);
    assert!(!v.status.success());
    let v: Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!((v["ok"].clone(), v["first_bad_seq"].clone()), (json!(false), json!(2)));
    assert_eq!(v["head"]["seq"], 1, "the last event that verifies");

    // Another actor written in: found as well.
    tamper_offline(
        &mut auth,
        &format!("UPDATE audit_events SET detail = '{original_detail}', actor = 'client:someone-else' WHERE seq = 2"),
    )
    .await;
    assert!(stderr(&auth.cli(&["audit", "verify"])).contains("broken at seq 2"));

    // Put back exactly: intact again (the stored text is what is hashed).
    tamper_offline(
        &mut auth,
        &format!("UPDATE audit_events SET actor = '{admin}' WHERE seq = 2"),
    )
    .await;
    assert!(auth.cli(&["audit", "verify"]).status.success());

    // A deleted middle row: found, named by the missing number.
    tamper_offline(&mut auth, "DELETE FROM audit_events WHERE seq = 3").await;
    let broken = auth.cli(&["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1));
    let err = stderr(&broken);
    assert!(err.contains("broken at seq 3") && err.contains("missing"), "{err}");
}
