//! Cedar decisions: raw `cedar-policy` vs `castellan-authz`, side by side
//! (brief §7, issue 6: p50 <= 5 us, p99 <= 20 us; JWT + Cedar uncached
//! <= 100 us).
//!
//! For 10 and 100 gate route policies (permits by scope, method and path
//! prefix, two forbids), validated against the gate schema, one allowed
//! request that has to get past every forbid:
//!
//! - `raw/<n>`: `cedar_policy::Authorizer::is_authorized` with the request
//!   and entities built once: the anchor.
//! - `decide/<n>`: `Authorizer::decide` with the same prebuilt request and
//!   entities: the bundle load (arc-swap) plus turning Cedar's response into
//!   a `Decision` (ids, errors, reason).
//! - `gate_decide/<n>`: `gate_request` (principal from a `VerifiedToken`,
//!   route entity, path check) then `decide`: what the gate runs per request.
//! - `e2e/<alg>/<n>`: castellan-verify's pure `validate` of a fresh access
//!   token (signature and every claim check, no cache), then `gate_request`
//!   and `decide`: JWT verify + Cedar uncached.
//!
//! `decide` evaluates only the policies its index selects (see
//! `src/index.rs`): here the one permit that matches, where raw Cedar
//! evaluates all `n`.
//!
//! Criterion's median is the p50. For tails, `cargo bench` (not `cargo test
//! --benches`) first runs a loop that times each of 100,000 calls (20,000
//! for raw/100, 20,000 end to end) with `Instant` and prints p50 / p90 / p99
//! / p99.9; `Instant::now` itself adds a few tens of nanoseconds to each
//! sample.
//!
//! ```sh
//! cargo bench -p castellan-authz --bench authz -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // a bench may unwrap its fixtures

use castellan_authz::{gate_request, Authorizer, DecisionLog, PolicyBundle, GATE_SCHEMA};
use castellan_core::{AccessTokenClaims, UnixTime};
use castellan_jose::{Algorithm, SigningKey, VerifyingKey};
use castellan_verify::{validate, EffectiveProfile, KeyRing, RevocationState, ValidationContext, VerifiedToken};
use cedar_policy::PolicySet;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ISSUER: &str = "https://auth.castellan.example";
const SERVICE: &str = "orders";
const NOW: UnixTime = 1_795_000_000;
const SIZES: [usize; 2] = [10, 100];
const SCOPE: &str = "openid orders:read team-3:read team-3:write";
const PATH: &str = "/team-3/orders/4711";

/// `n` route policies as a gateway team writes them: per team a read
/// permit (GET/HEAD, `team-N:read`) and a write permit (POST/PUT/PATCH,
/// `team-N:write`) on the team's path prefix, plus two forbids every
/// request must get past.
fn policies(n: usize) -> String {
    let mut out = String::from(
        r#"@id("no-admin")
forbid(principal, action, resource) when { resource.path like "/admin/*" };
@id("no-delegated-deletes")
forbid(principal, action == Action::"DELETE", resource) unless { principal.actors.isEmpty() };
"#,
    );
    for i in 0..n - 2 {
        let team = i / 2;
        if i % 2 == 0 {
            out.push_str(&format!(
                "@id(\"team-{team}-read\")\npermit(principal, action in [Action::\"GET\", Action::\"HEAD\"], resource)\n\
                 when {{ principal.scopes.contains(\"team-{team}:read\") && resource.path like \"/team-{team}/*\" }};\n"
            ));
        } else {
            out.push_str(&format!(
                "@id(\"team-{team}-write\")\npermit(principal, action in [Action::\"POST\", Action::\"PUT\", Action::\"PATCH\"], resource)\n\
                 when {{ principal.scopes.contains(\"team-{team}:write\") && resource.path like \"/team-{team}/*\" }};\n"
            ));
        }
    }
    out
}

fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISSUER.to_owned(),
        sub: "u_8Jq2mZs0VYtq3kR9".to_owned(),
        aud: SERVICE.to_owned(),
        exp: NOW + 300,
        iat: NOW,
        jti: "aHR0cHM6Ly9leGFtcGxlLmNvbS9qdGk".to_owned(),
        client_id: "cl_7Hq2mZs0VYtq3kR9".to_owned(),
        sid: "c2lkLTAwMDAwMDAwMDAwMA".to_owned(),
        scope: Some(SCOPE.to_owned()),
        act: None,
        cnf: None,
    }
}

fn profile() -> EffectiveProfile {
    EffectiveProfile {
        algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
        token_type: "at+jwt".to_owned(),
        extra_required_claims: Vec::new(),
        leeway: 30,
        max_lifetime: 3600,
        staleness_window: Duration::from_secs(300),
        max_delegation_depth: 4,
        require_delegation: false,
    }
}

struct Fixture {
    n: usize,
    authz: Authorizer,
    /// The same bundle, every decision recorded in a decision log.
    logged: Authorizer,
    log: Arc<DecisionLog>,
    raw_set: PolicySet,
}

fn fixture(n: usize) -> Fixture {
    let text = policies(n);
    let bundle = PolicyBundle {
        service: SERVICE.to_owned(),
        version: 1,
        policies: text.clone(),
        schema: Some(GATE_SCHEMA.to_owned()),
        created_at: NOW,
    };
    let authz = Authorizer::new(SERVICE);
    authz.install(bundle.clone()).unwrap();
    assert_eq!(authz.current().unwrap().summary().ids.len(), n);
    let log = Arc::new(DecisionLog::new(
        200_000,
        Arc::new(castellan_core::ManualClock::new(NOW)),
    ));
    let logged = Authorizer::new(SERVICE).with_decision_log(log.clone());
    logged.install(bundle).unwrap();
    Fixture {
        n,
        authz,
        logged,
        log,
        raw_set: PolicySet::from_str(&text).unwrap(),
    }
}

/// The value at quantile `q` of sorted `v`.
fn quantile(v: &[u32], q: f64) -> u32 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((v.len().saturating_sub(1)) as f64 * q) as usize;
    v[i]
}

/// Times each of `runs` calls of `f` and prints the percentiles.
fn tails(name: &str, runs: usize, mut f: impl FnMut()) {
    for _ in 0..runs / 10 {
        f();
    }
    let mut ns: Vec<u32> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f();
        ns.push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }
    ns.sort_unstable();
    let us = |q| f64::from(quantile(&ns, q)) / 1000.0;
    println!(
        "tails {name:<22} n={runs}  p50 {:>7.2} us  p90 {:>7.2} us  p99 {:>7.2} us  p99.9 {:>7.2} us",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999)
    );
}

