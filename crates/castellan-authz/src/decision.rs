//! Decisions that say why: the outcome, the policies that determined it,
//! the policies that failed to evaluate, and the bundle version.

use crate::bundle::CompiledBundle;
use crate::request::AuthzRequest;
use cedar_policy::{Decision as CedarDecision, Entities, PolicySet};

/// Why a request was denied. Exhaustive: callers handle every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// No bundle is installed yet: nothing is allowed.
    NoBundle,
    /// A `forbid` policy matched; it overrides any `permit`.
    Forbidden,
    /// No `permit` matched (default deny).
    NoPermit,
}

impl DenyReason {
    /// A short label for logs and metrics: `no_bundle`, `forbidden`, `no_permit`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::NoBundle => "no_bundle",
            Self::Forbidden => "forbidden",
            Self::NoPermit => "no_permit",
        }
    }
}

/// The outcome of one authorization request. Exhaustive: callers handle
/// every case, and only [`Decision::Allow`] lets a request through.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// At least one `permit` matched and no `forbid` did.
    Allow {
        /// Ids of the `permit` policies that matched, sorted.
        determining: Vec<String>,
        /// The bundle version that decided.
        version: u64,
        /// Policies that failed to evaluate and were skipped, as Cedar does
        /// (`error while evaluating policy `id`: ...`), sorted. A skipped
        /// `forbid` cannot deny, so an error here deserves attention.
        errors: Vec<String>,
    },
    /// Denied.
    Deny {
        /// Why.
        reason: DenyReason,
        /// Ids of the `forbid` policies that matched, sorted; empty for
        /// [`DenyReason::NoPermit`] and [`DenyReason::NoBundle`].
        determining: Vec<String>,
        /// Policies that failed to evaluate and were skipped, sorted. An
        /// erroring `permit` allows nothing.
        errors: Vec<String>,
        /// The bundle version that decided; `None` with no bundle.
        version: Option<u64>,
    },
}

impl Decision {
    /// Whether the request may proceed.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }

    /// The determining policy ids.
    #[must_use]
    pub fn determining(&self) -> &[String] {
        match self {
            Self::Allow { determining, .. } | Self::Deny { determining, .. } => determining,
        }
    }

    /// The evaluation errors.
    #[must_use]
    pub fn errors(&self) -> &[String] {
        match self {
            Self::Allow { errors, .. } | Self::Deny { errors, .. } => errors,
        }
    }

    /// The bundle version that decided, if any.
    #[must_use]
    pub fn version(&self) -> Option<u64> {
        match self {
            Self::Allow { version, .. } => Some(*version),
            Self::Deny { version, .. } => *version,
        }
    }

    /// `allow`, or the deny reason's label: for logs and metrics.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Allow { .. } => "allow",
            Self::Deny { reason, .. } => reason.label(),
        }
    }

    pub(crate) fn no_bundle() -> Self {
        Self::Deny {
            reason: DenyReason::NoBundle,
            determining: Vec::new(),
            errors: Vec::new(),
            version: None,
        }
    }
}

/// Cedar's answer for `request` under `bundle`, as a [`Decision`].
///
/// The policies the bundle's index selects are evaluated (see
/// `index.rs`), in one or more Cedar calls, and the answers combined as
/// Cedar combines policies: any satisfied `forbid` denies; else any
/// satisfied `permit` allows; else default deny. A Cedar answer `Deny`
/// names exactly its satisfied forbids, `Allow` its satisfied permits.
pub(crate) fn evaluate(bundle: &CompiledBundle, request: &AuthzRequest, entities: &Entities) -> Decision {
    let cedar = cedar_policy::Authorizer::new();
    let req = request.as_cedar();
    let mut permits: Vec<String> = Vec::new();
    let mut forbids: Vec<String> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut absorb = |set: &PolicySet| {
        let response = cedar.is_authorized(req, set, entities);
        let diagnostics = response.diagnostics();
        let reasons = diagnostics.reason().map(|id| AsRef::<str>::as_ref(id).to_owned());
        match response.decision() {
            CedarDecision::Allow => permits.extend(reasons),
            CedarDecision::Deny => forbids.extend(reasons),
        }
        errors.extend(diagnostics.errors().map(ToString::to_string));
    };
    match bundle.index().and_then(|i| i.select(req, entities)) {
        Some(sets) => sets.into_iter().for_each(&mut absorb),
        None => absorb(bundle.policy_set()),
    }
    errors.sort_unstable();
    let version = bundle.version();
    if !forbids.is_empty() {
        forbids.sort_unstable();
        Decision::Deny {
            reason: DenyReason::Forbidden,
            determining: forbids,
            errors,
            version: Some(version),
        }
    } else if !permits.is_empty() {
        permits.sort_unstable();
        Decision::Allow {
            determining: permits,
            version,
            errors,
        }
    } else {
        Decision::Deny {
            reason: DenyReason::NoPermit,
            determining: Vec::new(),
            errors,
            version: Some(version),
        }
    }
}
