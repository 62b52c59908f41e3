//! The JWS algorithms Castellan signs and verifies with.

use std::fmt;
use std::str::FromStr;

/// A signature algorithm. HMAC and `none` are deliberately absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256, JOSE (r‖s) signatures. The default.
    ES256,
    /// Ed25519.
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32.
    PS256,
}

impl Algorithm {
    /// Every algorithm, in preference order.
    pub const ALL: [Algorithm; 4] = [Self::ES256, Self::EdDSA, Self::RS256, Self::PS256];

    /// The JWA name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = crate::JoseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| crate::JoseError::AlgorithmRefused(s.chars().take(32).collect()))
    }
}
