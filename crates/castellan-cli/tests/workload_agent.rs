//! `castellan workload agent` keeps an SVID directory fresh by renewing over
//! mTLS with the current SVID, a gate serving from that directory reloads
//! it, and a CA rotation in the middle fails no handshake. Also
//! certificate-bound tokens (RFC 8705) at the mTLS gate: good only with the
//! certificate they were issued to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

mod common;

use castellan_ca::{certs_from_pem, CaCert, SpiffeId};
use castellan_testkit::workload::TestSvid;
use common::{echo, Authority, BIN};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn read_svid(dir: &Path) -> TestSvid {
    let svid_pem = std::fs::read_to_string(dir.join("svid.pem")).unwrap();
    let leaf = certs_from_pem(svid_pem.as_bytes()).unwrap().remove(0);
    TestSvid {
        id: castellan_ca::parse_svid_peer(&leaf).unwrap(),
        key_pem: std::fs::read_to_string(dir.join("svid_key.pem")).unwrap(),
        svid_pem,
        bundle_pem: std::fs::read_to_string(dir.join("bundle.pem")).unwrap(),
    }
}

fn issuer_id(svid_pem: &str) -> String {
    CaCert::from_der(&certs_from_pem(svid_pem.as_bytes()).unwrap()[1])
        .unwrap()
        .id()
        .to_owned()
}

