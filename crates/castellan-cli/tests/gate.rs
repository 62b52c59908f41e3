//! `castellan gate` as a real process between real clients, a real
//! authority and an upstream: proxy, forward-auth, revocation fan-out,
//! surviving the authority, and nginx `auth_request`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests may unwrap

mod common;

use common::{echo, gate, within, Authority};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn sid_of(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let c: Value = serde_json::from_slice(&castellan_jose::b64::decode(payload).unwrap()).unwrap();
    c["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn proxy_admits_valid_tokens_with_identity_headers_only() {
    let dir = tempfile::tempdir().unwrap();
    let auth = Authority::start(dir.path(), "127.0.0.1:0");
    let upstream = echo().await;
    let g = gate(auth.url(), "orders", Some(&upstream.url), &[]).await;
    let (id, secret) = auth.client(&["orders", "billing"]).await;
    let (_, t) = auth.token(&id, &secret, &[("audience", "orders")]).await;
    let token = t["access_token"].as_str().unwrap().to_owned();
    let http = castellan_testkit::http_client();
    let url = format!("{}/v1/orders?limit=5", g.url);

    // No token, a bad token, a token for another service: 401, and the upstream never sees them.
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="castellan""#);
    let r = http.get(&url).bearer_auth("a.b.c").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    let (_, other) = auth.token(&id, &secret, &[("audience", "billing")]).await;
    let r = http
        .get(&url)
        .bearer_auth(other["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        0,
        "upstream saw an unauthenticated request"
    );

    // A valid token: forwarded with identity headers; spoofed ones are stripped.
    let r = http
        .get(&url)
        .bearer_auth(&token)
        .header("x-castellan-subject", "admin")
        .header("x-castellan-anything", "spoof")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["uri"], "/v1/orders?limit=5");
    let h = &seen["headers"];
    assert_eq!(h["x-castellan-subject"], id.as_str());
    assert_eq!(h["x-castellan-client-id"], id.as_str());
    assert_eq!(h["x-castellan-sid"], sid_of(&token).as_str());
    assert_eq!(h["x-castellan-audience"], "orders");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert!(h.get("x-castellan-anything").is_none());
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 1);

    // Bodies stream through both ways.
    let body = vec![7u8; 3 * 1024 * 1024];
    let r = http.post(&url).bearer_auth(&token).body(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["body_len"], 3 * 1024 * 1024);

    // Health and readiness are the gate's own.
    assert_eq!(
        http.get(format!("{}/.castellan/health", g.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready: Value = http
        .get(format!("{}/.castellan/ready", g.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["stream_connected"], true);
    let metrics = http
        .get(format!("{}/.castellan/metrics", g.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("castellan_gate_requests_total"), "{metrics}");

    // The gate reported itself to the authority.
    let listed = auth.cli(&["verifiers", "list", "--json"]);
    assert!(listed.status.success());
    let v: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(v["verifiers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["kind"] == "gate" && x["audience"] == "orders"));
}

#[tokio::test]
async fn bad_input_gets_4xx_never_5xx_and_never_reaches_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let auth = Authority::start(dir.path(), "127.0.0.1:0");
    let upstream = echo().await;
    let g = gate(auth.url(), "orders", Some(&upstream.url), &[]).await;
    let http = castellan_testkit::http_client();
    let huge = format!("Bearer {}", "a".repeat(20_000));
    let forged_none = format!(
        "Bearer {}.{}.",
        castellan_jose::b64::encode(br#"{"alg":"none","typ":"at+jwt"}"#),
        castellan_jose::b64::encode(br#"{"sub":"x","aud":"orders"}"#)
    );
    for value in [
        "Bearer",
        "Bearer ",
        "Basic Zm9vOmJhcg==",
        "bearer x.y.z",
        "Bearer ....",
        huge.as_str(),
        forged_none.as_str(),
        "Bearer eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
    ] {
        let r = http
            .get(format!("{}/x", g.url))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{value:.40} -> {}", r.status());
    }
    let r = http
        .get(format!("{}/x", g.url))
        .header("authorization", "Bearer a.b.c")
        .header("authorization", "Bearer d.e.f")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "two Authorization headers");
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn forward_auth_answers_200_with_identity_or_401() {
    let dir = tempfile::tempdir().unwrap();
    let auth = Authority::start(dir.path(), "127.0.0.1:0");
    let g = gate(auth.url(), "orders", None, &[]).await;
    let (id, secret) = auth.client(&["orders"]).await;
    let token = auth.access_token(&id, &secret).await;
    let http = castellan_testkit::http_client();
    // nginx, Traefik and Envoy all send the original request's headers; the path is theirs to choose.
    for path in ["/", "/auth", "/any/original/path?x=1"] {
        let r = http
            .get(format!("{}{path}", g.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["x-castellan-subject"], id.as_str());
        assert_eq!(r.headers()["x-castellan-client-id"], id.as_str());
        let r = http.post(format!("{}{path}", g.url)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(r.headers().get("x-castellan-subject").is_none());
    }
    // The gate's own paths are not a way around it: without a token they are refused too.
    for path in ["/.castellan/health", "/.castellan/ready", "/.castellan/metrics"] {
        let r = http.get(format!("{}{path}", g.url)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} on the forward-auth port");
    }
}

#[tokio::test]
async fn forward_auth_health_lives_on_its_own_port() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let auth = Authority::start(dir.path(), "127.0.0.1:0");
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.args([
        "gate",
        "--listen",
        "127.0.0.1:0",
        "--forward-auth",
        "--health-listen",
        "127.0.0.1:0",
    ])
    .args(["--authority", auth.url(), "--audience", "orders"])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let main = lines.next().unwrap().unwrap();
    let health = lines.next().unwrap().unwrap();
    assert!(main.starts_with("listening on http://"), "{main}");
    let health = health.strip_prefix("health on ").unwrap().to_owned();
    let http = castellan_testkit::http_client();
    within(Duration::from_secs(10), || async {
        http.get(format!("{health}/.castellan/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert_eq!(
        http.get(format!("{health}/.castellan/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_gate_with_settings_looser_than_the_authority_refuses_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let auth = Authority::start(dir.path(), "127.0.0.1:0");
    for (flag, value) in [("--leeway", "60s"), ("--staleness-window", "2s")] {
        let out = std::process::Command::new(common::BIN)
            .args([
                "gate",
                "--listen",
                "127.0.0.1:0",
                "--forward-auth",
                "--authority",
                auth.url(),
            ])
            .args(["--audience", "orders", flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("looser") || err.contains("keep-alives"), "{flag}: {err}");
    }
}

#[tokio::test]
async fn a_revoked_session_is_refused_by_every_gate_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let auth = Authority::start(dir.path(), "127.0.0.1:0");
    let upstream = echo().await;
    let mut gates = Vec::new();
    for _ in 0..4 {
        gates.push(gate(auth.url(), "orders", Some(&upstream.url), &[]).await);
    }
    gates.push(gate(auth.url(), "orders", None, &[]).await);
    let (id, secret) = auth.client(&["orders"]).await;
    let token = auth.access_token(&id, &secret).await;
    let http = castellan_testkit::http_client();
    for g in &gates {
        assert_eq!(http.get(&g.url).bearer_auth(&token).send().await.unwrap().status(), 200);
    }
    let sid = sid_of(&token);
    let out = auth.cli(&["sessions", "revoke", &sid, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let started = std::time::Instant::now();
    for g in &gates {
        within(Duration::from_secs(1), || async {
            http.get(&g.url).bearer_auth(&token).send().await.unwrap().status() == 401
        })
        .await;
    }
    let all = started.elapsed();
    assert!(all < Duration::from_secs(1), "slowest gate took {all:?}");
    // `client revoke` covers every token of the client issued until now.
    let fresh = {
        tokio::time::sleep(Duration::from_millis(1100)).await; // a new second, after the session revocation
        auth.access_token(&id, &secret).await
    };
    assert_eq!(
        http.get(&gates[0].url)
            .bearer_auth(&fresh)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let out = auth.cli(&["client", "revoke", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for g in &gates {
        within(Duration::from_secs(1), || async {
            http.get(&g.url).bearer_auth(&fresh).send().await.unwrap().status() == 401
        })
        .await;
    }
}

#[tokio::test]
async fn gates_keep_serving_while_the_authority_is_down_and_resume_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut auth = Authority::start(dir.path(), "127.0.0.1:0");
    let upstream = echo().await;
    let g = gate(auth.url(), "orders", Some(&upstream.url), &[]).await;
    let (id, secret) = auth.client(&["orders"]).await;
    let seen = auth.access_token(&id, &secret).await;
    let unseen = auth.access_token(&id, &secret).await;
    let later = auth.access_token(&id, &secret).await;
    let http = castellan_testkit::http_client();
    assert_eq!(http.get(&g.url).bearer_auth(&seen).send().await.unwrap().status(), 200);

    let port = auth.proc.port();
    auth.proc.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Cached keys and the last revocation state carry genuine tokens, seen or not.
    assert_eq!(http.get(&g.url).bearer_auth(&seen).send().await.unwrap().status(), 200);
    assert_eq!(
        http.get(&g.url).bearer_auth(&unseen).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        http.get(&g.url).bearer_auth("x.y.z").send().await.unwrap().status(),
        401
    );

    // Back up on the same port: the gate's stream resumes and new revocations reach it.
    let mut again = Authority::start(&auth.data_dir, &format!("127.0.0.1:{port}"));
    std::mem::swap(&mut auth, &mut again);
    let out = auth.cli(&["sessions", "revoke", &sid_of(&later)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    within(Duration::from_secs(8), || async {
        http.get(&g.url).bearer_auth(&later).send().await.unwrap().status() == 401
    })
    .await;
    assert_eq!(http.get(&g.url).bearer_auth(&seen).send().await.unwrap().status(), 200);
}

fn nginx() -> Option<String> {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(candidate).exists() {
            return Some(candidate.to_owned());
        }
    }
    None
}

#[tokio::test]
async fn nginx_auth_request_uses_the_gate() {
    let Some(nginx) = nginx() else {
        if std::env::var_os("CI").is_some() {
            panic!("nginx is required in CI (.ci/run installs it)");
        }
        // Straight to stderr: the test harness captures eprintln! of passing tests.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: nginx_auth_request_uses_the_gate: nginx is not installed (apt-get install nginx)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let auth = Authority::start(&dir.path().join("data"), "127.0.0.1:0");
    let upstream = echo().await;
    let g = gate(auth.url(), "orders", None, &[]).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let conf = dir.path().join("nginx.conf");
    let prefix = dir.path().join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let gate_addr = g.url.trim_start_matches("http://");
    let upstream_addr = upstream.url.trim_start_matches("http://");
    std::fs::write(
        &conf,
        format!(
            r#"daemon off;
master_process off;
worker_processes 1;
error_log {prefix}/logs/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /_castellan_auth {{
            internal;
            proxy_pass http://{gate_addr}/;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}
        location / {{
            auth_request /_castellan_auth;
            auth_request_set $castellan_subject $upstream_http_x_castellan_subject;
            proxy_set_header X-Castellan-Subject $castellan_subject;
            proxy_pass http://{upstream_addr};
        }}
    }}
}}
"#,
            prefix = prefix.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(&nginx)
        .args(["-p"])
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/orders");
    let http = castellan_testkit::http_client();
    within(Duration::from_secs(5), || async { http.get(&url).send().await.is_ok() }).await;
    let (id, secret) = auth.client(&["orders"]).await;
    let token = auth.access_token(&id, &secret).await;
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401, "nginx refuses without a token");
    let r = http.get(&url).bearer_auth("forged.token.here").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
    let r = http
        .get(&url)
        .bearer_auth(&token)
        .header("x-castellan-subject", "spoofed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(
        seen["headers"]["x-castellan-subject"],
        id.as_str(),
        "identity from the gate, not the caller"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_and_ends_open_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut auth = Authority::start(dir.path(), "127.0.0.1:0");
    let upstream = echo().await;
    let mut g = gate(auth.url(), "orders", Some(&upstream.url), &[]).await;
    let (id, secret) = auth.client(&["orders"]).await;
    let token = auth.access_token(&id, &secret).await;
    let http = castellan_testkit::http_client();
    // A slow request is in flight when the gate is told to stop: it still completes.
    let slow = tokio::spawn({
        let (http, url, token) = (http.clone(), format!("{}/slow", g.url), token.clone());
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let status = tokio::task::spawn_blocking(move || {
        let s = g.terminate();
        (s, g)
    });
    assert_eq!(slow.await.unwrap().unwrap(), 200, "in-flight request finished");
    let (exit, _g) = status.await.unwrap();
    assert!(exit.success(), "gate exit {exit:?}");
    // The authority stops promptly even with a revocation stream open.
    let stream = http
        .get(format!("{}/revocations/stream", auth.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let exit = tokio::task::spawn_blocking(move || auth.proc.terminate())
        .await
        .unwrap();
    assert!(exit.success(), "authority exit {exit:?}");
    drop(stream);
}
