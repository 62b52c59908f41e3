//! `castellan policy test` (policy CI) against the real binary: local
//! policy files without an authority, stored versions fetched from one,
//! gate-model cases with the shipped schema, and malformed cases files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

mod common;

use common::{Authority, BIN};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A service's own model: people own orders, teams see them, archived
/// orders are off limits.
const ORDERS: &str = r#"
@id("owner-reads")
permit(principal, action == Action::"read", resource) when { resource.owner == principal };

@id("team-reads")
permit(principal, action == Action::"read", resource) when { principal in resource.team };

@id("no-archived")
forbid(principal, action, resource) when { resource has archived && resource.archived };
"#;

const ORDERS_SCHEMA: &str = r#"
entity Team;
entity User in [Team];
entity Order = { owner: User, team: Team, archived?: Bool };
action "read" appliesTo { principal: [User], resource: [Order] };
"#;

/// Gate policies, version 1: readers read everything.
const GATE_V1: &str = r#"
@id("readers")
permit(principal, action == Action::"GET", resource)
when { principal.scopes.contains("orders.read") };
"#;

/// Version 2 adds a forbid: readers no longer reach `/admin/...`.
const GATE_V2: &str = r#"
@id("readers")
permit(principal, action == Action::"GET", resource)
when { principal.scopes.contains("orders.read") };

