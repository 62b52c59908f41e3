//! Canonical unpadded base64url, as JWS requires.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Encodes without padding.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes canonical unpadded base64url; padding, other alphabets and
/// non-zero trailing bits are refused.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_canonical_forms() {
        assert_eq!(decode("AQ"), Some(vec![1]));
        assert_eq!(decode("AR"), None, "non-zero trailing bits");
        assert_eq!(decode("AQ=="), None, "padding");
        assert_eq!(decode("+/"), None, "standard alphabet");
        assert_eq!(decode("A"), None, "impossible length");
        assert_eq!(decode("A?"), None);
    }
}
