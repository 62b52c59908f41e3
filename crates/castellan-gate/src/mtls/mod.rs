//! mTLS at the gate: terminate TLS with the gate's own SVID, require a client
//! SVID chaining to the trust bundle, identify the peer as its own typed step
//! after the handshake ([`PeerIdentity`] in the request extensions), admit
//! only allow-listed peers, and optionally originate mTLS to an upstream gate.
//! The SVID directory is watched and swapped for new connections on renewal.

mod identity;

pub use castellan_workload::{PresentedCertificate, SvidError, WrongUpstream, BUNDLE_FILE, KEY_FILE, SVID_FILE};
pub use identity::{AllowList, AllowListError, PeerDecision, PeerIdentity, UnidentifiedPeer, PEER_HEADER};

pub(crate) use castellan_workload::{client_config, serve, server_config, ListenerMetrics, SvidSource};
pub(crate) use identity::admit_peer;

/// The gate's handshake metrics.
pub(crate) const LISTENER_METRICS: ListenerMetrics = ListenerMetrics {
    handshakes_total: "castellan_gate_tls_handshakes_total",
    handshake_seconds: "castellan_gate_tls_handshake_seconds",
};

use castellan_ca::SpiffeId;
use std::path::PathBuf;
use std::time::Duration;

/// How often the SVID directory is checked for renewed files by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// mTLS settings of a gate.
#[derive(Debug, Clone)]
pub struct MtlsConfig {
    /// Holds `svid.pem`, `svid_key.pem` and `bundle.pem` (kept fresh by the
    /// workload agent).
    pub svid_dir: PathBuf,
    /// The SPIFFE IDs admitted; others get 403.
    pub allow_peers: Vec<SpiffeId>,
    /// Originate mTLS to an `https://` upstream that must present this ID.
    pub upstream_spiffe_id: Option<SpiffeId>,
    /// How often the directory is checked for renewed files.
    pub reload_interval: Duration,
}

impl MtlsConfig {
    /// mTLS with the SVID in `svid_dir`, admitting `allow_peers`.
    #[must_use]
    pub fn new(svid_dir: impl Into<PathBuf>, allow_peers: Vec<SpiffeId>) -> Self {
        Self {
            svid_dir: svid_dir.into(),
            allow_peers,
            upstream_spiffe_id: None,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
        }
    }
}
