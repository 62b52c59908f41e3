//! Decentralised authorization with Cedar: policies are managed centrally
//! by the authority, one versioned set per service, and shipped as bundles
//! signed with the authority's token signing key; each service verifies a
//! bundle, hot-swaps it in ([`Authorizer::install`]) and decides locally
//! ([`Authorizer::decide`]) against its own data. Default deny; a matching
//! `forbid` overrides any `permit`.
//!
//! [`gate_request`] builds the request `castellan gate --policy-service`
//! evaluates: principal `Principal::"<sub>"` (attributes `client_id`,
//! `scopes`, `peer` when mTLS, `actors` after token exchange), action
//! `Action::"<HTTP method>"`, resource `Route::"<path>"` (attribute
//! `path`); [`GATE_SCHEMA`] declares it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bundle;
mod decide;
mod error;
mod gate_model;

pub use bundle::{check_policies, verify_bundle, CompiledBundle, PolicyBundle, PolicySummary, POLICY_BUNDLE_TYP};
pub use decide::{Authorizer, Decision, DenyReason};
pub use error::AuthzError;
pub use gate_model::{gate_request, principal_entity, GATE_SCHEMA};
