//! Shared plumbing: locating the vectors, decoding, and classifying what
//! `verify_compact` did with a token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use castellan_jose::{
    b64, decode_unverified_header, strict_json, verify_compact, JoseError, VerifyOptions, VerifyingKey,
};
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `../shared/conformance/` relative to the workspace root
/// (`CARGO_MANIFEST_DIR/../..`): the repository is checked out next to
/// `shared/`, here and in CI.
const CONFORMANCE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance/");

/// The vectors directory; `None` (after a loud `SKIPPED:` line) when it is
/// missing outside CI. Panics when it is missing and `CI` is set.
pub fn conformance_dir(suite: &str) -> Option<PathBuf> {
    let dir = Path::new(CONFORMANCE_DIR);
    if dir.is_dir() {
        return Some(dir.to_path_buf());
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{suite}: conformance vectors not found at {} and CI is set; put a copy of shared/ beside the checkout",
            dir.display()
        );
    }
    // Written straight to stderr so the test harness does not capture it.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {suite}: conformance vectors not found at {} (set CI=1 to make this a failure)",
        dir.display()
    );
    None
}

/// Reads and parses one vector file; a missing file inside a present
/// directory is a failure, not a skip.
pub fn load(dir: &Path, rel: &str) -> Value {
    let path = dir.join(rel);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A summary line that is shown even when the harness captures output.
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

pub fn hex(s: &str) -> Vec<u8> {
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            assert_eq!(pair.len(), 2, "odd hex length");
            u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()
        })
        .collect()
}

pub fn obj(v: &Value) -> &Map<String, Value> {
    v.as_object().expect("a JSON object")
}

pub fn str_of<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or_else(|| panic!("`{name}` is not a string"))
}

/// Members only a private or symmetric JWK carries.
pub const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The public part of a JWK: every private member removed.
pub fn public_part(jwk: &Map<String, Value>) -> Map<String, Value> {
    let mut out = jwk.clone();
    for m in PRIVATE_MEMBERS {
        out.remove(m);
    }
    out
}

/// What `verify_compact` did with a token.
#[derive(Debug)]
pub enum Outcome {
    /// Accepted outright.
    Verified,
    /// The signature verified under the key the header's `kid` names, and
    /// the token was then refused only because its payload is not a JSON
    /// object. Castellan verifies JWTs; the public vectors sign arbitrary
    /// bytes (`foo`, `Test`, RFC 7520's prose), so for them this is the
    /// strongest "accepted" `verify_compact` can report. It counts as
    /// accepted everywhere below: an invalid vector that reaches it is a
    /// forgery that got past the signature check.
    SignatureOnly,
    /// Refused before or at the signature.
    Refused(JoseError),
}

impl Outcome {
    pub fn accepted(&self) -> bool {
        !matches!(self, Outcome::Refused(_))
    }
}

/// Runs `token` through `verify_compact` with `keys` looked up by `kid`, and
/// classifies the result. `SignatureOnly` is confirmed independently (the
/// signature is re-verified with the key, and the payload is checked not to
/// be a JSON object), so it never depends on the order of checks inside
/// `verify_compact`.
pub fn run(token: &str, keys: &[VerifyingKey]) -> Outcome {
    let find = |kid: &str| keys.iter().find(|k| k.kid() == kid);
    match verify_compact(token, VerifyOptions::default(), find) {
        Ok(_) => Outcome::Verified,
        Err(JoseError::Json { part: "payload", .. }) => {
            let (input, sig) = token.rsplit_once('.').unwrap();
            let header = decode_unverified_header(token).unwrap();
            let key = find(header["kid"].as_str().unwrap()).expect("payload refused without a key");
            key.verify_signature(input.as_bytes(), &b64::decode(sig).unwrap())
                .expect("payload refused although the signature does not verify");
            let payload = b64::decode(input.split_once('.').unwrap().1).unwrap();
            assert!(
                strict_json::parse_object(&payload).is_err(),
                "payload refused although it is a JSON object"
            );
            Outcome::SignatureOnly
        }
        Err(e) => Outcome::Refused(e),
    }
}

/// A reviewed departure from a vector's label.
pub struct Deviation {
    pub tc_id: u64,
    /// The label in the file.
    pub label: &'static str,
    /// What Castellan does instead (or does for a different reason).
    pub castellan_accepts: bool,
    pub reason: &'static str,
}
