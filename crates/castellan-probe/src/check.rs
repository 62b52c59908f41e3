//! The probe's check ids: exact, other tools depend on them.

/// One check of the battery. Only [`CheckId::Genuine`] must be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckId {
    /// Control: a valid token for the target's audience must be accepted.
    Genuine,
    /// No `Authorization` header at all.
    NoToken,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 keyed with the authority's public key.
    HmacKeyConfusion,
    /// A genuine token with its signature altered.
    BadSignature,
    /// Signed by a key the authority never published.
    UnknownKey,
    /// Signed by a key carried in the header's `jwk`.
    EmbeddedJwk,
    /// Signed by a key published at the URL in the header's `jku`.
    JkuInjection,
    /// Genuinely signed, expired.
    Expired,
    /// Genuinely signed, `nbf`/`iat` in the future.
    NotYetValid,
    /// Genuinely signed by the right key, another `iss`.
    WrongIssuer,
    /// Genuinely signed, for another audience.
    WrongAudience,
    /// Genuinely signed, `typ` other than `at+jwt`.
    WrongTokenType,
    /// Signed with a key the authority withdrew or retired.
    RemovedKey,
    /// A token of a session revoked before it was sent.
    RevokedSession,
}

impl CheckId {
    /// Every check, in report order.
    pub const ALL: [CheckId; 15] = [
        Self::Genuine,
        Self::NoToken,
        Self::AlgNone,
        Self::HmacKeyConfusion,
        Self::BadSignature,
        Self::UnknownKey,
        Self::EmbeddedJwk,
        Self::JkuInjection,
        Self::Expired,
        Self::NotYetValid,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::WrongTokenType,
        Self::RemovedKey,
        Self::RevokedSession,
    ];

    /// The id as reports and tools spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Genuine => "genuine",
            Self::NoToken => "no-token",
            Self::AlgNone => "alg-none",
            Self::HmacKeyConfusion => "hmac-key-confusion",
            Self::BadSignature => "bad-signature",
            Self::UnknownKey => "unknown-key",
            Self::EmbeddedJwk => "embedded-jwk",
            Self::JkuInjection => "jku-injection",
            Self::Expired => "expired",
            Self::NotYetValid => "not-yet-valid",
            Self::WrongIssuer => "wrong-issuer",
            Self::WrongAudience => "wrong-audience",
            Self::WrongTokenType => "wrong-token-type",
            Self::RemovedKey => "removed-key",
            Self::RevokedSession => "revoked-session",
        }
    }

    /// The check with this id.
    #[must_use]
    pub fn parse(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == id)
    }

    /// Whether a correct verifier accepts the token (only the control).
    #[must_use]
    pub fn must_accept(self) -> bool {
        self == Self::Genuine
    }

    /// Whether the token is forged locally ([`crate::Forger`]) rather
    /// than minted by the authority (a canary) or absent.
    #[must_use]
    pub fn is_local_forgery(self) -> bool {
        matches!(
            self,
            Self::AlgNone
                | Self::HmacKeyConfusion
                | Self::BadSignature
                | Self::UnknownKey
                | Self::EmbeddedJwk
                | Self::JkuInjection
        )
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_contract() {
        let ids: Vec<&str> = CheckId::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            ids,
            [
                "genuine",
                "no-token",
                "alg-none",
                "hmac-key-confusion",
                "bad-signature",
                "unknown-key",
                "embedded-jwk",
                "jku-injection",
                "expired",
                "not-yet-valid",
                "wrong-issuer",
                "wrong-audience",
                "wrong-token-type",
                "removed-key",
                "revoked-session"
            ]
        );
        // The authority checks recorded runs against the same list.
        assert_eq!(ids, castellan_core::probe_run::PROBE_CHECK_IDS);
        for c in CheckId::ALL {
            assert_eq!(CheckId::parse(c.as_str()), Some(c));
        }
        assert_eq!(CheckId::parse("Genuine"), None);
        assert_eq!(CheckId::ALL.iter().filter(|c| c.must_accept()).count(), 1);
    }
}
