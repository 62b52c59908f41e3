//! Conformance suites over the public vectors in `shared/conformance/`
//! (Project Wycheproof and the RFC 7520 / RFC 8037 JOSE cookbook).
//!
//! The vectors are read from `../shared/conformance/` relative to the
//! workspace root. When that directory is missing the suites fail if `CI` is
//! set, and otherwise print a loud `SKIPPED:` line and pass.
//!
//! Every suite counts what it checked and asserts lower bounds, so none of
//! them can pass vacuously.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
mod rfc7520;
mod wycheproof_jwk;
mod wycheproof_jws;
mod wycheproof_primitives;
