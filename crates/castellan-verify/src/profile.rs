//! The validation profile: served by the authority so every verifier applies
//! the same settings; local configuration may only tighten it.

use castellan_jose::Algorithm;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Claims every Castellan access token carries; a profile can only add to these.
pub const BASE_REQUIRED_CLAIMS: [&str; 8] = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid"];

/// Hard ceiling on leeway, whatever any profile says.
pub const MAX_LEEWAY: Duration = Duration::from_secs(120);

/// The profile as the authority publishes it (`castellan_validation_profile` in discovery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationProfile {
    /// Algorithms tokens may be signed with.
    pub allowed_algorithms: Vec<String>,
    /// Required `typ`.
    pub token_type: String,
    /// Claims that must be present.
    pub required_claims: Vec<String>,
    /// Largest leeway a verifier may use.
    pub max_leeway_seconds: u64,
    /// Longest `exp - iat` accepted.
    pub max_token_lifetime_seconds: u64,
    /// How long a verifier may run without the revocation stream.
    pub staleness_window_seconds: u64,
    /// How often an idle stream carries a keep-alive.
    #[serde(default)]
    pub heartbeat_interval_seconds: Option<u64>,
    /// Longest delegation chain (`act` links) accepted; absent means the
    /// built-in ceiling.
    #[serde(default)]
    pub max_delegation_depth: Option<usize>,
}

/// Hard ceiling on delegation depth, whatever any profile says.
pub const MAX_DELEGATION_DEPTH: usize = 16;

/// A profile that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// No algorithm we support is allowed.
    #[error("no usable algorithm in the profile (allowed: `{0}`)")]
    NoAlgorithm(String),
    /// Local settings try to loosen the profile.
    #[error("local {what} ({local}) is looser than the authority allows ({limit})")]
    Looser {
        /// Which setting.
        what: &'static str,
        /// Local value.
        local: String,
        /// Authority's limit.
        limit: String,
    },
    /// Local algorithm list shares nothing with the authority's.
    #[error("local algorithms share nothing with the authority's")]
    NoCommonAlgorithm,
}

/// Local settings; every one may only tighten the authority's profile.
#[derive(Debug, Clone, Default)]
pub struct LocalPolicy {
    /// Leeway; default the profile's maximum, capped at 120 s.
    pub leeway: Option<Duration>,
    /// Algorithms; default all the profile allows.
    pub algorithms: Option<Vec<Algorithm>>,
    /// Max token lifetime.
    pub max_token_lifetime: Option<Duration>,
    /// Staleness window.
    pub staleness_window: Option<Duration>,
    /// Longest delegation chain accepted; `Some(0)` accepts no exchanged token.
    pub max_delegation_depth: Option<usize>,
    /// Accept only exchanged tokens (with `act`): for services that must
    /// only ever be called on someone's behalf.
    pub require_delegation: bool,
}