/// `castellan workload svid` with a fresh join token for `id`.
fn fetch_svid(auth: &Authority, id: &str, dir: &Path, extra: &[&str]) {
    let mut args = vec!["workload", "register", id, "--json"];
    args.extend_from_slice(extra);
    let out = auth.cli(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reg: Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = Command::new(BIN)
        .args(["workload", "svid", "--server", auth.url(), "--out"])
        .arg(dir)
        .args(["--join-token", reg["join_token"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The mTLS gate binary; returns it with its https address and health URL.
fn mtls_gate(auth: &Authority, upstream: &str, svid_dir: &Path, allow: &[&str]) -> (Killed, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "gate",
        "--listen",
        "127.0.0.1:0",
        "--health-listen",
        "127.0.0.1:0",
        "--authority",
        auth.url(),
        "--audience",
        "orders",
        "--upstream",
        upstream,
        "--svid-dir",
    ])
    .arg(svid_dir);
    for peer in allow {
        cmd.args(["--allow-peer", peer]);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines.next().unwrap().unwrap().replace("listening on ", "");
    let health = lines.next().unwrap().unwrap().replace("health on ", "");
    std::thread::spawn(move || lines.for_each(drop));
    (Killed(child), addr, health)
}

async fn wait_ready(health: &str) {
    let http = castellan_testkit::http_client();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !http
        .get(format!("{health}/.castellan/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "gate not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request on a new connection (a full handshake) to the mTLS gate.
async fn call(svid: &TestSvid, gate_id: &SpiffeId, addr: &str, token: &str) -> Result<u16, String> {
    svid.mtls_client(gate_id)
        .get(format!("{addr}/v1/orders"))
        .bearer_auth(token)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

async fn discovery(auth: &Authority) -> Value {
    auth.http
        .get(format!("{}/.well-known/openid-configuration", auth.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_agent_renews_over_mtls_and_a_ca_rotation_fails_no_handshake() {
    let data = tempfile::tempdir().unwrap();
    let auth = Authority::start_with(data.path(), "127.0.0.1:0", &["--mtls-listen", "127.0.0.1:0"]);
    let td = "spiffe://127.0.0.1";
    let gate_id = SpiffeId::parse(&format!("{td}/gate/orders")).unwrap();
    let caller_id = format!("{td}/svc/billing");
    let dirs = tempfile::tempdir().unwrap();
    let (gate_dir, caller_dir) = (dirs.path().join("gate"), dirs.path().join("caller"));

    // The gate's SVID lives a minute, so the agent renews it at half-life (~15 s).
    let out = auth.cli(&["workload", "register", gate_id.as_str(), "--svid-ttl", "1m", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reg: Value = serde_json::from_slice(&out.stdout).unwrap();
    let join_token = reg["join_token"].as_str().unwrap().to_owned();
    let agent = Command::new(BIN)
        .args(["workload", "agent", "--server", auth.url(), "--out"])
        .arg(&gate_dir)
        .args(["--join-token", &join_token, "--max-renewals", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut agent = Killed(agent);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gate_dir.join("bundle.pem").exists() {
        assert!(Instant::now() < deadline, "the agent wrote no svid");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let first = read_svid(&gate_dir);
    assert_eq!(first.id, gate_id);

    fetch_svid(&auth, &caller_id, &caller_dir, &[]);
    let caller = read_svid(&caller_dir);
    let upstream = echo().await;
    let (_gate, addr, health) = mtls_gate(&auth, &upstream.url, &gate_dir, &[&caller_id]);
    wait_ready(&health).await;
    let (id, secret) = auth.client(&["orders"]).await;
    let token = auth.access_token(&id, &secret).await;

    // Handshakes all along: new connections, never one that fails.
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let caller_loop = caller.clone();
    let (addr_loop, gate_loop, token_loop) = (addr.clone(), gate_id.clone(), token.clone());
    let (ok_loop, failures_loop) = (ok.clone(), failures.clone());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_loop = stop.clone();
    let caller_task = tokio::spawn(async move {
        while !stop_loop.load(Ordering::Relaxed) {
            match call(&caller_loop, &gate_loop, &addr_loop, &token_loop).await {
                Ok(200) => {
                    ok_loop.fetch_add(1, Ordering::Relaxed);
                }
                other => failures_loop.lock().unwrap().push(format!("{other:?}")),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // Rotate the CA before the agent's renewal: the next CA was already in
    // every bundle, so neither the gate nor the caller notices.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = auth.cli(&["ca", "rotate", "--json"]);
    assert!(!out.status.success(), "too soon without --force");
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_svid_ttl"));
    // Everyone here fetched a bundle after the next CA was made: forcing is safe.
    let out = auth.cli(&["ca", "rotate", "--force", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cas: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cas["cas"].as_array().unwrap().len(), 3, "{cas}");

    // The agent renews once (over mTLS, with the SVID it holds) and exits.
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the agent did not renew in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut agent.0.stderr.take().unwrap(), &mut log).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("renewed"), "{log}");
    let second = read_svid(&gate_dir);
    assert_eq!(second.id, gate_id);
    assert_ne!(second.leaf_der(), first.leaf_der());
    assert_ne!(second.key_pem, first.key_pem, "a new key at every renewal");
    assert_ne!(
        issuer_id(&second.svid_pem),
        issuer_id(&first.svid_pem),
        "signed by the new CA"
    );

    // The gate picks the renewed files up; handshakes keep succeeding.
    let http = castellan_testkit::http_client();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = http
            .get(format!("{health}/.castellan/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.contains(r#"castellan_svid_reloads_total{outcome="ok"} 1"#) {
            break;
        }
        assert!(Instant::now() < deadline, "the gate did not reload:\n{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    caller_task.await.unwrap();
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "failed handshakes or requests: {failures:?}");
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "{} requests",
        ok.load(Ordering::Relaxed)
    );

    // The renewal went over mTLS: the authority counted it, and the join
    // token (spent once) was not used again.
    let reused = Command::new(BIN)
        .args(["workload", "svid", "--server", auth.url(), "--out"])
        .arg(dirs.path().join("again"))
        .args(["--join-token", &join_token])
        .output()
        .unwrap();
    assert!(!reused.status.success());
    // Renewal never goes over plain HTTP, whatever endpoint it is given.
    let plain = Command::new(BIN)
        .args(["workload", "renew", "--server", auth.url(), "--out"])
        .arg(&gate_dir)
        .args(["--renewal-endpoint", &format!("{}/workload/v1/svid/renew", auth.url())])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(err.contains("cannot renew") && err.contains("scheme"), "{err}");
    assert_eq!(read_svid(&gate_dir).leaf_der(), second.leaf_der(), "nothing written");
    // One explicit renewal over mTLS works, and swaps the whole set.
    let once = Command::new(BIN)
        .args(["workload", "renew", "--server", auth.url(), "--json", "--out"])
        .arg(&gate_dir)
        .output()
        .unwrap();
    assert!(once.status.success(), "{}", String::from_utf8_lossy(&once.stderr));
    let third = read_svid(&gate_dir);
    assert_ne!(third.leaf_der(), second.leaf_der());
    assert!(
        std::fs::read_link(gate_dir.join("svid.pem")).is_ok(),
        "svid.pem goes through .current"
    );
    let discovered = discovery(&auth).await;
    assert!(discovered["mtls_endpoint_aliases"]["castellan_svid_renewal_endpoint"]
        .as_str()
        .unwrap()
        .starts_with("https://127.0.0.1:"));
}

#[tokio::test]
async fn a_certificate_bound_token_works_only_with_its_certificate() {
    let data = tempfile::tempdir().unwrap();
    let auth = Authority::start_with(data.path(), "127.0.0.1:0", &["--mtls-listen", "127.0.0.1:0"]);
    let td = "spiffe://127.0.0.1";
    let gate_id = SpiffeId::parse(&format!("{td}/gate/orders")).unwrap();
    let (caller_id, other_id) = (format!("{td}/billing/worker"), format!("{td}/svc/other"));
    let dirs = tempfile::tempdir().unwrap();
    for (name, id) in [("gate", gate_id.as_str()), ("caller", &caller_id), ("other", &other_id)] {
        fetch_svid(&auth, id, &dirs.path().join(name), &[]);
    }
    let (caller, other) = (
        read_svid(&dirs.path().join("caller")),
        read_svid(&dirs.path().join("other")),
    );

    let out = auth.cli(&[
        "client",
        "create",
        "billing",
        "--audience",
        "orders",
        "--tls-client-auth",
        &caller_id,
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(client["auth_method"], "tls_client_auth");
    assert!(client.get("client_secret").is_none());
    let client_id = client["client_id"].as_str().unwrap();

    // The token endpoint's mTLS alias, from discovery; the authority is
    // checked by its SPIFFE ID.
    let d = discovery(&auth).await;
    let token_endpoint = d["mtls_endpoint_aliases"]["token_endpoint"].as_str().unwrap();
    let authority_id = SpiffeId::parse(d["castellan_authority_spiffe_id"].as_str().unwrap()).unwrap();
    let resp = caller
        .mtls_client(&authority_id)
        .post(token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("audience", "orders"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();

    let upstream = echo().await;
    let (_gate, addr, health) = mtls_gate(
        &auth,
        &upstream.url,
        &dirs.path().join("gate"),
        &[&caller_id, &other_id],
    );
    wait_ready(&health).await;
    // With its certificate: through.
    assert_eq!(call(&caller, &gate_id, &addr, &token).await, Ok(200));
    // Another allowed workload replaying it: refused, and the reason is precise.
    let resp = other
        .mtls_client(&gate_id)
        .get(format!("{addr}/v1/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // A gate without mTLS (no certificate at all) and forward-auth refuse it too.
    let plain = common::gate(auth.url(), "orders", Some(&upstream.url), &[]).await;
    let forward = common::gate(auth.url(), "orders", None, &[]).await;
    for url in [format!("{}/v1/orders", plain.url), forward.url.clone()] {
        let resp = auth.http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{url}");
    }
    // An ordinary bearer token still works at all three.
    let (id, secret) = auth.client(&["orders"]).await;
    let bearer = auth.access_token(&id, &secret).await;
    assert_eq!(call(&other, &gate_id, &addr, &bearer).await, Ok(200));
    for url in [format!("{}/v1/orders", plain.url), forward.url.clone()] {
        let resp = auth.http.get(&url).bearer_auth(&bearer).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
    }
    let metrics = auth
        .http
        .get(format!("{health}/.castellan/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"castellan_gate_requests_total{outcome="certificate_mismatch"} 1"#),
        "{metrics}"
    );
}
