//! The OpenAPI document (`/openapi.json`) against the real router: every
//! documented operation is routed (the server answers it with a handler, not
//! the "no such endpoint" fallback or 405), every route in the source is
//! documented (bar an explicit allow-list), and the document is well formed
//! (our own structural checks, and openapi-spec-validator when python3 has it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

use castellan_testkit::TestAuthority;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Routes that are served but deliberately not in the document.
const UNDOCUMENTED: &[&str] = &[
    // Operational probes for load balancers and Prometheus, not API.
    "/healthz", "/readyz", "/metrics",
];

/// Whether a route is one of the admin console's HTML pages (nested at
/// `/admin`, beside but outside the admin API at `/admin/v1`); they are not API.
fn is_console_page(path: &str) -> bool {
    (path == "/admin" || path.starts_with("/admin/")) && path != "/admin/v1" && !path.starts_with("/admin/v1/")
}

/// Documented operations whose handlers are being written on another branch
/// (issue 9's audit API). Tolerated as unrouted only while the source has no
/// route for them: once it does, they are checked like every other.
const PENDING: &[(&str, &str)] = &[("/admin/v1/audit", "GET"), ("/admin/v1/audit/verify", "GET")];

const METHODS: &[&str] = &["get", "post", "put", "delete", "patch", "head", "options", "trace"];

async fn document(ta: &TestAuthority) -> Value {
    let resp = ta.http.get(format!("{}/openapi.json", ta.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    resp.json().await.unwrap()
}

/// Every `(path, METHOD)` of the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                out.insert((path.clone(), method.to_uppercase()));
            }
        }
    }
    out
}

/// A concrete path for a template: every `{param}` filled with a harmless value.
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(&rest[..open]);
        out.push_str(match &rest[open + 1..close] {
            "version" => "1",
            _ => "openapi-check",
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let ta = TestAuthority::start().await;
    let doc = document(&ta).await;
    let source = source_routes();
    // Redirects are answers too: never follow them to somewhere else.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ops = operations(&doc);
    assert!(ops.len() > 50, "the document has only {} operations", ops.len());
    let mut failures = Vec::new();
    for (path, method) in &ops {
        let url = format!("{}{}", ta.url, concrete(path));
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        // No credentials and no body: every handler refuses, none acts.
        let resp = http.request(m, &url).send().await.unwrap();
        let status = resp.status().as_u16();
        // Only the failures' bodies are read: the SSE stream never ends.
        let problem = match status {
            405 => Some(format!("405 {}", resp.text().await.unwrap_or_default())),
            404 => {
                let body = resp.text().await.unwrap_or_default();
                let fallback = serde_json::from_str::<Value>(&body)
                    .is_ok_and(|v| v["error"] == "not_found" && v["error_description"] == "no such endpoint");
                fallback.then(|| format!("the router's fallback 404: {body}"))
            }
            _ => None,
        };
        if let Some(problem) = problem {
            let key = (path.as_str(), method.as_str());
            if PENDING.contains(&key) && !source.contains(&(path.clone(), method.clone())) {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "NOTE: {method} {path} is documented but not routed yet (pending on another branch)"
                );
                continue;
            }
            failures.push(format!("{method} {path} ({url}): {problem}"));
        }
    }
    assert!(
        failures.is_empty(),
        "documented but not routed:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn every_route_is_documented() {
    let ta = TestAuthority::start().await;
    let doc = document(&ta).await;
    let documented = operations(&doc);
    let routes = source_routes();
    // The parser must see the router: these are known to exist.
    for known in [
        ("/oauth2/token", "POST"),
        ("/admin/v1/clients/{id}", "DELETE"),
        ("/admin/v1/sessions/{id}/revoke", "POST"),
        ("/oauth2/userinfo", "GET"),
        ("/oauth2/userinfo", "POST"),
        ("/healthz", "GET"),
    ] {
        assert!(
            routes.contains(&(known.0.to_owned(), known.1.to_owned())),
            "the source parser missed {known:?}; it found {routes:#?}"
        );
    }
    let missing: Vec<String> = routes
        .iter()
        .filter(|(path, _)| !UNDOCUMENTED.contains(&path.as_str()) && !is_console_page(path))
        .filter(|r| !documented.contains(r))
        .map(|(path, method)| format!("{method} {path}"))
        .collect();
    assert!(
        missing.is_empty(),
        "routed but not in the OpenAPI document (add them in src/http/openapi/operations.rs, \
         or to UNDOCUMENTED with a reason):\n{}",
        missing.join("\n")
    );
}

#[tokio::test]
async fn the_document_is_well_formed() {
    let ta = TestAuthority::start().await;
    let doc = document(&ta).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["servers"][0]["url"], ta.url.as_str());
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["admin"]["type"], "oauth2");
    assert!(schemes["admin"]["flows"]["clientCredentials"]["scopes"]["castellan.admin"].is_string());
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();

    let mut ids = BTreeSet::new();
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let template_params: BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let at = format!("{} {path}", method.to_uppercase());
            match op["operationId"].as_str() {
                Some(id) if !id.is_empty() => {
                    if !ids.insert(id.to_owned()) {
                        problems.push(format!("{at}: operationId `{id}` is not unique"));
                    }
                }
                _ => problems.push(format!("{at}: no operationId")),
            }
            if op["responses"].as_object().is_none_or(|r| r.is_empty()) {
                problems.push(format!("{at}: no responses"));
            }
            for tag in op["tags"].as_array().into_iter().flatten() {
                if !tags.contains(tag.as_str().unwrap()) {
                    problems.push(format!("{at}: undeclared tag {tag}"));
                }
            }
            let params: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            if params != template_params {
                problems.push(format!(
                    "{at}: path parameters {params:?}, template has {template_params:?}"
                ));
            }
            for requirement in op["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().unwrap().keys() {
                    if !schemes.contains_key(name) {
                        problems.push(format!("{at}: unknown security scheme `{name}`"));
                    }
                }
            }
            let admin = path.starts_with("/admin/v1/");
            let secured = op["security"].as_array().is_some_and(|s| {
                s.iter().any(|r| {
                    r["admin"]
                        .as_array()
                        .is_some_and(|sc| sc.iter().any(|x| x == "castellan.admin"))
                })
            });
            if admin != secured {
                problems.push(format!("{at}: admin security is {secured}, want {admin}"));
            }
            if admin && op["responses"]["401"].is_null() {
                problems.push(format!("{at}: no 401"));
            }
        }
    }
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "suspiciously few $refs: {}", refs.len());
    for r in &refs {
        let target = r.strip_prefix('#').and_then(|pointer| doc.pointer(pointer));
        if target.is_none() {
            problems.push(format!("$ref `{r}` does not resolve"));
        }
    }
    // Every error answer is the RFC 6749 body.
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error", "error_description"]));
    let unauthorized = &doc["components"]["responses"]["Unauthorized"];
    assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    validate_with_python(&doc);
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push(v.as_str().unwrap().to_owned());
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

