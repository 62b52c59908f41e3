//! SPIFFE IDs and trust domains, parsed strictly (SPIFFE ID spec §2).
//!
//! - scheme exactly `spiffe://` (lowercase);
//! - trust domain: 1..=255 bytes of `[a-z0-9._-]` (no userinfo, no port);
//! - path: one or more `/segment`, each segment non-empty, of
//!   `[a-zA-Z0-9._-]`, never `.` or `..`; no trailing `/`, no percent
//!   encoding, no query, no fragment;
//! - the whole ID at most 2048 bytes.
//!
//! A [`SpiffeId`] always has a path: it names a workload. The trust domain's
//! own ID (`spiffe://example.org`, which the CA certificate carries) is
//! [`TrustDomain::id_uri`].

use std::fmt;
use std::str::FromStr;

use crate::error::{echo, CaError};

const SCHEME: &str = "spiffe://";
/// Longest SPIFFE ID, in bytes (SPIFFE ID spec §2.3).
pub const MAX_SPIFFE_ID_BYTES: usize = 2048;
/// Longest trust domain name, in bytes (SPIFFE ID spec §2.3, RFC 3986 host).
pub const MAX_TRUST_DOMAIN_BYTES: usize = 255;

/// A SPIFFE trust domain name, e.g. `example.org`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a trust domain from its name (`example.org`) or its ID
    /// (`spiffe://example.org`).
    ///
    /// # Errors
    /// [`CaError::InvalidTrustDomain`] with the precise reason.
    pub fn new(input: &str) -> Result<Self, CaError> {
        let invalid = |reason| CaError::InvalidTrustDomain {
            input: echo(input),
            reason,
        };
        let name = match input.strip_prefix(SCHEME) {
            Some(rest) if rest.contains('/') => {
                return Err(invalid("a trust domain id has no path"));
            }
            Some(rest) => rest,
            None if input.contains("://") => return Err(invalid("scheme must be `spiffe`")),
            None => input,
        };
        check_trust_domain(name).map_err(invalid)?;
        Ok(Self(name.to_owned()))
    }

    /// Derives a trust domain from a host name, e.g. the issuer URL's host,
    /// lower-casing it first. IP literals in brackets (IPv6) are refused.
    ///
    /// # Errors
    /// [`CaError::InvalidTrustDomain`] when the host is not a valid name.
    pub fn from_host(host: &str) -> Result<Self, CaError> {
        Self::new(&host.to_ascii_lowercase())
    }

    /// The name, e.g. `example.org`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trust domain's own SPIFFE ID, e.g. `spiffe://example.org`.
    #[must_use]
    pub fn id_uri(&self) -> String {
        format!("{SCHEME}{}", self.0)
    }

    /// The workload ID `spiffe://<this>/<path>`; `path` may start with `/`.
    ///
    /// # Errors
    /// [`CaError::InvalidSpiffeId`] when the path is not valid.
    pub fn workload_id(&self, path: &str) -> Result<SpiffeId, CaError> {
        let path = path.strip_prefix('/').unwrap_or(path);
        SpiffeId::parse(&format!("{SCHEME}{}/{path}", self.0))
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for TrustDomain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A workload's SPIFFE ID, e.g. `spiffe://example.org/payments/api`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    uri: String,
    trust_domain: TrustDomain,
}