fn bench(c: &mut Criterion) {
    let fixtures: Vec<Fixture> = SIZES.iter().map(|&n| fixture(n)).collect();
    let token = VerifiedToken::new(castellan_verify::VerifiedClaims {
        iss: ISSUER.to_owned(),
        sub: claims().sub,
        aud: SERVICE.to_owned(),
        client_id: claims().client_id,
        sid: claims().sid,
        jti: claims().jti,
        scope: Some(SCOPE.to_owned()),
        iat: NOW,
        exp: NOW + 300,
        kid: "k".to_owned(),
        act: None,
        cnf_x5t_s256: None,
    });
    let (req, entities) = gate_request(&token, None, "GET", PATH).unwrap();
    for f in &fixtures {
        let d = f.authz.decide(&req, &entities);
        assert!(d.is_allowed(), "{d:?}");
        assert_eq!(d.determining(), ["team-3-read"]);
        let raw = cedar_policy::Authorizer::new().is_authorized(req.as_cedar(), &f.raw_set, &entities);
        assert_eq!(raw.decision(), cedar_policy::Decision::Allow);
    }

    // Signed access tokens for the end-to-end path.
    let mut keys = KeyRing::new();
    let mut tokens = Vec::new();
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let (sk, _) = SigningKey::generate(alg).unwrap();
        let vk = VerifyingKey::from_jwk(sk.public_jwk()).unwrap();
        keys.insert(vk.kid().to_owned(), Arc::new(vk));
        tokens.push((alg, sk.sign_compact("at+jwt", &claims()).unwrap()));
    }
    let profile = profile();
    let revocations = RevocationState::default();
    let cx = ValidationContext {
        keys: &keys,
        profile: &profile,
        issuer: ISSUER,
        audience: SERVICE,
        revocations: &revocations,
        now: NOW,
    };
    let e2e = |f: &Fixture, jwt: &str| {
        let t = validate(jwt, &cx).unwrap();
        let (req, entities) = gate_request(&t, None, "GET", PATH).unwrap();
        f.authz.decide(&req, &entities)
    };
    for (_, jwt) in &tokens {
        assert!(e2e(&fixtures[0], jwt).is_allowed());
    }

    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // only checks that every benchmark runs once.
    if std::env::args().any(|a| a == "--bench") {
        for f in &fixtures {
            let n = f.n;
            let raw = cedar_policy::Authorizer::new();
            // Raw Cedar at 100 policies is slow enough that 20,000 samples do.
            tails(&format!("raw/{n}"), if n > 10 { 20_000 } else { 100_000 }, || {
                black_box(raw.is_authorized(black_box(req.as_cedar()), &f.raw_set, &entities));
            });
            tails(&format!("decide/{n}"), 100_000, || {
                let _ = black_box(f.authz.decide(black_box(&req), &entities));
            });
            tails(&format!("decide_logged/{n}"), 100_000, || {
                // The shipper drains the log as a running service's would.
                if f.log.pending() >= 1_024 {
                    drop(f.log.take(usize::MAX));
                }
                let _ = black_box(f.logged.decide(black_box(&req), &entities));
            });
            assert_eq!(f.log.dropped(), 0, "the log held every decision");
            drop(f.log.take(usize::MAX));
            tails(&format!("gate_decide/{n}"), 100_000, || {
                let (req, entities) = gate_request(black_box(&token), None, "GET", PATH).unwrap();
                let _ = black_box(f.authz.decide(&req, &entities));
            });
        }
        for (alg, jwt) in &tokens {
            tails(&format!("e2e/{alg}/100"), 20_000, || {
                let _ = black_box(e2e(&fixtures[1], black_box(jwt)));
            });
        }
    }

    let mut g = c.benchmark_group("cedar");
    for f in &fixtures {
        let n = f.n;
        let raw = cedar_policy::Authorizer::new();
        g.bench_function(BenchmarkId::new("raw", n), |b| {
            b.iter(|| raw.is_authorized(black_box(req.as_cedar()), &f.raw_set, &entities));
        });
        g.bench_function(BenchmarkId::new("decide", n), |b| {
            b.iter(|| f.authz.decide(black_box(&req), &entities));
        });
        g.bench_function(BenchmarkId::new("decide_logged", n), |b| {
            b.iter(|| {
                // What the shipper does in a running service: drain the log.
                if f.log.pending() >= 1_024 {
                    drop(f.log.take(usize::MAX));
                }
                f.logged.decide(black_box(&req), &entities)
            });
        });
        g.bench_function(BenchmarkId::new("gate_decide", n), |b| {
            b.iter(|| {
                let (req, entities) = gate_request(black_box(&token), None, "GET", PATH).unwrap();
                f.authz.decide(&req, &entities)
            });
        });
    }
    g.finish();

    let mut g = c.benchmark_group("e2e");
    for f in &fixtures {
        for (alg, jwt) in &tokens {
            g.bench_function(BenchmarkId::new(alg.as_str(), f.n), |b| {
                b.iter(|| e2e(f, black_box(jwt)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