const VALIDATE: &str = r#"
import json, sys
from openapi_spec_validator import validate, OpenAPIV31SpecValidator
with open(sys.argv[1]) as f:
    spec = json.load(f)
validate(spec, cls=OpenAPIV31SpecValidator)
print("valid")
"#;

/// Whether python3 can import `module`; when it cannot, fails under `CI`
/// and otherwise says loudly that `check` is skipped.
fn python_has(module: &str, check: &str) -> bool {
    let available = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        if std::env::var_os("CI").is_some() {
            panic!("python3 cannot import {module} and CI is set: {check} must not skip");
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {check}: python3 cannot import {module} (pip install openapi-spec-validator)"
        );
    }
    available
}

/// An independent check: openapi-spec-validator (PyPI), when python3 has it.
fn validate_with_python(doc: &Value) {
    if !python_has("openapi_spec_validator", "the openapi-spec-validator check") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(doc).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", VALIDATE])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const CHECK_ANSWERS: &str = r##"
import copy, json, sys
from jsonschema import Draft202012Validator
with open(sys.argv[1]) as f:
    doc = json.load(f)
with open(sys.argv[2]) as f:
    samples = json.load(f)
# Strict: an answer member the schema does not name is drift too. Only the
# discovery metadata is documented by its main members.
components = copy.deepcopy(doc["components"])
def close(schema):
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for v in schema.values():
            close(v)
    elif isinstance(schema, list):
        for v in schema:
            close(v)
for name, schema in components["schemas"].items():
    if name != "ServerMetadata":
        close(schema)
def resolve(obj):
    while "$ref" in obj:
        ptr = obj["$ref"].lstrip("#/").split("/")
        obj = doc
        for seg in ptr:
            obj = obj[seg]
    return obj
failures = []
for path, method, status, body in samples:
    at = f"{method} {path} -> {status}"
    op = doc["paths"].get(path, {}).get(method.lower())
    if op is None:
        failures.append(f"{at}: no such operation in the document")
        continue
    resp = op["responses"].get(str(status))
    if resp is None:
        failures.append(f"{at}: status not documented (documented: {sorted(op['responses'])})")
        continue
    resp = resolve(resp)
    schema = resp.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        if body is not None:
            failures.append(f"{at}: answered JSON, documented without a JSON body")
        continue
    root = dict(schema)
    root["components"] = components
    for e in Draft202012Validator(root).iter_errors(body):
        failures.append(f"{at}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
print("\n".join(failures))
sys.exit(1 if failures else 0)
"##;

/// Real answers of the running authority, each held to the schema the
/// document gives for its operation and status: the schema types in
/// src/http/openapi/schemas.rs must not drift from the handlers.
#[tokio::test]
async fn answers_match_their_schemas() {
    use reqwest::Method;
    let ta = TestAuthority::start().await;
    let doc = document(&ta).await;
    if !python_has("jsonschema", "the answers-against-schemas check") {
        return;
    }
    let mut samples: Vec<(String, String, u16, Value)> = Vec::new();
    let mut admin = async |method: Method, template: &str, path: &str, body: Option<Value>| {
        let (status, v) = ta.admin(method.clone(), path, body).await;
        samples.push((format!("/admin/v1{template}"), method.to_string(), status, v.clone()));
        (status, v)
    };
    let (status, client) = admin(
        Method::POST,
        "/clients",
        "/clients",
        Some(serde_json::json!({"name": "orders-app", "audiences": ["orders"], "scopes": ["orders.read"]})),
    )
    .await;
    assert_eq!(status, 201, "{client}");
    let id = client["client_id"].as_str().unwrap().to_owned();
    admin(Method::GET, "/clients", "/clients", None).await;
    admin(Method::GET, "/clients/{id}", &format!("/clients/{id}"), None).await;
    admin(Method::GET, "/clients/{id}", "/clients/no-such-client", None).await;
    admin(
        Method::POST,
        "/clients",
        "/clients",
        Some(serde_json::json!({"name": ""})),
    )
    .await;
    let (_, rotated) = admin(
        Method::POST,
        "/clients/{id}/rotate-secret",
        &format!("/clients/{id}/rotate-secret"),
        None,
    )
    .await;
    let secret = rotated["client_secret"].as_str().unwrap().to_owned();
    admin(Method::GET, "/keys", "/keys", None).await;
    admin(Method::GET, "/verifiers", "/verifiers", None).await;
    let person = serde_json::json!({"username": "alice", "password": "a long enough password 1"});
    assert_eq!(admin(Method::POST, "/users", "/users", Some(person)).await.0, 201);
    admin(Method::GET, "/users", "/users", None).await;
    admin(Method::GET, "/users/{name}", "/users/alice", None).await;
    admin(Method::POST, "/users/{name}/suspend", "/users/alice/suspend", None).await;
    admin(Method::POST, "/users/{name}/resume", "/users/alice/resume", None).await;
    let password = serde_json::json!({"password": "another long password 2"});
    admin(
        Method::POST,
        "/users/{name}/password",
        "/users/alice/password",
        Some(password),
    )
    .await;
    let td = ta.get_json("/.well-known/openid-configuration").await["castellan_trust_domain"]
        .as_str()
        .unwrap()
        .to_owned();
    let workload = serde_json::json!({"spiffe_id": format!("spiffe://{td}/orders")});
    assert_eq!(
        admin(Method::POST, "/workloads", "/workloads", Some(workload)).await.0,
        201
    );
    admin(Method::GET, "/workloads", "/workloads", None).await;
    admin(Method::GET, "/ca", "/ca", None).await;
    let policies = serde_json::json!({"policies": "permit(principal, action, resource);", "note": "first"});
    let (status, pushed) = admin(Method::POST, "/policies/{service}", "/policies/orders", Some(policies)).await;
    assert_eq!(status, 201, "{pushed}");
    admin(Method::GET, "/policies", "/policies", None).await;
    admin(Method::GET, "/policies/{service}", "/policies/orders", None).await;
    admin(Method::GET, "/policies/{service}/{version}", "/policies/orders/1", None).await;
    admin(
        Method::GET,
        "/policies/{service}/{version}",
        "/policies/orders/latest",
        None,
    )
    .await;
    let back = serde_json::json!({"version": 1});
    admin(
        Method::POST,
        "/policies/{service}/rollback",
        "/policies/orders/rollback",
        Some(back),
    )
    .await;
    admin(Method::GET, "/decisions/{service}", "/decisions/orders", None).await;
    let canary = serde_json::json!({"audience": "orders", "check": "revoked-session"});
    assert_eq!(admin(Method::POST, "/canaries", "/canaries", Some(canary)).await.0, 201);
    admin(Method::GET, "/probe-runs", "/probe-runs", None).await;
    admin(Method::GET, "/report", "/report", None).await;
    admin(
        Method::POST,
        "/sessions/{id}/revoke",
        "/sessions/some-session/revoke",
        None,
    )
    .await;
    for (template, path) in [("/audit", "/audit"), ("/audit/verify", "/audit/verify")] {
        // Pending on another branch: checked once routed.
        let (status, v) = ta.admin(Method::GET, path, None).await;
        if !(status == 404 && v["error_description"] == "no such endpoint") {
            samples.push((format!("/admin/v1{template}"), "GET".to_owned(), status, v));
        }
    }

    // Unauthenticated admin call: the 401 answer.
    let resp = ta.http.get(format!("{}/admin/v1/keys", ta.url)).send().await.unwrap();
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    samples.push((
        "/admin/v1/keys".to_owned(),
        "GET".to_owned(),
        resp.status().as_u16(),
        resp.json().await.unwrap(),
    ));

    // The OAuth endpoints.
    let mut form = async |path: &str, basic: Option<(&str, &str)>, fields: &[(&str, &str)]| {
        let mut req = ta.http.post(format!("{}{path}", ta.url)).form(fields);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        samples.push((path.to_owned(), "POST".to_owned(), status, v.clone()));
        v
    };
    let issued = form(
        "/oauth2/token",
        Some((&id, &secret)),
        &[("grant_type", "client_credentials"), ("scope", "orders.read")],
    )
    .await;
    let token = issued["access_token"].as_str().unwrap().to_owned();
    form("/oauth2/token", Some((&id, &secret)), &[("grant_type", "password")]).await;
    form(
        "/oauth2/token",
        Some((&id, "wrong")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let admin_creds = Some((castellan_testkit::ADMIN_ID, castellan_testkit::ADMIN_SECRET));
    assert_eq!(
        form("/oauth2/introspect", admin_creds, &[("token", &token)]).await["active"],
        true
    );
    form("/oauth2/introspect", admin_creds, &[("token", "not-a-token")]).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
        "/revocations",
        "/ca/bundle.json",
    ] {
        let resp = ta.http.get(format!("{}{path}", ta.url)).send().await.unwrap();
        samples.push((
            path.to_owned(),
            "GET".to_owned(),
            resp.status().as_u16(),
            resp.json().await.unwrap(),
        ));
    }
    let resp = ta
        .http
        .get(format!("{}/oauth2/userinfo", ta.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    samples.push((
        "/oauth2/userinfo".to_owned(),
        "GET".to_owned(),
        resp.status().as_u16(),
        resp.json().await.unwrap(),
    ));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("doc.json"), serde_json::to_vec(&doc).unwrap()).unwrap();
    std::fs::write(dir.path().join("samples.json"), serde_json::to_vec(&samples).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", CHECK_ANSWERS])
        .arg(dir.path().join("doc.json"))
        .arg(dir.path().join("samples.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "answers that do not match the document ({} checked):\n{}\n{}",
        samples.len(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- The route table, read from the router's source ----
//
// The router is built in src/http/mod.rs (`router`), which `.nest`s other
// modules' routers (`admin::router()` at `paths::ADMIN`), which `.merge`
// more. This follows those calls from the root and collects every
// `.route(PATH, METHODS)`, with `paths::X` resolved from mod.rs and method
// helpers (`fn x() -> MethodRouter`) read through. Anything it does not
// understand fails the test rather than being skipped.

/// A function found in a source file.
struct Function {
    signature: String,
    body: String,
}

struct Module {
    functions: BTreeMap<String, Function>,
}

fn http_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http")
}

/// Every module under src/http, by path relative to it (`[]` is mod.rs).
fn modules() -> BTreeMap<Vec<String>, Module> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![http_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(http_dir()).unwrap().with_extension("");
            let mut segs: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if segs.last().is_some_and(|s| s == "mod") {
                segs.pop();
            }
            let text = clean(&std::fs::read_to_string(&path).unwrap());
            out.insert(
                segs,
                Module {
                    functions: functions(&text),
                },
            );
        }
    }
    out
}

/// The source without comments, with raw strings emptied and char literals
/// blanked, so brackets and quotes balance for the scanners below.
fn clean(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let ident = |i: usize| i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if rest.starts_with('r') && !ident(i) && rest[1..].trim_start_matches('#').starts_with('"') {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 1 + hashes + 1;
            i += body + rest[body..].find(&close).unwrap() + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            let end = skip_string(b, i);
            out.push_str(&text[i..end]);
            i = end;
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            i += 3 + rest[3..].find('\'').unwrap() + 1;
            out.push_str("'_'");
        } else if b[i] == b'\'' && rest.chars().nth(2) == Some('\'') {
            i += 1 + rest[1..].chars().next().unwrap().len_utf8() + 1;
            out.push_str("'_'");
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Skips a string literal starting at `i` (at the `"`); returns the index after it.
fn skip_string(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The index just past the bracket matching the one at `open`.
fn matching(b: &[u8], open: usize) -> usize {
    let (o, c) = match b[open] {
        b'(' => (b'(', b')'),
        b'{' => (b'{', b'}'),
        other => panic!("not a bracket: {}", other as char),
    };
    let mut depth = 0;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i = skip_string(b, i);
                continue;
            }
            x if x == o => depth += 1,
            x if x == c => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced brackets");
}

/// Top-level `fn name(...) ... { body }` items (and those in impl blocks).
fn functions(text: &str) -> BTreeMap<String, Function> {
    let b = text.as_bytes();
    let mut out = BTreeMap::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("fn ") {
        let start = i + at;
        i = start + 3;
        if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_') {
            continue;
        }
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        let Some(brace) = text[i..].find(['{', ';']).map(|o| o + i) else {
            break;
        };
        if b[brace] == b';' {
            continue;
        }
        let end = matching(b, brace);
        out.insert(
            name,
            Function {
                signature: text[start..brace].to_owned(),
                body: text[brace + 1..end - 1].to_owned(),
            },
        );
        i = end;
    }
    out
}

/// The top-level comma-separated arguments of the call whose `(` is at `open`.
fn args(b: &[u8], open: usize) -> (Vec<String>, usize) {
    let end = matching(b, open);
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = open + 1;
    let mut i = open + 1;
    while i < end - 1 {
        match b[i] {
            b'"' => {
                i = skip_string(b, i);
                continue;
            }
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' => depth -= 1,
            b',' if depth == 0 => {
                out.push(String::from_utf8_lossy(&b[start..i]).trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let last = String::from_utf8_lossy(&b[start..end - 1]).trim().to_owned();
    if !last.is_empty() {
        out.push(last);
    }
    (out, end)
}

/// Calls `.name(args)` in `body`, in order.
fn method_calls(body: &str) -> Vec<(String, Vec<String>)> {
    let b = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            i = skip_string(b, i);
            continue;
        }
        if b[i] == b'.' {
            let name: String = body[i + 1..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let open = i + 1 + name.len();
            if !name.is_empty() && b.get(open) == Some(&b'(') {
                let (a, end) = args(b, open);
                out.push((name, a));
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The callees at bracket depth 0 of an expression: `get(a).post(b)` → get, post.
fn top_level_calls(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut ident = String::new();
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            i = skip_string(b, i);
            ident.clear();
            continue;
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c == b':' {
            ident.push(c as char);
            i += 1;
            continue;
        }
        if c == b'(' || c == b'{' {
            if c == b'(' && !ident.is_empty() {
                out.push(ident.rsplit("::").next().unwrap().to_owned());
            }
            i = matching(b, i);
            ident.clear();
            continue;
        }
        ident.clear();
        i += 1;
    }
    out
}

/// `paths::X` constants from mod.rs.
fn path_constants() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(http_dir().join("mod.rs")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub const ") {
            let (name, rest) = rest.split_once(':').unwrap();
            if let Some((_, value)) = rest.split_once('"') {
                out.insert(name.trim().to_owned(), value.trim_end_matches("\";").to_owned());
            }
        }
    }
    out
}

fn path_of(expr: &str, consts: &BTreeMap<String, String>) -> String {
    if let Some(lit) = expr.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return lit.to_owned();
    }
    let name = expr
        .strip_prefix("paths::")
        .unwrap_or_else(|| panic!("unknown path expression `{expr}`"));
    consts[name].clone()
}

/// The module and function a router call like `super::admin::router()` names, seen from `module`.
fn callee(expr: &str, module: &[String]) -> (Vec<String>, String) {
    // `admin::router()` or `admin::router().route_layer(...)`: layers add no routes.
    let call = match expr.find("().") {
        Some(end) => &expr[..end + 2],
        None => expr,
    };
    let path = call
        .strip_suffix("()")
        .unwrap_or_else(|| panic!("router expression `{expr}` is not a call without arguments"));
    let mut segs: Vec<&str> = path.split("::").collect();
    let name = segs.pop().unwrap().to_owned();
    let mut base = module.to_vec();
    let mut rest = segs.as_slice();
    match rest.first() {
        Some(&"crate") => {
            assert_eq!(rest.get(1), Some(&"http"), "router outside http: `{expr}`");
            base.clear();
            rest = &rest[2..];
        }
        Some(&"self") => rest = &rest[1..],
        _ => {}
    }
    while rest.first() == Some(&"super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().map(|s| (*s).to_owned()));
    (base, name)
}

fn join(prefix: &str, path: &str) -> String {
    if path == "/" && !prefix.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}{path}")
    }
}

/// Every `(path, METHOD)` the router in the source serves.
fn source_routes() -> BTreeSet<(String, String)> {
    let modules = modules();
    let consts = path_constants();
    let mut out = BTreeSet::new();
    let mut todo = vec![(Vec::<String>::new(), "router".to_owned(), String::new())];
    let mut seen = BTreeSet::new();
    while let Some((module, name, prefix)) = todo.pop() {
        assert!(
            seen.insert((module.clone(), name.clone(), prefix.clone())),
            "router cycle at {name}"
        );
        let m = modules
            .get(&module)
            .unwrap_or_else(|| panic!("no module {module:?} under src/http"));
        let f = m
            .functions
            .get(&name)
            .unwrap_or_else(|| panic!("no fn `{name}` in module {module:?}"));
        assert!(
            f.signature.contains("Router"),
            "`{name}` in {module:?} is not a router: {}",
            f.signature
        );
        for (call, a) in method_calls(&f.body) {
            match call.as_str() {
                "route" => {
                    let path = join(&prefix, &path_of(&a[0], &consts));
                    for method in methods_of(&a[1], m) {
                        out.insert((path.clone(), method));
                    }
                }
                "nest" => {
                    let (module, name) = callee(&a[1], &module);
                    todo.push((module, name, join(&prefix, &path_of(&a[0], &consts))));
                }
                "merge" => {
                    let (module, name) = callee(&a[0], &module);
                    todo.push((module, name, prefix.clone()));
                }
                "route_service" | "nest_service" | "fallback_service" | "route_layer" => {
                    panic!("`.{call}(...)` in {module:?}::{name}: teach tests/openapi.rs about it")
                }
                _ => {}
            }
        }
    }
    out
}

/// The HTTP methods of a method-router expression (`get(a).post(b)`, or a
/// local helper returning one, such as `revoke_route(kind)`).
fn methods_of(expr: &str, module: &Module) -> Vec<String> {
    let mut out = Vec::new();
    for call in top_level_calls(expr) {
        if call == "any" {
            panic!("`any(...)` routes every method: list them in tests/openapi.rs");
        }
        if METHODS.contains(&call.as_str()) {
            out.push(call.to_uppercase());
        } else if let Some(helper) = module.functions.get(&call) {
            assert!(
                helper.signature.contains("MethodRouter"),
                "`{call}` is not a method router"
            );
            out.extend(methods_of(&helper.body, module));
        } else {
            panic!("cannot tell the methods of `{expr}` (`{call}`)");
        }
    }
    assert!(!out.is_empty(), "no methods in `{expr}`");
    out
}
