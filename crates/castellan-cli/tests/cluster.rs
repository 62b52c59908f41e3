//! Several authority nodes on one PostgreSQL database, as real processes
//! behind a load balancer written for the test: concurrent first start,
//! admin changes on one node honoured by the other, a revocation made on one
//! node reaching a gate fed by the other within a second, rotations seen
//! everywhere, a node killed mid-load losing no acknowledged write, and
//! scheduled rotation led by one node at a time with failover.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

mod common;

use common::{client_credentials, echo, gate, jwks_kids, within, Proc, ADMIN_ID, ADMIN_SECRET, BIN};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every node of a cluster shares it (base64 of 32 bytes).
const MASTER_KEY: &str = "Q2FzdGVsbGFuIGNsdXN0ZXIgdGVzdCBtYXN0ZXIga2U=";

/// A TCP proxy: each new connection goes to the backend chosen now (a load
/// balancer), and it can be cut (every connection dropped, new ones
/// refused) and restored, as a network partition would.
struct Proxy {
    /// `host:port` it listens on.
    addr: String,
    /// `http://` + `addr`.
    url: String,
    backend: Arc<Mutex<SocketAddr>>,
    cut: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

async fn proxy(first: SocketAddr) -> Proxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let backend = Arc::new(Mutex::new(first));
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
    let (target, flag, tasks) = (backend.clone(), cut.clone(), conns.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                drop(inbound);
                continue;
            }
            let to = *target.lock().unwrap();
            let task = tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
            let mut tasks = tasks.lock().unwrap();
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
    });
    Proxy {
        url: format!("http://{addr}"),
        addr,
        backend,
        cut,
        conns,
    }
}

