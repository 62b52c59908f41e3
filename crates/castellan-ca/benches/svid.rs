//! SVID issuance per second per core, side by side with the raw aws-lc-rs
//! primitives it is made of (one verify of the CSR's self-signature, one
//! P-256 sign of the leaf by the CA), so the ratio holds across machines.
//!
//! - `svid/issue_p256_csr`: `CaKey::issue_svid` on pre-generated P-256 CSRs
//!   (DER, 256 distinct workloads, round robin), one-hour TTL.
//! - `svid/issue_ed25519_csr`: the same with Ed25519 CSRs.
//! - `raw/p256_sign`, `raw/p256_verify`, `raw/ed25519_verify`: the bare
//!   aws-lc-rs calls; `raw/p256_verify_then_p256_sign`: both calls of a
//!   P-256 issuance back to back, the crypto floor.
//!
//! `cargo bench -p castellan-ca --bench svid -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // benchmark setup may unwrap

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING, ED25519,
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

    group.finish();

    // The raw aws-lc-rs primitives an issuance performs: verify the CSR's
    // self-signature (~240 bytes signed), sign the TBSCertificate (~420).
    let mut group = c.benchmark_group("raw");
    group.throughput(Throughput::Elements(1));
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let ca_key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let tbs = vec![0x5au8; 420];
    let csr_info = vec![0xa5u8; 240];
    group.bench_function("p256_sign", |b| {
        b.iter(|| black_box(ca_key.sign(&rng, black_box(&tbs)).unwrap()));
    });

    let p256_key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    let p256_sig = p256_key.sign(&rng, &csr_info).unwrap();
    let p256_pub = p256_key.public_key().as_ref().to_vec();
    group.bench_function("p256_verify", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, black_box(&p256_pub))
                .verify(black_box(&csr_info), black_box(p256_sig.as_ref()))
                .unwrap();
        });
    });
    // The crypto floor of one issuance from a P-256 CSR.
    group.bench_function("p256_verify_then_p256_sign", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, black_box(&p256_pub))
                .verify(black_box(&csr_info), black_box(p256_sig.as_ref()))
                .unwrap();
            black_box(ca_key.sign(&rng, black_box(&tbs)).unwrap())
        });
    });

    let ed_key = Ed25519KeyPair::generate().unwrap();
    let ed_sig = ed_key.sign(&csr_info);
    let ed_pub = ed_key.public_key().as_ref().to_vec();
    group.bench_function("ed25519_verify", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ED25519, black_box(&ed_pub))
                .verify(black_box(&csr_info), black_box(ed_sig.as_ref()))
                .unwrap();
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
