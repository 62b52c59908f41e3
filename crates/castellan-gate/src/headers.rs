//! Identity headers: what the gate tells the service about the caller.

use castellan_verify::{Rejection, VerifiedToken};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Every identity header starts with this; incoming headers with the prefix
/// are stripped before forwarding, so a caller cannot claim an identity.
pub const IDENTITY_PREFIX: &str = "x-castellan-";

/// The identity headers the gate sets.
pub const IDENTITY_HEADERS: [&str; 5] = [
    "x-castellan-subject",
    "x-castellan-client-id",
    "x-castellan-scope",
    "x-castellan-sid",
    "x-castellan-audience",
];

/// The identity headers for a verified token.
pub fn identity(token: &VerifiedToken) -> Result<HeaderMap, Rejection> {
    let mut out = HeaderMap::with_capacity(IDENTITY_HEADERS.len());
    let values = [
        token.sub.as_str(),
        token.client_id.as_str(),
        token.scope.as_deref().unwrap_or(""),
        token.sid.as_str(),
        token.aud.as_str(),
    ];
    for (name, value) in IDENTITY_HEADERS.iter().zip(values) {
        let v = HeaderValue::from_str(value)
            .map_err(|_| Rejection::Malformed(format!("claim for `{name}` is not a valid header value")))?;
        out.insert(HeaderName::from_static(name), v);
    }
    Ok(out)
}

/// Removes every header with the identity prefix.
pub fn strip_identity(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(IDENTITY_PREFIX))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}
