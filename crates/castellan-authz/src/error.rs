//! Why a bundle, a policy set or a request is refused.

/// Errors of this crate. Messages carry Cedar's diagnostics as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthzError {
    /// The policy text does not parse.
    #[error("policies do not parse: {0}")]
    Parse(String),
    /// The schema does not parse.
    #[error("schema does not parse: {0}")]
    Schema(String),
    /// The policies do not validate against the schema.
    #[error("policies do not validate against the schema: {0}")]
    Validation(String),
    /// The signed bundle is not acceptable.
    #[error("policy bundle refused: {0}")]
    Bundle(String),
    /// A bundle for another service.
    #[error("bundle is for `{got}`, this authorizer is for `{expected}`")]
    WrongService {
        /// This authorizer's service.
        expected: String,
        /// The bundle's.
        got: String,
    },
    /// Not newer than the bundle in force (a replay of an old bundle).
    #[error("bundle version {offered} is not newer than version {current} in force")]
    Stale {
        /// In force.
        current: i64,
        /// Offered.
        offered: i64,
    },
    /// The request or its entities cannot be built.
    #[error("cannot build the authorization request: {0}")]
    Request(String),
}
