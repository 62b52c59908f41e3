//! The authorizer of one service: the bundle in force, swapped atomically,
//! and decisions that say why.

use crate::bundle::{CompiledBundle, PolicyBundle};
use crate::error::AuthzError;
use arc_swap::ArcSwapOption;
use cedar_policy::{Decision as CedarDecision, Effect, Entities, Request};
use std::sync::Arc;

/// Why a request was denied. Exhaustive: callers handle every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No bundle has been installed yet: nothing is allowed.
    NoBundle,
    /// A `forbid` policy matched (it overrides any `permit`).
    Forbidden,
    /// No `permit` matched (default deny).
    NoPermit,
}

impl DenyReason {
    /// A short label for logs and metrics.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::NoBundle => "no_bundle",
            Self::Forbidden => "forbidden",
            Self::NoPermit => "no_permit",
        }
    }
}

/// The outcome of one authorization request. Exhaustive.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// Allowed by these permit policies.
    Allow {
        /// The ids of the policies that allowed it.
        determining: Vec<String>,
        /// The bundle version that decided.
        version: i64,
        /// Policies that failed to evaluate (skipped, as Cedar does).
        errors: Vec<String>,
    },
    /// Denied.
    Deny {
        /// Why.
        reason: DenyReason,
        /// The forbid policies that matched (empty for default deny).
        determining: Vec<String>,
        /// Policies that failed to evaluate (an erroring permit allows nothing).
        errors: Vec<String>,
        /// The bundle version that decided, if any was installed.
        version: Option<i64>,
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
}

/// Decides for one service with the bundle in force.
#[derive(Debug)]
pub struct Authorizer {
    service: String,
    current: ArcSwapOption<CompiledBundle>,
    cedar: cedar_policy::Authorizer,
}

impl Authorizer {
    /// An authorizer for `service`, with no bundle yet (it denies everything).
    #[must_use]
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            current: ArcSwapOption::empty(),
            cedar: cedar_policy::Authorizer::new(),
        }
    }

    /// The service.
    #[must_use]
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The version in force.
    #[must_use]
    pub fn version(&self) -> Option<i64> {
        self.current.load().as_ref().map(|b| b.bundle.version)
    }

    /// The bundle in force.
    #[must_use]
    pub fn current(&self) -> Option<Arc<CompiledBundle>> {
        self.current.load_full()
    }

    /// Compiles `bundle` and puts it in force for every later decision
    /// (decisions under way finish with the old one). Refuses a bundle for
    /// another service, and one not newer than the version in force (a
    /// replayed old bundle) unless it is that very version again (a
    /// re-fetch, answered `Ok(false)`). A failed install leaves the
    /// previous bundle in force. `Ok(true)` when swapped.
    ///
    /// # Errors
    /// [`AuthzError::WrongService`], [`AuthzError::Stale`], or the compile errors.
    pub fn install(&self, bundle: PolicyBundle) -> Result<bool, AuthzError> {
        if bundle.service != self.service {
            return Err(AuthzError::WrongService {
                expected: self.service.clone(),
                got: bundle.service,
            });
        }
        if let Some(current) = self.current.load().as_ref() {
            if bundle.version == current.bundle.version && bundle == current.bundle {
                return Ok(false);
            }
            if bundle.version <= current.bundle.version {
                return Err(AuthzError::Stale {
                    current: current.bundle.version,
                    offered: bundle.version,
                });
            }
        }
        let compiled = CompiledBundle::compile(bundle)?;
        self.current.store(Some(Arc::new(compiled)));
        Ok(true)
    }

    /// Decides `request` against `entities` (the service's own data plus
    /// the principal). Default deny; forbid overrides permit.
    pub fn decide(&self, request: &Request, entities: &Entities) -> Decision {
        let Some(bundle) = self.current.load_full() else {
            return Decision::Deny {
                reason: DenyReason::NoBundle,
                determining: Vec::new(),
                errors: Vec::new(),
                version: None,
            };
        };
        let response = self.cedar.is_authorized(request, &bundle.set, entities);
        let determining: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| {
                bundle
                    .set
                    .policy(id)
                    .and_then(|p| p.annotation("id"))
                    .map_or_else(|| id.to_string(), str::to_owned)
            })
            .collect();
        let errors: Vec<String> = response.diagnostics().errors().map(ToString::to_string).collect();
        let version = bundle.bundle.version;
        match response.decision() {
            CedarDecision::Allow => Decision::Allow {
                determining,
                version,
                errors,
            },
            CedarDecision::Deny => {
                let forbidden = response
                    .diagnostics()
                    .reason()
                    .any(|id| bundle.set.policy(id).is_some_and(|p| p.effect() == Effect::Forbid));
                Decision::Deny {
                    reason: if forbidden {
                        DenyReason::Forbidden
                    } else {
                        DenyReason::NoPermit
                    },
                    determining,
                    errors,
                    version: Some(version),
                }
            }
        }
    }
}