impl Proxy {
    fn route_to(&self, node: &Node) {
        *self.backend.lock().unwrap() = node.addr();
    }
    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

struct Node {
    proc: Proc,
    http: reqwest::Client,
}

impl Node {
    fn start(dir: &Path, database: &str, issuer: &str, config: Option<&Path>) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            database,
            "--issuer",
            issuer,
            "--data-dir",
        ])
        .arg(dir)
        .env("CASTELLAN_MASTER_KEY", MASTER_KEY)
        .env("CASTELLAN_BOOTSTRAP_ADMIN_ID", ADMIN_ID)
        .env("CASTELLAN_BOOTSTRAP_ADMIN_SECRET", ADMIN_SECRET);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        Self {
            proc: Proc::spawn(cmd),
            http: castellan_testkit::http_client(),
        }
    }

    fn url(&self) -> &str {
        &self.proc.url
    }

    fn addr(&self) -> SocketAddr {
        self.url().trim_start_matches("http://").parse().unwrap()
    }

    async fn token(&self, id: &str, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
        client_credentials(&self.http, self.url(), id, secret, form).await
    }

    /// An admin call answered by this node (the admin token names the cluster's issuer).
    async fn admin(&self, issuer: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, t) = self
            .token(
                ADMIN_ID,
                ADMIN_SECRET,
                &[("scope", "castellan.admin"), ("audience", issuer)],
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
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn jwks_kids(&self) -> Vec<String> {
        jwks_kids(&self.http, self.url()).await
    }

    async fn leads(&self) -> bool {
        let text = self
            .http
            .get(format!("{}/metrics", self.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .any(|l| l.starts_with("castellan_scheduler_leader") && l.ends_with(" 1"))
    }
}

/// Two nodes started at the same moment on an empty database.
async fn two_nodes(database: &str, issuer: &str, dirs: &tempfile::TempDir, config: Option<&Path>) -> (Node, Node) {
    let (a, b) = (dirs.path().join("a"), dirs.path().join("b"));
    let (db1, db2, i1, i2) = (
        database.to_owned(),
        database.to_owned(),
        issuer.to_owned(),
        issuer.to_owned(),
    );
    let c1 = config.map(Path::to_path_buf);
    let c2 = c1.clone();
    let one = std::thread::spawn(move || Node::start(&a, &db1, &i1, c1.as_deref()));
    let two = std::thread::spawn(move || Node::start(&b, &db2, &i2, c2.as_deref()));
    (one.join().unwrap(), two.join().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_act_as_one_authority() {
    let Some((database, db)) =
        castellan_store::testing::fresh_postgres_database("two_nodes_on_one_database_act_as_one_authority").await
    else {
        return;
    };
    let dirs = tempfile::tempdir().unwrap();
    // The balancer's address is the issuer; which node answers is its business.
    let placeholder: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let lb = proxy(placeholder).await;
    let (a, b) = two_nodes(&database, &lb.url, &dirs, None).await;
    lb.route_to(&b);

    // Started together on an empty database: one set of keys, one admin.
    let kids = a.jwks_kids().await;
    assert_eq!(kids.len(), 2, "one active and one next key: {kids:?}");
    assert_eq!(b.jwks_kids().await, kids);
    let (_, keys) = a.admin(&lb.url, reqwest::Method::GET, "/keys", None).await;
    let active = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["state"] == "active")
        .count();
    assert_eq!(active, 1, "{keys}");

    // A node with another issuer, or another master key, refuses to join
    // (the server trusts loopback, so a password in the URL is only a secret
    // that must not be printed).
    let with_password = database.replacen("postgres@", "postgres:sekret-pw@", 1);
    assert_ne!(with_password, database);
    for (issuer, key, says) in [
        ("http://127.0.0.1:1", MASTER_KEY, "needs the issuer its other nodes use"),
        (
            lb.url.as_str(),
            "YW5vdGhlciBjYXN0ZWxsYW4gbWFzdGVyIGtleSAzMmI=",
            "master key does not match",
        ),
    ] {
        let out = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                &with_password,
                "--issuer",
                issuer,
            ])
            .arg("--data-dir")
            .arg(dirs.path().join("stray"))
            .env("CASTELLAN_MASTER_KEY", key)
            .env("CASTELLAN_BOOTSTRAP_ADMIN_ID", ADMIN_ID)
            .env("CASTELLAN_BOOTSTRAP_ADMIN_SECRET", ADMIN_SECRET)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{err}");
        assert!(!err.contains("sekret-pw"), "the database password is not echoed: {err}");
    }
    assert_eq!(b.jwks_kids().await, kids, "nothing changed");

    // A client created on A gets tokens from B.
    let (status, client) = a
        .admin(
            &lb.url,
            reqwest::Method::POST,
            "/clients",
            Some(json!({"name": "orders-caller", "audiences": ["orders"]})),
        )
        .await;
    assert_eq!(status, 201, "{client}");
    let (id, secret) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let (status, t) = b.token(id, secret, &[("audience", "orders")]).await;
    assert_eq!(status, 200, "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();

    // A gate fed by B (through the balancer) accepts it; a revocation made on A
    // reaches it within a second.
    let upstream = echo().await;
    let g = gate(&lb.url, "orders", Some(&upstream.url), &[]).await;
    let call = |token: String| {
        let http = castellan_testkit::http_client();
        let url = format!("{}/anything", g.url);
        async move { http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(call(token.clone()).await, 200);
    // The gate reports to B; A sees it too (heartbeats are shared through the database).
    within(Duration::from_secs(12), || async {
        let (_, v) = a.admin(&lb.url, reqwest::Method::GET, "/verifiers", None).await;
        v["verifiers"].as_array().is_some_and(|list| {
            list.iter()
                .any(|x| x["audience"] == "orders" && x["kind"] == "gate" && x["live"] == true)
        })
    })
    .await;
    let sid = castellan_jose::decode_unverified_claims(&token).unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, v) = a
        .admin(&lb.url, reqwest::Method::POST, &format!("/sessions/{sid}/revoke"), None)
        .await;
    assert!(status < 300, "{v}");
    let took = within(Duration::from_secs(1), || {
        let t = token.clone();
        let c = &call;
        async move { c(t).await == 401 }
    })
    .await;
    eprintln!("revocation on node A refused at a gate fed by node B after {took:?}");

    // A rotation on A shows in B's JWKS within a second.
    let (status, v) = a
        .admin(
            &lb.url,
            reqwest::Method::POST,
            "/keys/rotate",
            Some(json!({"emergency": true})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let rotated = a.jwks_kids().await;
    assert_ne!(rotated, kids);
    let took = within(Duration::from_secs(1), || async { b.jwks_kids().await == rotated }).await;
    eprintln!("rotation on node A in node B's JWKS after {took:?}");
    // And B signs with the new active key.
    let (_, t) = b.token(id, secret, &[("audience", "orders")]).await;
    let fresh = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(call(fresh.clone()).await, 200, "the gate trusts B's new key");

    // Kill A mid-load: every client A acknowledged exists on B; the gate keeps working.
    let mut a = a;
    let writer = {
        let (http, url, issuer) = (castellan_testkit::http_client(), a.url().to_owned(), lb.url.clone());
        tokio::spawn(async move {
            let (status, t) = {
                let r = http
                    .post(format!("{url}/oauth2/token"))
                    .basic_auth(ADMIN_ID, Some(ADMIN_SECRET))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("scope", "castellan.admin"),
                        ("audience", issuer.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            };
            assert_eq!(status, 200);
            let admin = t["access_token"].as_str().unwrap().to_owned();
            let mut acknowledged = Vec::new();
            for i in 0..10_000 {
                let sent = http
                    .post(format!("{url}/admin/v1/clients"))
                    .bearer_auth(&admin)
                    .json(&json!({"name": format!("load-{i}"), "audiences": ["orders"]}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        let v: Value = match r.json().await {
                            Ok(v) => v,
                            Err(_) => break, // cut mid-answer: not acknowledged
                        };
                        acknowledged.push(v["client_id"].as_str().unwrap().to_owned());
                    }
                    _ => break,
                }
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.proc.kill9();
    let acknowledged = writer.await.unwrap();
    assert!(
        acknowledged.len() > 5,
        "load ran before the kill: {}",
        acknowledged.len()
    );
    let (status, list) = b.admin(&lb.url, reqwest::Method::GET, "/clients", None).await;
    assert_eq!(status, 200);
    let stored: std::collections::HashSet<&str> = list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(id.as_str())).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    eprintln!(
        "{} client creations acknowledged by node A before kill -9; none lost",
        acknowledged.len()
    );
    assert_eq!(call(fresh).await, 200, "the gate keeps working");
    let (status, _) = b.token(id, secret, &[("audience", "orders")]).await;
    assert_eq!(status, 200, "node B keeps issuing");

    drop(g);
    drop(b);
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_rotates_on_schedule_and_another_takes_over_when_it_dies() {
    let Some((database, db)) = castellan_store::testing::fresh_postgres_database(
        "one_node_rotates_on_schedule_and_another_takes_over_when_it_dies",
    )
    .await
    else {
        return;
    };
    let dirs = tempfile::tempdir().unwrap();
    let config = dirs.path().join("fast.toml");
    std::fs::write(
        &config,
        "[keys]\nrotation_interval = \"3s\"\njwks_max_age = \"1s\"\ncheck_interval = \"1s\"\nack_timeout = \"0s\"\n\n[database]\nleader_lease = \"3s\"\n",
    )
    .unwrap();
    let issuer = "http://127.0.0.1:9"; // nobody calls the issuer here
    let (mut a, mut b) = two_nodes(&database, issuer, &dirs, Some(&config)).await;

    // Exactly one leader.
    let leaders = within(Duration::from_secs(5), || async { a.leads().await != b.leads().await }).await;
    eprintln!("one leader after {leaders:?}");
    let (mut leader, other) = if a.leads().await {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };

    let activations = |keys: &Value| -> Vec<i64> {
        let mut v: Vec<i64> = keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k["activated_at"].as_i64())
            .collect();
        v.sort_unstable();
        v
    };
    // Rotations happen, each once: activations at least the interval apart, one active key.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (_, keys) = other.admin(issuer, reqwest::Method::GET, "/keys", None).await;
    let before = activations(&keys);
    assert!(before.len() >= 2, "rotated on schedule: {keys}");
    assert!(
        before.windows(2).all(|w| w[1] - w[0] >= 3),
        "no double rotation: {before:?}"
    );
    assert_eq!(
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["state"] == "active")
            .count(),
        1,
        "{keys}"
    );

    // The leader dies: the other node takes over within a lease period and rotation goes on.
    leader.proc.kill9();
    let _ = &mut leader;
    let took = within(Duration::from_secs(8), || async { other.leads().await }).await;
    eprintln!("leader failover after {took:?}");
    let newest = *before.last().unwrap();
    within(Duration::from_secs(10), || async {
        let (_, keys) = other.admin(issuer, reqwest::Method::GET, "/keys", None).await;
        activations(&keys).last().is_some_and(|t| *t > newest)
    })
    .await;
    let (_, keys) = other.admin(issuer, reqwest::Method::GET, "/keys", None).await;
    let after = activations(&keys);
    assert!(
        after.windows(2).all(|w| w[1] - w[0] >= 3),
        "no double rotation after failover: {after:?}"
    );
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_its_database_stops_issuing_and_says_so() {
    let Some((database, db)) =
        castellan_store::testing::fresh_postgres_database("a_node_that_loses_its_database_stops_issuing_and_says_so")
            .await
    else {
        return;
    };
    // The node reaches the database through a cable the test can cut.
    let url = url::Url::parse(&database).unwrap();
    let server: SocketAddr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
        .parse()
        .unwrap();
    let cable = proxy(server).await;
    let mut through = url.clone();
    let (host, port) = cable.addr.split_once(':').unwrap();
    through.set_host(Some(host)).unwrap();
    through.set_port(Some(port.parse().unwrap())).unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let config = dirs.path().join("quick.toml");
    std::fs::write(
        &config,
        "[database]\nacquire_timeout = \"1s\"\nstatement_timeout = \"1s\"\n",
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--listen",
        issuer.trim_start_matches("http://"),
        "--issuer",
        &issuer,
    ])
    .args(["--database", through.as_str(), "--config"])
    .arg(&config)
    .arg("--data-dir")
    .arg(dirs.path().join("n"))
    .env("CASTELLAN_MASTER_KEY", MASTER_KEY)
    .env("CASTELLAN_BOOTSTRAP_ADMIN_ID", ADMIN_ID)
    .env("CASTELLAN_BOOTSTRAP_ADMIN_SECRET", ADMIN_SECRET);
    let node = Node {
        proc: Proc::spawn(cmd),
        http: castellan_testkit::http_client(),
    };
    let ready = || async {
        node.http
            .get(format!("{}/readyz", node.url()))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(ready().await, 200);
    let (_, client) = node
        .admin(
            &issuer,
            reqwest::Method::POST,
            "/clients",
            Some(json!({"name": "caller", "audiences": ["orders"]})),
        )
        .await;
    let (id, secret) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let (status, t) = node.token(id, secret, &[("audience", "orders")]).await;
    assert_eq!(status, 200, "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();
    let upstream = echo().await;
    let g = gate(&issuer, "orders", Some(&upstream.url), &[]).await;
    let gate_says = |token: String| {
        let (http, url) = (castellan_testkit::http_client(), format!("{}/x", g.url));
        async move { http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(gate_says(token.clone()).await, 200);

    // The database goes away: no token is issued, the answer says to retry,
    // readiness fails, and the gate keeps serving tokens already issued.
    cable.cut();
    let start = std::time::Instant::now();
    let r = node
        .http
        .post(format!("{}/oauth2/token", node.url()))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("audience", "orders")])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let body: Value = r.json().await.unwrap();
    eprintln!(
        "token request with the database cut: {status} after {:?}",
        start.elapsed()
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "{body}"
    );
    assert!(body.get("access_token").is_none());
    assert_eq!(retry.as_deref(), Some("1"));
    within(Duration::from_secs(5), || async { ready().await == 503 }).await;
    assert_eq!(
        gate_says(token.clone()).await,
        200,
        "verifiers keep serving genuine tokens"
    );

    // Back: ready again and issuing.
    cable.restore();
    let took = within(Duration::from_secs(10), || async { ready().await == 200 }).await;
    eprintln!("ready again {took:?} after the database came back");
    let (status, t) = node.token(id, secret, &[("audience", "orders")]).await;
    assert_eq!(status, 200, "{t}");
    drop(g);
    drop(node);
    db.drop_database().await.unwrap();
}
