//! Verify, full path vs the raw signature primitive (brief §7, issue 3).
//!
//! In one run, side by side, per algorithm (ES256, EdDSA, RS256):
//!
//! - `raw/<alg>`: aws-lc-rs `ParsedPublicKey::verify_sig` of the token's own
//!   signature over its own signing input, key parsed once, signature already
//!   decoded: the anchor, the physical limit of a verifier.
//! - `jose/<alg>`: `castellan_jose::verify_compact` (size cap, split,
//!   base64url, strict header parse, header checks, signature, strict claims
//!   parse), without the access-token claim checks.
//! - `full/<alg>`: `castellan_verify::validate`, the whole strict path a
//!   service runs on a cache miss: the above plus issuer, audience, expiry,
//!   not-before, issued-at, lifetime, required claims and revocation.
//!
//! Then `cache_hit` (a `TokenCache::get` hit, re-checking expiry and
//! revocation) and `parts/*`, the pieces of the path that are not the
//! signature, to show where the difference between `full` and `raw` goes.
//!
//! Criterion measures each benchmark in its own few seconds, so on a shared
//! machine `raw` and `full` can see different load. Before criterion starts,
//! an interleaved pass (`interleaved/<alg>`) therefore alternates small
//! batches of raw, jose and full, round after round, and prints the median of
//! the per-round ratios: the figure to trust when the machine is busy.
//!
//! ```sh
//! cargo bench -p castellan-verify --bench verify -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench may unwrap its fixtures

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use castellan_core::{AccessTokenClaims, UnixTime};
use castellan_jose::{b64, strict_json, verify_compact, Algorithm, SigningKey, VerifyOptions, VerifyingKey};
use castellan_verify::{
    validate, EffectiveProfile, KeyRing, RevocationState, TokenCache, ValidationContext, VerifiedToken,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ISSUER: &str = "https://auth.castellan.example";
const AUDIENCE: &str = "orders";
const NOW: UnixTime = 1_795_000_000;
const ALGS: [Algorithm; 3] = [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256];

/// One signed access token per algorithm, shaped as the authority issues them.
struct Fixture {
    alg: Algorithm,
    token: String,
    /// The anchor's key, parsed once from the public JWK's raw members.
    raw_key: ParsedPublicKey,
    /// The token's signature, decoded once.
    raw_sig: Vec<u8>,
}

fn claims(n: usize) -> AccessTokenClaims {
    // jti and sid as the authority makes them: 128 random bits, base64url.
    let id = |tag: &str| b64::encode(format!("{tag}-{n:012}").as_bytes());
    AccessTokenClaims {
        iss: ISSUER.to_owned(),
        sub: "cl_7Hq2mZs0VYtq3kR9".to_owned(),
        aud: AUDIENCE.to_owned(),
        exp: NOW + 300,
        iat: NOW,
        jti: id("jti"),
        client_id: "cl_7Hq2mZs0VYtq3kR9".to_owned(),
        sid: id("sid"),
        scope: Some("orders:read orders:write".to_owned()),
        act: None,
        cnf: None,
    }
}

fn raw_key(sk: &SigningKey) -> ParsedPublicKey {
    let jwk = sk.public_jwk();
    let member = |m: &Option<String>| b64::decode(m.as_deref().unwrap()).unwrap();
    match sk.alg() {
        Algorithm::ES256 => {
            let mut point = vec![0x04];
            point.extend(member(&jwk.x));
            point.extend(member(&jwk.y));
            ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).unwrap()
        }
        Algorithm::EdDSA => ParsedPublicKey::new(&signature::ED25519, member(&jwk.x)).unwrap(),
        Algorithm::RS256 => {
            let (n, e) = (member(&jwk.n), member(&jwk.e));
            RsaPublicKeyComponents { n: &n, e: &e }
                .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
                .unwrap()
        }
        other => panic!("not benchmarked: {other}"),
    }
}

