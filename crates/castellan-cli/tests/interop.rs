#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! Interoperability: tokens issued by the real `castellan` binary are checked
//! by independent implementations (PyJWT as a verifier, the `oauth2` crate as
//! a client) that share no code with Castellan.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::{ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use serde_json::Value;

const ADMIN_ID: &str = "interop-admin";
const ADMIN_SECRET: &str = "interop-admin-secret-0123456789abcdefghij";

/// A running `castellan serve` process, killed on drop.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(algorithm: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("castellan.toml");
        std::fs::write(&config, format!("[keys]\nalgorithm = \"{algorithm}\"\n")).unwrap();
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).unwrap();

        let mut child = Command::new(env!("CARGO_BIN_EXE_castellan"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .env_remove("CASTELLAN_MASTER_KEY")
            .env_remove("CASTELLAN_SERVER")
            .env("CASTELLAN_BOOTSTRAP_ADMIN_ID", ADMIN_ID)
            .env("CASTELLAN_BOOTSTRAP_ADMIN_SECRET", ADMIN_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn castellan");

        // Read the readiness line on a thread so a hung start fails the test
        // instead of blocking forever; the thread keeps draining stdout.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(line)) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "castellan ({algorithm}) did not report readiness ({other:?}); stderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        };
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected readiness line: {line:?}"))
            .trim()
            .to_owned();
        Self { child, url, _dir: dir }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Endpoints from the authorization server metadata document.
struct Discovery {
    token_endpoint: String,
    jwks_uri: String,
    introspection_endpoint: String,
    admin_endpoint: String,
}

fn http() -> reqwest::Client {
    castellan_testkit::install_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn discover(http: &reqwest::Client, url: &str) -> Discovery {
    let resp = http
        .get(format!("{url}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let meta: Value = resp.json().await.unwrap();
    assert_eq!(meta["issuer"], url);
    let field = |name: &str| {
        meta[name]
            .as_str()
            .unwrap_or_else(|| panic!("metadata lacks {name}: {meta}"))
            .to_owned()
    };
    Discovery {
        token_endpoint: field("token_endpoint"),
        jwks_uri: field("jwks_uri"),
        introspection_endpoint: field("introspection_endpoint"),
        admin_endpoint: field("castellan_admin_endpoint"),
    }
}

/// Creates a client with audience `orders` and scope `read`; returns
/// `(client_id, client_secret)`.
async fn create_client(http: &reqwest::Client, url: &str, d: &Discovery) -> (String, String) {
    let resp = http
        .post(&d.token_endpoint)
        .basic_auth(ADMIN_ID, Some(ADMIN_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "castellan.admin"),
            ("audience", url),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "admin token request failed");
    let body: Value = resp.json().await.unwrap();
    let admin_token = body["access_token"].as_str().unwrap().to_owned();

    let resp = http
        .post(format!("{}/clients", d.admin_endpoint))
        .bearer_auth(&admin_token)
        .json(&serde_json::json!({
            "name": "interop",
            "audiences": ["orders"],
            "scopes": ["read"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "client creation failed");
    let body: Value = resp.json().await.unwrap();
    (
        body["client_id"].as_str().unwrap().to_owned(),
        body["client_secret"].as_str().unwrap().to_owned(),
    )
}

async fn client_credentials_token(
    http: &reqwest::Client,
    d: &Discovery,
    client_id: &str,
    client_secret: &str,
) -> String {
    let resp = http
        .post(&d.token_endpoint)
        .basic_auth(client_id, Some(client_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "read"),
            ("audience", "orders"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "token request failed");
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

const PYJWT_VERIFY: &str = r#"
import json, sys
import jwt

token, jwks_uri, alg, issuer = sys.argv[1:5]
try:
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "at+jwt":
        raise ValueError("typ is %r, not at+jwt" % (header.get("typ"),))
    key = jwt.PyJWKClient(jwks_uri).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=[alg],
        audience="orders",
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
except Exception as e:
    print("REJECTED %s: %s" % (type(e).__name__, e), file=sys.stderr)
    sys.exit(2)
print(json.dumps({"header": header, "claims": claims}))
"#;

/// Makes sure PyJWT with the `cryptography` backend is importable, installing
/// it with pip when missing. Returns false when it cannot be had.
fn pyjwt_available() -> bool {
    let importable = || {
        Command::new("python3")
            .args(["-c", "import jwt, cryptography"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if importable() {
        return true;
    }
    let _ = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "pyjwt[crypto]",
        ])
        .status();
    importable()
}

fn run_pyjwt(script: &Path, token: &str, jwks_uri: &str, alg: &str, issuer: &str) -> (bool, String, String) {
    let out = Command::new("python3")
        .arg(script)
        .args([token, jwks_uri, alg, issuer])
        .output()
        .expect("run python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Alters characters near the end of the signature. The very last character
/// is left alone: some of its bits can be padding that decoders ignore, so
/// changing only it might leave the signature bytes unchanged.
fn tamper_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig: Vec<u8> = sig.bytes().collect();
    let n = sig.len();
    assert!(n > 8, "signature too short: {token}");
    for c in &mut sig[n - 6..n - 1] {
        *c = if *c == b'A' { b'B' } else { b'A' };
    }
    format!("{head}.{}", String::from_utf8(sig).unwrap())
}

#[tokio::test]
async fn pyjwt_verifies_tokens_for_every_algorithm() {
    if !pyjwt_available() {
        if std::env::var_os("CI").is_some() {
            panic!("PyJWT (pyjwt[crypto]) is unavailable and CI is set: this test must not skip");
        }
        // Straight to stderr: the test harness captures eprintln! of passing tests.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: pyjwt_verifies_tokens_for_every_algorithm: python3 with PyJWT and \
             cryptography is unavailable and could not be installed"
        );
        return;
    }
    let scripts = tempfile::tempdir().unwrap();
    let script = scripts.path().join("verify.py");
    std::fs::write(&script, PYJWT_VERIFY).unwrap();

    let http = http();
    for alg in ["ES256", "EdDSA", "RS256", "PS256"] {
        let server = Server::start(alg);
        let d = discover(&http, &server.url).await;
        let (client_id, client_secret) = create_client(&http, &server.url, &d).await;
        let token = client_credentials_token(&http, &d, &client_id, &client_secret).await;

        let (ok, stdout, stderr) = run_pyjwt(&script, &token, &d.jwks_uri, alg, &server.url);
        assert!(ok, "PyJWT rejected a genuine {alg} token: {stderr}");
        let out: Value =
            serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("PyJWT output is not JSON ({e}): {stdout}"));
        assert_eq!(out["header"]["alg"], alg);
        assert_eq!(out["header"]["typ"], "at+jwt");
        assert!(out["header"]["kid"].is_string(), "no kid: {out}");
        let claims = &out["claims"];
        assert_eq!(claims["sub"], client_id.as_str(), "{alg}: {claims}");
        assert_eq!(claims["aud"], "orders", "{alg}: {claims}");
        assert_eq!(claims["iss"], server.url.as_str());
        assert_eq!(claims["client_id"], client_id.as_str());
        assert_eq!(claims["scope"], "read");

        // Negative control: the same token with a damaged signature must fail,
        // and fail on the signature, not on anything incidental.
        let forged = tamper_signature(&token);
        assert_ne!(forged, token);
        let (ok, stdout, stderr) = run_pyjwt(&script, &forged, &d.jwks_uri, alg, &server.url);
        assert!(!ok, "PyJWT accepted a {alg} token with an altered signature: {stdout}");
        assert!(
            stderr.contains("REJECTED InvalidSignatureError"),
            "{alg}: altered token rejected for the wrong reason: {stderr}"
        );
    }
}

#[tokio::test]
async fn oauth2_crate_client_credentials_via_discovery() {
    let server = Server::start("ES256");
    let http = http();
    let d = discover(&http, &server.url).await;
    let (client_id, client_secret) = create_client(&http, &server.url, &d).await;

    let client = BasicClient::new(ClientId::new(client_id.clone()))
        .set_client_secret(ClientSecret::new(client_secret.clone()))
        .set_token_uri(TokenUrl::new(d.token_endpoint.clone()).unwrap());
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("read".to_owned()))
        .add_extra_param("audience", "orders")
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("oauth2 client_credentials failed: {e:?}"));
    assert_eq!(*token.token_type(), BasicTokenType::Bearer);
    assert_eq!(token.expires_in(), Some(Duration::from_secs(300)));
    assert_eq!(token.scopes().cloned(), Some(vec![Scope::new("read".to_owned())]));

    let resp = http
        .post(&d.introspection_endpoint)
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[("token", token.access_token().secret().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["active"], true, "introspection: {body}");

    // A wrong secret must be refused with a standard RFC 6749 error.
    let bad = BasicClient::new(ClientId::new(client_id))
        .set_client_secret(ClientSecret::new(format!("{client_secret}x")))
        .set_token_uri(TokenUrl::new(d.token_endpoint).unwrap());
    let err = bad
        .exchange_client_credentials()
        .add_scope(Scope::new("read".to_owned()))
        .add_extra_param("audience", "orders")
        .request_async(&http)
        .await
        .expect_err("a wrong secret must not yield a token");
    match err {
        RequestTokenError::ServerResponse(resp) => {
            assert_eq!(*resp.error(), BasicErrorResponseType::InvalidClient);
        }
        other => panic!("expected an invalid_client error response, got {other:?}"),
    }
}
