//! What the authority and the gate share about observing requests: the
//! latency buckets of their histograms, and request ids.
//!
//! Request ids: one per HTTP request, carried in `x-request-id` from the
//! caller through the gate to the service and back, and written on every log
//! line of the request. A caller's id is kept when it is sane; otherwise a
//! new one is made from a per-process random prefix and a counter (no
//! system call and one small allocation per request).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Upper bounds (seconds) of every latency histogram: from 50 µs (a gate's
/// own work) to 10 s (a stuck store).
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The header that carries a request id.
pub const HEADER: &str = "x-request-id";

/// Longest id accepted from a caller.
pub const MAX_LEN: usize = 128;

/// True for 1 to [`MAX_LEN`] characters of `A-Z a-z 0-9 . _ -`: safe in a
/// header, and a log line.
#[must_use]
pub fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn prefix() -> u64 {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    // The standard library seeds `RandomState` from the OS once per
    // process; its keys are all the randomness an id prefix needs.
    *PREFIX.get_or_init(|| std::collections::hash_map::RandomState::new().build_hasher().finish())
}

/// A new id, unique within the process and (with overwhelming probability)
/// across processes: `<16 hex random prefix>-<counter hex>`.
#[must_use]
pub fn generate() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}-{n:x}", prefix())
}

/// Installs the process's Prometheus recorder, with [`LATENCY_BUCKETS`] so
/// histograms render as histograms, and returns its handle; when a recorder
/// is already installed, a detached handle (nothing records into it).
///
/// `install_recorder` starts no upkeep: histogram samples would pile up in
/// memory until the next scrape, for ever with no scraper. A thread drains
/// them every `drain_every` (the samples held between drains are the memory
/// this costs: about half a megabyte a second at 30,000 requests per second).
#[cfg(feature = "prometheus")]
#[must_use]
pub fn install_prometheus(drain_every: std::time::Duration) -> metrics_exporter_prometheus::PrometheusHandle {
    use metrics_exporter_prometheus::PrometheusBuilder;
    let builder = || {
        let plain = PrometheusBuilder::new();
        PrometheusBuilder::new().set_buckets(&LATENCY_BUCKETS).unwrap_or(plain)
    };
    let Ok(handle) = builder().install_recorder() else {
        return builder().build_recorder().handle();
    };
    let drained = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || loop {
            std::thread::sleep(drain_every);
            drained.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
    }
    handle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_short_plain_tokens() {
        assert!(is_sane(b"abc-123"));
        assert!(is_sane(b"A.b_c-9"));
        assert!(is_sane(&[b'a'; MAX_LEN]));
        assert!(!is_sane(b""));
        assert!(!is_sane(&[b'a'; MAX_LEN + 1]));
        assert!(!is_sane(b"a b"));
        assert!(!is_sane(b"a\nb"));
        assert!(!is_sane(b"a\"b"));
        assert!(!is_sane("é".as_bytes()));
    }

    #[test]
    fn generated_ids_are_sane_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(is_sane(a.as_bytes()), "{a}");
        assert_eq!(a.split('-').next(), b.split('-').next(), "one prefix per process");
    }
}