fn profile() -> EffectiveProfile {
    EffectiveProfile {
        algorithms: ALGS.to_vec(),
        token_type: "at+jwt".to_owned(),
        extra_required_claims: Vec::new(),
        leeway: 30,
        max_lifetime: 3600,
        staleness_window: Duration::from_secs(300),
        max_delegation_depth: 4,
        require_delegation: false,
    }
}

fn setup() -> (Vec<Fixture>, KeyRing) {
    let mut keys = KeyRing::new();
    let mut fixtures = Vec::new();
    for alg in ALGS {
        let (sk, _) = SigningKey::generate(alg).unwrap();
        let vk = VerifyingKey::from_jwk(sk.public_jwk()).unwrap();
        keys.insert(vk.kid().to_owned(), Arc::new(vk));
        let token = sk.sign_compact("at+jwt", &claims(0)).unwrap();
        let (_, sig) = token.rsplit_once('.').unwrap();
        let raw_sig = b64::decode(sig).unwrap();
        fixtures.push(Fixture {
            alg,
            raw_key: raw_key(&sk),
            raw_sig,
            token,
        });
    }
    (fixtures, keys)
}

/// The value at quantile `q` of `v` (sorted in place).
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    // Truncation is the intent: the nearest rank at or below q.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((v.len().saturating_sub(1)) as f64 * q) as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

/// Nanoseconds per call of `f`, over a batch.
fn per_op(batch: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..batch {
        f();
    }
    start.elapsed().as_secs_f64() * 1e9 / f64::from(batch)
}

/// Raw, jose and full in alternating batches, so each ratio compares
/// measurements taken within a millisecond of each other.
fn interleaved(fixtures: &[Fixture], keys: &KeyRing, cx: &ValidationContext<'_>, opts: VerifyOptions<'_>) {
    const ROUNDS: usize = 400;
    const BATCH: u32 = 8;
    println!("interleaved: {ROUNDS} rounds of {BATCH} raw, {BATCH} jose, {BATCH} full (order rotating); medians");
    for f in fixtures {
        let (signing_input, _) = f.token.rsplit_once('.').unwrap();
        let mut raw = Vec::with_capacity(ROUNDS);
        let mut jose = Vec::with_capacity(ROUNDS);
        let mut full = Vec::with_capacity(ROUNDS);
        let mut ratio = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS {
            let mut t = [0.0f64; 3];
            for k in 0..3 {
                let which = (round + k) % 3;
                let ns = match which {
                    0 => per_op(BATCH, || {
                        f.raw_key
                            .verify_sig(black_box(signing_input.as_bytes()), black_box(&f.raw_sig))
                            .unwrap();
                    }),
                    1 => per_op(BATCH, || {
                        black_box(
                            verify_compact(black_box(&f.token), opts, |kid| keys.get(kid).map(Arc::as_ref)).unwrap(),
                        );
                    }),
                    _ => per_op(BATCH, || {
                        black_box(validate(black_box(&f.token), cx).unwrap());
                    }),
                };
                if let Some(slot) = t.get_mut(which) {
                    *slot = ns;
                }
            }
            let [r, j, u] = t;
            raw.push(r);
            jose.push(j);
            full.push(u);
            ratio.push(r / u);
        }
        let (p25, p50, p75) = (
            quantile(&mut ratio, 0.25),
            quantile(&mut ratio, 0.5),
            quantile(&mut ratio, 0.75),
        );
        println!(
            "interleaved/{:<6} raw {:>9.0} ns  jose {:>9.0} ns  full {:>9.0} ns  raw/full {p50:.3} (p25 {p25:.3}, p75 {p75:.3})",
            f.alg.as_str(),
            quantile(&mut raw, 0.5),
            quantile(&mut jose, 0.5),
            quantile(&mut full, 0.5),
        );
    }
}

