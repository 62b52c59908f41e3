//! Workload identity over mTLS, shared by the gate, the authority and the
//! workload agent: an SVID directory (`svid.pem`, `svid_key.pem`,
//! `bundle.pem`) watched and swapped on renewal, or an SVID held in memory;
//! rustls verifiers that trust only the current bundle and check the peer's
//! SPIFFE ID; an mTLS listener that runs the identity step once per
//! connection and puts the result in every request's extensions.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod files;
mod identity;
mod listener;
mod source;
mod verifier;

pub use castellan_verify::{x5t_s256, PresentedCertificate};
pub use files::{load, stamp, Stamp, SvidError, SvidMaterial, BUNDLE_FILE, KEY_FILE, SVID_FILE};
pub use identity::{PeerIdentity, UnidentifiedPeer};
pub use listener::{serve, server_config, ListenerMetrics};
pub use source::{CurrentBundle, CurrentMaterial, CurrentSvid, SvidCell, SvidSource};
pub use verifier::{client_config, SpiffeServerVerifier, WrongUpstream};
