//! Load script: what mTLS costs at the gate. The same generator drives a
//! gate over plain HTTP and a gate with `--svid-dir`, on kept-alive
//! connections and with a new connection (a full mTLS handshake) for every
//! request.
//!
//! ```sh
//! mtls_load --url URL --token TOKEN [--svid-dir DIR --server-id SPIFFE_ID]
//!           [--new-connections] [--concurrency C] [--duration S] [--warmup S]
//! ```
//!
//! With `--svid-dir` the client presents the SVID in DIR and requires the
//! server to present `--server-id`, chaining to DIR's bundle. Prints one
//! JSON object: requests, rps, p50/p90/p99 latency in microseconds, errors.
//! Loopback only; bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // a load script: failing loudly is fine

use castellan_ca::SpiffeId;
use castellan_workload::{CurrentMaterial, SvidSource};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Opts {
    url: String,
    token: String,
    svid: Option<(PathBuf, SpiffeId)>,
    new_connections: bool,
    concurrency: usize,
    duration: f64,
    warmup: f64,
}

fn parse_args() -> Opts {
    let mut args = std::env::args().skip(1);
    let (mut url, mut token, mut dir, mut server_id) = (None, None, None, None);
    let mut o = Opts {
        url: String::new(),
        token: String::new(),
        svid: None,
        new_connections: false,
        concurrency: 1,
        duration: 10.0,
        warmup: 2.0,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(value()),
            "--token" => token = Some(value()),
            "--svid-dir" => dir = Some(PathBuf::from(value())),
            "--server-id" => server_id = Some(SpiffeId::parse(&value()).unwrap()),
            "--new-connections" => o.new_connections = true,
            "--concurrency" => o.concurrency = value().parse().unwrap(),
            "--duration" => o.duration = value().parse().unwrap(),
            "--warmup" => o.warmup = value().parse().unwrap(),
            other => panic!("unknown flag {other}"),
        }
    }
    o.url = url.expect("--url");
    o.token = token.expect("--token");
    o.svid = match (dir, server_id) {
        (Some(d), Some(id)) => Some((d, id)),
        (None, None) => None,
        _ => panic!("--svid-dir and --server-id go together"),
    };
    o
}

fn client(o: &Opts, source: Option<&Arc<SvidSource>>) -> reqwest::Client {
    let mut b = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if o.new_connections {
        b = b.pool_max_idle_per_host(0);
    }
    if let (Some(source), Some((_, id))) = (source, &o.svid) {
        let material: Arc<dyn CurrentMaterial> = source.clone();
        b = b.use_preconfigured_tls(castellan_workload::client_config(material, id.clone()).unwrap());
    }
    b.build().unwrap()
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let o = Arc::new(parse_args());
    let source = o.svid.as_ref().map(|(dir, _)| {
        SvidSource::load(dir, Arc::new(rustls::crypto::aws_lc_rs::default_provider())).expect("svid dir")
    });
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(o.warmup);
    let measure_until = measure_from + Duration::from_secs_f64(o.duration);
    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(1 << 20)));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..o.concurrency {
        let (o, latencies, errors) = (o.clone(), latencies.clone(), errors.clone());
        let http = client(&o, source.as_ref());
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::with_capacity(1 << 16);
            loop {
                let t0 = Instant::now();
                if t0 >= measure_until {
                    break;
                }
                let ok = http
                    .get(&o.url)
                    .bearer_auth(&o.token)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                let t1 = Instant::now();
                if t0 >= measure_from && t1 <= measure_until {
                    if ok {
                        mine.push(u64::try_from((t1 - t0).as_micros()).unwrap_or(u64::MAX));
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let mut l = std::mem::take(&mut *latencies.lock().unwrap());
    l.sort_unstable();
    println!(
        "{}",
        json!({
            "url": o.url,
            "mtls": o.svid.is_some(),
            "new_connections": o.new_connections,
            "concurrency": o.concurrency,
            "requests": l.len(),
            "rps": (l.len() as f64 / o.duration).round(),
            "p50_us": pct(&l, 0.50),
            "p90_us": pct(&l, 0.90),
            "p99_us": pct(&l, 0.99),
            "errors": errors.load(Ordering::Relaxed),
        })
    );
}