fn bench(c: &mut Criterion) {
    let (fixtures, keys) = setup();
    let profile = profile();
    let revocations = RevocationState::default();
    let cx = ValidationContext {
        keys: &keys,
        profile: &profile,
        issuer: ISSUER,
        audience: AUDIENCE,
        revocations: &revocations,
        now: NOW,
    };
    let opts = VerifyOptions {
        expected_typ: Some("at+jwt"),
        max_len: castellan_jose::MAX_TOKEN_BYTES,
    };

    // `cargo bench` passes --bench; `cargo test --benches` does not, and only
    // checks that every benchmark runs once.
    if std::env::args().any(|a| a == "--bench") {
        interleaved(&fixtures, &keys, &cx, opts);
    }

    // raw, jose and full one algorithm after another, so each pair shares
    // the machine's state of the moment as closely as a bench run allows.
    for f in &fixtures {
        let alg = f.alg.as_str();
        let (signing_input, _) = f.token.rsplit_once('.').unwrap();
        f.raw_key.verify_sig(signing_input.as_bytes(), &f.raw_sig).unwrap();
        let ok = validate(&f.token, &cx).unwrap();
        assert_eq!(ok.aud, AUDIENCE);

        let mut g = c.benchmark_group("raw");
        g.throughput(Throughput::Elements(1));
        g.bench_function(alg, |b| {
            b.iter(|| {
                f.raw_key
                    .verify_sig(black_box(signing_input.as_bytes()), black_box(&f.raw_sig))
                    .unwrap()
            })
        });
        g.finish();

        let mut g = c.benchmark_group("jose");
        g.throughput(Throughput::Elements(1));
        g.bench_function(alg, |b| {
            b.iter(|| verify_compact(black_box(&f.token), opts, |kid| keys.get(kid).map(Arc::as_ref)).unwrap())
        });
        g.finish();

        let mut g = c.benchmark_group("full");
        g.throughput(Throughput::Elements(1));
        g.bench_function(alg, |b| b.iter(|| validate(black_box(&f.token), &cx).unwrap()));
        g.finish();
    }

    // Cache hit: the ES256 token among 1,000 others, as a busy service holds them.
    let es256 = &fixtures.first().unwrap().token;
    let verified: VerifiedToken = validate(es256, &cx).unwrap();
    let cache = TokenCache::new(10_000);
    for i in 0..1_000 {
        cache.insert(&format!("{es256}{i}"), verified.clone(), NOW);
    }
    cache.insert(es256, verified, NOW);
    assert!(matches!(cache.get(es256, NOW, 30, &revocations), Some(Ok(_))));
    let mut g = c.benchmark_group("cache_hit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ES256", |b| {
        b.iter(|| cache.get(black_box(es256), NOW, 30, &revocations).unwrap().unwrap())
    });
    g.finish();

    // The parts of the path that are not the signature (ES256 token).
    let mut segments = es256.split('.');
    let (header_b64, payload_b64, sig_b64) = (
        segments.next().unwrap(),
        segments.next().unwrap(),
        segments.next().unwrap(),
    );
    let header = b64::decode(header_b64).unwrap();
    let payload = b64::decode(payload_b64).unwrap();
    let mut g = c.benchmark_group("parts");
    g.throughput(Throughput::Elements(1));
    g.bench_function("b64_decode", |b| {
        b.iter(|| {
            (
                b64::decode(black_box(header_b64)).unwrap(),
                b64::decode(black_box(payload_b64)).unwrap(),
                b64::decode(black_box(sig_b64)).unwrap(),
            )
        })
    });
    g.bench_function("strict_json_header", |b| {
        b.iter(|| strict_json::parse_object(black_box(&header)).unwrap())
    });
    g.bench_function("strict_json_claims", |b| {
        b.iter(|| strict_json::parse_object(black_box(&payload)).unwrap())
    });
    g.bench_function("serde_json_claims", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(black_box(&payload)).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
