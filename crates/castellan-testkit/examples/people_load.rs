//! Load script: people signing in (authorization code + PKCE through the
//! login page) and apps refreshing their tokens (rotating refresh tokens).
//!
//! ```sh
//! people_load signin  --url URL --client-id ID [options]
//! people_load refresh --url URL --client-id ID [options]
//! ```
//!
//! Options (defaults in brackets):
//! `--redirect-uri` [http://127.0.0.1:9/cb], `--user-prefix` [bench-user-],
//! `--users` [= concurrency; worker i signs in as `<prefix><i % users>`],
//! `--password` [correct horse battery staple], `--concurrency` [8],
//! `--duration` seconds measured [15], `--warmup` seconds discarded [3],
//! `--server-pid` (reads the server's CPU time over the measured window and
//! its RSS at the end from `/proc`), `--clk-tck` [100].
//!
//! - `signin`: each worker loops GET `/oauth2/authorize` -> read the login
//!   form and the `castellan_login` cookie -> POST `/oauth2/login` (303 with
//!   a `code`) -> POST `/oauth2/token` (`authorization_code` with the PKCE
//!   verifier; 200 with access, refresh and ID tokens). Each step is timed
//!   separately as well as the whole sign-in.
//! - `refresh`: each worker signs in once, then refreshes in a chain, always
//!   with the newest refresh token (reusing one would end the session).
//!
//! Only operations that start after the warm-up and end within the measured
//! window count. Prints one JSON object. Loopback only; bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // a load script: failing loudly is fine

use castellan_testkit::browser::{parse_login_form, pkce, AuthRequest};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

#[derive(Debug, Clone)]
struct Opts {
    mode: String,
    url: String,
    client_id: String,
    redirect_uri: String,
    user_prefix: String,
    users: Option<usize>,
    password: String,
    concurrency: usize,
    duration: f64,
    warmup: f64,
    server_pid: Option<u32>,
    clk_tck: f64,
}

fn usage() -> ! {
    eprintln!(
        "usage: people_load signin|refresh --url URL --client-id ID [--redirect-uri URI] [--user-prefix P] \
         [--users N] [--password PW] [--concurrency C] [--duration S] [--warmup S] [--server-pid PID] [--clk-tck T]"
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage());
    if mode != "signin" && mode != "refresh" {
        usage();
    }
    let mut o = Opts {
        mode,
        url: String::new(),
        client_id: String::new(),
        redirect_uri: "http://127.0.0.1:9/cb".into(),
        user_prefix: "bench-user-".into(),
        users: None,
        password: "correct horse battery staple".into(),
        concurrency: 8,
        duration: 15.0,
        warmup: 3.0,
        server_pid: None,
        clk_tck: 100.0,
    };
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        let num = |v: &str| -> f64 { v.parse().unwrap_or_else(|_| usage()) };
        match flag.as_str() {
            "--url" => o.url = value.trim_end_matches('/').to_owned(),
            "--client-id" => o.client_id = value,
            "--redirect-uri" => o.redirect_uri = value,
            "--user-prefix" => o.user_prefix = value,
            "--users" => o.users = Some(num(&value) as usize),
            "--password" => o.password = value,
            "--concurrency" => o.concurrency = num(&value) as usize,
            "--duration" => o.duration = num(&value),
            "--warmup" => o.warmup = num(&value),
            "--server-pid" => o.server_pid = Some(num(&value) as u32),
            "--clk-tck" => o.clk_tck = num(&value),
            _ => usage(),
        }
    }
    if o.url.is_empty() || o.client_id.is_empty() || o.concurrency == 0 {
        usage();
    }
    o
}

/// user + system CPU seconds of a process, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str, clk_tck: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck)
}

/// Resident set size of a process, MiB, from `/proc/PID/status`.
fn rss_mib(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The measured window: operations count when they start at or after
/// `start` and end at or before `end`; workers stop at `end`.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn counts(&self, began: Instant, ended: Instant) -> bool {
        began >= self.start && ended <= self.end
    }
}

/// Latency samples of one step, in microseconds.
#[derive(Default)]
struct Samples(Mutex<Vec<u64>>);

