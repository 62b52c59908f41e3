//! The audit trail: every admin action, sign-in, token exchange, suspension,
//! revocation, rotation, policy push and canary mint becomes an append-only,
//! hash-chained event.
//!
//! Call sites build an [`AuditEntry`] and hand it to [`crate::Authority::audit`].
//! Recording never fails the action it describes: a store error is logged
//! and counted (`castellan_audit_failures_total`).

use serde::Serialize;

/// Whether the audited action took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It happened.
    Success,
    /// It was refused or failed.
    Failure,
}

impl Outcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Who acted: `client:<id>`, `user:<id>`, `workload:<spiffe id>`, or
    /// `castellan` for the authority's own schedule.
    pub actor: String,
    /// What was done, `noun.verb` (`client.create`, `key.rotate`, `signin`).
    pub action: &'static str,
    /// What it was done to (`client:<id>`, `key:<kid>`, `user:<id>`, ...); empty when nothing.
    pub target: String,
    /// Success or failure.
    pub outcome: Outcome,
    /// Further facts as a JSON object (never a secret).
    pub detail: serde_json::Value,
}

impl AuditEntry {
    /// A successful action with no detail.
    pub fn new(actor: impl Into<String>, action: &'static str, target: impl Into<String>) -> Self {
        AuditEntry {
            actor: actor.into(),
            action,
            target: target.into(),
            outcome: Outcome::Success,
            detail: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// The same entry with another outcome.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// The same entry with detail (a JSON object).
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// The actor string for an admin client.
pub fn client_actor(client_id: &str) -> String {
    format!("client:{client_id}")
}

/// The actor string for a person.
pub fn user_actor(user_id: &str) -> String {
    format!("user:{user_id}")
}
