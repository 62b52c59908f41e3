//! The strict JOSE layer of Castellan.
//!
//! Signs and verifies compact JWS with aws-lc-rs, publishes keys as JWK.
//! Verification is deliberately narrow: the algorithm comes from the key found
//! by `kid`, never from the token header; sizes are capped before decoding;
//! base64url must be canonical; JSON objects with duplicate members are refused.
#![forbid(unsafe_code)]

pub mod alg;
pub mod b64;
pub mod error;
pub mod jwk;
pub mod jws;
pub mod signing;
pub mod strict_json;

pub use alg::Algorithm;
pub use error::JoseError;
pub use jwk::{Jwks, PublicJwk, VerifyingKey};
pub use jws::{
    decode_unverified_claims, decode_unverified_header, verify_compact, VerifiedJws, VerifyOptions, MAX_TOKEN_BYTES,
};
pub use signing::SigningKey;

#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