impl Samples {
    fn push(&self, d: Duration) {
        self.0.lock().unwrap().push(d.as_micros() as u64);
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn summary(&self) -> Value {
        let mut v = self.0.lock().unwrap().clone();
        v.sort_unstable();
        let pct = |p: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1] as f64 / 1000.0
        };
        let mean = if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<u64>() as f64 / v.len() as f64 / 1000.0
        };
        json!({
            "count": v.len(),
            "mean_ms": round3(mean),
            "p50_ms": round3(pct(50.0)),
            "p90_ms": round3(pct(90.0)),
            "p99_ms": round3(pct(99.0)),
            "max_ms": round3(v.last().copied().unwrap_or(0) as f64 / 1000.0),
        })
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(Default)]
struct Stats {
    /// Whole sign-in: authorize + login + token exchange.
    signin: Samples,
    authorize_get: Samples,
    login_post: Samples,
    token_exchange: Samples,
    refresh: Samples,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Stats {
    fn error(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 5 {
            first.push(e);
        }
    }
}

struct Tokens {
    refresh_token: String,
}

/// One sign-in's steps with their timings.
struct SignIn {
    tokens: Tokens,
    authorize: Duration,
    login: Duration,
    exchange: Duration,
}

fn login_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with("castellan_login="))
        .map(str::to_owned)
}

async fn token_request(http: &reqwest::Client, o: &Opts, form: &[(&str, &str)]) -> Result<Tokens, String> {
    let mut fields = form.to_vec();
    fields.push(("client_id", &o.client_id));
    let resp = http
        .post(format!("{}/oauth2/token", o.url))
        .form(&fields)
        .send()
        .await
        .map_err(|e| format!("token: {e}"))?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.map_err(|e| format!("token body: {e}"))?;
    if status != 200 {
        return Err(format!("token: {status} {body}"));
    }
    let field = |name: &str| {
        body[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("token: no {name} in {body}"))
    };
    field("access_token")?;
    Ok(Tokens {
        refresh_token: field("refresh_token")?,
    })
}

async fn sign_in(http: &reqwest::Client, o: &Opts, username: &str) -> Result<SignIn, String> {
    let p = pkce();
    let url = AuthRequest {
        issuer: &o.url,
        client_id: &o.client_id,
        redirect_uri: &o.redirect_uri,
        scope: "openid profile",
        challenge: &p.challenge,
        state: "bench-state",
        nonce: "bench-nonce",
    }
    .url();

    let t0 = Instant::now();
    let resp = http.get(&url).send().await.map_err(|e| format!("authorize: {e}"))?;
    let status = resp.status().as_u16();
    let cookie = login_cookie(&resp);
    let body = resp.text().await.map_err(|e| format!("authorize body: {e}"))?;
    if status != 200 {
        return Err(format!("authorize: {status}"));
    }
    let cookie = cookie.ok_or("authorize: no castellan_login cookie")?;
    let form = parse_login_form(&body).ok_or("authorize: no login form")?;
    let action = if form.action.starts_with("http") {
        form.action.clone()
    } else {
        format!("{}{}", o.url, form.action)
    };

    let t1 = Instant::now();
    let resp = http
        .post(&action)
        .header("cookie", cookie)
        .form(&[
            ("request", form.request.as_str()),
            ("username", username),
            ("password", &o.password),
        ])
        .send()
        .await
        .map_err(|e| format!("login: {e}"))?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    let _ = resp.bytes().await;
    if status != 303 {
        return Err(format!("login: {status}"));
    }
    let location = location.ok_or("login: no Location")?;
    let code = url::Url::parse(&location)
        .map_err(|e| format!("login: Location: {e}"))?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| format!("login: no code in {location}"))?;

    let t2 = Instant::now();
    let tokens = token_request(
        http,
        o,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &o.redirect_uri),
            ("code_verifier", &p.verifier),
        ],
    )
    .await?;
    let t3 = Instant::now();
    Ok(SignIn {
        tokens,
        authorize: t1 - t0,
        login: t2 - t1,
        exchange: t3 - t2,
    })
}

