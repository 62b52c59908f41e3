//! Decentralised authorization with Cedar: policies are managed centrally
//! by the authority, one versioned set per service, and shipped as bundles
//! signed with the authority's token signing key; each service verifies a
//! bundle, hot-swaps it in ([`Authorizer::install_signed`]) and decides
//! locally ([`Authorizer::decide`]) against its own data. Default deny; a
//! matching `forbid` overrides any `permit`. See `docs/authorization.md`.
//!
//! [`gate_request`] builds the request `castellan gate --policy-service`
//! evaluates: principal `Principal::"<sub>"` (attributes `client_id`,
//! `scopes`, `peer` when mTLS, `actors`), action `Action::"<HTTP method>"`,
//! resource `Route::"<path>"` (attribute `path`); [`GATE_SCHEMA`] declares it.
//!
//! ```
//! use castellan_authz::{gate_request, Authorizer, Decision, PolicyBundle, GATE_SCHEMA};
//! use castellan_verify::{VerifiedClaims, VerifiedToken};
//!
//! let authz = Authorizer::new("orders");
//! authz.install(PolicyBundle {
//!     service: "orders".into(),
//!     version: 1,
//!     policies: r#"@id("read") permit(principal, action == Action::"GET", resource)
//!                  when { principal.scopes.contains("orders:read") };"#.into(),
//!     schema: Some(GATE_SCHEMA.into()),
//!     created_at: 0,
//! })?;
//! # let token = VerifiedToken::new(VerifiedClaims {
//! #     iss: "https://auth.example".into(), sub: "alice".into(), aud: "orders".into(),
//! #     client_id: "web".into(), sid: "s".into(), jti: "j".into(),
//! #     scope: Some("orders:read".into()), iat: 0, exp: 300, kid: "k".into(),
//! #     act: None, cnf_x5t_s256: None,
//! # });
//! let (request, entities) = gate_request(&token, None, "GET", "/orders/7")?;
//! match authz.decide(&request, &entities) {
//!     Decision::Allow { determining, version, .. } => assert_eq!((determining, version), (vec!["read".to_owned()], 1)),
//!     Decision::Deny { reason, .. } => panic!("denied: {}", reason.label()),
//! }
//! # Ok::<(), castellan_authz::AuthzError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod authorizer;
mod bundle;
mod cases;
mod decision;
pub mod decision_log;
mod diagnostics;
mod error;
mod gate_model;
mod index;
mod policies;
mod request;
pub mod ship;
pub mod sync;

pub use authorizer::{Authorizer, Installed};
pub use bundle::{verify_bundle, CompiledBundle, PolicyBundle, MAX_BUNDLE_BYTES, POLICY_BUNDLE_TYP};
pub use cases::{CaseResult, CasesError, CasesFormat, Expect, PolicyTests, TestReport, MAX_CASES_BYTES};
pub use decision::{Decision, DenyReason};
pub use decision_log::{DecisionBatch, DecisionEntry, DecisionLog};
pub use error::AuthzError;
pub use gate_model::{gate_request, principal_entity, principal_entity_with_parents, GATE_SCHEMA};
pub use policies::{check_policies, PolicySummary};
pub use request::{entity_uid, AuthzRequest};
pub use ship::{ClientCredentials, CredentialsError, DecisionShipper, ShipError};