/// What a verifier applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveProfile {
    /// Allowed algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Required `typ`.
    pub token_type: String,
    /// Required claims beyond the base set.
    pub extra_required_claims: Vec<String>,
    /// Leeway, seconds.
    pub leeway: i64,
    /// Longest lifetime, seconds.
    pub max_lifetime: i64,
    /// Staleness window.
    pub staleness_window: Duration,
    /// Longest delegation chain accepted (0: none).
    pub max_delegation_depth: usize,
    /// Refuse tokens without `act`.
    pub require_delegation: bool,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl EffectiveProfile {
    /// Combines the authority's profile with local settings, refusing any loosening.
    pub fn new(p: &ValidationProfile, local: &LocalPolicy) -> Result<Self, ProfileError> {
        let served: Vec<Algorithm> = p.allowed_algorithms.iter().filter_map(|a| a.parse().ok()).collect();
        if served.is_empty() {
            return Err(ProfileError::NoAlgorithm(p.allowed_algorithms.join(",")));
        }
        let algorithms = match &local.algorithms {
            Some(mine) => {
                let both: Vec<Algorithm> = mine.iter().copied().filter(|a| served.contains(a)).collect();
                if both.is_empty() {
                    return Err(ProfileError::NoCommonAlgorithm);
                }
                both
            }
            None => served,
        };
        let max_leeway = Duration::from_secs(p.max_leeway_seconds).min(MAX_LEEWAY);
        let leeway = tighten("leeway", local.leeway, max_leeway)?;
        let max_lifetime = tighten(
            "max token lifetime",
            local.max_token_lifetime,
            Duration::from_secs(p.max_token_lifetime_seconds),
        )?;
        let staleness_window = tighten(
            "staleness window",
            local.staleness_window,
            Duration::from_secs(p.staleness_window_seconds),
        )?;
        let served_depth = p
            .max_delegation_depth
            .unwrap_or(MAX_DELEGATION_DEPTH)
            .min(MAX_DELEGATION_DEPTH);
        let max_delegation_depth = match local.max_delegation_depth {
            None => served_depth,
            Some(d) if d <= served_depth => d,
            Some(d) => {
                return Err(ProfileError::Looser {
                    what: "max delegation depth",
                    local: d.to_string(),
                    limit: served_depth.to_string(),
                })
            }
        };
        Ok(Self {
            max_delegation_depth,
            require_delegation: local.require_delegation,
            algorithms,
            token_type: p.token_type.clone(),
            extra_required_claims: p
                .required_claims
                .iter()
                .filter(|c| !BASE_REQUIRED_CLAIMS.contains(&c.as_str()))
                .cloned()
                .collect(),
            leeway: secs(leeway),
            max_lifetime: secs(max_lifetime),
            staleness_window,
        })
    }
}

fn tighten(what: &'static str, local: Option<Duration>, limit: Duration) -> Result<Duration, ProfileError> {
    match local {
        None => Ok(limit),
        Some(l) if l <= limit => Ok(l),
        Some(l) => Err(ProfileError::Looser {
            what,
            local: castellan_core::format_duration(l),
            limit: castellan_core::format_duration(limit),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served() -> ValidationProfile {
        ValidationProfile {
            allowed_algorithms: vec!["ES256".into(), "EdDSA".into(), "HS256".into()],
            token_type: "at+jwt".into(),
            required_claims: vec!["iss".into(), "sub".into(), "tenant".into()],
            max_leeway_seconds: 30,
            max_token_lifetime_seconds: 3600,
            staleness_window_seconds: 300,
            heartbeat_interval_seconds: Some(5),
            max_delegation_depth: Some(4),
        }
    }

    #[test]
    fn local_settings_only_tighten() {
        let p = EffectiveProfile::new(&served(), &LocalPolicy::default()).unwrap();
        assert_eq!(
            p.algorithms,
            vec![Algorithm::ES256, Algorithm::EdDSA],
            "HS256 is never usable"
        );
        assert_eq!(p.leeway, 30);
        assert_eq!(p.extra_required_claims, vec!["tenant".to_owned()]);
        let tight = LocalPolicy {
            leeway: Some(Duration::from_secs(5)),
            algorithms: Some(vec![Algorithm::EdDSA, Algorithm::RS256]),
            ..LocalPolicy::default()
        };
        let p = EffectiveProfile::new(&served(), &tight).unwrap();
        assert_eq!(p.leeway, 5);
        assert_eq!(p.algorithms, vec![Algorithm::EdDSA]);
        let loose = LocalPolicy {
            leeway: Some(Duration::from_secs(60)),
            ..LocalPolicy::default()
        };
        assert!(matches!(
            EffectiveProfile::new(&served(), &loose),
            Err(ProfileError::Looser { .. })
        ));
        let disjoint = LocalPolicy {
            algorithms: Some(vec![Algorithm::RS256]),
            ..LocalPolicy::default()
        };
        assert_eq!(
            EffectiveProfile::new(&served(), &disjoint),
            Err(ProfileError::NoCommonAlgorithm)
        );
        let mut huge = served();
        huge.max_leeway_seconds = 10_000;
        assert_eq!(
            EffectiveProfile::new(&huge, &LocalPolicy::default()).unwrap().leeway,
            120
        );
    }
}
