//! Why a policy set, a bundle or a request is refused.

use castellan_jose::JoseError;

/// Errors of this crate. Policy errors carry Cedar's diagnostics as text,
/// one per line, each with its policy id and source location where Cedar
/// gives them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthzError {
    /// The policy text does not parse.
    #[error("policies do not parse:\n{0}")]
    Parse(String),
    /// The schema does not parse or is not a valid schema.
    #[error("schema does not parse:\n{0}")]
    Schema(String),
    /// The policies do not validate against the schema (strict mode).
    #[error("policies do not validate against the schema:\n{0}")]
    Validation(String),
    /// The policies parse but cannot form a policy set: two policies with
    /// one id, or a template (a bundle carries no template links).
    #[error("policy set refused: {0}")]
    PolicySet(String),
    /// A signed bundle is larger than the cap.
    #[error("policy bundle is {len} bytes, more than the {max} allowed")]
    BundleTooLarge {
        /// Its size.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A signed bundle names a signing key the caller does not know.
    #[error("policy bundle is signed with unknown key `{kid}`")]
    UnknownKey {
        /// The header's `kid` (at most 64 characters of it).
        kid: String,
    },
    /// The JWS itself is refused: form, header, `typ` or signature.
    #[error("policy bundle signature refused: {0}")]
    Signature(#[source] JoseError),
    /// The signature verified but the payload is not a policy bundle.
    #[error("policy bundle payload is malformed: {0}")]
    Payload(String),
    /// The bundle was issued by someone other than the expected authority.
    #[error("policy bundle issued by `{got}`, expected `{expected}`")]
    WrongIssuer {
        /// The expected issuer.
        expected: String,
        /// The bundle's `iss`.
        got: String,
    },
    /// A bundle for another service.
    #[error("policy bundle is for service `{got}`, expected `{expected}`")]
    WrongService {
        /// This authorizer's service.
        expected: String,
        /// The bundle's.
        got: String,
    },
    /// Not newer than the bundle in force, and not that very bundle again:
    /// a replayed old bundle, or a second bundle claiming the same version.
    #[error("policy bundle version {offered} is not newer than version {current} in force")]
    Stale {
        /// The version in force.
        current: u64,
        /// The version offered.
        offered: u64,
    },
    /// There is nothing to save: no bundle is in force, or it was installed
    /// unsigned (only a signed bundle can be re-verified when loaded).
    #[error("no signed policy bundle is in force")]
    NothingToSave,
    /// Reading or writing the last-good file failed.
    #[error("cannot {op} `{path}`: {reason}")]
    Io {
        /// `read` or `write`.
        op: &'static str,
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// A gate request path that could reach the upstream under another
    /// spelling (dot segments, empty segments, encoded `/`, `\` or
    /// unreserved characters, a query or fragment): refused rather than
    /// decided, so a path policy cannot be bypassed.
    #[error("request path `{path}` is not in normal form: {why}")]
    AmbiguousPath {
        /// The path (at most 256 characters of it).
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The request or its entities cannot be built.
    #[error("cannot build the authorization request: {0}")]
    Request(String),
}