fn client() -> reqwest::Client {
    castellan_testkit::install_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn signin_worker(o: Arc<Opts>, username: String, window: Window, stats: Arc<Stats>) {
    let http = client();
    while Instant::now() < window.end {
        let began = Instant::now();
        match sign_in(&http, &o, &username).await {
            Ok(s) => {
                let ended = Instant::now();
                if window.counts(began, ended) {
                    stats.signin.push(ended - began);
                    stats.authorize_get.push(s.authorize);
                    stats.login_post.push(s.login);
                    stats.token_exchange.push(s.exchange);
                }
            }
            Err(e) => stats.error(e),
        }
    }
}

async fn refresh_worker(
    o: Arc<Opts>,
    username: String,
    window: Arc<OnceLock<Window>>,
    signed_in: Arc<Barrier>,
    go: Arc<Barrier>,
    stats: Arc<Stats>,
) {
    let http = client();
    let mut current = match sign_in(&http, &o, &username).await {
        Ok(s) => Some(s.tokens.refresh_token),
        Err(e) => {
            stats.error(e);
            None
        }
    };
    signed_in.wait().await;
    go.wait().await;
    let window = *window.get().unwrap();
    while Instant::now() < window.end {
        let rt = match current.take() {
            Some(rt) => rt,
            // The chain broke (an error); start a new session.
            None => match sign_in(&http, &o, &username).await {
                Ok(s) => s.tokens.refresh_token,
                Err(e) => {
                    stats.error(e);
                    continue;
                }
            },
        };
        let began = Instant::now();
        match token_request(&http, &o, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await {
            Ok(t) => {
                let ended = Instant::now();
                if window.counts(began, ended) {
                    stats.refresh.push(ended - began);
                }
                current = Some(t.refresh_token);
            }
            Err(e) => stats.error(e),
        }
    }
}

#[tokio::main]
async fn main() {
    let o = Arc::new(parse_args());
    let users = o.users.unwrap_or(o.concurrency).max(1);
    let stats = Arc::new(Stats::default());
    let name = |i: usize| format!("{}{}", o.user_prefix, i % users);
    let mut handles = Vec::new();

    let window = if o.mode == "signin" {
        let start = Instant::now() + Duration::from_secs_f64(o.warmup);
        let window = Window {
            start,
            end: start + Duration::from_secs_f64(o.duration),
        };
        for i in 0..o.concurrency {
            handles.push(tokio::spawn(signin_worker(o.clone(), name(i), window, stats.clone())));
        }
        window
    } else {
        let cell = Arc::new(OnceLock::new());
        let signed_in = Arc::new(Barrier::new(o.concurrency + 1));
        let go = Arc::new(Barrier::new(o.concurrency + 1));
        for i in 0..o.concurrency {
            handles.push(tokio::spawn(refresh_worker(
                o.clone(),
                name(i),
                cell.clone(),
                signed_in.clone(),
                go.clone(),
                stats.clone(),
            )));
        }
        signed_in.wait().await;
        let start = Instant::now() + Duration::from_secs_f64(o.warmup);
        let window = Window {
            start,
            end: start + Duration::from_secs_f64(o.duration),
        };
        cell.set(window).unwrap();
        go.wait().await;
        window
    };

    // CPU time of the server and of this generator over the measured window.
    tokio::time::sleep_until(window.start.into()).await;
    let server = o.server_pid.map(|p| p.to_string());
    let cpu = |pid: &str| cpu_seconds(pid, o.clk_tck);
    let s0 = server.as_deref().and_then(cpu);
    let g0 = cpu("self");
    tokio::time::sleep_until(window.end.into()).await;
    let s1 = server.as_deref().and_then(cpu);
    let g1 = cpu("self");
    let rss = server.as_deref().and_then(rss_mib);
    for h in handles {
        if let Err(e) = h.await {
            stats.error(format!("worker: {e}"));
        }
    }

    let seconds = o.duration;
    let (label, done) = if o.mode == "signin" {
        ("signins", stats.signin.count())
    } else {
        ("refreshes", stats.refresh.count())
    };
    let server_cpu = s0.zip(s1).map(|(a, b)| b - a);
    let mut out = json!({
        "mode": o.mode,
        "concurrency": o.concurrency,
        "users": users,
        "duration_s": seconds,
        "warmup_s": o.warmup,
        label: done,
        format!("{label}_per_s"): round3(done as f64 / seconds),
        "errors": stats.errors.load(Ordering::Relaxed),
        "first_errors": *stats.first_errors.lock().unwrap(),
        "generator_cpu_s": g0.zip(g1).map(|(a, b)| round3(b - a)),
        "server_cpu_s": server_cpu.map(round3),
        "server_rss_mib_at_end": rss.map(|r| (r * 10.0).round() / 10.0),
        format!("{label}_per_server_cpu_s"): server_cpu.filter(|c| *c > 0.0).map(|c| round3(done as f64 / c)),
    });
    if o.mode == "signin" {
        out["signin_latency"] = stats.signin.summary();
        out["authorize_get_latency"] = stats.authorize_get.summary();
        out["login_post_latency"] = stats.login_post.summary();
        out["token_exchange_latency"] = stats.token_exchange.summary();
    } else {
        out["refresh_latency"] = stats.refresh.summary();
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
