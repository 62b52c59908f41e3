//! Password checks: the raw argon2id primitive and the authority's path to
//! it, at the configured parameters (`SigninConfig::default()`: m=19456 KiB,
//! t=2, p=1). The ceiling for sign-ins per second on one core: every
//! sign-in on the login page costs exactly one of these.
//!
//! - `argon2id/raw_verify`: `argon2` crate, `verify_password` of the right
//!   password against a PHC string made with the configured parameters
//!   (the same call the authority makes on its blocking thread).
//! - `argon2id/passwords_verify`: `castellan_authority::passwords::Passwords::verify`,
//!   the login page's path: the concurrency permit, the hop to a blocking
//!   thread and back, on a current-thread runtime.
//!
//! Run it pinned to one core to read "per core" (bench/people.sh does, next to
//! the sign-in load it is compared with):
//!
//! ```sh
//! taskset -c 0 cargo bench -p castellan-authority --bench passwords -- --warm-up-time 1 --measurement-time 5
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench may unwrap its fixtures

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use castellan_authority::config::SigninConfig;
use castellan_authority::passwords::Passwords;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

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

    let mut g = c.benchmark_group("argon2id");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_verify", |b| {
        b.iter(|| {
            Argon2::default()
                .verify_password(black_box(PASSWORD.as_bytes()), black_box(&parsed))
                .unwrap();
        });
    });
    g.bench_function("passwords_verify", |b| {
        b.iter(|| {
            assert!(rt
                .block_on(passwords.verify(black_box(PASSWORD), Some(black_box(&stored))))
                .unwrap());
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
