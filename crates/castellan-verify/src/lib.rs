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
#![forbid(unsafe_code)]

mod cache;
mod layer;
mod profile;
mod rejection;
mod revocation;
mod sources;
mod token;
mod validate;
mod verifier;

pub use layer::{bearer, rejection_response, verify_request, RejectionResponse, VerifyLayer, VerifyService};
pub use profile::{EffectiveProfile, LocalPolicy, ProfileError, ValidationProfile};
pub use rejection::{Rejection, RevokedBy};
pub use revocation::{RevocationEvent, RevocationState};
pub use token::{VerifiedClaims, VerifiedToken};
pub use validate::{validate, KeyRing, ValidationContext};
pub use verifier::{install_tls_provider, BuildError, FailMode, Verifier, VerifierBuilder, VerifierStatus};

/// The verified-token cache, exposed only for benchmarks; not a stable API.
#[doc(hidden)]
pub use cache::TokenCache;
