//! Real processes for integration tests: the authority, gates, and an admin
//! HTTP client. Every process is killed when its handle drops.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_castellan");
pub const ADMIN_ID: &str = "it-admin";
pub const ADMIN_SECRET: &str = "it-admin-secret-0123456789abcdefghijklmnop";

/// A child process that printed `listening on URL` first.
pub struct Proc {
    pub child: Child,
    pub url: String,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, url }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (graceful shutdown) and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit within 5 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> String {
        self.url.rsplit(':').next().unwrap().to_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `POST {base}/oauth2/token` with `grant_type=client_credentials` and `form`,
/// as client `id` (HTTP Basic): the status and the JSON answer.
pub async fn client_credentials(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut pairs = vec![("grant_type", "client_credentials")];
    pairs.extend_from_slice(form);
    let r = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&pairs)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The kids `{base}` publishes in its JWKS, sorted.
pub async fn jwks_kids(http: &reqwest::Client, base: &str) -> Vec<String> {
    let jwks: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

/// The authority binary with a known admin.
pub struct Authority {
    pub proc: Proc,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
}

impl Authority {
    pub fn start(data_dir: &Path, listen: &str) -> Self {
        Self::start_with(data_dir, listen, &[])
    }

    /// With more `serve` flags.
    pub fn start_with(data_dir: &Path, listen: &str, extra: &[&str]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("CASTELLAN_BOOTSTRAP_ADMIN_ID", ADMIN_ID)
            .env("CASTELLAN_BOOTSTRAP_ADMIN_SECRET", ADMIN_SECRET)
            .env_remove("CASTELLAN_MASTER_KEY");
        Self {
            proc: Proc::spawn(cmd),
            data_dir: data_dir.to_owned(),
            http: castellan_testkit::http_client(),
        }
    }

    pub fn url(&self) -> &str {
        &self.proc.url
    }

    pub fn restart(&mut self) {
        let port = self.proc.port();
        self.proc.kill9();
        let again = Self::start(&self.data_dir, &format!("127.0.0.1:{port}"));
        *self = again;
    }

    pub async fn token(&self, id: &str, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
        client_credentials(&self.http, self.url(), id, secret, form).await
    }

    pub async fn access_token(&self, id: &str, secret: &str) -> String {
        let (status, v) = self.token(id, secret, &[]).await;
        assert_eq!(status, 200, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, t) = self
            .token(
                ADMIN_ID,
                ADMIN_SECRET,
                &[("scope", "castellan.admin"), ("audience", self.url())],
            )
            .await;
        assert_eq!(status, 200, "{t}");
        let mut req = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.url()))
            .bearer_auth(t["access_token"].as_str().unwrap());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    /// A secret client allowed `audiences`; returns (id, secret).
    pub async fn client(&self, audiences: &[&str]) -> (String, String) {
        let v = self
            .admin(
                reqwest::Method::POST,
                "/clients",
                Some(json!({"name": "it", "audiences": audiences})),
            )
            .await;
        (
            v["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// Runs the admin CLI against this authority.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .args(["--server", self.url()])
            .env("CASTELLAN_CLIENT_ID", ADMIN_ID)
            .env("CASTELLAN_CLIENT_SECRET", ADMIN_SECRET)
            .output()
            .unwrap()
    }
}

/// A gate process, ready (its verifier connected) when returned.
pub async fn gate(authority: &str, audience: &str, upstream: Option<&str>, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "gate",
        "--listen",
        "127.0.0.1:0",
        "--authority",
        authority,
        "--audience",
        audience,
    ]);
    match upstream {
        Some(u) => cmd.args(["--upstream", u]),
        None => cmd.arg("--forward-auth"),
    };
    cmd.args(extra);
    let proc = Proc::spawn(cmd);
    let http = castellan_testkit::http_client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Proxy mode has its own readiness path; in forward-auth mode every path is an
        // authorization question, and a 401 (not 503) means the verifier is connected.
        let ready = match upstream {
            Some(_) => http.get(format!("{}/.castellan/ready", proc.url)).send().await,
            None => http.get(&proc.url).send().await,
        };
        let want = if upstream.is_some() { 200 } else { 401 };
        if ready.is_ok_and(|r| r.status() == want) {
            return proc;
        }
        assert!(Instant::now() < deadline, "gate not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `f` until true, at most `limit`; returns the time it took.
pub async fn within<F, Fut>(limit: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "condition not met within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An upstream that echoes what it received as JSON and counts requests.
pub struct Echo {
    pub url: String,
    pub hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

pub async fn echo() -> Echo {
    use axum::extract::Request;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let (parts, body) = req.into_parts();
            if parts.uri.path() == "/slow" {
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
            let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
            let headers: serde_json::Map<String, Value> = parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or("<binary>"))))
                .collect();
            axum::Json(json!({
                "method": parts.method.as_str(),
                "uri": parts.uri.to_string(),
                "headers": headers,
                "body_len": bytes.len(),
            }))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Echo { url, hits }
}