@id("no-admin")
forbid(principal, action, resource)
when { resource.path like "/admin/*" };
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The binary with no authority reachable and no credentials: a local run
/// must not need either.
fn local(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--server", "http://127.0.0.1:9"])
        .env_remove("CASTELLAN_SERVER")
        .env_remove("CASTELLAN_CLIENT_ID")
        .env_remove("CASTELLAN_CLIENT_SECRET")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exited with the ordinary failure status: not success, not a panic (101).
fn assert_failed(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {}\nstderr {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("panicked"), "{}", text(&out.stderr));
}

fn orders_entities() -> Value {
    json!([
        {"uid": {"type": "User", "id": "alice"}, "attrs": {}, "parents": []},
        {"uid": {"type": "User", "id": "bob"}, "attrs": {}, "parents": [{"type": "Team", "id": "emea"}]},
        {"uid": {"type": "Team", "id": "emea"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Order", "id": "7"}, "attrs": {"owner": {"__entity": {"type": "User", "id": "alice"}},
                                                       "team": {"__entity": {"type": "Team", "id": "emea"}}}, "parents": []},
    ])
}

fn orders_cases() -> Value {
    json!({
        "entities": orders_entities(),
        "cases": [
            {"name": "alice reads her order", "principal": "User::\"alice\"", "action": "Action::\"read\"",
             "resource": "Order::\"7\"", "expect": "allow", "determining": ["owner-reads"]},
            {"name": "bob reads his team's order", "principal": "User::\"bob\"", "action": "Action::\"read\"",
             "resource": "Order::\"7\"", "context": {}, "expect": "allow", "determining": ["team-reads"]},
            {"name": "carol is a stranger", "principal": "User::\"carol\"", "action": "Action::\"read\"",
             "resource": "Order::\"7\"", "expect": "deny", "reason": "no_permit"},
            {"name": "archived orders are off limits", "principal": "User::\"alice\"", "action": "Action::\"read\"",
             "resource": "Order::\"7\"",
             "entities": [{"uid": {"type": "Order", "id": "7"}, "attrs": {
                 "owner": {"__entity": {"type": "User", "id": "alice"}}, "team": {"__entity": {"type": "Team", "id": "emea"}}, "archived": true},
                 "parents": []}],
             "expect": "deny", "reason": "forbidden", "determining": ["no-archived"]},
        ]
    })
}

#[test]
fn a_local_run_with_every_case_passing_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let policies = write(tmp.path(), "orders.cedar", ORDERS);
    let schema = write(tmp.path(), "orders.cedarschema", ORDERS_SCHEMA);
    let cases = write(tmp.path(), "cases.json", &orders_cases().to_string());
    let (p, s, c) = (
        policies.to_str().unwrap(),
        schema.to_str().unwrap(),
        cases.to_str().unwrap(),
    );

    let out = local(&[
        "policy",
        "test",
        "orders",
        "--cases",
        c,
        "--policies",
        p,
        "--schema",
        s,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["service"], "orders");
    assert_eq!(v["version"], Value::Null);
    assert_eq!(v["source"], "local");
    assert_eq!(v["summary"], json!({"total": 4, "passed": 4, "failed": 0}));
    assert_eq!(
        v["cases"][0],
        json!({"name": "alice reads her order", "expect": "allow", "decision": "allow", "reason": null,
               "determining": ["owner-reads"], "errors": [], "ok": true})
    );
    assert_eq!(v["cases"][2]["reason"], "no_permit");
    assert_eq!(v["cases"][3]["determining"], json!(["no-archived"]));
    assert!(v["cases"].as_array().unwrap().iter().all(|c| c.get("detail").is_none()));

    // The table, without a schema too (the entities then need no schema to parse).
    let out = local(&["policy", "test", "orders", "--cases", c, "--policies", p]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("CASE "), "{table}");
    assert!(table.contains("deny (forbidden)"), "{table}");
    assert_eq!(table.matches("PASS").count(), 4, "{table}");
    assert!(table.contains("4 cases against local `"), "{table}");
    assert!(table.trim_end().ends_with("4 passed, 0 failed"), "{table}");

    // The same cases as TOML.
    let toml = r#"
[[entities]]
uid = { type = "User", id = "alice" }
attrs = {}
parents = []

[[entities]]
uid = { type = "Team", id = "emea" }
attrs = {}
parents = []

[[entities]]
uid = { type = "Order", id = "7" }
attrs = { owner = { type = "User", id = "alice" }, team = { type = "Team", id = "emea" } }
parents = []

[[cases]]
name = "alice reads her order"
principal = 'User::"alice"'
action = 'Action::"read"'
resource = 'Order::"7"'
expect = "allow"
determining = ["owner-reads"]
"#;
    let toml = write(tmp.path(), "cases.toml", toml);
    let out = local(&[
        "policy",
        "test",
        "orders",
        "--cases",
        toml.to_str().unwrap(),
        "--policies",
        p,
        "--schema",
        s,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["passed"], 1);
}

#[test]
fn a_failing_case_exits_non_zero_and_names_the_case() {
    let tmp = tempfile::tempdir().unwrap();
    let policies = write(tmp.path(), "orders.cedar", ORDERS);
    let schema = write(tmp.path(), "orders.cedarschema", ORDERS_SCHEMA);
    let mut cases = orders_cases();
    cases["cases"][2]["expect"] = json!("allow");
    cases["cases"][2]["reason"] = Value::Null;
    cases["cases"][2]["name"] = json!("carol should read");
    // A request the schema refuses fails on its own; the others still run.
    cases["cases"].as_array_mut().unwrap().push(
        json!({"name": "typo in the type", "principal": "Usr::\"alice\"", "action": "Action::\"read\"",
                     "resource": "Order::\"7\"", "expect": "deny"}),
    );
    let cases = write(tmp.path(), "cases.json", &cases.to_string());
    let args = |json: bool| {
        let mut a = vec![
            "policy".to_owned(),
            "test".to_owned(),
            "orders".to_owned(),
            "--cases".to_owned(),
            cases.display().to_string(),
            "--policies".to_owned(),
            policies.display().to_string(),
            "--schema".to_owned(),
            schema.display().to_string(),
        ];
        if json {
            a.push("--json".to_owned());
        }
        a
    };

    let out = local(&args(false).iter().map(String::as_str).collect::<Vec<_>>());
    assert_failed(&out);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let row = stdout.lines().find(|l| l.starts_with("carol should read")).unwrap();
    assert!(row.contains("deny (no_permit)") && row.ends_with("FAIL"), "{stdout}");
    assert!(stdout.contains("expected allow, got deny (no_permit)"), "{stdout}");
    assert!(stdout.contains("request refused: "), "{stdout}");
    assert!(stdout.contains("5 cases against local `"), "{stdout}");
    assert!(stdout.contains("3 passed, 2 failed"), "{stdout}");
    assert!(
        stderr.contains("error: 2 of 5 cases failed: `carol should read`, `typo in the type`"),
        "{stderr}"
    );

    let out = local(&args(true).iter().map(String::as_str).collect::<Vec<_>>());
    assert_failed(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"], json!({"total": 5, "passed": 3, "failed": 2}));
    let carol = &v["cases"][2];
    assert_eq!(carol["name"], "carol should read");
    assert_eq!(carol["ok"], false);
    assert_eq!(carol["decision"], "deny");
    assert_eq!(carol["detail"], "expected allow, got deny (no_permit)");
    let typo = &v["cases"][4];
    assert_eq!(
        (typo["ok"].clone(), typo["decision"].clone()),
        (json!(false), Value::Null)
    );
    assert!(
        typo["detail"].as_str().unwrap().starts_with("request refused: "),
        "{typo}"
    );
}

#[test]
fn stored_versions_are_tested_as_pushed() {
    let tmp = tempfile::tempdir().unwrap();
    let auth = Authority::start(&tmp.path().join("data"), "127.0.0.1:0");
    let schema = write(tmp.path(), "gate.cedarschema", castellan_authz::GATE_SCHEMA);
    let v1 = write(tmp.path(), "v1.cedar", GATE_V1);
    let v2 = write(tmp.path(), "v2.cedar", GATE_V2);
    for v in [&v1, &v2] {
        let out = auth.cli(&[
            "policy",
            "push",
            "orders",
            "--policies",
            v.to_str().unwrap(),
            "--schema",
            schema.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // Gate-model cases: requests as `castellan gate --policy-service` builds them.
    let gate = |scopes: Value, method: &str, path: &str| {
        json!({"sub": "alice", "client_id": "web", "scopes": scopes, "peer": null, "actors": [],
               "method": method, "path": path})
    };
    let cases = json!({"cases": [
        {"name": "reader reads an order", "gate": gate(json!(["orders.read"]), "GET", "/orders/7"),
         "expect": "allow", "determining": ["readers"]},
        {"name": "gate: GET without scope", "gate": gate(json!([]), "GET", "/orders/7"),
         "expect": "deny", "reason": "no_permit"},
        {"name": "reader reads the admin page", "gate": gate(json!(["orders.read"]), "GET", "/admin/users"),
         "expect": "allow"},
        {"name": "delegated reader, through mTLS", "gate": {"sub": "alice", "client_id": "web",
         "scopes": ["orders.read"], "peer": "spiffe://castellan.test/frontend", "actors": ["gateway", "frontend"],
         "method": "GET", "path": "/orders/7"}, "expect": "allow"},
    ]});
    let cases = write(tmp.path(), "gate-cases.json", &cases.to_string());
    let c = cases.to_str().unwrap();

    let out = auth.cli(&["policy", "test", "orders", "--cases", c, "--version", "1", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["service"].clone(), v["version"].clone()),
        (json!("orders"), json!(1))
    );
    assert_eq!(v["source"], "stored");
    assert_eq!(v["summary"], json!({"total": 4, "passed": 4, "failed": 0}));

    // The newest version (2) forbids `/admin/...`: that expectation fails.
    let out = auth.cli(&["policy", "test", "orders", "--cases", c, "--json"]);
    assert_failed(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], 2);
    assert_eq!(v["summary"], json!({"total": 4, "passed": 3, "failed": 1}));
    let admin = &v["cases"][2];
    assert_eq!(admin["ok"], false);
    assert_eq!(admin["reason"], "forbidden");
    assert_eq!(admin["determining"], json!(["no-admin"]));
    assert!(
        text(&out.stderr).contains("1 of 4 cases failed: `reader reads the admin page`"),
        "{}",
        text(&out.stderr)
    );
    let out = auth.cli(&["policy", "test", "orders", "--cases", c]);
    assert_failed(&out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("4 cases against `orders` version 2: 3 passed, 1 failed"),
        "{stdout}"
    );

    // The same cases against the local file with the shipped schema file.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../castellan-authz/schema/gate.cedarschema");
    let out = local(&[
        "policy",
        "test",
        "orders",
        "--cases",
        c,
        "--policies",
        v1.to_str().unwrap(),
        "--schema",
        shipped.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A version that does not exist, or a service without policies: the authority's error.
    let out = auth.cli(&["policy", "test", "orders", "--cases", c, "--version", "9"]);
    assert_failed(&out);
    let out = auth.cli(&["policy", "test", "billing", "--cases", c]);
    assert_failed(&out);
}

#[test]
fn malformed_cases_files_are_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let policies = write(tmp.path(), "orders.cedar", ORDERS);
    let p = policies.to_str().unwrap();
    let good = json!({"name": "ok", "principal": "User::\"alice\"", "action": "Action::\"read\"",
                      "resource": "Order::\"7\"", "expect": "allow"});
    let with_case = |case: Value| json!({"cases": [good.clone(), case]}).to_string();
    let entity_without_id = json!([{"uid": {"type": "User"}, "attrs": {}, "parents": []}]);
    let big = format!(
        "{{\"cases\": [], \"pad\": \"{}\"}}",
        "x".repeat(castellan_authz::MAX_CASES_BYTES)
    );
    let bad: Vec<(&str, String, &str)> = vec![
        (
            "syntax.json",
            "{\"cases\": [".to_owned(),
            "cases file is not valid JSON: ",
        ),
        (
            "syntax.toml",
            "[[cases]\nname = 1".to_owned(),
            "cases file is not valid TOML: ",
        ),
        (
            "unknown-field.json",
            with_case(
                json!({"name": "typo", "principal": "User::\"a\"", "action": "Action::\"read\"",
                             "resource": "Order::\"7\"", "expct": "deny"}),
            ),
            "case 2 `typo`: unknown field `expct`",
        ),
        (
            "gate-and-principal.json",
            with_case(json!({"name": "both", "principal": "User::\"a\"", "expect": "deny",
                             "gate": {"sub": "a", "client_id": "web", "method": "GET", "path": "/"}})),
            "case 2 `both`: `gate` cannot be combined with `principal`",
        ),
        (
            "bad-uid.json",
            with_case(
                json!({"name": "uid", "principal": "alice", "action": "Action::\"read\"",
                             "resource": "Order::\"7\"", "expect": "deny"}),
            ),
            "case 2 `uid`: `principal` `alice` is not an entity uid",
        ),
        (
            "bad-entity.json",
            with_case(
                json!({"name": "entity", "principal": "User::\"a\"", "action": "Action::\"read\"",
                             "resource": "Order::\"7\"", "expect": "deny", "entities": entity_without_id}),
            ),
            "case 2 `entity`: `entities` item 1: ",
        ),
        (
            "bad-shared-entity.json",
            json!({"entities": entity_without_id, "cases": [good.clone()]}).to_string(),
            "shared `entities`: ",
        ),
        ("big.json", big, "bytes, more than the 4194304 allowed"),
        ("empty.json", "{\"cases\": []}".to_owned(), "cases file has no cases"),
        (
            "duplicate.json",
            with_case(good.clone()),
            "cases 1 and 2 are both named `ok`",
        ),
        ("cases.yaml", "cases: []".to_owned(), "must end in `.json` or `.toml`"),
    ];
    for (name, body, want) in bad {
        let path = write(tmp.path(), name, &body);
        let out = local(&[
            "policy",
            "test",
            "orders",
            "--cases",
            path.to_str().unwrap(),
            "--policies",
            p,
        ]);
        assert_failed(&out);
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("error: "), "{name}: {stderr}");
        assert!(stderr.contains(want), "{name}: want {want:?} in {stderr}");
        assert!(out.stdout.is_empty(), "{name}: nothing runs: {}", text(&out.stdout));
    }
    let out = local(&[
        "policy",
        "test",
        "orders",
        "--cases",
        "/nonexistent/cases.json",
        "--policies",
        p,
    ]);
    assert_failed(&out);
    assert!(
        text(&out.stderr).contains("cannot read `/nonexistent/cases.json`"),
        "{}",
        text(&out.stderr)
    );
    // --version and --policies conflict (clap: usage error, status 2).
    let cases = write(tmp.path(), "ok.json", &json!({"cases": [good]}).to_string());
    let out = local(&[
        "policy",
        "test",
        "orders",
        "--cases",
        cases.to_str().unwrap(),
        "--policies",
        p,
        "--version",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
}
