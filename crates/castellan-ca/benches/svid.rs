//! SVID issuance per second per core, side by side with the raw aws-lc-rs
//! primitives it is made of (one P-256 verify of the CSR, one P-256 sign of
//! the leaf), so the ratio holds across machines.
//!
//! `cargo bench -p castellan-ca --bench svid -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // benchmark setup may unwrap

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
};
use castellan_ca::{generate_workload_key_for, CaKey, KeyAlgorithm, SpiffeId, TrustDomain};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const NOW: i64 = 1_700_000_000;
const CSRS: usize = 256;

fn csrs(algorithm: KeyAlgorithm) -> Vec<(SpiffeId, Vec<u8>)> {
    (0..CSRS)
        .map(|n| {
            let id = SpiffeId::parse(&format!("spiffe://example.org/ns/bench/sa/workload-{n}")).unwrap();
            let csr = generate_workload_key_for(&id, algorithm).unwrap().csr_der().to_vec();
            (id, csr)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let td = TrustDomain::new("example.org").unwrap();
    let ca = CaKey::generate(&td, 30 * 24 * 3600, NOW).unwrap();
    let p256 = csrs(KeyAlgorithm::EcdsaP256);
    let ed25519 = csrs(KeyAlgorithm::Ed25519);

    let mut group = c.benchmark_group("svid");
    group.throughput(Throughput::Elements(1));

    let mut n = 0usize;
    group.bench_function("issue_p256_csr", |b| {
        b.iter(|| {
            n = (n + 1) % CSRS;
            let (id, csr) = &p256[n];
            black_box(ca.issue_svid(black_box(csr), id, 3600, NOW).unwrap())
        });
    });
    group.bench_function("issue_ed25519_csr", |b| {
        b.iter(|| {
            n = (n + 1) % CSRS;
            let (id, csr) = &ed25519[n];
            black_box(ca.issue_svid(black_box(csr), id, 3600, NOW).unwrap())
        });
    });

    // The raw primitives an issuance performs: sign a TBSCertificate-sized
    // message, verify a CSR-sized one.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let tbs = vec![0x5au8; 420];
    group.bench_function("raw_p256_sign", |b| {
        b.iter(|| black_box(key.sign(&rng, black_box(&tbs)).unwrap()));
    });
    let sig = key.sign(&rng, &tbs).unwrap();
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref().to_vec());
    group.bench_function("raw_p256_verify", |b| {
        b.iter(|| public.verify(black_box(&tbs), black_box(sig.as_ref())).unwrap());
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
