//! `castellan policy push/list/show/diff/rollback` against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

mod common;

use common::Authority;
use serde_json::Value;

const V1: &str = "@id(\"readers\")\npermit(principal, action == Action::\"GET\", resource)\nwhen { principal.scopes.contains(\"orders.read\") };\n";
const V2: &str = "@id(\"readers\")\npermit(principal, action == Action::\"GET\", resource)\nwhen { principal.scopes.contains(\"orders.read\") };\n\n@id(\"no-admin\")\nforbid(principal, action, resource)\nwhen { resource.path like \"/admin/*\" };\n";

#[test]
fn push_list_show_diff_and_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    let auth = Authority::start(&tmp.path().join("data"), "127.0.0.1:0");
    let file = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let (v1, v2, schema) = (
        file("v1.cedar", V1),
        file("v2.cedar", V2),
        file("gate.cedarschema", castellan_authz::GATE_SCHEMA),
    );
    let broken = file("broken.cedar", "permit(principal, action resource);");
    let json = |out: std::process::Output| -> Value {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let v = json(auth.cli(&[
        "policy",
        "push",
        "orders",
        "--policies",
        &v1,
        "--schema",
        &schema,
        "--json",
    ]));
    assert_eq!(v["version"], 1);
    let out = auth.cli(&["policy", "push", "orders", "--policies", &broken]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("version in force is unchanged"), "{err}");
    let out = auth.cli(&[
        "policy",
        "push",
        "orders",
        "--policies",
        &v2,
        "--schema",
        &schema,
        "--note",
        "no admin",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("version 2 (validated against the schema)"));

    let list = json(auth.cli(&["policy", "list", "orders", "--json"]));
    assert_eq!(list["versions"].as_array().unwrap().len(), 2);
    let shown = auth.cli(&["policy", "show", "orders", "1"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("orders.read"));

    let diff = json(auth.cli(&["policy", "diff", "orders", "1", "2", "--json"]));
    let lines: Vec<&str> = diff["diff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(lines.contains(&"+forbid(principal, action, resource)"), "{lines:?}");
    assert!(lines.iter().all(|l| !l.starts_with('-')), "{lines:?}");

    let back = json(auth.cli(&["policy", "rollback", "orders", "1", "--json"]));
    assert_eq!(back["version"], 3);
    let latest = json(auth.cli(&["policy", "show", "orders", "--json"]));
    assert_eq!(latest["policies"], V1);
    let services = json(auth.cli(&["policy", "list", "--json"]));
    assert_eq!(services["services"][0]["version"], 3);
}
