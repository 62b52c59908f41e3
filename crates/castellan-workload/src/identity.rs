//! The typed identity step after the TLS handshake: rustls has verified the
//! peer's chain against the bundle; here the verified leaf becomes a
//! [`PeerIdentity`] (or an [`UnidentifiedPeer`]) once per connection, and is
//! put into every request's extensions with the leaf as a
//! [`castellan_verify::PresentedCertificate`] (for certificate-bound tokens).

use castellan_ca::{parse_svid_peer, CaError, SpiffeId};
use rustls::pki_types::CertificateDer;

/// The SPIFFE ID of the peer on this connection, from its chain-verified
/// X.509 SVID. In the request extensions of every request on an mTLS
/// connection whose peer presented an SVID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerIdentity(pub SpiffeId);

/// A peer whose chain verified but whose leaf names no workload. In the
/// request extensions instead of a [`PeerIdentity`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnidentifiedPeer {
    /// No client certificate (the handshake requires one; kept for safety).
    #[error("the peer presented no client certificate")]
    NoCertificate,
    /// The leaf is not an X.509 SVID.
    #[error("the client certificate is not an x509-svid: {0}")]
    NotAnSvid(CaError),
}

impl PeerIdentity {
    /// The identity step: the SPIFFE ID of the leaf among the peer's
    /// certificates as rustls reports them after a completed handshake.
    ///
    /// # Errors
    /// [`UnidentifiedPeer`] when there is no certificate or the leaf is not
    /// an SVID.
    pub fn from_peer_certificates(certs: Option<&[CertificateDer<'_>]>) -> Result<Self, UnidentifiedPeer> {
        let leaf = certs
            .and_then(<[CertificateDer<'_>]>::first)
            .ok_or(UnidentifiedPeer::NoCertificate)?;
        parse_svid_peer(leaf).map(Self).map_err(UnidentifiedPeer::NotAnSvid)
    }

    /// The SPIFFE ID.
    #[must_use]
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use castellan_ca::TrustDomain;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn identity_step() {
        assert_eq!(
            PeerIdentity::from_peer_certificates(None),
            Err(UnidentifiedPeer::NoCertificate)
        );
        assert_eq!(
            PeerIdentity::from_peer_certificates(Some(&[])),
            Err(UnidentifiedPeer::NoCertificate)
        );
        let garbage = [CertificateDer::from(vec![1u8, 2, 3])];
        assert!(matches!(
            PeerIdentity::from_peer_certificates(Some(&garbage)),
            Err(UnidentifiedPeer::NotAnSvid(_))
        ));
        let td = TrustDomain::new("example.org").unwrap();
        let ca = castellan_ca::CaKey::generate(&td, 86_400, 1_700_000_000).unwrap();
        let peer = id("spiffe://example.org/a");
        let key = castellan_ca::generate_workload_key(&peer).unwrap();
        let svid = ca.issue_svid(key.csr_der(), &peer, 3_600, 1_700_000_000).unwrap();
        assert_eq!(
            PeerIdentity::from_peer_certificates(Some(&svid.chain)).unwrap(),
            PeerIdentity(peer)
        );
    }
}
