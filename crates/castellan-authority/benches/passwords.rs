//! Password checks: the raw argon2id primitive and the authority's path to
//! it, at the configured parameters (`SigninConfig::default()`: m=19456 KiB,
//! t=2, p=1). The ceiling for sign-ins per second on one core: every
//! sign-in on the login page costs exactly one of these.
//!
//! - `argon2id/raw_verify`: `argon2` crate, `verify_password` of the right
//!   password against a PHC string made with the configured parameters
//!   (the same call the authority makes on its blocking thread).
//! - `argon2id/raw_verify_preallocated`: the same check with the 19 MiB of
//!   argon2 blocks allocated once and reused (`hash_password_into_with_memory`
//!   and a constant-time compare): the primitive without the allocator.
//! - `argon2id/raw_verify_4_threads`: four `raw_verify` at once on four
//!   threads, as `signin.max_concurrent_hashes = 4` runs them; time per
//!   verify. Pinned to one core this shows what sharing the core (and its
//!   caches) between four 19 MiB working sets costs.
//! - `argon2id/passwords_verify`: `castellan_authority::passwords::Passwords::verify`,
//!   the login page's path: the concurrency permit, the hop to a blocking
//!   thread and back, on a current-thread runtime.
//!
//! Before criterion starts, an interleaved pass (`interleaved/<name>`) runs
//! rounds of one call of each, in rotating order, and prints the median time
//! per verify and the median per-round throughput ratio to `raw_verify`: the
//! figures to trust on a shared, busy machine.
//!
//! Run it pinned to one core to read "per core" (bench/people.sh does, next to
//! the sign-in load it is compared with):
//!
//! ```sh
//! taskset -c 0 cargo bench -p castellan-authority --bench passwords -- --warm-up-time 1 --measurement-time 5
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // a bench may unwrap its fixtures

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use castellan_authority::config::SigninConfig;
use castellan_authority::passwords::Passwords;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;

const PASSWORD: &str = "correct horse battery staple";

fn bench(c: &mut Criterion) {
    let config = SigninConfig::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let passwords = Passwords::new(&config).unwrap();
    let stored = rt.block_on(passwords.hash(PASSWORD)).unwrap();
    let expected = format!(
        "$argon2id$v=19$m={},t={},p={}$",
        config.argon2_memory_kib, config.argon2_iterations, config.argon2_parallelism
    );
    assert!(
        stored.starts_with(&expected),
        "{stored} is not at the configured parameters"
    );
    let parsed = PasswordHash::new(&stored).unwrap();
    assert!(rt.block_on(passwords.verify(PASSWORD, Some(&stored))).unwrap());

    let params = Params::new(
        config.argon2_memory_kib,
        config.argon2_iterations,
        config.argon2_parallelism,
        None,
    )
    .unwrap();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt = [0u8; 64];
    let salt = parsed.salt.unwrap().decode_b64(&mut salt).unwrap().to_vec();
    let expected_hash = parsed.hash.unwrap();
    let mut blocks = vec![Block::default(); params.block_count()];
    let mut out = vec![0u8; expected_hash.len()];

    let raw = || {
        Argon2::default()
            .verify_password(black_box(PASSWORD.as_bytes()), black_box(&parsed))
            .unwrap();
    };
    let mut preallocated = || {
        argon
            .hash_password_into_with_memory(black_box(PASSWORD.as_bytes()), &salt, &mut out, &mut blocks)
            .unwrap();
        assert!(aws_lc_rs::constant_time::verify_slices_are_equal(&out, expected_hash.as_bytes()).is_ok());
    };
    let four_threads = || {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(raw);
            }
        });
    };
    let via_passwords = || {
        assert!(rt
            .block_on(passwords.verify(black_box(PASSWORD), Some(black_box(&stored))))
            .unwrap());
    };

    interleaved(&mut [
        ("raw_verify", 1, &mut { raw }),
        ("raw_verify_preallocated", 1, &mut preallocated),
        ("raw_verify_4_threads", 4, &mut { four_threads }),
        ("passwords_verify", 1, &mut { via_passwords }),
    ]);

    let mut g = c.benchmark_group("argon2id");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_verify", |b| b.iter(raw));
    g.bench_function("raw_verify_preallocated", |b| b.iter(&mut preallocated));
    g.throughput(Throughput::Elements(4));
    g.bench_function("raw_verify_4_threads", |b| b.iter(four_threads));
    g.throughput(Throughput::Elements(1));
    g.bench_function("passwords_verify", |b| b.iter(via_passwords));
    g.finish();
}

/// Rounds of one call of each variant, in rotating order, so every ratio
/// compares calls made within a fraction of a second of each other (the
/// machine is shared; criterion's separate windows are seconds apart).
/// Prints each variant's median time per verify and the median of its
/// per-round ratio to the first variant.
fn interleaved(variants: &mut [(&str, u32, &mut dyn FnMut())]) {
    const ROUNDS: usize = 24;
    let n = variants.len();
    let mut times = vec![Vec::with_capacity(ROUNDS); n];
    for round in 0..ROUNDS {
        for k in 0..n {
            let i = (round + k) % n;
            let (_, per_iter, f) = &mut variants[i];
            let t = Instant::now();
            f();
            times[i].push(t.elapsed().as_secs_f64() * 1e3 / f64::from(*per_iter));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = times[0].clone();
    for (i, (name, _, _)) in variants.iter().enumerate() {
        let ms = median(times[i].clone());
        let ratio = median(times[i].iter().zip(&base).map(|(t, b)| b / t).collect());
        println!(
            "interleaved/{name}: {ms:.2} ms per verify ({:.1}/s), throughput vs raw_verify {ratio:.3} ({ROUNDS} rounds)",
            1e3 / ms
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
