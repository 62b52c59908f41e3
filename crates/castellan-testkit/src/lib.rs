//! Boots a real Castellan authority in-process, on an ephemeral loopback
//! port, with a clock the test moves. Integration tests speak HTTP to it.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // a test helper: failing loudly is its job

pub mod browser;
pub mod workload;

use castellan_authority::{Authority, Config, StartEnv};
use castellan_core::ManualClock;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Makes aws-lc-rs the process's TLS provider (reqwest needs one before any client is built).
pub fn install_tls_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// An HTTP client for tests.
pub fn http_client() -> reqwest::Client {
    install_tls_provider();
    reqwest::Client::new()
}

/// The bootstrap admin every test authority starts with.
pub const ADMIN_ID: &str = "test-admin";
/// Its secret.
pub const ADMIN_SECRET: &str = "test-admin-secret-0123456789abcdef0123456789";

/// A running in-process authority.
pub struct TestAuthority {
    /// Base URL (also the issuer).
    pub url: String,
    /// The authority itself, for scheduler steps and inspection.
    pub authority: Arc<Authority>,
    /// The clock it reads.
    pub clock: ManualClock,
    /// An HTTP client.
    pub http: reqwest::Client,
    config: Config,
    server: Option<Server>,
    _dir: tempfile::TempDir,
}

/// A serving loop whose every connection can be cut at once (a `kill -9`
/// as far as clients can tell; in-flight streams end abruptly).
struct Server {
    kill: oneshot::Sender<()>,
    /// Stops the mTLS listener, when there is one.
    kill_mtls: Option<oneshot::Sender<()>>,
}

fn env() -> StartEnv {
    StartEnv {
        master_key: None,
        bootstrap_admin_id: Some(ADMIN_ID.to_owned()),
        bootstrap_admin_secret: Some(ADMIN_SECRET.to_owned()),
    }
}

fn serve(
    listener: tokio::net::TcpListener,
    mtls: Option<tokio::net::TcpListener>,
    authority: Arc<Authority>,
) -> Server {
    let kill_mtls = mtls.map(|l| {
        let (kill, killed) = oneshot::channel::<()>();
        let auth = authority.clone();
        tokio::spawn(async move {
            let stop = async move {
                let _ = killed.await;
            };
            if let Err(e) = castellan_authority::mtls::serve_mtls(auth, l, stop).await {
                eprintln!("testkit: mtls listener failed: {e}");
            }
        });
        kill
    });
    let (kill, mut killed) = oneshot::channel::<()>();
    let app = castellan_authority::http::router(authority);
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut killed => break,
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    // As `axum::serve` with connect info does: handlers see the peer address.
                    let app = app.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer)));
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    conns.spawn(async move {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                    });
                }
            }
        }
        conns.abort_all();
    });
    Server { kill, kill_mtls }
}

async fn bind_retrying(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..50 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    tokio::net::TcpListener::bind(addr).await.expect("the same port again")
}

impl TestAuthority {
    /// Default configuration, clock at the real now.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// With a configuration tweak.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = Config {
            listen: addr,
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        tweak(&mut config);
        let mtls = match config.ca.mtls_listen {
            Some(at) => {
                let l = tokio::net::TcpListener::bind(at).await.expect("bind mtls");
                config.ca.mtls_listen = Some(l.local_addr().expect("mtls addr"));
                Some(l)
            }
            None => None,
        };
        let clock = ManualClock::starting_now();
        let authority = Authority::open(config.clone(), &env(), Arc::new(clock.clone()))
            .await
            .expect("authority starts");
        let server = serve(listener, mtls, authority.clone());
        Self {
            url: authority.issuer().to_owned(),
            authority,
            clock,
            http: http_client(),
            config,
            server: Some(server),
            _dir: dir,
        }
    }

    /// Cuts every connection and stops listening, as a crash would.
    pub fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.kill.send(());
            if let Some(k) = server.kill_mtls {
                let _ = k.send(());
            }
        }
    }

    /// With the mTLS listener for workloads on a free loopback port.
    pub async fn start_with_mtls() -> Self {
        Self::start_with(|c| c.ca.mtls_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))).await
    }

    /// The base URL of the mTLS listener, when there is one.
    pub fn mtls_url(&self) -> Option<String> {
        self.config.mtls_url()
    }

    /// Starts the authority again on a new, empty store (as after a restore
    /// from an old backup or a replaced database): new keys, a new revocation log.
    pub async fn restart_with_fresh_store(&mut self) {
        self.kill();
        for name in ["castellan.db", "castellan.db-wal", "castellan.db-shm"] {
            let _ = std::fs::remove_file(self.config.data_dir.join(name));
        }
        self.restart().await;
    }

    /// Starts the authority again on the same address, data dir and clock.
    pub async fn restart(&mut self) {
        self.kill();
        let listener = bind_retrying(self.config.listen).await;
        let mtls = match self.config.ca.mtls_listen {
            Some(at) => Some(bind_retrying(at).await),
            None => None,
        };
        self.authority = Authority::open(self.config.clone(), &env(), Arc::new(self.clock.clone()))
            .await
            .expect("authority restarts");
        self.server = Some(serve(listener, mtls, self.authority.clone()));
    }

    /// `POST /oauth2/token` with a form, Basic-authenticated when `basic` is given.
    pub async fn token_request(&self, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> reqwest::Response {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .http
            .post(format!("{}/oauth2/token", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        req.send().await.expect("token request")
    }

    /// A token for the admin API.
    pub async fn admin_token(&self) -> String {
        let resp = self
            .token_request(
                Some((ADMIN_ID, ADMIN_SECRET)),
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "castellan.admin"),
                    ("audience", &self.url),
                ],
            )
            .await;
        assert_eq!(resp.status(), 200, "admin token");
        let v: Value = resp.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// Calls the admin API.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let token = self.admin_token().await;
        let mut req = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Creates a secret client for `aud`; returns (id, secret).
    pub async fn client(&self, name: &str, audiences: &[&str], scopes: &[&str]) -> (String, String) {
        let (status, v) = self
            .admin(
                reqwest::Method::POST,
                "/clients",
                Some(json!({"name": name, "audiences": audiences, "scopes": scopes})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        (
            v["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    /// A client_credentials token; panics unless 200.
    pub async fn access_token(&self, id: &str, secret: &str, extra: &[(&str, &str)]) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let resp = self.token_request(Some((id, secret)), &form).await;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    }

    /// `GET` a path of the authority and read the JSON answer.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The published JWKS.
    pub async fn jwks(&self) -> Value {
        self.get_json("/.well-known/jwks.json").await
    }

    /// Kids in the published JWKS, in order.
    pub async fn published_kids(&self) -> Vec<String> {
        self.jwks().await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Introspects with the admin client; returns the JSON answer.
    pub async fn introspect(&self, token: &str) -> Value {
        self.http
            .post(format!("{}/oauth2/introspect", self.url))
            .basic_auth(ADMIN_ID, Some(ADMIN_SECRET))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for TestAuthority {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The kid in a compact JWS header.
pub fn kid_of(token: &str) -> String {
    castellan_jose::decode_unverified_header(token).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}