impl SpiffeId {
    /// Parses and validates a workload SPIFFE ID.
    ///
    /// # Errors
    /// [`CaError::InvalidSpiffeId`] with the precise reason.
    pub fn parse(input: &str) -> Result<Self, CaError> {
        if input.len() > MAX_SPIFFE_ID_BYTES {
            return Err(CaError::InvalidSpiffeId {
                input: echo(input),
                reason: "longer than 2048 bytes",
            });
        }
        let invalid = |reason| CaError::InvalidSpiffeId {
            input: echo(input),
            reason,
        };
        if input.is_empty() {
            return Err(invalid("empty"));
        }
        let rest = match input.strip_prefix(SCHEME) {
            Some(rest) => rest,
            None if input
                .get(..SCHEME.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(SCHEME)) =>
            {
                return Err(invalid("scheme must be lowercase `spiffe`"));
            }
            None => return Err(invalid("scheme must be `spiffe://`")),
        };
        if rest.contains('?') {
            return Err(invalid("a query is not allowed"));
        }
        if rest.contains('#') {
            return Err(invalid("a fragment is not allowed"));
        }
        let (name, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        check_trust_domain(name).map_err(invalid)?;
        check_path(path).map_err(invalid)?;
        Ok(Self {
            uri: input.to_owned(),
            trust_domain: TrustDomain(name.to_owned()),
        })
    }

    /// The whole ID, e.g. `spiffe://example.org/payments/api`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// The trust domain the ID lives in.
    #[must_use]
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path, starting with `/`, e.g. `/payments/api`.
    #[must_use]
    pub fn path(&self) -> &str {
        self.uri
            .get(SCHEME.len() + self.trust_domain.0.len()..)
            .unwrap_or_default()
    }

    /// True when the ID lives in `trust_domain`.
    #[must_use]
    pub fn is_member_of(&self, trust_domain: &TrustDomain) -> bool {
        &self.trust_domain == trust_domain
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl FromStr for SpiffeId {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for SpiffeId {
    fn as_ref(&self) -> &str {
        &self.uri
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.uri)
    }
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for TrustDomain {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TrustDomain {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

fn check_trust_domain(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the trust domain is missing");
    }
    if name.contains('@') {
        return Err("userinfo is not allowed");
    }
    if name.contains(':') {
        return Err("a port is not allowed");
    }
    if name.len() > MAX_TRUST_DOMAIN_BYTES {
        return Err("the trust domain is longer than 255 bytes");
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("the trust domain must be lowercase");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err("the trust domain may hold only `a-z`, `0-9`, `.`, `-` and `_`");
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() || path == "/" {
        return Err("the path is missing: an svid names a workload, not the trust domain");
    }
    if path.contains('%') {
        return Err("percent-encoding is not allowed");
    }
    if path.ends_with('/') {
        return Err("the path must not end with `/`");
    }
    // `path` starts with '/', so the first split item is empty.
    for segment in path.split('/').skip(1) {
        if segment.is_empty() {
            return Err("path segments must not be empty");
        }
        if segment == "." || segment == ".." {
            return Err("path segments must not be `.` or `..`");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err("path segments may hold only `a-z`, `A-Z`, `0-9`, `.`, `-` and `_`");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(input: &str) -> &'static str {
        match SpiffeId::parse(input) {
            Err(CaError::InvalidSpiffeId { reason, .. }) => reason,
            other => panic!("{input}: expected InvalidSpiffeId, got {other:?}"),
        }
    }

    #[test]
    fn parses_valid_ids() {
        for s in [
            "spiffe://example.org/a",
            "spiffe://example.org/payments/api",
            "spiffe://a-b_c.9/ns/Default/sa/web-fe_1.2",
            "spiffe://x/...",
            "spiffe://x/.a/a.",
        ] {
            let id = SpiffeId::parse(s).unwrap();
            assert_eq!(id.as_str(), s);
            assert_eq!(id.to_string(), s);
        }
        let id = SpiffeId::parse("spiffe://example.org/payments/api").unwrap();
        assert_eq!(id.trust_domain().as_str(), "example.org");
        assert_eq!(id.path(), "/payments/api");
    }

    #[test]
    fn refuses_invalid_ids_precisely() {
        let cases = [
            ("", "empty"),
            ("http://example.org/a", "scheme must be `spiffe://`"),
            ("SPIFFE://example.org/a", "scheme must be lowercase `spiffe`"),
            ("spiffe:/example.org/a", "scheme must be `spiffe://`"),
            (
                "spiffe://example.org",
                "the path is missing: an svid names a workload, not the trust domain",
            ),
            (
                "spiffe://example.org/",
                "the path is missing: an svid names a workload, not the trust domain",
            ),
            ("spiffe:///a", "the trust domain is missing"),
            ("spiffe://Example.org/a", "the trust domain must be lowercase"),
            (
                "spiffe://exa mple.org/a",
                "the trust domain may hold only `a-z`, `0-9`, `.`, `-` and `_`",
            ),
            ("spiffe://example.org:443/a", "a port is not allowed"),
            ("spiffe://user@example.org/a", "userinfo is not allowed"),
            ("spiffe://example.org/a?x=1", "a query is not allowed"),
            ("spiffe://example.org/a#frag", "a fragment is not allowed"),
            ("spiffe://example.org/a//b", "path segments must not be empty"),
            ("spiffe://example.org/a/", "the path must not end with `/`"),
            ("spiffe://example.org/a/./b", "path segments must not be `.` or `..`"),
            ("spiffe://example.org/a/..", "path segments must not be `.` or `..`"),
            ("spiffe://example.org/a%2Fb", "percent-encoding is not allowed"),
            (
                "spiffe://example.org/a b",
                "path segments may hold only `a-z`, `A-Z`, `0-9`, `.`, `-` and `_`",
            ),
            (
                "spiffe://example.org/caf\u{e9}",
                "path segments may hold only `a-z`, `A-Z`, `0-9`, `.`, `-` and `_`",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(reason(input), want, "{input}");
        }
    }

    #[test]
    fn length_limits() {
        let td = "a".repeat(255);
        assert!(SpiffeId::parse(&format!("spiffe://{td}/x")).is_ok());
        assert_eq!(
            reason(&format!("spiffe://{td}a/x")),
            "the trust domain is longer than 255 bytes"
        );
        let prefix = "spiffe://example.org/";
        let ok = format!("{prefix}{}", "p".repeat(MAX_SPIFFE_ID_BYTES - prefix.len()));
        assert_eq!(ok.len(), MAX_SPIFFE_ID_BYTES);
        assert!(SpiffeId::parse(&ok).is_ok());
        assert_eq!(reason(&format!("{ok}p")), "longer than 2048 bytes");
    }

    #[test]
    fn error_message_quotes_input() {
        let err = SpiffeId::parse("spiffe://example.org/a\nb").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid spiffe id `spiffe://example.org/a\\nb`: path segments may hold only `a-z`, `A-Z`, `0-9`, `.`, `-` and `_`"
        );
    }

    #[test]
    fn trust_domain_forms() {
        assert_eq!(TrustDomain::new("example.org").unwrap().as_str(), "example.org");
        assert_eq!(
            TrustDomain::new("spiffe://example.org").unwrap().as_str(),
            "example.org"
        );
        assert_eq!(
            TrustDomain::new("example.org").unwrap().id_uri(),
            "spiffe://example.org"
        );
        assert!(TrustDomain::new("spiffe://example.org/x").is_err());
        assert!(TrustDomain::new("https://example.org").is_err());
        assert!(TrustDomain::new("").is_err());
        assert!(TrustDomain::new("Example.org").is_err());
        assert_eq!(
            TrustDomain::from_host("Auth.Example.ORG").unwrap().as_str(),
            "auth.example.org"
        );
        assert!(TrustDomain::from_host("[::1]").is_err());
        assert!(TrustDomain::from_host("127.0.0.1").is_ok());
    }

    #[test]
    fn workload_id_from_trust_domain() {
        let td = TrustDomain::new("example.org").unwrap();
        assert_eq!(td.workload_id("/a/b").unwrap().as_str(), "spiffe://example.org/a/b");
        assert_eq!(td.workload_id("a").unwrap().as_str(), "spiffe://example.org/a");
        assert!(td.workload_id("").is_err());
        let id = td.workload_id("a").unwrap();
        assert!(id.is_member_of(&td));
        assert!(!id.is_member_of(&TrustDomain::new("other.org").unwrap()));
    }

    #[test]
    fn serde_round_trip_validates() {
        let id: SpiffeId = serde_json::from_str("\"spiffe://example.org/a\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"spiffe://example.org/a\"");
        assert!(serde_json::from_str::<SpiffeId>("\"spiffe://example.org\"").is_err());
        let td: TrustDomain = serde_json::from_str("\"example.org\"").unwrap();
        assert_eq!(td.as_str(), "example.org");
    }
}
