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

/// The last event of an intact chain: record it outside Castellan (with the
/// SIEM export) to detect later truncation of the tail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    /// Its sequence number.
    pub seq: i64,
    /// Its hash, lowercase hex.
    pub hash: String,
}

/// What [`crate::Authority::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerification {
    /// Events that verified, from the first (all of them when intact).
    pub events: i64,
    /// The last event that verified; `None` when there is none.
    pub head: Option<ChainHead>,
    /// Where the chain first breaks; `None` when it is intact.
    pub first_bad: Option<castellan_store::audit_chain::ChainBreak>,
}

impl AuditVerification {
    /// The chain is intact.
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Events read per page when walking the chain.
pub const VERIFY_PAGE: u32 = 1_000;

/// Control characters (a name someone typed at the login page, say) never
/// reach the store: PostgreSQL text holds no NUL (the event would be lost),
/// and `castellan audit list` prints actors and targets on terminals. Each is
/// kept as U+FFFD.
pub(crate) fn storable(text: String) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
            .collect()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_not_stored() {
        assert_eq!(storable("user:a\0b\x1b[31m".to_owned()), "user:a\u{FFFD}b\u{FFFD}[31m");
        assert_eq!(storable("client:plain".to_owned()), "client:plain");
    }
}
