//! `castellan-verify`: the one access-token verifier every Castellan
//! service links, and the one `castellan gate` runs.
//!
//! A [`Verifier`] discovers the authority, takes its validation profile
//! (algorithms, leeway, lifetime, required claims), keeps its JWKS parsed and
//! fresh, and follows its revocation stream. [`Verifier::verify`] answers
//! with a [`VerifiedToken`] or an exhaustive [`Rejection`].
//!
//! ```no_run
//! # async fn example() -> Result<(), castellan_verify::BuildError> {
//! use castellan_verify::{Verifier, VerifyLayer, VerifiedToken};
//! use axum::{routing::get, Router};
//!
//! let verifier = Verifier::builder("http://127.0.0.1:8080", "orders").connect().await?;
//! let app: Router = Router::new()
//!     .route("/orders", get(|token: VerifiedToken| async move { format!("hello {}", token.sub) }))
//!     .layer(VerifyLayer::new(verifier.clone()))
//!     .with_state(verifier);
//! # Ok(()) }
//! ```
//!
//! # Certificate-bound tokens
//!
//! A token may be bound to a TLS client certificate (RFC 8705 §3): its `cnf`
//! claim carries `x5t#S256`, the [`x5t_s256`] thumbprint of that
//! certificate, and it is good only on a connection whose peer presented
//! exactly that certificate. Whatever terminates TLS (the service's own
//! listener, or a gate) takes the leaf certificate the peer presented on the
//! connection and puts a [`PresentedCertificate`] built from its DER into
//! each request's extensions:
//!
//! ```
//! use castellan_verify::PresentedCertificate;
//! # let peer_leaf_der: &[u8] = b"DER of the client's leaf certificate";
//! # let mut req = http::Request::new(axum::body::Body::empty());
//! req.extensions_mut().insert(PresentedCertificate::from_der(peer_leaf_der));
//! ```
//!
//! [`VerifyLayer`] and the [`VerifiedToken`] extractor read it from there and
//! pass it to [`Verifier::verify_presented`]; [`Verifier::verify`] and
//! [`verify_request`] verify as if no certificate came. The binding is
//! checked on every call, cache hits included:
//!
//! - a token without `cnf` is unaffected, with or without a certificate;
//! - a bound token with no certificate is refused
//!   ([`Rejection::BoundTokenWithoutCertificate`]), with another one too
//!   ([`Rejection::CertificateMismatch`]; thumbprints compared in constant time);
//! - a `cnf` this verifier cannot check (any member besides `x5t#S256`, such
//!   as DPoP's `jkt`) is refused ([`Rejection::UnsupportedConfirmation`]), as
//!   is one without a well-formed `x5t#S256` ([`Rejection::MissingClaim`]).
//!
//! All three answer 401 `invalid_token` (RFC 8705 §3, RFC 6750 §3). The
//! verifier does not check the certificate itself: authenticating the peer
//! (chain, validity, identity) is the TLS terminator's job. Never build a
//! `PresentedCertificate` from anything a client can send in the request,
//! such as a forwarded-certificate header from an untrusted hop.
#![forbid(unsafe_code)]

mod binding;
mod cache;
mod layer;
mod profile;
mod rejection;
mod revocation;
mod sources;
mod token;
mod validate;
mod verifier;

pub use binding::{x5t_s256, PresentedCertificate};
pub use layer::{
    bearer, rejection_response, verify_request, verify_request_presented, RejectionResponse, VerifyLayer, VerifyService,
};
pub use profile::{EffectiveProfile, LocalPolicy, ProfileError, ValidationProfile};
pub use rejection::{Rejection, RevokedBy};
pub use revocation::{RevocationEvent, RevocationState};
pub use token::{VerifiedClaims, VerifiedToken};
pub use validate::{validate, validate_presented, KeyRing, ValidationContext};
pub use verifier::{
    install_tls_provider, BuildError, FailMode, PolicyNotice, Verifier, VerifierBuilder, VerifierStatus,
};

/// The verified-token cache, exposed only for benchmarks; not a stable API.
#[doc(hidden)]
pub use cache::TokenCache;
