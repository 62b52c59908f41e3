//! The one error type of the CA.
//!
//! Messages are lowercase, carry user input in backticks (escaped and
//! shortened, so a hostile CSR cannot forge log lines), and never carry key
//! material.

/// Longest piece of user input echoed in an error message, in characters.
const MAX_ECHO_CHARS: usize = 256;

/// Everything that can go wrong in the CA.
///
/// [`CaError::is_bad_input`] tells input the caller sent (a 4xx) from a fault
/// of the CA itself (a 5xx).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A string is not a valid SPIFFE ID.
    #[error("invalid spiffe id `{input}`: {reason}")]
    InvalidSpiffeId {
        /// The input, escaped and shortened.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A string is not a valid trust domain name.
    #[error("invalid trust domain `{input}`: {reason}")]
    InvalidTrustDomain {
        /// The input, escaped and shortened.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A SPIFFE ID belongs to another trust domain than the CA's.
    #[error("spiffe id `{id}` is outside trust domain `{trust_domain}`")]
    ForeignTrustDomain {
        /// The SPIFFE ID.
        id: String,
        /// The CA's trust domain.
        trust_domain: String,
    },

    /// An input is larger than the CA accepts.
    #[error("{what} is too large: {len} bytes (limit {limit})")]
    TooLarge {
        /// What was too large (`csr`, `certificate`).
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },

    /// PEM text does not decode.
    #[error("malformed pem {what}: {reason}")]
    MalformedPem {
        /// What the PEM should have held.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A CSR does not parse as PKCS#10.
    #[error("malformed csr: {reason}")]
    MalformedCsr {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The CSR's public key is of a type the CA does not certify.
    #[error("unsupported csr key `{key}`: only ecdsa p-256 and ed25519 keys are accepted")]
    UnsupportedKey {
        /// The key type, e.g. `rsa-2048`, `ecdsa p-384`.
        key: String,
    },

    /// The CSR is signed with an algorithm the CA does not accept for its key.
    #[error("unsupported csr signature algorithm `{algorithm}` for a {key} key")]
    UnsupportedSignatureAlgorithm {
        /// The algorithm's name or OID.
        algorithm: String,
        /// The CSR's key type.
        key: &'static str,
    },

    /// The CSR's self-signature does not verify with its own public key.
    #[error("csr signature does not verify with the csr's public key")]
    CsrSignatureInvalid,

    /// The CSR asks for a name other than the one being issued.
    #[error("csr requests name `{name}`, but only `{expected}` may be issued")]
    CsrNameMismatch {
        /// The requested name, e.g. `dns:example.com` or a URI.
        name: String,
        /// The SPIFFE ID being issued.
        expected: String,
    },

    /// The CSR asks for several URI names; an SVID carries exactly one.
    #[error("csr requests {count} uri names, but an svid carries exactly one")]
    CsrTooManyNames {
        /// How many URI names it asked for.
        count: usize,
    },

    /// The CSR's subject names something other than the SPIFFE ID.
    #[error("csr subject `{subject}` is not allowed: leave it empty or set only cn=`{expected}`")]
    CsrSubjectNotAllowed {
        /// The subject, escaped and shortened.
        subject: String,
        /// The SPIFFE ID being issued.
        expected: String,
    },

    /// A requested SVID lifetime is out of range.
    #[error("svid lifetime {ttl_secs}s is out of range 1..={max_secs}s")]
    InvalidTtl {
        /// The requested lifetime.
        ttl_secs: u64,
        /// The longest lifetime allowed.
        max_secs: u64,
    },

    /// A requested CA lifetime is out of range.
    #[error("ca lifetime {lifetime_secs}s is out of range {min_secs}..={max_secs}s")]
    InvalidCaLifetime {
        /// The requested lifetime.
        lifetime_secs: u64,
        /// The shortest lifetime allowed.
        min_secs: u64,
        /// The longest lifetime allowed.
        max_secs: u64,
    },

    /// A timestamp cannot be represented in a certificate.
    #[error("time {unix_secs} is out of range for a certificate")]
    TimeOutOfRange {
        /// The timestamp, unix seconds.
        unix_secs: i64,
    },

    /// The CA certificate is not valid at the requested time.
    #[error("ca `{ca_id}` is not valid at {now}: valid from {not_before} until {not_after}")]
    CaNotValid {
        /// The CA's id.
        ca_id: String,
        /// The time asked about, unix seconds.
        now: i64,
        /// Start of the CA's validity, unix seconds.
        not_before: i64,
        /// End of the CA's validity, unix seconds.
        not_after: i64,
    },

    /// DER bytes do not parse as an X.509 certificate.
    #[error("malformed certificate: {reason}")]
    MalformedCertificate {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A certificate is not a CA certificate this crate can use.
    #[error("not a usable ca certificate: {reason}")]
    NotCaCertificate {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A peer certificate is not a SPIFFE X.509 SVID leaf.
    #[error("peer certificate is not an x509 svid: {reason}")]
    NotAnSvid {
        /// What is wrong with it.
        reason: String,
    },

    /// Private key bytes do not load (the bytes are never echoed).
    #[error("invalid private key: {reason}")]
    InvalidPrivateKey {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The private key is not the one certified by the CA certificate.
    #[error("private key does not match the public key of ca certificate `{ca_id}`")]
    KeyMismatch {
        /// The certificate's CA id.
        ca_id: String,
    },

    /// Certificate or CSR generation failed inside the CA (a fault, not bad input).
    #[error("certificate generation failed: {reason}")]
    Generation {
        /// The underlying error, which holds no key material.
        reason: String,
    },

    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Rng,
}

impl CaError {
    /// True when the error is about input the caller sent (answer 4xx), false
    /// when it is a fault of the CA or its stored state (answer 5xx).
    #[must_use]
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::InvalidSpiffeId { .. }
            | Self::InvalidTrustDomain { .. }
            | Self::ForeignTrustDomain { .. }
            | Self::TooLarge { .. }
            | Self::MalformedPem { .. }
            | Self::MalformedCsr { .. }
            | Self::UnsupportedKey { .. }
            | Self::UnsupportedSignatureAlgorithm { .. }
            | Self::CsrSignatureInvalid
            | Self::CsrNameMismatch { .. }
            | Self::CsrTooManyNames { .. }
            | Self::CsrSubjectNotAllowed { .. }
            | Self::InvalidTtl { .. }
            | Self::InvalidCaLifetime { .. }
            | Self::MalformedCertificate { .. }
            | Self::NotCaCertificate { .. }
            | Self::NotAnSvid { .. } => true,
            Self::TimeOutOfRange { .. }
            | Self::CaNotValid { .. }
            | Self::InvalidPrivateKey { .. }
            | Self::KeyMismatch { .. }
            | Self::Generation { .. }
            | Self::Rng => false,
        }
    }

    pub(crate) fn generation(err: rcgen::Error) -> Self {
        Self::Generation {
            reason: err.to_string(),
        }
    }
}

/// Escapes and shortens user input for an error message.
pub(crate) fn echo(input: &str) -> String {
    let mut out = String::with_capacity(input.len().min(MAX_ECHO_CHARS) + 8);
    for (n, c) in input.chars().enumerate() {
        if n == MAX_ECHO_CHARS {
            out.push_str("...");
            break;
        }
        if c == '`' {
            out.push_str("\\`");
        } else {
            out.extend(c.escape_debug());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_escapes_control_characters_and_backticks() {
        assert_eq!(echo("a\nb`c"), "a\\nb\\`c");
    }

    #[test]
    fn echo_shortens_long_input() {
        let long = "x".repeat(1000);
        let shown = echo(&long);
        assert_eq!(shown.len(), MAX_ECHO_CHARS + 3);
        assert!(shown.ends_with("..."));
    }

    #[test]
    fn messages_are_lowercase_without_trailing_period() {
        let errors = [
            CaError::CsrSignatureInvalid,
            CaError::Rng,
            CaError::CsrTooManyNames { count: 2 },
            CaError::MalformedCsr { reason: "x" },
        ];
        for e in errors {
            let msg = e.to_string();
            assert!(msg.chars().next().is_some_and(|c| c.is_lowercase()), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
    }
}
