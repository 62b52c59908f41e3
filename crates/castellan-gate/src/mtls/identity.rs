//! The typed identity step after the TLS handshake: rustls has verified the
//! client's chain against the bundle; here the verified leaf becomes a
//! [`PeerIdentity`] (or an [`UnidentifiedPeer`]) once per connection, is put
//! into every request's extensions, and [`AllowList::decide`] admits or
//! refuses it before the token is looked at.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use castellan_ca::{SpiffeId, TrustDomain};
pub use castellan_workload::{PeerIdentity, UnidentifiedPeer};
use http::StatusCode;
use std::collections::HashSet;
use std::sync::Arc;

/// The header that tells the upstream which workload called. Any such
/// header from the client is stripped first (it has the identity prefix).
pub const PEER_HEADER: &str = "x-castellan-peer-spiffe-id";

/// What the allow-list says about a peer. Exhaustive: callers handle every
/// outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum PeerDecision {
    /// On the list.
    Admit,
    /// In the trust domain but not on the list.
    NotAllowed,
    /// Outside the gate's trust domain (the bundle's CAs carry no name
    /// constraints, so this is checked first).
    ForeignTrustDomain,
}

/// Why an allow-list cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllowListError {
    /// No peer would ever be admitted.
    #[error("--svid-dir needs at least one --allow-peer")]
    Empty,
    /// An entry outside the gate's trust domain.
    #[error("--allow-peer `{id}` is outside the gate's trust domain `{trust_domain}`")]
    ForeignTrustDomain {
        /// The entry.
        id: String,
        /// The trust domain of the gate's own SVID.
        trust_domain: String,
    },
}

/// The SPIFFE IDs a gate admits.
#[derive(Clone, Debug)]
pub struct AllowList {
    trust_domain: TrustDomain,
    peers: HashSet<SpiffeId>,
}

impl AllowList {
    /// An allow-list in `trust_domain`.
    ///
    /// # Errors
    /// [`AllowListError`] when empty or when an ID is in another trust domain.
    pub fn new(trust_domain: TrustDomain, peers: &[SpiffeId]) -> Result<Self, AllowListError> {
        if peers.is_empty() {
            return Err(AllowListError::Empty);
        }
        if let Some(foreign) = peers.iter().find(|p| !p.is_member_of(&trust_domain)) {
            return Err(AllowListError::ForeignTrustDomain {
                id: foreign.to_string(),
                trust_domain: trust_domain.to_string(),
            });
        }
        Ok(Self {
            trust_domain,
            peers: peers.iter().cloned().collect(),
        })
    }

    /// Admits or refuses `peer`.
    pub fn decide(&self, peer: &PeerIdentity) -> PeerDecision {
        if !peer.0.is_member_of(&self.trust_domain) {
            PeerDecision::ForeignTrustDomain
        } else if self.peers.contains(&peer.0) {
            PeerDecision::Admit
        } else {
            PeerDecision::NotAllowed
        }
    }
}

/// A refused peer: 403 with a precise body.
#[derive(Debug)]
enum Refusal<'a> {
    NotAllowed(&'a SpiffeId),
    ForeignTrustDomain(&'a SpiffeId, &'a TrustDomain),
    Unidentified(UnidentifiedPeer),
}

impl Refusal<'_> {
    fn label(&self) -> &'static str {
        match self {
            Self::NotAllowed(_) => "not_allowed",
            Self::ForeignTrustDomain(..) => "foreign_trust_domain",
            Self::Unidentified(UnidentifiedPeer::NoCertificate) => "no_certificate",
            Self::Unidentified(UnidentifiedPeer::NotAnSvid(_)) => "not_an_svid",
        }
    }

    fn description(&self) -> String {
        match self {
            Self::NotAllowed(id) => format!("peer `{id}` is not allowed by this gate"),
            Self::ForeignTrustDomain(id, td) => format!("peer `{id}` is outside trust domain `{td}`"),
            Self::Unidentified(u) => u.to_string(),
        }
    }

    fn response(&self) -> Response {
        let body = serde_json::json!({
            "error": "peer_not_allowed",
            "error_description": self.description(),
        });
        (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
    }
}

/// Middleware on the mTLS listener: only allow-listed peers reach routing.
pub(crate) async fn admit_peer(State(allow): State<Arc<AllowList>>, req: Request, next: Next) -> Response {
    let unidentified;
    let refusal = match req.extensions().get::<PeerIdentity>() {
        Some(peer) => match allow.decide(peer) {
            PeerDecision::Admit => return next.run(req).await,
            PeerDecision::NotAllowed => Refusal::NotAllowed(&peer.0),
            PeerDecision::ForeignTrustDomain => Refusal::ForeignTrustDomain(&peer.0, &allow.trust_domain),
        },
        None => {
            unidentified = req
                .extensions()
                .get::<UnidentifiedPeer>()
                .cloned()
                .unwrap_or(UnidentifiedPeer::NoCertificate);
            Refusal::Unidentified(unidentified)
        }
    };
    metrics::counter!("castellan_gate_peer_refusals_total", "reason" => refusal.label()).increment(1);
    tracing::info!(reason = refusal.label(), detail = %refusal.description(), "peer refused");
    refusal.response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn decisions() {
        let td = TrustDomain::new("example.org").unwrap();
        let allow = AllowList::new(td, &[id("spiffe://example.org/a")]).unwrap();
        assert_eq!(
            allow.decide(&PeerIdentity(id("spiffe://example.org/a"))),
            PeerDecision::Admit
        );
        assert_eq!(
            allow.decide(&PeerIdentity(id("spiffe://example.org/b"))),
            PeerDecision::NotAllowed
        );
        assert_eq!(
            allow.decide(&PeerIdentity(id("spiffe://other.org/a"))),
            PeerDecision::ForeignTrustDomain
        );
    }

    #[test]
    fn allow_list_errors() {
        let td = TrustDomain::new("example.org").unwrap();
        assert_eq!(AllowList::new(td.clone(), &[]).unwrap_err(), AllowListError::Empty);
        assert_eq!(
            AllowList::new(td, &[id("spiffe://other.org/a")])
                .unwrap_err()
                .to_string(),
            "--allow-peer `spiffe://other.org/a` is outside the gate's trust domain `example.org`"
        );
    }
}
